//! The `telehealth` command line as a person uses it: help, configuration layers, migrate, and a
//! graceful stop on SIGTERM. (The HTTP behaviour is tested in the workspace's `tests/` crate.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_telehealth");

fn run(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("telehealth runs")
}

#[test]
fn help_lists_every_subcommand_and_setting() {
    let out = run(&["--help"], &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in [
        "serve",
        "migrate",
        "demo",
        "--listen",
        "--data-dir",
        "--database-url",
        "--config",
    ] {
        assert!(
            text.contains(word),
            "--help does not mention {word}:\n{text}"
        );
    }
    for sub in ["serve", "migrate", "demo"] {
        let out = run(&[sub, "--help"], &[]);
        assert!(out.status.success(), "{sub} --help fails");
    }
    let demo = String::from_utf8_lossy(&run(&["demo", "--help"], &[]).stdout).to_string();
    assert!(demo.contains("--care-centres") && demo.contains("--seed-only"));
}

#[test]
fn migrate_creates_the_embedded_database_in_the_data_dir() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().join("nested").join("data");
    let out = run(
        &["migrate", "--data-dir", data.to_str().expect("utf-8 path")],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data.join("telehealth.db").exists());
    // Migrating again is a no-op, not an error.
    let out = run(
        &["migrate", "--data-dir", data.to_str().expect("utf-8 path")],
        &[],
    );
    assert!(out.status.success());
}

#[test]
fn configuration_errors_are_reported_not_panicked() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = 12\n").expect("write config");
    let out = run(
        &["migrate", "--config", file.to_str().expect("utf-8 path")],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
    let out = run(&["migrate", "--database-url", "mysql://x/y"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
    let out = run(&["serve", "--log-format", "xml"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let file = dir.path().join("telehealth.toml");
    let from_file = dir.path().join("from-file");
    let from_env = dir.path().join("from-env");
    let from_flag = dir.path().join("from-flag");
    std::fs::write(
        &file,
        format!("data_dir = {:?}\n", from_file.display().to_string()),
    )
    .expect("write config");
    let cfg = file.to_str().expect("utf-8 path");
    assert!(run(&["migrate", "--config", cfg], &[]).status.success());
    assert!(from_file.join("telehealth.db").exists());
    let env_dir = from_env.to_str().expect("utf-8 path");
    assert!(
        run(
            &["migrate", "--config", cfg],
            &[("TELEHEALTH_DATA_DIR", env_dir)]
        )
        .status
        .success()
    );
    assert!(from_env.join("telehealth.db").exists());
    let flag_dir = from_flag.to_str().expect("utf-8 path");
    assert!(
        run(
            &["migrate", "--config", cfg, "--data-dir", flag_dir],
            &[("TELEHEALTH_DATA_DIR", env_dir)]
        )
        .status
        .success()
    );
    assert!(from_flag.join("telehealth.db").exists());
}

#[test]
fn serve_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().expect("utf-8 path"),
            "--log-format",
            "json",
        ])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    // The JSON log announces the bound address.
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let started = Instant::now();
    let mut serving = false;
    while started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("log lines are JSON");
        if parsed["message"] == "serving" {
            assert!(
                parsed["address"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("127.0.0.1:"))
            );
            serving = true;
            break;
        }
    }
    assert!(serving, "the server did not report that it is serving");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(code) = child.try_wait().expect("wait on child") {
            assert!(code.success(), "exit status after SIGTERM: {code}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop within 15 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request over a plain socket; returns the status and body.
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read response");
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[test]
fn no_secret_or_health_data_reaches_the_logs() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let data = dir.path().to_str().expect("utf-8 path");
    const PASSWORD: &str = "Sentinel-Password-7d1e";
    let out = run(
        &[
            "account",
            "create",
            "--data-dir",
            data,
            "--username",
            "ops",
            "--display-name",
            "Ops",
            "--role",
            "administrator",
            "--role",
            "scheduler",
        ],
        &[("TELEHEALTH_NEW_PASSWORD", PASSWORD)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The most verbose logging there is, so that nothing hides below the default level.
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--log-format",
            "json",
        ])
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "trace")
        .stderr(Stdio::piped())
        .spawn()
        .expect("server starts");
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let mut addr = None;
    while addr.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server logs");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && v["message"] == "serving"
        {
            addr = v["address"].as_str().map(str::to_string);
        }
        log.push(line);
    }
    let addr = addr.expect("address");
    let (status, _) = http(
        &addr,
        "POST",
        "/api/v1/auth/login",
        None,
        r#"{"username":"ops","password":"Wrong-Sentinel-Password"}"#,
    );
    assert_eq!(status, 401);
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/auth/login",
        None,
        &format!(r#"{{"username":"ops","password":"{PASSWORD}"}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let token: String = serde_json::from_str::<serde_json::Value>(&body).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/patients",
        Some(&token),
        r#"{"full_name":"Sentinel Patient Name","date_of_birth":"1970-05-05","sex":"female","phone":"0987654321","national_id":"012345678901"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).expect("json")["id"]
        .as_i64()
        .expect("id");
    let (status, _) = http(
        &addr,
        "GET",
        &format!("/api/v1/patients/{id}?"),
        Some(&token),
        "",
    );
    assert_eq!(status, 200);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let _ = child.wait();
    let _ = reader.join();
    log.extend(rx.try_iter());
    let all = log.join("\n");
    assert!(all.len() > 1000, "trace logging produced little: {all}");
    for secret in [
        PASSWORD,
        "Wrong-Sentinel-Password",
        token.as_str(),
        "Sentinel Patient Name",
        "0987654321",
        "012345678901",
        "1970-05-05",
    ] {
        assert!(!all.contains(secret), "{secret:?} appears in the logs");
    }
    // What the server did is in the audit trail, and the chain verifies from the command line.
    let out = run(&["audit", "verify", "--data-dir", data], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("chain: 4 events, every link verified")
            && text.contains("audit trail intact"),
        "{text}"
    );
}
