//! One server node in a process of its own, for `tests/tests/crash.rs` to kill with SIGKILL: the
//! real `Application` on the database `CRASH_NODE_DATABASE_URL`, with the data folder
//! `CRASH_NODE_DATA_DIR` (keys live there, so a restarted node is the same deployment). It prints
//! `listening <address>` once it accepts connections, and serves until it is killed.
//!
//! The per-account booking rate and the hold caps are off: the crash test drives one account
//! much harder than a clinic would. With `CRASH_NODE_WEBHOOK_URL` set, the node's outbox
//! dispatcher delivers to a webhook endpoint `his` there (signed with [`WEBHOOK_SECRET`]),
//! polling every 20 ms with the shortest lease the server accepts, for `tests/outbox_crash.rs`.

use std::process::ExitCode;

use telehealth::config::{DatabaseUrl, Secret, Settings, WebhookSettings};
use telehealth::startup::Application;

fn setting(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

/// The secret of the crash node's webhook endpoint.
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn serve() -> Result<(), String> {
    let webhooks = match std::env::var("CRASH_NODE_WEBHOOK_URL") {
        Ok(url) => vec![WebhookSettings {
            name: "his".into(),
            url: Secret::new(url),
            secrets: vec![Secret::new(WEBHOOK_SECRET)],
            events: Vec::new(),
        }],
        Err(_) => Vec::new(),
    };
    let settings = Settings {
        webhooks,
        outbox_poll_ms: 20,
        outbox_lease_seconds: 11,
        outbox_backoff_base_ms: 100,
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
