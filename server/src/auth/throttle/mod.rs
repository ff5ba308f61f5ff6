//! Sign-in limits: how many password checks one user name, one client address, and the pair of
//! them may have, decided *before* the password is checked.
//!
//! Every attempt first takes a reservation: in one write transaction (SQLite `BEGIN IMMEDIATE`;
//! on PostgreSQL transaction-scoped advisory locks on the user name, then on the address) the
//! limits are checked against the attempts already recorded, failed ones *and those still in
//! flight*, and the attempt is written as `in_flight`. Only then is the password checked, and the
//! row becomes `failed` or `succeeded`. So parallel guesses cannot all pass a check that none of
//! them has yet been counted in, and the limits live in the database: every node sees the same
//! counts, and a restart resets nothing. A reservation whose request died (a crash, a dropped
//! connection) stops counting after [`IN_FLIGHT_TIMEOUT_SECONDS`].
//!
//! The rules, chosen so that nobody can lock anybody out:
//! - **Pair**: [`PAIR_FAILURES`] failures for one user name from one address within
//!   [`WINDOW_SECONDS`] refuse that name from that address until the oldest leaves the window.
//!   The same name from any other address is unaffected.
//! - **Account slowdown**: after [`ACCOUNT_FREE_FAILURES`] failures for one name (from anywhere)
//!   within the window, each further attempt must wait after the previous one, 5 s doubling up to
//!   60 s. It slows a guesser spread over many addresses; it never locks the account.
//! - **Address ceiling**: [`ADDRESS_FAILURES`] failures from one address within the window
//!   refuse names that have not signed in from there. High enough for a care centre whose staff
//!   share one public address (30 people mistyping twice each stay well below it).
//! - **Known addresses**: a name that signed in successfully from an address within
//!   [`KNOWN_ADDRESS_DAYS`] days skips the slowdown and the ceiling there (never the pair rule),
//!   so an attacker elsewhere cannot slow the owner down at their usual place.
//! - **Rate** (in-process, per node, with `governor`): at most a burst of attempts per address,
//!   refilled at a steady rate, so one address cannot keep a node busy hashing passwords.
//!
//! A user name that does not exist is limited exactly like one that does, and its password is
//! checked against a dummy hash, so neither the answer, the 429s nor the timing tell them apart.
//! IPv6 clients are counted by their /64 network, which one household or office usually holds
//! whole. The audit trail keeps every attempt, refusals included, with the full address.

pub mod store;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::storage::Db;
use store::Since;

/// The window the database limits count failures in.
pub const WINDOW_SECONDS: i64 = 15 * 60;
/// Failures of one user name from one address within the window.
pub const PAIR_FAILURES: i64 = 5;
/// Failures of one user name within the window before each attempt must wait.
pub const ACCOUNT_FREE_FAILURES: i64 = 10;
/// The first wait of the account slowdown; it doubles with each further failure.
pub const ACCOUNT_DELAY_BASE_SECONDS: i64 = 5;
/// The longest wait of the account slowdown.
pub const ACCOUNT_DELAY_MAX_SECONDS: i64 = 60;
/// Failures from one address within the window before names new to it are refused.
pub const ADDRESS_FAILURES: i64 = 100;
/// How long a reservation counts without an outcome: far longer than a password check takes.
pub const IN_FLIGHT_TIMEOUT_SECONDS: i64 = 60;
/// How long a successful sign-in makes its address a known one for that name.
pub const KNOWN_ADDRESS_DAYS: i64 = 30;
/// How long refused or finished attempts are kept beyond the window (successes: the known period).
const RETENTION_DAYS: i64 = 1;
/// Old rows are swept once every this many attempts on a node.
const SWEEP_EVERY: u64 = 500;
/// How soon an attempt still in flight is expected to have its outcome, for `Retry-After`.
const IN_FLIGHT_SETTLES_SECONDS: i64 = 2;

/// Which rule refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Too many attempts from this address hit this node at once (in-process).
    AddressRate,
    /// Too many failures for this user name from this address.
    Pair,
    /// Too many failures from this address, for names new to it.
    AddressCeiling,
    /// This user name is being guessed from many places: attempts are spaced out.
    AccountSlowdown,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::AddressRate => "address_rate",
            Rule::Pair => "account_address",
            Rule::AddressCeiling => "address",
            Rule::AccountSlowdown => "account",
        }
    }
}

/// An attempt that was not allowed to check a password, and when one may be tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    /// Whole seconds, at least one.
    pub retry_after_seconds: u64,
}

/// The in-process part of the limits, and the handle to the shared part. One per node.
pub struct SignInLimits {
    rate: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    attempts: AtomicU64,
}

impl SignInLimits {
    /// `per_minute` attempts per address refill a bucket of `burst`.
    pub fn new(per_minute: u32, burst: u32) -> SignInLimits {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(one))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(one));
        SignInLimits {
            rate: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            attempts: AtomicU64::new(0),
        }
    }

    /// Checks every limit for `username` from `client_addr` and, when they allow it, reserves the
    /// attempt. The caller checks the password only with a [`Reservation`] in hand, and reports
    /// the outcome through it.
    pub async fn reserve(
        self: &Arc<Self>,
        db: &Db,
        username: &str,
        client_addr: Option<&str>,
    ) -> Result<Result<Reservation, Refusal>, sqlx::Error> {
        let key = limit_key(client_addr);
        let n = self.attempts.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            // Keys whose bucket is full again carry no information.
            self.rate.retain_recent();
        }
        if let Err(not_until) = self.rate.check_key(&key) {
            let wait = not_until.wait_time_from(self.clock.now());
            return Ok(Err(Refusal {
                rule: Rule::AddressRate,
                retry_after_seconds: whole_seconds(wait),
            }));
        }
        let now = Utc::now().trunc_subsecs(3);
        let decided = reserve_in_db(db, username, &key, now).await?;
        if n.is_multiple_of(SWEEP_EVERY) {
            sweep(db, now).await?;
        }
        Ok(decided.map(|id| Reservation {
            id,
            db: db.clone(),
            finished: false,
        }))
    }
}

/// An attempt that may check a password. Dropping it unfinished (the request was cancelled)
/// records a failure, so an abandoned guess still counts.
pub struct Reservation {
    id: i64,
    db: Db,
    finished: bool,
}

impl Reservation {
    /// Records the outcome of the password check.
    pub async fn finish(mut self, succeeded: bool) -> Result<(), sqlx::Error> {
        self.finished = true;
        finish(&self.db, self.id, succeeded).await
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let (db, id) = (self.db.clone(), self.id);
        // Without a runtime (shutdown) the row simply times out.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = finish(&db, id, false).await {
                    tracing::warn!(error = %e, "could not record an abandoned sign-in attempt");
                }
            });
        }
    }
}

async fn finish(db: &Db, id: i64, succeeded: bool) -> Result<(), sqlx::Error> {
    let mut c = db.acquire().await?;
    store::finish(c.conn(), id, succeeded, Utc::now().trunc_subsecs(3)).await
}

/// The limit decision and the reservation, in one transaction that excludes every other
/// reservation for the same name or address.
async fn reserve_in_db(
    db: &Db,
    username: &str,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Result<i64, Refusal>, sqlx::Error> {
    let since = Since {
        window_start: now - chrono::Duration::seconds(WINDOW_SECONDS),
        in_flight_start: now - chrono::Duration::seconds(IN_FLIGHT_TIMEOUT_SECONDS),
        known_since: now - chrono::Duration::days(KNOWN_ADDRESS_DAYS),
    };
    let mut tx = db.begin().await?;
    store::lock(tx.conn(), username, key).await?;
    let c = store::counts(tx.conn(), username, key, since).await?;
    let known = c.known > 0;
    let refusal = if c.pair >= PAIR_FAILURES {
        let rows = store::pair_rows(tx.conn(), username, key, since).await?;
        Some(Refusal {
            rule: Rule::Pair,
            retry_after_seconds: frees_up(&rows, PAIR_FAILURES, now),
        })
    } else if !known && c.address >= ADDRESS_FAILURES {
        let rows = store::address_rows(tx.conn(), key, since).await?;
        Some(Refusal {
            rule: Rule::AddressCeiling,
            retry_after_seconds: frees_up(&rows, ADDRESS_FAILURES, now),
        })
    } else if !known && c.account >= ACCOUNT_FREE_FAILURES {
        slowdown(&c, now)
    } else {
        None
    };
    if let Some(refusal) = refusal {
        // Nothing was written: dropping the transaction rolls it back. The refusal goes to the
        // audit trail with the request.
        drop(tx);
        return Ok(Err(refusal));
    }
    let id = store::insert_in_flight(tx.conn(), username, key, now).await?;
    tx.commit().await?;
    Ok(Ok(id))
}

/// The account slowdown's refusal, while the wait after the latest counted attempt lasts.
fn slowdown(c: &store::Counts, now: DateTime<Utc>) -> Option<Refusal> {
    let next = c.account_last? + account_delay(c.account);
    (next > now).then(|| Refusal {
        rule: Rule::AccountSlowdown,
        retry_after_seconds: whole_seconds((next - now).to_std().unwrap_or_default()),
    })
}

/// The wait between attempts once a name has `failures` (at least the free number) counted.
fn account_delay(failures: i64) -> chrono::Duration {
    let doublings = (failures - ACCOUNT_FREE_FAILURES).clamp(0, 16) as u32;
    let seconds = ACCOUNT_DELAY_BASE_SECONDS
        .saturating_mul(1i64 << doublings)
        .min(ACCOUNT_DELAY_MAX_SECONDS);
    chrono::Duration::seconds(seconds)
}

/// Seconds until fewer than `limit` of `rows` count: failures leave the window, attempts in
/// flight are expected to settle (and the client then learns the exact wait).
fn frees_up(rows: &[(DateTime<Utc>, String)], limit: i64, now: DateTime<Utc>) -> u64 {
    let mut ends: Vec<DateTime<Utc>> = rows
        .iter()
        .map(|(started, outcome)| {
            if outcome == "in_flight" {
                (*started + chrono::Duration::seconds(IN_FLIGHT_TIMEOUT_SECONDS))
                    .min(now + chrono::Duration::seconds(IN_FLIGHT_SETTLES_SECONDS))
            } else {
                *started + chrono::Duration::seconds(WINDOW_SECONDS)
            }
        })
        .collect();
    ends.sort();
    // With n rows counted, n - limit + 1 of them must end for the count to drop below the limit.
    let index = (ends.len() as i64 - limit).max(0) as usize;
    let end = ends.get(index).copied().unwrap_or(now);
    whole_seconds((end - now).to_std().unwrap_or_default())
}

/// A wait rounded up to whole seconds, at least one (`Retry-After` has no fractions).
fn whole_seconds(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

/// Removes rows no limit looks at any more.
async fn sweep(db: &Db, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let mut c = db.acquire().await?;
    store::sweep(
        c.conn(),
        now - chrono::Duration::days(RETENTION_DAYS),
        now - chrono::Duration::days(KNOWN_ADDRESS_DAYS),
    )
    .await
}

/// What the address limits count: an IPv4 address whole, an IPv6 address by its /64 network
/// (one customer's usual allocation, so rotating addresses inside it gains nothing).
pub fn limit_key(client_addr: Option<&str>) -> String {
    let Some(raw) = client_addr else {
        return "unknown".to_string();
    };
    match raw.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => raw.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_by_their_64() {
        assert_eq!(limit_key(Some("127.0.0.2")), "127.0.0.2");
        assert_eq!(limit_key(Some("::ffff:10.1.2.3")), "10.1.2.3");
        assert_eq!(
            limit_key(Some("2001:db8:1:2:aaaa::1")),
            limit_key(Some("2001:db8:1:2:bbbb::9"))
        );
        assert_eq!(limit_key(Some("2001:db8:1:2::1")), "2001:db8:1:2::/64");
        assert_ne!(
            limit_key(Some("2001:db8:1:2::1")),
            limit_key(Some("2001:db8:1:3::1"))
        );
        assert_eq!(limit_key(None), "unknown");
    }

    #[test]
    fn the_slowdown_doubles_up_to_a_minute() {
        let secs = |n| account_delay(n).num_seconds();
        assert_eq!(secs(ACCOUNT_FREE_FAILURES), 5);
        assert_eq!(secs(ACCOUNT_FREE_FAILURES + 1), 10);
        assert_eq!(secs(ACCOUNT_FREE_FAILURES + 3), 40);
        assert_eq!(secs(ACCOUNT_FREE_FAILURES + 4), 60);
        assert_eq!(secs(10_000), 60);
    }

    #[test]
    fn retry_after_is_when_the_count_drops_below_the_limit() {
        let now = Utc::now().trunc_subsecs(3);
        let ago = |s| now - chrono::Duration::seconds(s);
        let failed = |s| (ago(s), "failed".to_string());
        // Five failures, the oldest 10 minutes ago: free again in 5 minutes.
        let rows: Vec<_> = [600, 300, 200, 100, 10].into_iter().map(failed).collect();
        assert_eq!(frees_up(&rows, 5, now), 300);
        // Six counted: two must leave.
        let rows: Vec<_> = [600, 500, 200, 100, 10, 5]
            .into_iter()
            .map(failed)
            .collect();
        assert_eq!(frees_up(&rows, 5, now), 400);
        // An attempt in flight settles within seconds.
        let mut rows: Vec<_> = [600, 500, 200, 100].into_iter().map(failed).collect();
        rows.push((now, "in_flight".to_string()));
        assert_eq!(frees_up(&rows, 5, now), 2);
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
    }
}
