//! One server node in a process of its own, for `tests/tests/crash.rs` to kill with SIGKILL: the
//! real `Application` on the database `CRASH_NODE_DATABASE_URL`, with the data folder
//! `CRASH_NODE_DATA_DIR` (keys live there, so a restarted node is the same deployment). It prints
//! `listening <address>` once it accepts connections, and serves until it is killed.
//!
//! The per-account booking rate and the hold caps are off: the crash test drives one account
//! much harder than a clinic would.

use std::process::ExitCode;

use telehealth::config::{DatabaseUrl, Settings};
use telehealth::startup::Application;

fn setting(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

async fn serve() -> Result<(), String> {
    let settings = Settings {
        listen: "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?,
        data_dir: setting("CRASH_NODE_DATA_DIR")?.into(),
        database_url: Some(DatabaseUrl::new(setting("CRASH_NODE_DATABASE_URL")?)),
        database_max_connections: 20,
        booking_per_account_per_minute: 0,
        holds_per_account: 0,
        holds_per_patient: 0,
        ..Settings::default()
    };
    let app = Application::build(&settings)
        .await
        .map_err(|e| format!("the node did not start: {e}"))?;
    println!("listening {}", app.local_addr());
    app.run_until_stopped(std::future::pending()).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
