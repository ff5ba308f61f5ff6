//! Read models: free-slot search, a facility's day and week calendar, utilisation per clinician.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::Serialize;

use super::Result;
use super::availability::{self, Availability};
use super::directory::{self, Clinician, ClinicianFilter};
use crate::domain::availability::{Slot, slots_on};
use crate::domain::ids::{ClinicianId, ConsultationId, FacilityId, PatientId};
use crate::domain::time::{self, cells};
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

async fn candidates(db: &Db, q: &SlotQuery) -> Result<Vec<Clinician>> {
    if let Some(id) = q.clinician_id {
        let c = directory::get_clinician(db, id).await?;
        let matches = q.facility_id.is_none_or(|f| f == c.facility_id)
            && q.province.as_ref().is_none_or(|p| *p == c.province)
            && q.specialty
                .as_ref()
                .is_none_or(|s| c.specialties.split(',').any(|x| x == s));
        return Ok(if matches { vec![c] } else { vec![] });
    }
    directory::list_clinicians(
        db,
        &ClinicianFilter {
            facility_id: q.facility_id,
            specialty: q.specialty.clone(),
            province: q.province.clone(),
            limit: MAX_CLINICIANS,
            offset: 0,
        },
    )
    .await
}

/// Claimed cells of `clinicians` within `[from, to)`, ignoring holds past their expiry.
async fn claimed_cells(
    db: &Db,
    clinicians: &[ClinicianId],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<HashSet<(ClinicianId, i64)>> {
    if clinicians.is_empty() {
        return Ok(HashSet::new());
    }
    let range = cells(from, to);
    let now = time::now();
    let rows: Vec<(ClinicianId, i64)> = on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT sc.clinician_id, sc.cell FROM slot_claims sc
             JOIN consultations c ON c.id = sc.consultation_id
             WHERE sc.cell >= ",
        );
        q.push_bind(range.start).push(" AND sc.cell < ").push_bind(range.end);
        q.push(" AND NOT (c.status = 'held' AND c.hold_expires_at <= ").push_bind(now).push(")");
        q.push(" AND sc.clinician_id IN (");
        let mut ids = q.separated(", ");
        for c in clinicians {
            ids.push_bind(*c);
        }
        q.push(")");
        q.build_query_as::<(ClinicianId, i64)>().fetch_all(pool).await
    })?;
    Ok(rows.into_iter().collect())
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

fn is_free(claimed: &HashSet<(ClinicianId, i64)>, clinician: ClinicianId, slot: &Slot) -> bool {
    !cells(slot.start, slot.end).any(|cell| claimed.contains(&(clinician, cell)))
}

/// Free future slots matching `q`, earliest first.
pub async fn search_slots(db: &Db, q: &SlotQuery) -> Result<SlotSearch> {
    let clinicians = candidates(db, q).await?;
    let ids: Vec<ClinicianId> = clinicians.iter().map(|c| c.id).collect();
    let avail = availability::load(db, &ids, q.from, q.to).await?;
    let (span_start, span_end) = utc_span(q.from, q.to);
    let claimed = claimed_cells(db, &ids, span_start, span_end).await?;
    let now = time::now();
    let mut found = Vec::new();
    for c in &clinicians {
        let zone = c.zone();
        for date in dates(q.from, q.to) {
            for slot in slots_on(date, zone, avail.rules_of(c.id), avail.exceptions_of(c.id)) {
                if slot.start > now && is_free(&claimed, c.id, &slot) {
                    found.push(FreeSlot {
                        clinician_id: c.id,
                        clinician_name: c.full_name.clone(),
                        facility_id: c.facility_id,
                        facility_name: c.facility_name.clone(),
                        province: c.province.clone(),
                        start: slot.start,
                        end: slot.end,
                        local_start: zone.to_local(slot.start),
                        time_zone: c.time_zone.clone(),
                    });
                }
            }
        }
    }
    found.sort_by_key(|s| (s.start, s.clinician_id));
    let truncated = found.len() > q.limit;
    found.truncate(q.limit);
    Ok(SlotSearch {
        slots: found,
        truncated,
    })
}

/// A consultation as a calendar shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct CalendarBooking {
    pub id: ConsultationId,
    pub clinician_id: ClinicianId,
    pub kind: String,
    pub status: String,
    pub urgency: String,
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
             WHERE c.status NOT IN ('cancelled', 'expired') AND c.start_at >= ",
        );
        q.push_bind(from).push(" AND c.start_at < ").push_bind(to);
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
        .filter(|b| !(b.status == "held" && b.hold_expires_at.is_some_and(|t| t <= now)))
        .collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct CalendarEntry {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub local_start: NaiveDateTime,
    /// `free`, or the consultation's status.
    pub state: String,
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

/// The facility's clinicians over local dates `[from, to]`: every slot, free or booked, and
/// bookings that no longer match a slot (after a rule change) so nothing booked is hidden.
pub async fn facility_calendar(
    db: &Db,
    facility_id: FacilityId,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<FacilityCalendar> {
    let facility = directory::get_facility(db, facility_id).await?;
    let zone = facility.zone();
    let clinicians = facility_clinicians(db, facility_id).await?;
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
            state: booking.map_or_else(|| "free".to_string(), |b| b.status.clone()),
            booking: booking.cloned(),
        });
    }
    for b in todays.into_iter().filter(|b| !shown.contains(&b.id)) {
        entries.push(CalendarEntry {
            start: b.start_at,
            end: b.end_at,
            local_start: zone.to_local(b.start_at),
            state: b.status.clone(),
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
    status: String,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
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
    // Durations are summed here rather than in SQL, where interval arithmetic differs by engine.
    let rows: Vec<UsageRow> = if ids.is_empty() {
        vec![]
    } else {
        on_db!(db, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT clinician_id, status, start_at, end_at FROM consultations WHERE start_at >= ",
            );
            q.push_bind(span_start).push(" AND start_at < ").push_bind(span_end);
            q.push(" AND clinician_id IN (");
            let mut sep = q.separated(", ");
            for c in &ids {
                sep.push_bind(*c);
            }
            q.push(")");
            q.build_query_as::<UsageRow>().fetch_all(pool).await
        })?
    };
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
            match row.status.as_str() {
                "booked" | "in_progress" => u.booked += 1,
                "held" if row.start_at > now => u.booked += 1,
                "completed" => u.completed += 1,
                "no_show" => u.no_show += 1,
                "cancelled" => u.cancelled += 1,
                _ => continue,
            }
            // Time given to patients: everything booked except cancellations.
            if row.status != "cancelled" {
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
