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
