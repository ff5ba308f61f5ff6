//! Time zones and the conversions between a facility's local wall clock and stored UTC.
//!
//! Everything is stored in UTC; each facility keeps its IANA zone. Local times that do not exist
//! (the hour skipped when daylight saving starts) produce no slot; local times that happen twice
//! (the hour repeated when it ends) take their first occurrence, so a slot is never offered twice.

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};
use chrono_tz::Tz;
use serde::{Serialize, Serializer};

/// The default zone of the network.
pub const DEFAULT_ZONE: &str = "Asia/Ho_Chi_Minh";

/// Slots and bookings are aligned to this grid, in minutes.
pub const GRID_MINUTES: u32 = 5;
const GRID_SECONDS: i64 = GRID_MINUTES as i64 * 60;

/// A validated IANA time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Zone(Tz);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: use an IANA name such as Asia/Ho_Chi_Minh")]
pub struct UnknownZone(pub String);

impl Zone {
    pub fn parse(name: &str) -> Result<Zone, UnknownZone> {
        name.parse::<Tz>()
            .map(Zone)
            .map_err(|_| UnknownZone(name.to_string()))
    }

    pub fn tz(self) -> Tz {
        self.0
    }

    pub const UTC: Zone = Zone(Tz::UTC);

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// The UTC instant of a local wall-clock time, or `None` when that time does not exist.
    pub fn to_utc(self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.0.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }

    /// The local wall-clock time of a UTC instant.
    pub fn to_local(self, at: DateTime<Utc>) -> NaiveDateTime {
        at.with_timezone(&self.0).naive_local()
    }

    /// The local calendar date of a UTC instant.
    pub fn local_date(self, at: DateTime<Utc>) -> NaiveDate {
        self.to_local(at).date()
    }

    /// The UTC instant at which local `date` begins (midnight, or the first instant after a gap).
    pub fn day_start(self, date: NaiveDate) -> DateTime<Utc> {
        let mut local = date.and_time(NaiveTime::MIN);
        // A zone may skip midnight itself; step forward to the first local time that exists.
        for _ in 0..(24 * 4) {
            if let Some(t) = self.to_utc(local) {
                return t;
            }
            local += chrono::Duration::minutes(15);
        }
        Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone(chrono_tz::Asia::Ho_Chi_Minh)
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A calendar date sent by a client, within the years the platform deals in, so that date
/// arithmetic on it (a week later, the day after) cannot overflow; chrono accepts years far
/// beyond ±9999 and panics when such a date is moved past its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(NaiveDate);

impl Date {
    pub const FIRST_YEAR: i32 = 1900;
    pub const LAST_YEAR: i32 = 2199;

    pub fn new(date: NaiveDate) -> Option<Date> {
        (Self::FIRST_YEAR..=Self::LAST_YEAR)
            .contains(&date.year())
            .then_some(Date(date))
    }

    pub fn get(self) -> NaiveDate {
        self.0
    }
}

impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let date = <NaiveDate as serde::Deserialize>::deserialize(d)?;
        Date::new(date).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "dates must lie in the years {} to {}",
                Date::FIRST_YEAR,
                Date::LAST_YEAR
            ))
        })
    }
}

/// The current time, truncated to whole seconds so that both engines store and compare it alike.
pub fn now() -> DateTime<Utc> {
    truncate_seconds(Utc::now())
}

pub fn truncate_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

/// True when `t` lies on the booking grid.
pub fn on_grid(t: DateTime<Utc>) -> bool {
    t.timestamp() % GRID_SECONDS == 0 && t.nanosecond() == 0
}

/// True when a local time of day lies on the booking grid.
pub fn time_on_grid(t: NaiveTime) -> bool {
    t.second() == 0 && t.nanosecond() == 0 && t.minute().is_multiple_of(GRID_MINUTES)
}

/// The grid cells `[start, end)` covers; both ends must be on the grid.
pub fn cells(start: DateTime<Utc>, end: DateTime<Utc>) -> std::ops::Range<i64> {
    start.timestamp().div_euclid(GRID_SECONDS)..end.timestamp().div_euclid(GRID_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("test literal is valid RFC 3339")
    }

    #[test]
    fn parses_zones() {
        assert!(Zone::parse("Asia/Ho_Chi_Minh").is_ok());
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn vietnam_is_utc_plus_seven() {
        let z = Zone::parse(DEFAULT_ZONE).expect("known zone");
        let local = NaiveDate::from_ymd_opt(2026, 11, 23)
            .and_then(|d| d.and_hms_opt(8, 0, 0))
            .expect("valid literal");
        assert_eq!(z.to_utc(local), Some(dt("2026-11-23T01:00:00Z")));
    }

    #[test]
    fn skipped_local_time_has_no_instant_and_repeated_time_takes_the_first() {
        let z = Zone::parse("Europe/Berlin").expect("known zone");
        let skipped = NaiveDate::from_ymd_opt(2026, 3, 29)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .expect("valid literal");
        assert_eq!(z.to_utc(skipped), None);
        let repeated = NaiveDate::from_ymd_opt(2026, 10, 25)
            .and_then(|d| d.and_hms_opt(2, 30, 0))
            .expect("valid literal");
        assert_eq!(z.to_utc(repeated), Some(dt("2026-10-25T00:30:00Z")));
    }

    #[test]
    fn client_dates_are_bounded() {
        let ok: Result<Date, _> = serde_json::from_str("\"2027-03-14\"");
        assert!(ok.is_ok());
        for far in [
            "\"+262142-12-31\"",
            "\"-262143-01-01\"",
            "\"1899-12-31\"",
            "\"2200-01-01\"",
        ] {
            let r: Result<Date, _> = serde_json::from_str(far);
            assert!(r.is_err(), "{far}");
        }
    }

    #[test]
    fn cells_cover_the_interval() {
        let c = cells(dt("2026-11-23T01:00:00Z"), dt("2026-11-23T01:30:00Z"));
        assert_eq!(c.end - c.start, 6);
        assert!(on_grid(dt("2026-11-23T01:05:00Z")));
        assert!(!on_grid(dt("2026-11-23T01:07:00Z")));
    }
}
