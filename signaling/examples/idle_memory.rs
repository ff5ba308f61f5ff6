//! Rough memory per idle participant: serves signaling in this process, starts a second process
//! (this program with `clients`) that joins N participants in rooms of two and keeps them idle,
//! and prints how much this process's resident memory grew per participant.
//!
//! `cargo run -p telehealth-signaling --example idle_memory -- 2000`

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use telehealth_signaling::admission::BoxFuture;
use telehealth_signaling::token::{self, JoinClaims, Role};
use telehealth_signaling::{
    Admission, CallObserver, Hub, HubConfig, RoomAccess, RoomEvent, RoomState, Unavailable,
};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

struct Quiet;
impl CallObserver for Quiet {
    fn call_started(&self, _: i64, _: DateTime<Utc>) {}
    fn call_ended(&self, _: i64, _: DateTime<Utc>, _: DateTime<Utc>) {}
    fn room_event(&self, _: RoomEvent) {}
}

/// Every consultation open, at access version 1: this example measures memory, not admission.
struct Open;
impl Admission for Open {
    fn check<'a>(
        &'a self,
        _: i64,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Option<RoomAccess>, Unavailable>> {
        let now = Utc::now().timestamp();
        Box::pin(async move {
            Ok(Some(RoomAccess {
                state: RoomState::Open,
                version: 1,
                opens_at: now - 3600,
                closes_at: now + 3600,
                listed: true,
                revoked_at: None,
            }))
        })
    }
    fn revoked(&self, _: i64, _: &str, _: DateTime<Utc>) {}
}

const MASTER: &[u8] = b"idle memory example";

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("clients") {
        return clients(args[2].parse()?, &args[3]).await;
    }
    let n: usize = args.get(1).map_or(Ok(2000), |a| a.parse())?;
    let hub = Hub::new(
        HubConfig {
            max_rooms: 100_000,
            max_connections: 100_000,
            ..HubConfig::default()
        },
        token::key_from_master(MASTER),
        Arc::new(Quiet),
        Arc::new(Open),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        warp::serve(telehealth_signaling::ws::routes(hub.clone()))
            .incoming(listener)
            .run(),
    );

    // Warm up (runtime, allocator arenas, first room) with a few participants.
    let warm = 20;
    let mut child_warm = tokio::process::Command::new(std::env::current_exe()?)
        .args(["clients", &warm.to_string(), &addr.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    wait_ready(&mut child_warm).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes();

    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["clients", &n.to_string(), &addr.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    wait_ready(&mut child).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_bytes();
    let stats = hub.stats();
    println!("{stats:?}");
    println!(
        "RSS before {} KiB, after {} KiB: {} bytes per idle participant ({n})",
        before / 1024,
        after / 1024,
        (after.saturating_sub(before)) / n
    );
    child.kill().await?;
    child_warm.kill().await?;
    Ok(())
}

async fn wait_ready(child: &mut tokio::process::Child) -> Result<(), Box<dyn std::error::Error>> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if line == "ready" {
            return Ok(());
        }
    }
    Err("clients ended early".into())
}

async fn clients(n: usize, addr: &str) -> Result<(), Box<dyn std::error::Error>> {
    let key = token::key_from_master(MASTER);
    let now = Utc::now().timestamp();
    let base = i64::from(std::process::id()) * 1_000_000;
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        let consultation = base + (i / 2) as i64;
        let (participant, role) = if i % 2 == 0 {
            (format!("c{i}"), Role::Clinician)
        } else {
            (format!("p{i}"), Role::Patient)
        };
        let token = token::issue(
            &key,
            &JoinClaims {
                consultation,
                participant,
                name: format!("Participant {i}"),
                role,
                opens_at: now - 60,
                closes_at: now + 3600,
                expires_at: now + 600,
                access: 1,
                issued_at: now,
            },
        );
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/signaling")).await?;
        ws.send(Message::Text(
            format!(r#"{{"v":1,"type":"join","token":"{token}"}}"#).into(),
        ))
        .await?;
        ws.next().await.ok_or("closed")??;
        sockets.push(ws);
    }
    println!("ready");
    // Keep reading so that pings are answered.
    let mut tasks = Vec::new();
    for mut ws in sockets {
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    for task in tasks {
        task.await?;
    }
    Ok(())
}
