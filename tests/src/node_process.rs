//! A server node in a process of its own (`src/bin/crash_node.rs`), on a test's database and data
//! folder, for tests that kill it with SIGKILL and start it again.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::TestApp;

/// A node process and the address it serves on.
pub struct NodeProcess {
    child: Child,
    pub base: String,
}

impl NodeProcess {
    /// Starts the node binary `exe` (an integration test's `env!("CARGO_BIN_EXE_crash_node")`)
    /// on `app`'s database and data folder, with `env` added to its environment, and waits until
    /// it listens.
    pub async fn start(exe: &str, app: &TestApp, env: &[(&str, &str)]) -> NodeProcess {
        let mut command = Command::new(exe);
        command
            .env("CRASH_NODE_DATABASE_URL", app.database_url())
            .env("CRASH_NODE_DATA_DIR", &app.settings().data_dir)
            .env("RUST_LOG", "error");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the crash node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the node listens within a minute")
            .expect("its output reads")
            .expect("it prints where it listens");
        let addr = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line from the node: {line}"));
        NodeProcess {
            base: format!("http://{addr}"),
            child,
        }
    }

    /// SIGKILL: no drain, no flush, nothing the process gets to finish.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("the node is killed");
        self.child.wait().await.expect("the node is reaped");
    }
}
