//! The SQL of the sign-in limits: `sign_in_attempts`, one row per attempt that was allowed to
//! check a password. Each function runs on the caller's connection; the rules are
//! [`crate::auth::throttle`]'s.

use chrono::{DateTime, Utc};

use crate::on_conn;
use crate::storage::Conn;

/// Namespaces (first key) of the PostgreSQL advisory locks, so they meet no other lock.
const LOCK_ACCOUNT: i32 = 0x5167_4E01;
const LOCK_ADDRESS: i32 = 0x5167_4E02;

/// The window a count looks at: failures since `window_start` and attempts still in flight that
/// started since `in_flight_start` count; successes since `known_since` make an address known.
#[derive(Clone, Copy, Debug)]
pub struct Since {
    pub window_start: DateTime<Utc>,
    pub in_flight_start: DateTime<Utc>,
    pub known_since: DateTime<Utc>,
}

/// What the limits need to know about the attempts already made.
#[derive(sqlx::FromRow)]
pub struct Counts {
    pub pair: i64,
    pub account: i64,
    pub account_last: Option<DateTime<Utc>>,
    pub address: i64,
    pub known: i64,
}

/// Keeps every other reservation for `username` or for `key` out until the caller's transaction
/// ends.
///
/// The engines differ: PostgreSQL takes transaction-scoped advisory locks on the name and on the
/// address (always the name's first, so no two reservations wait for each other in a cycle), and
/// other names and addresses go on in parallel; SQLite has no such locks and needs none, since
/// the write transaction ([`crate::storage::Db::begin`], `BEGIN IMMEDIATE`) already holds the
/// database's one write lock from before the first read.
pub async fn lock(conn: Conn<'_>, username: &str, key: &str) -> Result<(), sqlx::Error> {
    match conn {
        Conn::Postgres(c) => {
            for (space, value) in [(LOCK_ACCOUNT, username), (LOCK_ADDRESS, key)] {
                sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                    .bind(space)
                    .bind(value)
                    .execute(&mut *c)
                    .await?;
            }
            Ok(())
        }
        Conn::Sqlite(_) => Ok(()),
    }
}

/// Failed attempts within the window and attempts still in flight count; `$3` is the window's
/// start, `$4` the oldest start of an in-flight attempt that still counts.
const COUNTS: &str = "SELECT
   (SELECT COUNT(*) FROM sign_in_attempts WHERE username = $1 AND client_addr = $2
      AND ((outcome = 'failed' AND started_at >= $3) OR (outcome = 'in_flight' AND started_at >= $4))) AS pair,
   (SELECT COUNT(*) FROM sign_in_attempts WHERE username = $1
      AND ((outcome = 'failed' AND started_at >= $3) OR (outcome = 'in_flight' AND started_at >= $4))) AS account,
   (SELECT MAX(started_at) FROM sign_in_attempts WHERE username = $1
      AND ((outcome = 'failed' AND started_at >= $3) OR (outcome = 'in_flight' AND started_at >= $4))) AS account_last,
   (SELECT COUNT(*) FROM sign_in_attempts WHERE client_addr = $2
      AND ((outcome = 'failed' AND started_at >= $3) OR (outcome = 'in_flight' AND started_at >= $4))) AS address,
   (SELECT COUNT(*) FROM sign_in_attempts WHERE username = $1 AND client_addr = $2
      AND outcome = 'succeeded' AND started_at >= $5) AS known";

pub async fn counts(
    conn: Conn<'_>,
    username: &str,
    key: &str,
    since: Since,
) -> Result<Counts, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(COUNTS)
        .bind(username)
        .bind(key)
        .bind(since.window_start)
        .bind(since.in_flight_start)
        .bind(since.known_since)
        .fetch_one(&mut *c)
        .await)
}

/// The counted attempts of `username` from `key`: when each started, and its outcome.
pub async fn pair_rows(
    conn: Conn<'_>,
    username: &str,
    key: &str,
    since: Since,
) -> Result<Vec<(DateTime<Utc>, String)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT started_at, outcome FROM sign_in_attempts
         WHERE username = $1 AND client_addr = $2
           AND ((outcome = 'failed' AND started_at >= $3) OR (outcome = 'in_flight' AND started_at >= $4))",
    )
    .bind(username)
    .bind(key)
    .bind(since.window_start)
    .bind(since.in_flight_start)
    .fetch_all(&mut *c)
    .await)
}

/// The counted attempts from `key`, of any name.
pub async fn address_rows(
    conn: Conn<'_>,
    key: &str,
    since: Since,
) -> Result<Vec<(DateTime<Utc>, String)>, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_as(
        "SELECT started_at, outcome FROM sign_in_attempts
         WHERE client_addr = $1
           AND ((outcome = 'failed' AND started_at >= $2) OR (outcome = 'in_flight' AND started_at >= $3))",
    )
    .bind(key)
    .bind(since.window_start)
    .bind(since.in_flight_start)
    .fetch_all(&mut *c)
    .await)
}

/// Records an attempt in flight; returns its id.
pub async fn insert_in_flight(
    conn: Conn<'_>,
    username: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(
        "INSERT INTO sign_in_attempts (username, client_addr, started_at, outcome)
         VALUES ($1, $2, $3, 'in_flight') RETURNING id",
    )
    .bind(username)
    .bind(key)
    .bind(now)
    .fetch_one(&mut *c)
    .await)
}

/// Gives attempt `id`, if still in flight, its outcome.
pub async fn finish(
    conn: Conn<'_>,
    id: i64,
    succeeded: bool,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let outcome = if succeeded { "succeeded" } else { "failed" };
    on_conn!(conn, c => sqlx::query(
        "UPDATE sign_in_attempts SET outcome = $1, finished_at = $2 WHERE id = $3 AND outcome = 'in_flight'",
    )
    .bind(outcome)
    .bind(now)
    .bind(id)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}

/// Removes the attempts (but successes) that started before `finished_before`, and every one
/// that started before `succeeded_before`.
pub async fn sweep(
    conn: Conn<'_>,
    finished_before: DateTime<Utc>,
    succeeded_before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "DELETE FROM sign_in_attempts
         WHERE (outcome <> 'succeeded' AND started_at < $1) OR started_at < $2",
    )
    .bind(finished_before)
    .bind(succeeded_before)
    .execute(&mut *c)
    .await
    .map(|_| ()))
}
