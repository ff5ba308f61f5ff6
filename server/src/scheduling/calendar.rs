//! Read models: free-slot search, a facility's day and week calendar, a patient's bookings at a
//! hospital found by name, phone or national ID, utilisation per clinician.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

use super::Result;
use super::availability::{self, Availability};
use super::directory::{self, Clinician, ClinicianFilter};
use crate::domain::availability::{Slot, slots_on};
use crate::domain::consultation::{Kind, Status, Urgency};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::text::fold_for_search;
use crate::domain::time;
use crate::on_db;
use crate::storage::Db;

/// Most clinicians a search or calendar considers at once.
const MAX_CLINICIANS: i64 = 500;

#[derive(Default)]
pub struct SlotQuery {
    pub specialty: Option<String>,
    pub clinician_id: Option<ClinicianId>,
    pub facility_id: Option<FacilityId>,
    pub province: Option<String>,
    /// Local dates in each clinician's facility zone, inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub limit: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct FreeSlot {
    pub clinician_id: ClinicianId,
    pub clinician_name: String,
    pub facility_id: FacilityId,
    pub facility_name: String,
    pub province: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Wall-clock start in the facility's zone, for display.
    pub local_start: NaiveDateTime,
    pub time_zone: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SlotSearch {
    pub slots: Vec<FreeSlot>,
    /// True when more free slots exist than `limit` allowed.
    pub truncated: bool,
}

/// A clinician who may have slots, with what a search result shows about them.
#[derive(Clone, Debug, sqlx::FromRow)]
struct Candidate {
    id: ClinicianId,
    facility_id: FacilityId,
    full_name: String,
    facility_name: String,
    province: String,
    time_zone: String,
}

/// Active clinicians matching the filters who have any weekly rule or an extra session in range
/// (the thousand rural clinicians of a province have none, and are skipped here, not later).
async fn candidates(db: &Db, q: &SlotQuery) -> Result<Vec<Candidate>> {
    Ok(on_db!(db, pool => {
        let mut b = sqlx::QueryBuilder::new(
            "SELECT c.id, c.facility_id, c.full_name, f.name AS facility_name, f.province, f.time_zone
             FROM clinicians c JOIN facilities f ON f.id = c.facility_id
             WHERE c.active = TRUE
               AND (EXISTS (SELECT 1 FROM availability_rules r WHERE r.clinician_id = c.id)
                    OR EXISTS (SELECT 1 FROM availability_exceptions e
                               WHERE e.clinician_id = c.id AND e.kind = 'extra' AND e.on_date >= ",
        );
        b.push_bind(q.from).push(" AND e.on_date <= ").push_bind(q.to).push("))");
        if let Some(id) = q.clinician_id {
            b.push(" AND c.id = ").push_bind(id);
        }
        if let Some(f) = q.facility_id {
            b.push(" AND c.facility_id = ").push_bind(f);
        }
        if let Some(p) = &q.province {
            b.push(" AND f.province = ").push_bind(p.clone());
        }
        if let Some(s) = &q.specialty {
            b.push(
                " AND EXISTS (SELECT 1 FROM clinician_specialties cs
                   JOIN specialties s ON s.id = cs.specialty_id
                   WHERE cs.clinician_id = c.id AND s.code = ",
            )
            .push_bind(s.clone())
            .push(")");
        }
        b.push(" ORDER BY c.id LIMIT ").push_bind(MAX_CLINICIANS);
        b.build_query_as::<Candidate>().fetch_all(pool).await
    })?)
}

/// A busy interval `[start, end)`.
type Busy = (DateTime<Utc>, DateTime<Utc>);

/// Busy intervals of `clinicians` overlapping `[from, to)`: live consultations, ignoring holds
/// past their expiry. One row per consultation, sorted by start within each clinician.
async fn busy_intervals(
    db: &Db,
    clinicians: &[ClinicianId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashMap<ClinicianId, Vec<Busy>>> {
    let mut out: HashMap<ClinicianId, Vec<Busy>> = HashMap::new();
    if clinicians.is_empty() {
        return Ok(out);
    }
    let now = time::now();
    let rows: Vec<(ClinicianId, DateTime<Utc>, DateTime<Utc>)> = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT clinician_id, start_at, end_at FROM consultations WHERE status IN (",
        );
        let mut live = q.separated(", ");
        for s in Status::ALL.iter().filter(|s| s.is_live()) {
            live.push_bind(*s);
        }
        q.push(") AND start_at < ").push_bind(to).push(" AND end_at > ").push_bind(from);
        q.push(" AND NOT (status = ").push_bind(Status::Held);
        q.push(" AND hold_expires_at <= ").push_bind(now).push(")");
        q.push(" AND clinician_id IN (");
        let mut ids = q.separated(", ");
        for c in clinicians {
            ids.push_bind(*c);
        }
        q.push(") ORDER BY clinician_id, start_at");
        q.build_query_as::<(ClinicianId, DateTime<Utc>, DateTime<Utc>)>().fetch_all(pool).await
    })?;
    for (c, start, end) in rows {
        out.entry(c).or_default().push((start, end));
    }
    Ok(out)
}

fn dates(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

/// The UTC span covering local dates `[from, to]` in every zone (±14 h covers all offsets).
fn utc_span(from: NaiveDate, to: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = from.and_time(chrono::NaiveTime::MIN).and_utc() - Duration::hours(14);
    let end = to.and_time(chrono::NaiveTime::MIN).and_utc() + Duration::hours(24 + 14);
    (start, end)
}

fn overlaps_any(busy: &[Busy], slot: &Slot) -> bool {
    // `busy` is sorted by start: only intervals starting before the slot ends can overlap.
    let upto = busy.partition_point(|(start, _)| *start < slot.end);
    busy[..upto].iter().any(|(_, end)| *end > slot.start)
}

/// Free future slots matching `q`, earliest first.
///
/// Dates are walked in order and the walk stops once more than `limit` slots are known to come
/// before anything a later date could add, so a month-long search costs about as much as the
/// days it actually returns.
pub async fn search_slots(db: &Db, q: &SlotQuery) -> Result<SlotSearch> {
    let clinicians = candidates(db, q).await?;
    if clinicians.is_empty() {
        // An unknown id in a filter is a 404, not an empty result that hides the typo.
        if let Some(id) = q.clinician_id {
            directory::get_clinician(db, id).await?;
        }
        if let Some(id) = q.facility_id {
            directory::get_facility(db, id).await?;
        }
    }
    let ids: Vec<ClinicianId> = clinicians.iter().map(|c| c.id).collect();
    let zones: Vec<time::Zone> = clinicians
        .iter()
        .map(|c| time::Zone::parse(&c.time_zone).unwrap_or_default())
        .collect();
    let mut distinct_zones = zones.clone();
    distinct_zones.sort_by_key(|z| z.name());
    distinct_zones.dedup();
    let avail = availability::load(db, &ids, q.from, q.to).await?;
    let (span_start, span_end) = utc_span(q.from, q.to);
    let busy = busy_intervals(db, &ids, span_start, span_end).await?;
    let now = time::now();
    let none = Vec::new();
    // (start, clinician index, end): cheap to sort; names are attached to the survivors only.
    let mut hits: Vec<(DateTime<Utc>, usize, DateTime<Utc>)> = Vec::new();
    for date in dates(q.from, q.to) {
        for (i, c) in clinicians.iter().enumerate() {
            let theirs = busy.get(&c.id).unwrap_or(&none);
            for slot in slots_on(
                date,
                zones[i],
                avail.rules_of(c.id),
                avail.exceptions_of(c.id),
            ) {
                if slot.start > now && !overlaps_any(theirs, &slot) {
                    hits.push((slot.start, i, slot.end));
                }
            }
        }
        let next = date + Duration::days(1);
        let Some(bound) = distinct_zones.iter().map(|z| z.day_start(next)).min() else {
            break;
        };
        if hits.iter().filter(|h| h.0 < bound).count() > q.limit {
            break;
        }
    }
    hits.sort_by_key(|(start, i, _)| (*start, clinicians[*i].id));
    let truncated = hits.len() > q.limit;
    hits.truncate(q.limit);
    let slots = hits
        .into_iter()
        .map(|(start, i, end)| {
            let c = &clinicians[i];
            FreeSlot {
                clinician_id: c.id,
                clinician_name: c.full_name.clone(),
                facility_id: c.facility_id,
                facility_name: c.facility_name.clone(),
                province: c.province.clone(),
                start,
                end,
                local_start: zones[i].to_local(start),
                time_zone: c.time_zone.clone(),
            }
        })
        .collect();
    Ok(SlotSearch { slots, truncated })
}

/// A consultation as a calendar shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct CalendarBooking {
    pub id: ConsultationId,
    pub clinician_id: ClinicianId,
    pub kind: Kind,
    pub status: Status,
    pub urgency: Urgency,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub patient_id: PatientId,
    pub patient_name: String,
    pub requesting_facility_id: Option<FacilityId>,
    pub hold_expires_at: Option<DateTime<Utc>>,
}

async fn bookings_between(
    db: &Db,
    clinicians: &[ClinicianId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<CalendarBooking>> {
    if clinicians.is_empty() {
        return Ok(vec![]);
    }
    let rows = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT c.id, c.clinician_id, c.kind, c.status, c.urgency, c.start_at, c.end_at,
                    c.patient_id, p.full_name AS patient_name, c.requesting_facility_id, c.hold_expires_at
             FROM consultations c JOIN patients p ON p.id = c.patient_id
             WHERE c.status NOT IN (",
        );
        q.push_bind(Status::Cancelled).push(", ").push_bind(Status::Expired);
        q.push(") AND c.start_at >= ").push_bind(from);
        q.push(" AND c.start_at < ").push_bind(to);
        q.push(" AND c.clinician_id IN (");
        let mut ids = q.separated(", ");
        for c in clinicians {
            ids.push_bind(*c);
        }
        q.push(") ORDER BY c.start_at");
        q.build_query_as::<CalendarBooking>().fetch_all(pool).await
    })?;
    let now = time::now();
    Ok(rows
        .into_iter()
        .filter(|b| !(b.status == Status::Held && b.hold_expires_at.is_some_and(|t| t <= now)))
        .collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct CalendarEntry {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub local_start: NaiveDateTime,
    /// `free`, or the consultation's status.
    pub state: &'static str,
    pub booking: Option<CalendarBooking>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClinicianDay {
    pub date: NaiveDate,
    pub entries: Vec<CalendarEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClinicianCalendar {
    pub clinician_id: ClinicianId,
    pub full_name: String,
    /// As the directory has it (`BS CKII`, `ThS BS`); empty when it has none.
    pub title: String,
    pub specialties: Vec<String>,
    pub days: Vec<ClinicianDay>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FacilityCalendar {
    pub facility_id: FacilityId,
    pub facility_name: String,
    pub time_zone: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub clinicians: Vec<ClinicianCalendar>,
}

impl FacilityCalendar {
    /// Every patient the calendar names, for the audit trail.
    pub fn patients(&self) -> impl Iterator<Item = PatientId> + '_ {
        self.clinicians
            .iter()
            .flat_map(|c| c.days.iter())
            .flat_map(|d| d.entries.iter())
            .filter_map(|e| e.booking.as_ref().map(|b| b.patient_id))
    }
}

async fn facility_clinicians(db: &Db, facility: FacilityId) -> Result<Vec<Clinician>> {
    directory::list_clinicians(
        db,
        &ClinicianFilter {
            facility_id: Some(facility),
            limit: MAX_CLINICIANS,
            ..Default::default()
        },
    )
    .await
}

/// Which of a facility's clinicians a calendar shows: all by default.
#[derive(Clone, Debug, Default)]
pub struct CalendarFilter {
    /// Only those with this specialty code (an unknown code: nobody).
    pub specialty: Option<String>,
    /// Only this clinician (the API checked that they work at the facility).
    pub clinician_id: Option<ClinicianId>,
}

/// The facility's clinicians (those `filter` keeps) over local dates `[from, to]`: every slot,
/// free or booked, and bookings that no longer match a slot (after a rule change) so nothing
/// booked is hidden.
pub async fn facility_calendar(
    db: &Db,
    facility_id: FacilityId,
    from: NaiveDate,
    to: NaiveDate,
    filter: &CalendarFilter,
) -> Result<FacilityCalendar> {
    let facility = directory::get_facility(db, facility_id).await?;
    let zone = facility.zone();
    let mut clinicians = directory::list_clinicians(
        db,
        &ClinicianFilter {
            facility_id: Some(facility_id),
            specialty: filter.specialty.clone(),
            limit: MAX_CLINICIANS,
            ..Default::default()
        },
    )
    .await?;
    if let Some(only) = filter.clinician_id {
        clinicians.retain(|c| c.id == only);
    }
    let ids: Vec<ClinicianId> = clinicians.iter().map(|c| c.id).collect();
    let avail = availability::load(db, &ids, from, to).await?;
    let span_start = zone.day_start(from);
    let span_end = zone.day_start(to + Duration::days(1));
    let bookings = bookings_between(db, &ids, span_start, span_end).await?;
    let mut by_clinician: HashMap<ClinicianId, Vec<CalendarBooking>> = HashMap::new();
    for b in bookings {
        by_clinician.entry(b.clinician_id).or_default().push(b);
    }
    let mut out = Vec::with_capacity(clinicians.len());
    for c in &clinicians {
        let theirs = by_clinician.remove(&c.id).unwrap_or_default();
        let days = dates(from, to)
            .map(|date| ClinicianDay {
                date,
                entries: day_entries(date, zone, &avail, c.id, &theirs),
            })
            .collect();
        out.push(ClinicianCalendar {
            clinician_id: c.id,
            full_name: c.full_name.clone(),
            title: c.title.clone(),
            specialties: c
                .specialties
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            days,
        });
    }
    Ok(FacilityCalendar {
        facility_id,
        facility_name: facility.name,
        time_zone: facility.time_zone,
        from,
        to,
        clinicians: out,
    })
}

/// How a text typed to find a patient is compared: with the national id as typed, with the
/// phone by its digits, and with the name folded ([`fold_for_search`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatientMatch {
    /// The text, trimmed: a national id matches it exactly.
    pub text: String,
    /// The stored forms the text's phone number can have (`0912345678`, `84912345678`,
    /// `+84912345678`); empty when the text is no phone number.
    pub phones: Vec<String>,
    /// A `LIKE` pattern (escape character `\`) finding the folded text within a folded name;
    /// `None` when the text folds to fewer than two characters, which would match nearly everyone.
    pub name_like: Option<String>,
}

/// Characters a phone number is written with besides its digits.
const PHONE_PUNCTUATION: &[char] = &[' ', '+', '-', '.', '(', ')'];

impl PatientMatch {
    pub fn new(text: &str) -> PatientMatch {
        let text = text.trim();
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let phone_like = text
            .chars()
            .all(|c| c.is_ascii_digit() || PHONE_PUNCTUATION.contains(&c))
            && (8..=15).contains(&digits.len());
        let phones = if !phone_like {
            Vec::new()
        } else if let Some(rest) = digits
            .strip_prefix("84")
            .or_else(|| digits.strip_prefix('0'))
        {
            // Stored as typed at registration, less its spaces, dots and dashes: a Vietnamese
            // number is there in its national form or with the country code, with or without +.
            vec![
                format!("0{rest}"),
                format!("84{rest}"),
                format!("+84{rest}"),
            ]
        } else {
            vec![digits.clone(), format!("+{digits}")]
        };
        let folded = fold_for_search(text);
        let name_like = (folded.chars().count() >= 2).then(|| {
            let escaped = folded
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        PatientMatch {
            text: text.to_string(),
            phones,
            name_like,
        }
    }
}

/// A booking a search found: what a calendar shows of it, and whose diary it is in.
#[derive(Clone, Debug, Serialize)]
pub struct FoundBooking {
    #[serde(flatten)]
    pub booking: CalendarBooking,
    pub clinician_name: String,
    /// The clinician's specialty codes.
    pub specialties: Vec<String>,
    /// Wall-clock start in the facility's zone.
    pub local_start: NaiveDateTime,
}

#[derive(sqlx::FromRow)]
struct FoundRow {
    #[sqlx(flatten)]
    booking: CalendarBooking,
    clinician_name: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct FoundBookings {
    /// The text searched for, trimmed.
    pub q: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub time_zone: String,
    pub bookings: Vec<FoundBooking>,
    /// True when more bookings matched than were returned.
    pub truncated: bool,
}

/// The live bookings (not cancelled or expired, no lapsed holds) with the clinicians of
/// `facility`, starting on its local dates `[from, to]`, of patients `q` matches: by start, at
/// most `limit`.
pub async fn find_bookings(
    db: &Db,
    facility: &directory::Facility,
    q: &PatientMatch,
    (from, to): (NaiveDate, NaiveDate),
    limit: usize,
) -> Result<FoundBookings> {
    let zone = facility.zone();
    let (start, end) = (zone.day_start(from), zone.day_start(to + Duration::days(1)));
    let now = time::now();
    // One more than asked, to know whether there were more.
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let mut rows = on_db!(db, pool => {
        let mut b = sqlx::QueryBuilder::new(
            "SELECT c.id, c.clinician_id, c.kind, c.status, c.urgency, c.start_at, c.end_at,
                    c.patient_id, p.full_name AS patient_name, c.requesting_facility_id,
                    c.hold_expires_at, cl.full_name AS clinician_name
             FROM consultations c
             JOIN clinicians cl ON cl.id = c.clinician_id
             JOIN patients p ON p.id = c.patient_id
             WHERE cl.facility_id = ",
        );
        b.push_bind(facility.id);
        b.push(" AND c.status NOT IN (").push_bind(Status::Cancelled).push(", ");
        b.push_bind(Status::Expired).push(")");
        // A lapsed hold is no booking (as on the calendar); filtered here so LIMIT counts right.
        b.push(" AND NOT (c.status = ").push_bind(Status::Held);
        b.push(" AND c.hold_expires_at IS NOT NULL AND c.hold_expires_at <= ").push_bind(now);
        b.push(") AND c.start_at >= ").push_bind(start);
        b.push(" AND c.start_at < ").push_bind(end);
        b.push(" AND (p.national_id = ").push_bind(q.text.clone());
        if !q.phones.is_empty() {
            b.push(" OR p.phone IN (");
            let mut phones = b.separated(", ");
            for phone in &q.phones {
                phones.push_bind(phone.clone());
            }
            b.push(")");
        }
        if let Some(pattern) = &q.name_like {
            b.push(" OR p.search_name LIKE ").push_bind(pattern.clone());
            b.push(" ESCAPE '\\'");
        }
        b.push(") ORDER BY c.start_at, c.id LIMIT ").push_bind(fetch);
        b.build_query_as::<FoundRow>().fetch_all(pool).await
    })?;
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    let mut clinicians: Vec<ClinicianId> = rows.iter().map(|r| r.booking.clinician_id).collect();
    clinicians.sort();
    clinicians.dedup();
    let codes = {
        let mut c = db.acquire().await?;
        directory::store::specialty_codes(c.conn(), &clinicians).await?
    };
    let bookings = rows
        .into_iter()
        .map(|r| FoundBooking {
            specialties: codes
                .iter()
                .filter(|(id, _)| *id == r.booking.clinician_id)
                .map(|(_, code)| code.clone())
                .collect(),
            local_start: zone.to_local(r.booking.start_at),
            clinician_name: r.clinician_name,
            booking: r.booking,
        })
        .collect();
    Ok(FoundBookings {
        q: q.text.clone(),
        from,
        to,
        time_zone: facility.time_zone.clone(),
        bookings,
        truncated,
    })
}

impl FoundBookings {
    /// Every patient the answer names, for the audit trail.
    pub fn patients(&self) -> impl Iterator<Item = PatientId> + '_ {
        self.bookings.iter().map(|b| b.booking.patient_id)
    }
}

fn day_entries(
    date: NaiveDate,
    zone: time::Zone,
    avail: &Availability,
    clinician: ClinicianId,
    bookings: &[CalendarBooking],
) -> Vec<CalendarEntry> {
    let todays: Vec<&CalendarBooking> = bookings
        .iter()
        .filter(|b| zone.local_date(b.start_at) == date)
        .collect();
    let mut entries: Vec<CalendarEntry> = Vec::new();
    let mut shown: HashSet<ConsultationId> = HashSet::new();
    for slot in slots_on(
        date,
        zone,
        avail.rules_of(clinician),
        avail.exceptions_of(clinician),
    ) {
        let booking = todays
            .iter()
            .find(|b| b.start_at < slot.end && slot.start < b.end_at)
            .copied();
        if let Some(b) = booking
            && !shown.insert(b.id)
        {
            continue;
        }
        entries.push(CalendarEntry {
            start: booking.map_or(slot.start, |b| b.start_at),
            end: booking.map_or(slot.end, |b| b.end_at),
            local_start: zone.to_local(booking.map_or(slot.start, |b| b.start_at)),
            state: booking.map_or("free", |b| b.status.as_str()),
            booking: booking.cloned(),
        });
    }
    for b in todays.into_iter().filter(|b| !shown.contains(&b.id)) {
        entries.push(CalendarEntry {
            start: b.start_at,
            end: b.end_at,
            local_start: zone.to_local(b.start_at),
            state: b.status.as_str(),
            booking: Some(b.clone()),
        });
    }
    entries.sort_by_key(|e| e.start);
    entries
}

#[derive(Clone, Debug, Serialize)]
pub struct ClinicianUtilisation {
    pub clinician_id: ClinicianId,
    pub full_name: String,
    pub offered_slots: u32,
    pub offered_minutes: i64,
    pub booked_minutes: i64,
    pub booked: u32,
    pub completed: u32,
    pub no_show: u32,
    pub cancelled: u32,
    /// Booked minutes over offered minutes, 0 when nothing was offered.
    pub utilisation: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Utilisation {
    pub facility_id: FacilityId,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub clinicians: Vec<ClinicianUtilisation>,
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    clinician_id: ClinicianId,
    status: Status,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
}

/// Every consultation of `clinicians` starting in `[from, to)`, whatever its status. Durations
/// are summed by the caller rather than in SQL, where interval arithmetic differs by engine.
async fn usage(
    db: &Db,
    clinicians: &[ClinicianId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRow>> {
    if clinicians.is_empty() {
        return Ok(vec![]);
    }
    Ok(on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT clinician_id, status, start_at, end_at FROM consultations WHERE start_at >= ",
        );
        q.push_bind(from).push(" AND start_at < ").push_bind(to);
        q.push(" AND clinician_id IN (");
        let mut sep = q.separated(", ");
        for c in clinicians {
            sep.push_bind(*c);
        }
        q.push(")");
        q.build_query_as::<UsageRow>().fetch_all(pool).await
    })?)
}

/// Offered versus booked time per clinician of the facility over local dates `[from, to]`.
pub async fn utilisation(
    db: &Db,
    facility_id: FacilityId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Utilisation> {
    let facility = directory::get_facility(db, facility_id).await?;
    let zone = facility.zone();
    let clinicians = facility_clinicians(db, facility_id).await?;
    let ids: Vec<ClinicianId> = clinicians.iter().map(|c| c.id).collect();
    let avail = availability::load(db, &ids, from, to).await?;
    let span_start = zone.day_start(from);
    let span_end = zone.day_start(to + Duration::days(1));
    let rows = usage(db, &ids, span_start, span_end).await?;
    let now = time::now();
    let mut out = Vec::with_capacity(clinicians.len());
    for c in &clinicians {
        let mut offered_slots = 0u32;
        let mut offered_minutes = 0i64;
        for date in dates(from, to) {
            for slot in slots_on(date, zone, avail.rules_of(c.id), avail.exceptions_of(c.id)) {
                offered_slots += 1;
                offered_minutes += (slot.end - slot.start).num_minutes();
            }
        }
        let mut u = ClinicianUtilisation {
            clinician_id: c.id,
            full_name: c.full_name.clone(),
            offered_slots,
            offered_minutes,
            booked_minutes: 0,
            booked: 0,
            completed: 0,
            no_show: 0,
            cancelled: 0,
            utilisation: 0.0,
        };
        for row in rows.iter().filter(|r| r.clinician_id == c.id) {
            let minutes = (row.end_at - row.start_at).num_minutes();
            match row.status {
                Status::Booked | Status::InProgress => u.booked += 1,
                Status::Held if row.start_at > now => u.booked += 1,
                Status::Completed => u.completed += 1,
                Status::NoShow => u.no_show += 1,
                Status::Cancelled => u.cancelled += 1,
                Status::Held | Status::Expired => continue,
            }
            // Time given to patients: everything booked except cancellations.
            if row.status != Status::Cancelled {
                u.booked_minutes += minutes;
            }
        }
        if offered_minutes > 0 {
            u.utilisation = (u.booked_minutes as f64 / offered_minutes as f64).min(1.0);
        }
        out.push(u);
    }
    Ok(Utilisation {
        facility_id,
        from,
        to,
        clinicians: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_is_matched_in_every_form_it_is_stored_in() {
        let national = ["0912345678", "84912345678", "+84912345678"];
        for typed in [
            "+84 912 345 678",
            "0912 345 678",
            "84912345678",
            "091-234-5678",
        ] {
            assert_eq!(PatientMatch::new(typed).phones, national, "{typed}");
        }
        assert_eq!(
            PatientMatch::new("+1 (555) 010-9999").phones,
            ["15550109999", "+15550109999"]
        );
        // Too few digits, or letters among them: no phone number.
        assert!(PatientMatch::new("0912").phones.is_empty());
        assert!(PatientMatch::new("nguyen 0912345678").phones.is_empty());
    }

    #[test]
    fn a_name_is_matched_folded_with_like_wildcards_escaped() {
        let m = PatientMatch::new("  Nguyễn Văn ");
        assert_eq!(m.text, "Nguyễn Văn");
        assert_eq!(m.name_like.as_deref(), Some("%nguyen van%"));
        assert_eq!(
            PatientMatch::new("50%_a\\b").name_like.as_deref(),
            Some("%50\\%\\_a\\\\b%")
        );
        // A text that folds to one character would match nearly every name.
        assert_eq!(PatientMatch::new("Đ\u{301}").name_like, None);
    }
}
