//! Helpers of the race tests (`tests/booking_races.rs`, `tests/hold_limits.rs`): park a request
//! at a pause point (`telehealth::pause`), start its competitor, and let it go only once the
//! competitor is waiting for it or done, so the interleaving is the same on every run.

use std::time::Duration;

use telehealth::pause::Pause;
use telehealth::storage::Db;
use tokio::task::JoinHandle;

use crate::{Reply, TestApp};

/// Waits until a task is parked at `paused`; fails the test after 30 s.
pub async fn parked(paused: &Pause) {
    tokio::time::timeout(Duration::from_secs(30), paused.reached())
        .await
        .unwrap_or_else(|_| panic!("nothing reached the pause point {}", paused.name()));
}

/// Waits until `competitor` is blocked on a lock in the database or has finished, whichever comes
/// first; fails the test after 30 s. PostgreSQL reports lock waits (row locks and advisory locks
/// alike) in `pg_stat_activity`. On SQLite it returns at once: while a request is parked inside
/// its write transaction no competitor can begin one (it waits in SQLite's busy handler, which
/// nothing reports), so the competitor runs wholly after the parked request commits, whatever
/// the test does.
pub async fn blocked_or_done<T>(app: &TestApp, competitor: &JoinHandle<T>) {
    let Db::Postgres(pool) = app.db() else {
        return;
    };
    for _ in 0..3000 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .expect("read pg_stat_activity");
        if waiting > 0 || competitor.is_finished() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the competing transaction neither waited for a lock nor finished within 30 s");
}

/// Sends `POST path` with `body` in a task of its own, so the test can go on while it is parked.
pub fn post_in_task(app: &TestApp, path: String, body: serde_json::Value) -> JoinHandle<Reply> {
    let app = app.clone();
    tokio::spawn(async move { app.post(&path, body).await })
}
