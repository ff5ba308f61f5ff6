//! Booking limits (issue 12, finding 8): how many holds one booker and one patient may keep at
//! once, and how fast one account may call the booking routes.
//!
//! A hold blocks a slot for everybody else for `hold_seconds` and costs nothing to renew, so
//! without a cap one account could keep a specialist's whole month held by re-holding every few
//! minutes. The caps count live holds in the database, in the transaction that adds one (see
//! [`super::store::lock_holds`]), so they hold across nodes and under concurrency.
//!
//! The request rate is per node, in process (`governor`, one bucket per account): it bounds the
//! work one account can make a node do, not a deployment-wide budget. Sharing it between nodes
//! (through Redis or NATS) belongs to issue 16; until then an account spread over `n` nodes gets
//! `n` times the rate, which still keeps any one node responsive.
//!
//! The defaults are far above what a clinic does: a scheduler booking a whole day for 40
//! specialists (some 640 slots) works through them at a few a minute by hand, and a script doing
//! it at once gets through in about a minute at the default rate; nobody holds a hundred slots at
//! once, and a patient has one or two holds, not ten.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::auth::AccountId;

/// Buckets that are full again carry no information; they are dropped once every this many
/// checks, so the map holds only accounts that booked recently.
const SWEEP_EVERY: u64 = 1000;

/// The caps on holds standing at once. Zero disables a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldCaps {
    pub per_account: u32,
    pub per_patient: u32,
}

/// Which cap a hold ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldCap {
    /// The holds the booking account keeps.
    Account,
    /// The holds the patient has, whoever made them.
    Patient,
}

impl HoldCap {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldCap::Account => "account",
            HoldCap::Patient => "patient",
        }
    }
}

/// A booking request refused by the rate limit, and when the account may try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateRefusal {
    /// Whole seconds, at least one.
    pub retry_after_seconds: u64,
}

/// The booking limits of one node.
pub struct BookingLimits {
    pub holds: HoldCaps,
    /// `None` when the rate limit is off (a rate of zero).
    rate: Option<DefaultKeyedRateLimiter<AccountId>>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl BookingLimits {
    /// `per_minute` booking requests per account refill a bucket of `burst`; a `per_minute` of
    /// zero turns the rate limit off.
    pub fn new(holds: HoldCaps, per_minute: u32, burst: u32) -> BookingLimits {
        let rate = NonZeroU32::new(per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
        });
        BookingLimits {
            holds,
            rate,
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one booking request of `account` against its rate; refuses it when the account's
    /// bucket is empty.
    pub fn admit(&self, account: AccountId) -> Result<(), RateRefusal> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if n % SWEEP_EVERY == SWEEP_EVERY - 1 {
            rate.retain_recent();
        }
        rate.check_key(&account).map_err(|not_until| RateRefusal {
            retry_after_seconds: whole_seconds(not_until.wait_time_from(self.clock.now())),
        })
    }
}

/// A wait rounded up to whole seconds, at least one (`Retry-After` has no fractions).
fn whole_seconds(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: HoldCaps = HoldCaps {
        per_account: 1,
        per_patient: 1,
    };

    #[test]
    fn a_burst_then_refusals_with_a_wait_per_account() {
        let limits = BookingLimits::new(CAPS, 1, 3);
        let (a, b) = (AccountId(1), AccountId(2));
        for _ in 0..3 {
            assert_eq!(limits.admit(a), Ok(()));
        }
        let refused = limits.admit(a).expect_err("the burst is spent");
        // One request a minute: the next is due within the minute.
        assert!(
            (1..=60).contains(&refused.retry_after_seconds),
            "{refused:?}"
        );
        // Another account has its own bucket.
        assert_eq!(limits.admit(b), Ok(()));
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let limits = BookingLimits::new(CAPS, 0, 0);
        for _ in 0..10_000 {
            assert_eq!(limits.admit(AccountId(1)), Ok(()));
        }
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
