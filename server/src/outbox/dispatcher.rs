//! The dispatcher: claims due messages with a lease, sends each through its channel, and
//! settles it (sent, back in the queue with a backoff, or dead).
//!
//! Several nodes run one each on one database. A claim is one `UPDATE ... RETURNING` that sets
//! `status = 'sending'`, the node's `lease_owner` and `lease_until`, and counts the attempt (see
//! [`super::store::claim`]: `FOR UPDATE SKIP LOCKED` on PostgreSQL, SQLite's single writer
//! there), so two nodes never hold one message at once. A node that dies holding a lease leaves
//! the row `sending`; once `lease_until` passes any node claims it again, and the receiver gets
//! the same `webhook-id` as before. The lease must be longer than one attempt can take
//! ([`super::webhook::SEND_TIMEOUT`]), or a slow attempt would be claimed twice; leases are set
//! by the claiming node's clock, so nodes' clocks must agree to within a fraction of it.
//!
//! A retryable failure puts the message back, due after an exponential backoff with full jitter
//! (a delay drawn uniformly from zero to `base * 2^(attempts - 1)`, capped): receivers coming
//! back from an outage are not met by every node's retries at the same instant. After
//! `max_attempts` attempts, or at once for a failure retrying cannot fix, the message is `dead`.
//!
//! Time comes from a [`Clock`], so tests move it forward instead of sleeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use tokio::sync::watch;

use super::channel::{Channel, SendError};
use super::store::{self, Message};
use crate::domain::time;
use crate::storage::Db;

/// Where the dispatcher reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock, in whole seconds like every stored time ([`time::now`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        time::now()
    }
}

/// A clock that moves only when told: for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(time::truncate_seconds(at)))
    }

    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How the dispatcher paces itself; from configuration (`outbox_*`).
#[derive(Clone, Copy, Debug)]
pub struct DispatchSettings {
    /// Attempts before a message is dead.
    pub max_attempts: u32,
    /// How long a claim keeps other nodes off a message.
    pub lease: Duration,
    /// The first retry's largest delay; each later one doubles it...
    pub backoff_base: Duration,
    /// ...up to this.
    pub backoff_max: Duration,
    /// How often an idle dispatcher looks for due messages.
    pub poll: StdDuration,
    /// Messages claimed at once.
    pub batch: i64,
}

impl DispatchSettings {
    pub fn from_settings(s: &crate::config::Settings) -> DispatchSettings {
        DispatchSettings {
            max_attempts: s.outbox_max_attempts.max(1),
            lease: Duration::seconds(i64::from(s.outbox_lease_seconds.max(1))),
            backoff_base: Duration::milliseconds(
                i64::try_from(s.outbox_backoff_base_ms).unwrap_or(i64::MAX / 2),
            ),
            backoff_max: Duration::milliseconds(
                i64::try_from(s.outbox_backoff_max_ms).unwrap_or(i64::MAX / 2),
            ),
            poll: StdDuration::from_millis(s.outbox_poll_ms.max(1)),
            batch: 32,
        }
    }
}

/// The largest delay before attempt `attempts + 1`: `base * 2^(attempts - 1)`, at most `max`.
pub fn backoff_ceiling(s: &DispatchSettings, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    s.backoff_base
        .checked_mul(1 << doublings)
        .map_or(s.backoff_max, |d| d.min(s.backoff_max))
}

/// A delay drawn uniformly from zero to [`backoff_ceiling`] ("full jitter").
fn backoff(s: &DispatchSettings, attempts: i32) -> Duration {
    let ceiling = backoff_ceiling(s, attempts).num_milliseconds().max(0);
    Duration::milliseconds(rand::rng().random_range(0..=ceiling))
}

/// What one pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub dead: usize,
    pub cancelled: usize,
    /// Put off to a later time (quiet hours), no attempt counted.
    pub deferred: usize,
}

/// One node's dispatcher.
pub struct Dispatcher {
    db: Db,
    /// This node's name on the leases it takes.
    owner: String,
    channels: HashMap<&'static str, Arc<dyn Channel>>,
    clock: Arc<dyn Clock>,
    settings: DispatchSettings,
}

impl Dispatcher {
    pub fn new(db: Db, clock: Arc<dyn Clock>, settings: DispatchSettings) -> Dispatcher {
        Dispatcher {
            db,
            owner: format!("node-{}", uuid::Uuid::new_v4().simple()),
            channels: HashMap::new(),
            clock,
            settings,
        }
    }

    /// Sends messages of `name` (as stored in their `channel`) through `channel`.
    pub fn with_channel(mut self, name: &'static str, channel: Arc<dyn Channel>) -> Dispatcher {
        self.channels.insert(name, channel);
        self
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims what is due now and sends it, until nothing more is due; returns what it did.
    pub async fn run_once(&self) -> Result<Pass, sqlx::Error> {
        let mut pass = Pass::default();
        loop {
            let now = self.clock.now();
            let claimed = {
                let mut tx = self.db.begin().await?;
                let claimed = store::claim(
                    tx.conn(),
                    &self.owner,
                    now,
                    now + self.settings.lease,
                    self.settings.batch,
                )
                .await?;
                tx.commit().await?;
                claimed
            };
            let n = claimed.len();
            pass.claimed += n;
            // One batch's messages go out together; each settles on its own.
            let outcomes = futures::future::join_all(claimed.iter().map(|m| self.attempt(m))).await;
            for outcome in outcomes {
                match outcome? {
                    Settled::Sent => pass.sent += 1,
                    Settled::Retry => pass.retried += 1,
                    Settled::Dead => pass.dead += 1,
                    Settled::Cancelled => pass.cancelled += 1,
                    Settled::Deferred => pass.deferred += 1,
                    Settled::Lost => {}
                }
            }
            if (n as i64) < self.settings.batch {
                return Ok(pass);
            }
        }
    }

    async fn attempt(&self, m: &Message) -> Result<Settled, sqlx::Error> {
        let outcome = match self.channels.get(m.channel.as_str()) {
            Some(channel) => channel.send(m, self.clock.now()).await,
            None => Err(super::SendError::permanent("channel not configured")),
        };
        let now = self.clock.now();
        let mut c = self.db.acquire().await?;
        let (settled, held) = match outcome {
            Ok(delivered) => (
                Settled::Sent,
                store::mark_sent(c.conn(), m.id, &self.owner, now, delivered.via).await?,
            ),
            Err(SendError {
                later: Some(at),
                reason,
                ..
            }) => (
                Settled::Deferred,
                store::mark_deferred(
                    c.conn(),
                    m.id,
                    &self.owner,
                    time::truncate_seconds(at),
                    &reason,
                )
                .await?,
            ),
            Err(e) if e.obsolete => (
                Settled::Cancelled,
                store::mark_cancelled(c.conn(), m.id, &self.owner, &e.reason).await?,
            ),
            Err(e) if e.retryable && attempts_left(&self.settings, m.attempts) => {
                // Whole seconds, as every stored time (both engines compare them alike).
                let due = time::truncate_seconds(now + backoff(&self.settings, m.attempts));
                let held = store::mark_retry(c.conn(), m.id, &self.owner, due, &e.reason).await?;
                (Settled::Retry, held)
            }
            Err(e) => (
                Settled::Dead,
                store::mark_dead(c.conn(), m.id, &self.owner, &e.reason).await?,
            ),
        };
        // Ids, kinds and transport errors only: nothing of the message's content.
        match settled {
            Settled::Sent => {
                tracing::debug!(id = m.id, attempts = m.attempts, "outbox message sent")
            }
            Settled::Retry => tracing::info!(
                id = m.id,
                attempts = m.attempts,
                "outbox message will be retried"
            ),
            Settled::Dead => {
                tracing::warn!(id = m.id, kind = %m.event_kind, endpoint = %m.endpoint, attempts = m.attempts, "outbox message dead")
            }
            Settled::Cancelled => {
                tracing::debug!(id = m.id, "outbox message no longer applies")
            }
            Settled::Deferred => tracing::debug!(id = m.id, "outbox message put off"),
            Settled::Lost => {}
        }
        metrics::counter!("outbox_attempts_total", "channel" => m.channel.clone(), "outcome" => settled.as_str())
            .increment(1);
        Ok(if held { settled } else { Settled::Lost })
    }

    /// Runs passes every `poll` until `stop` says so.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = self.run_once().await {
                        tracing::warn!(error = %err, "outbox dispatch failed");
                    }
                }
                _ = stop.changed() => break,
            }
        }
    }
}

fn attempts_left(s: &DispatchSettings, attempts: i32) -> bool {
    u32::try_from(attempts).unwrap_or(u32::MAX) < s.max_attempts
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    Sent,
    Retry,
    Dead,
    Cancelled,
    Deferred,
    /// Another node took the message over meanwhile (our lease ran out); its outcome stands.
    Lost,
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Settled::Sent => "sent",
            Settled::Retry => "retry",
            Settled::Dead => "dead",
            Settled::Cancelled => "cancelled",
            Settled::Deferred => "deferred",
            Settled::Lost => "lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DispatchSettings {
        DispatchSettings {
            max_attempts: 5,
            lease: Duration::seconds(60),
            backoff_base: Duration::seconds(2),
            backoff_max: Duration::seconds(60),
            poll: StdDuration::from_secs(1),
            batch: 8,
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap_and_jitters_below_it() {
        let s = settings();
        assert_eq!(backoff_ceiling(&s, 1), Duration::seconds(2));
        assert_eq!(backoff_ceiling(&s, 2), Duration::seconds(4));
        assert_eq!(backoff_ceiling(&s, 5), Duration::seconds(32));
        assert_eq!(backoff_ceiling(&s, 6), Duration::seconds(60));
        assert_eq!(backoff_ceiling(&s, 1000), Duration::seconds(60));
        let drawn: Vec<_> = (0..200).map(|_| backoff(&s, 4)).collect();
        assert!(
            drawn
                .iter()
                .all(|d| *d >= Duration::zero() && *d <= Duration::seconds(16))
        );
        // Full jitter spreads over the whole range, not around its top.
        assert!(drawn.iter().any(|d| *d < Duration::seconds(8)));
        assert!(drawn.iter().any(|d| *d > Duration::seconds(8)));
    }

    #[test]
    fn attempts_run_out_at_the_configured_number() {
        let s = settings();
        assert!(attempts_left(&s, 4));
        assert!(!attempts_left(&s, 5));
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-08T01:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .expect("a valid instant");
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::minutes(5));
        assert_eq!(c.now(), t0 + Duration::minutes(5));
    }
}
