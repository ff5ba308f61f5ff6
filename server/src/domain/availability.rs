//! Availability: weekly rules and dated exceptions, and the slots they produce.
//!
//! Free slots are derived, never stored: the rules of a clinician for a local date, plus extra
//! sessions, minus leave, converted to UTC in the facility's zone. Bookings are subtracted by the
//! caller, which knows which grid cells are claimed.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::consultation::text_enum;
use super::time::{Zone, time_on_grid};

/// Longest slot and buffer a rule may ask for, in minutes.
pub const MAX_SLOT_MINUTES: u32 = 240;
pub const MIN_SLOT_MINUTES: u32 = 5;
pub const MAX_BUFFER_MINUTES: u32 = 120;

/// ISO weekday, Monday = 1 … Sunday = 7.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IsoWeekday(u8);

impl IsoWeekday {
    pub fn new(n: i64) -> Option<IsoWeekday> {
        (1..=7).contains(&n).then_some(IsoWeekday(n as u8))
    }

    pub fn of(date: NaiveDate) -> IsoWeekday {
        IsoWeekday(date.weekday().number_from_monday() as u8)
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A working session in local time: `[start, end)` cut into slots of `slot_minutes`, each followed
/// by `buffer_minutes` of rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    start: NaiveTime,
    end: NaiveTime,
    slot_minutes: u32,
    buffer_minutes: u32,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("start_time must be before end_time")]
    EmptyWindow,
    #[error("times must be whole minutes on the {0}-minute grid (for example 08:00 or 08:05)")]
    OffGrid(u32),
    #[error(
        "slot_minutes must be a multiple of 5 between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES}"
    )]
    SlotLength,
    #[error("buffer_minutes must be a multiple of 5 between 0 and {MAX_BUFFER_MINUTES}")]
    BufferLength,
    #[error("the window is shorter than one slot")]
    NoSlot,
}

impl Session {
    pub fn new(
        start: NaiveTime,
        end: NaiveTime,
        slot_minutes: u32,
        buffer_minutes: u32,
    ) -> Result<Session, SessionError> {
        if !time_on_grid(start) || !time_on_grid(end) {
            return Err(SessionError::OffGrid(super::time::GRID_MINUTES));
        }
        if start >= end {
            return Err(SessionError::EmptyWindow);
        }
        if !(MIN_SLOT_MINUTES..=MAX_SLOT_MINUTES).contains(&slot_minutes)
            || !slot_minutes.is_multiple_of(5)
        {
            return Err(SessionError::SlotLength);
        }
        if buffer_minutes > MAX_BUFFER_MINUTES || !buffer_minutes.is_multiple_of(5) {
            return Err(SessionError::BufferLength);
        }
        if end - start < Duration::minutes(i64::from(slot_minutes)) {
            return Err(SessionError::NoSlot);
        }
        Ok(Session {
            start,
            end,
            slot_minutes,
            buffer_minutes,
        })
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }
    pub fn end(&self) -> NaiveTime {
        self.end
    }
    pub fn slot_minutes(&self) -> u32 {
        self.slot_minutes
    }
    pub fn buffer_minutes(&self) -> u32 {
        self.buffer_minutes
    }

    /// Local start times of the slots of this session.
    fn local_starts(&self) -> impl Iterator<Item = NaiveTime> + '_ {
        let slot = Duration::minutes(i64::from(self.slot_minutes));
        let step = slot + Duration::minutes(i64::from(self.buffer_minutes));
        let mut next = Some(self.start);
        std::iter::from_fn(move || {
            let t = next?;
            // `overflowing_add_signed` wraps at midnight; a wrap means the slot would not fit.
            let (slot_end, wrapped) = t.overflowing_add_signed(slot);
            if wrapped != 0 || slot_end > self.end {
                next = None;
                return None;
            }
            let (after, wrapped) = t.overflowing_add_signed(step);
            next = (wrapped == 0).then_some(after);
            Some(t)
        })
    }
}

/// Whether two local time ranges `[start, end)` share a moment.
pub fn times_overlap(a: (NaiveTime, NaiveTime), b: (NaiveTime, NaiveTime)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// Whether two date ranges (either end open when `None`) share a date.
pub fn dates_overlap(
    a: (Option<NaiveDate>, Option<NaiveDate>),
    b: (Option<NaiveDate>, Option<NaiveDate>),
) -> bool {
    let starts_before_end = |from: Option<NaiveDate>, until: Option<NaiveDate>| match (from, until)
    {
        (Some(from), Some(until)) => from <= until,
        _ => true,
    };
    starts_before_end(a.0, b.1) && starts_before_end(b.0, a.1)
}

/// A weekly recurring rule, optionally bounded in dates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeeklyRule {
    pub weekday: IsoWeekday,
    pub session: Session,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
}

impl WeeklyRule {
    /// Whether this rule and `other` would run sessions at the same time on some date.
    pub fn overlaps(&self, other: &WeeklyRule) -> bool {
        self.weekday == other.weekday
            && dates_overlap(
                (self.valid_from, self.valid_until),
                (other.valid_from, other.valid_until),
            )
            && times_overlap(
                (self.session.start(), self.session.end()),
                (other.session.start(), other.session.end()),
            )
    }

    fn applies_on(&self, date: NaiveDate) -> bool {
        IsoWeekday::of(date) == self.weekday
            && self.valid_from.is_none_or(|from| date >= from)
            && self.valid_until.is_none_or(|until| date <= until)
    }
}

text_enum!(
    /// Which of the two [`Exception`]s a stored exception is.
    ExceptionKind {
        Leave => "leave",
        Extra => "extra",
    }
);

/// A dated change to the weekly pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exception {
    /// Time off: the whole day when `window` is `None`, else the local window `[start, end)`.
    Leave {
        date: NaiveDate,
        window: Option<(NaiveTime, NaiveTime)>,
    },
    /// An extra session on that date.
    Extra { date: NaiveDate, session: Session },
}

impl Exception {
    pub fn date(&self) -> NaiveDate {
        match self {
            Exception::Leave { date, .. } | Exception::Extra { date, .. } => *date,
        }
    }

    pub fn kind(&self) -> ExceptionKind {
        match self {
            Exception::Leave { .. } => ExceptionKind::Leave,
            Exception::Extra { .. } => ExceptionKind::Extra,
        }
    }
}

/// A bookable interval in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The slots of one local date, sorted, without overlaps.
pub fn slots_on(
    date: NaiveDate,
    zone: Zone,
    rules: &[WeeklyRule],
    exceptions: &[Exception],
) -> Vec<Slot> {
    let todays: Vec<&Exception> = exceptions.iter().filter(|e| e.date() == date).collect();
    let whole_day_leave = todays
        .iter()
        .any(|e| matches!(e, Exception::Leave { window: None, .. }));
    let leave_windows: Vec<(NaiveTime, NaiveTime)> = todays
        .iter()
        .filter_map(|e| match e {
            Exception::Leave {
                window: Some(w), ..
            } => Some(*w),
            _ => None,
        })
        .collect();

    let sessions = rules
        .iter()
        .filter(|r| !whole_day_leave && r.applies_on(date))
        .map(|r| r.session)
        .chain(todays.iter().filter_map(|e| match e {
            Exception::Extra { session, .. } => Some(*session),
            _ => None,
        }));

    let mut slots: Vec<Slot> = Vec::new();
    for session in sessions {
        let length = Duration::minutes(i64::from(session.slot_minutes));
        for local_start in session.local_starts() {
            let local_end = local_start + length;
            let on_leave = leave_windows
                .iter()
                .any(|(from, to)| local_start < *to && *from < local_end);
            if on_leave {
                continue;
            }
            if let Some(start) = zone.to_utc(date.and_time(local_start)) {
                slots.push(Slot {
                    start,
                    end: start + length,
                });
            }
        }
    }
    slots.sort();
    // Overlapping rules, or a repeated hour, could offer intersecting slots: keep the earliest.
    let mut kept: Vec<Slot> = Vec::with_capacity(slots.len());
    for slot in slots {
        if kept.last().is_none_or(|prev| prev.end <= slot.start) {
            kept.push(slot);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_ranges() {
        let (a, b, c) = (t(8, 0), t(10, 0), t(12, 0));
        assert!(times_overlap((a, c), (b, c)));
        // Back to back is no overlap.
        assert!(!times_overlap((a, b), (b, c)));
        let (d1, d2, d3) = (d(2027, 1, 1), d(2027, 2, 1), d(2027, 3, 1));
        assert!(dates_overlap((None, None), (Some(d3), None)));
        assert!(dates_overlap((Some(d1), Some(d2)), (Some(d2), Some(d3))));
        assert!(!dates_overlap((Some(d1), Some(d2)), (Some(d3), None)));
        assert!(!dates_overlap((None, Some(d1)), (Some(d2), None)));
    }

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).expect("valid literal")
    }
    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid literal")
    }
    fn rule(
        date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
        slot: u32,
        buffer: u32,
    ) -> WeeklyRule {
        WeeklyRule {
            weekday: IsoWeekday::of(date),
            session: Session::new(start, end, slot, buffer).expect("valid session"),
            valid_from: None,
            valid_until: None,
        }
    }
    fn zone(name: &str) -> Zone {
        Zone::parse(name).expect("known zone")
    }

    #[test]
    fn a_morning_session_in_vietnam() {
        let day = d(2026, 11, 23);
        let slots = slots_on(
            day,
            zone("Asia/Ho_Chi_Minh"),
            &[rule(day, t(8, 0), t(11, 0), 30, 10)],
            &[],
        );
        // 08:00, 08:40, 09:20, 10:00 (10:40 would end at 11:10).
        assert_eq!(slots.len(), 4);
        assert_eq!(slots[0].start.to_rfc3339(), "2026-11-23T01:00:00+00:00");
        assert_eq!(slots[3].start.to_rfc3339(), "2026-11-23T03:00:00+00:00");
        assert!(
            slots
                .iter()
                .all(|s| s.end - s.start == Duration::minutes(30))
        );
    }

    #[test]
    fn rules_apply_only_on_their_weekday_and_dates() {
        let monday = d(2026, 11, 23);
        let mut r = rule(monday, t(8, 0), t(9, 0), 30, 0);
        assert!(
            slots_on(
                d(2026, 11, 24),
                zone("Asia/Ho_Chi_Minh"),
                std::slice::from_ref(&r),
                &[]
            )
            .is_empty()
        );
        r.valid_from = Some(d(2026, 11, 30));
        assert!(
            slots_on(
                monday,
                zone("Asia/Ho_Chi_Minh"),
                std::slice::from_ref(&r),
                &[]
            )
            .is_empty()
        );
        assert_eq!(
            slots_on(d(2026, 11, 30), zone("Asia/Ho_Chi_Minh"), &[r], &[]).len(),
            2
        );
    }

    #[test]
    fn leave_and_extra_sessions() {
        let day = d(2026, 11, 23);
        let z = zone("Asia/Ho_Chi_Minh");
        let rules = [rule(day, t(8, 0), t(10, 0), 30, 0)];
        let whole = [Exception::Leave {
            date: day,
            window: None,
        }];
        assert!(slots_on(day, z, &rules, &whole).is_empty());
        let partial = [Exception::Leave {
            date: day,
            window: Some((t(8, 30), t(9, 15))),
        }];
        let left: Vec<_> = slots_on(day, z, &rules, &partial)
            .iter()
            .map(|s| z.to_local(s.start).time())
            .collect();
        assert_eq!(left, vec![t(8, 0), t(9, 30)]);
        let extra = [Exception::Extra {
            date: day,
            session: Session::new(t(14, 0), t(15, 0), 20, 0).expect("valid session"),
        }];
        assert_eq!(slots_on(day, z, &rules, &extra).len(), 7);
        // An extra session on a day without rules still counts.
        assert_eq!(slots_on(day, z, &[], &extra).len(), 3);
    }

    #[test]
    fn spring_forward_skips_the_missing_hour() {
        let day = d(2026, 3, 29); // Europe/Berlin jumps from 02:00 to 03:00.
        let z = zone("Europe/Berlin");
        let slots = slots_on(day, z, &[rule(day, t(1, 0), t(4, 0), 30, 0)], &[]);
        let local: Vec<_> = slots.iter().map(|s| z.to_local(s.start).time()).collect();
        assert_eq!(local, vec![t(1, 0), t(1, 30), t(3, 0), t(3, 30)]);
        assert!(slots.windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn fall_back_never_offers_overlapping_slots() {
        let day = d(2026, 10, 25); // Europe/Berlin repeats 02:00-03:00.
        let z = zone("Europe/Berlin");
        let slots = slots_on(day, z, &[rule(day, t(1, 0), t(4, 0), 30, 0)], &[]);
        assert!(slots.windows(2).all(|w| w[0].end <= w[1].start));
        // Six local slots; 02:00 and 02:30 map to their first occurrence, so all six exist.
        assert_eq!(slots.len(), 6);
        assert_eq!(slots[0].start.to_rfc3339(), "2026-10-24T23:00:00+00:00");
    }

    #[test]
    fn sessions_are_validated() {
        assert_eq!(
            Session::new(t(9, 0), t(8, 0), 30, 0),
            Err(SessionError::EmptyWindow)
        );
        assert_eq!(
            Session::new(t(8, 3), t(9, 0), 30, 0),
            Err(SessionError::OffGrid(5))
        );
        assert_eq!(
            Session::new(t(8, 0), t(9, 0), 7, 0),
            Err(SessionError::SlotLength)
        );
        assert_eq!(
            Session::new(t(8, 0), t(9, 0), 30, 3),
            Err(SessionError::BufferLength)
        );
        assert_eq!(
            Session::new(t(8, 0), t(8, 20), 30, 0),
            Err(SessionError::NoSlot)
        );
        // A session ending at midnight's edge does not wrap into the next day.
        let late = Session::new(t(23, 0), t(23, 55), 30, 0).expect("valid session");
        assert_eq!(late.local_starts().count(), 1);
    }
}
