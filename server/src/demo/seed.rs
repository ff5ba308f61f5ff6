//! Seeds the demo network into the database: facilities, people, weekly availability and a day
//! of consultations. Running it again changes nothing: a marker in `platform_meta` records that
//! the network is there.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::network::{self, DemoNetwork, FacilityKindSeed, FacilitySeed};
use crate::auth::accounts::{AccountError, NewAccount, create_account};
use crate::auth::{Grant, Role};
use crate::domain::availability::{IsoWeekday, Session, WeeklyRule, slots_on};
use crate::domain::consultation::{FacilityKind, Kind, Status, Urgency};
use crate::domain::ids::{ClinicianId, FacilityId, PatientId};
use crate::domain::text::fold_for_search;
use crate::domain::time::{self, Zone};
use crate::on_db;
use crate::storage::{BeginWrite, Db};

const MARKER: &str = "demo_network";
/// Rows per multi-row INSERT: well under SQLite's bound-parameter limit.
const BATCH: usize = 400;

#[derive(Clone, Copy, Debug)]
pub struct DemoSize {
    pub care_centres: usize,
    pub patients_per_centre: usize,
}

impl Default for DemoSize {
    fn default() -> Self {
        DemoSize {
            care_centres: 1000,
            patients_per_centre: 3,
        }
    }
}

/// What is in the database after seeding, for the start-up message.
#[derive(Clone, Debug)]
pub struct DemoSummary {
    pub created: bool,
    pub facilities: i64,
    pub clinicians: i64,
    pub patients: i64,
    /// The day with booked consultations, and how many.
    pub demo_day: chrono::NaiveDate,
    pub consultations_on_demo_day: i64,
    pub example_hub: Option<(FacilityId, String)>,
    pub example_specialist: Option<(ClinicianId, String, String)>,
    /// Demo sign-ins: user name, role, who they are.
    pub accounts: Vec<(String, &'static str, String)>,
}

/// The password of every demo account (printed at start; never used outside a demo).
/// Meets the password rules (a unit test in `auth::password` checks it), like any other.
pub const DEMO_PASSWORD: &str = "rice-terrace-demo";
const ACCOUNTS_MARKER: &str = "demo_accounts";

/// Seeds the network unless it is already there; `show_progress` draws a progress bar.
pub async fn seed(
    db: &Db,
    size: DemoSize,
    show_progress: bool,
) -> Result<DemoSummary, sqlx::Error> {
    let present = on_db!(db, pool => sqlx::query_scalar::<_, String>(
        "SELECT value FROM platform_meta WHERE key = $1",
    )
    .bind(MARKER)
    .fetch_optional(pool)
    .await)?;
    let created = present.is_none();
    if created {
        let net = network::generate(size.care_centres, size.patients_per_centre);
        let total = (net.specialties.len()
            + net.hubs.len()
            + net.care_centres.len()
            + net.specialists.len()
            + net.rural_clinicians.len()
            + net.patients.len()) as u64;
        let bar = if show_progress {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        insert_network(db, &net, &bar).await?;
        bar.finish_with_message("demo network ready");
    }
    seed_accounts(db).await?;
    summary(db, created).await
}

async fn insert_network(db: &Db, net: &DemoNetwork, bar: &ProgressBar) -> Result<(), sqlx::Error> {
    let now = time::now();
    bar.set_message("specialties");
    on_db!(db, pool => {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO specialties (code, name_en, name_vi) ");
        q.push_values(&net.specialties, |mut v, s| {
            v.push_bind(s.code).push_bind(s.name_en).push_bind(s.name_vi);
        });
        q.build().execute(pool).await.map(|r| r.rows_affected())
    })?;
    bar.inc(net.specialties.len() as u64);

    bar.set_message("facilities");
    let facilities: Vec<&FacilitySeed> = net.hubs.iter().chain(net.care_centres.iter()).collect();
    for chunk in facilities.chunks(BATCH) {
        on_db!(db, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO facilities (code, name, kind, level, province, address, time_zone, created_at) ",
            );
            q.push_values(chunk, |mut v, f| {
                let kind = match f.kind {
                    FacilityKindSeed::HubHospital => FacilityKind::HubHospital,
                    FacilityKindSeed::CareCentre => FacilityKind::CareCentre,
                };
                v.push_bind(f.code.as_str())
                    .push_bind(f.name.as_str())
                    .push_bind(kind)
                    .push_bind(f.level)
                    .push_bind(f.province)
                    .push_bind(f.address.as_str())
                    .push_bind(f.time_zone)
                    .push_bind(now);
            });
            q.build().execute(pool).await.map(|r| r.rows_affected())
        })?;
        bar.inc(chunk.len() as u64);
    }
    let facility_ids: HashMap<String, FacilityId> =
        on_db!(db, pool => sqlx::query_as::<_, (String, FacilityId)>(
        "SELECT code, id FROM facilities",
    )
    .fetch_all(pool)
    .await)?
        .into_iter()
        .collect();

    let departments: Vec<(FacilityId, &str)> = facilities
        .iter()
        .filter_map(|f| facility_ids.get(&f.code).map(|id| (*id, f)))
        .flat_map(|(id, f)| f.departments.iter().map(move |d| (id, d.as_str())))
        .collect();
    for chunk in departments.chunks(BATCH) {
        on_db!(db, pool => {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO departments (facility_id, name) ");
            q.push_values(chunk, |mut v, (f, name)| {
                v.push_bind(*f).push_bind(*name);
            });
            q.build().execute(pool).await.map(|r| r.rows_affected())
        })?;
    }
    let department_ids: HashMap<(FacilityId, String), i64> =
        on_db!(db, pool => sqlx::query_as::<_, (i64, FacilityId, String)>(
        "SELECT id, facility_id, name FROM departments",
    )
    .fetch_all(pool)
    .await)?
        .into_iter()
        .map(|(id, f, name)| ((f, name), id))
        .collect();
    let specialty_ids: HashMap<String, i64> =
        on_db!(db, pool => sqlx::query_as::<_, (String, i64)>(
        "SELECT code, id FROM specialties",
    )
    .fetch_all(pool)
    .await)?
        .into_iter()
        .collect();

    bar.set_message("clinicians");
    let clinicians: Vec<_> = net
        .specialists
        .iter()
        .chain(net.rural_clinicians.iter())
        .collect();
    // One at a time inside one transaction: the ids are needed to attach specialties.
    on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            for c in &clinicians {
                let Some(facility) = facility_ids.get(&c.facility_code).copied() else {
                    continue;
                };
                let department = department_ids.get(&(facility, c.department.clone())).copied();
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO clinicians (facility_id, department_id, full_name, title, active, created_at)
                     VALUES ($1, $2, $3, $4, TRUE, $5) RETURNING id",
                )
                .bind(facility)
                .bind(department)
                .bind(c.full_name.as_str())
                .bind(c.title)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                for code in &c.specialty_codes {
                    if let Some(s) = specialty_ids.get(*code) {
                        sqlx::query(
                            "INSERT INTO clinician_specialties (clinician_id, specialty_id) VALUES ($1, $2)",
                        )
                        .bind(id)
                        .bind(*s)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                bar.inc(1);
            }
            tx.commit().await
        }
        .await
    })?;

    bar.set_message("patients");
    for chunk in net.patients.chunks(BATCH) {
        on_db!(db, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO patients (full_name, date_of_birth, sex, phone, national_id, home_facility_id, created_at,
                   search_name) ",
            );
            q.push_values(chunk, |mut v, p| {
                v.push_bind(p.full_name.as_str())
                    .push_bind(p.date_of_birth)
                    .push_bind(p.sex)
                    .push_bind(p.phone.as_str())
                    .push_bind(p.national_id.as_deref())
                    .push_bind(facility_ids.get(&p.home_facility_code).copied())
                    .push_bind(now)
                    .push_bind(fold_for_search(&p.full_name));
            });
            q.build().execute(pool).await.map(|r| r.rows_affected())
        })?;
        bar.inc(chunk.len() as u64);
    }

    bar.set_message("availability");
    let specialists = hub_specialists(db).await?;
    let mut rng = ChaCha8Rng::seed_from_u64(0x5EED_7E1E);
    let mut rules: Vec<(ClinicianId, WeeklyRule)> = Vec::new();
    for (clinician, _) in &specialists {
        for rule in weekly_pattern(&mut rng) {
            rules.push((*clinician, rule));
        }
    }
    for chunk in rules.chunks(BATCH) {
        on_db!(db, pool => {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO availability_rules (clinician_id, weekday, start_time, end_time, slot_minutes,
                   buffer_minutes, valid_from, valid_until, created_at) ",
            );
            q.push_values(chunk, |mut v, (c, r)| {
                v.push_bind(*c)
                    .push_bind(i32::from(r.weekday.get()))
                    .push_bind(r.session.start())
                    .push_bind(r.session.end())
                    .push_bind(r.session.slot_minutes() as i32)
                    .push_bind(r.session.buffer_minutes() as i32)
                    .push_bind(r.valid_from)
                    .push_bind(r.valid_until)
                    .push_bind(now);
            });
            q.build().execute(pool).await.map(|r| r.rows_affected())
        })?;
    }

    bar.set_message("today's consultations");
    book_today(db, &specialists, &rules, &mut rng).await?;

    on_db!(db, pool => sqlx::query("INSERT INTO platform_meta (key, value) VALUES ($1, $2)")
        .bind(MARKER)
        .bind(now.to_rfc3339())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Hub specialists with their facility's zone.
async fn hub_specialists(db: &Db) -> Result<Vec<(ClinicianId, Zone)>, sqlx::Error> {
    let rows = on_db!(db, pool => sqlx::query_as::<_, (ClinicianId, String)>(
        "SELECT c.id, f.time_zone FROM clinicians c JOIN facilities f ON f.id = c.facility_id
         WHERE f.kind = $1 ORDER BY c.id",
    )
    .bind(FacilityKind::HubHospital)
    .fetch_all(pool)
    .await)?;
    Ok(rows
        .into_iter()
        .map(|(id, zone)| (id, Zone::parse(&zone).unwrap_or_default()))
        .collect())
}

fn hm(h: u32, m: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(h, m, 0).unwrap_or(NaiveTime::MIN)
}

/// A specialist's week: clinic mornings and afternoons on weekdays, with a little variety in slot
/// length and a Saturday morning for some.
fn weekly_pattern(rng: &mut ChaCha8Rng) -> Vec<WeeklyRule> {
    let slot = [20u32, 30, 30, 30, 45][rng.random_range(0..5)];
    let buffer = if slot == 45 {
        15
    } else {
        [0u32, 5, 10][rng.random_range(0..3)]
    };
    let mut days: Vec<u8> = (1..=5).collect();
    // Most specialists keep one weekday for wards or surgery.
    if rng.random_bool(0.6) {
        let off = rng.random_range(0..days.len());
        days.remove(off);
    }
    if rng.random_bool(0.3) {
        days.push(6);
    }
    let mut rules = Vec::new();
    for day in days {
        let Some(weekday) = IsoWeekday::new(i64::from(day)) else {
            continue;
        };
        let mut sessions = vec![(hm(7, 30), hm(11, 30))];
        if day != 6 {
            sessions.push((hm(13, 30), hm(16, 30)));
        }
        for (start, end) in sessions {
            if let Ok(session) = Session::new(start, end, slot, buffer) {
                rules.push(WeeklyRule {
                    weekday,
                    session,
                    valid_from: None,
                    valid_until: None,
                });
            }
        }
    }
    rules
}

const REASONS: &[&str] = &[
    "Đau ngực khi gắng sức, cần ý kiến chuyên khoa tim mạch",
    "Đường huyết không ổn định dù đã dùng thuốc",
    "Trẻ sốt kéo dài, phát ban",
    "Thai 32 tuần, huyết áp cao",
    "Tổn thương da lan rộng, nghi nấm",
    "Đau đầu kéo dài, chóng mặt",
    "Ho kéo dài trên 3 tuần, sụt cân",
    "Theo dõi sau điều trị lao phổi",
    "Lo âu, mất ngủ kéo dài",
    "Đau khớp gối, hạn chế vận động",
    "Khối u vú, cần tư vấn",
    "Khó thở về đêm",
];

/// The day the demo books: today on a weekday, else the coming Monday, so that a demo started on
/// a weekend still shows a full day list.
pub fn demo_day(zone: Zone) -> chrono::NaiveDate {
    let today = zone.local_date(time::now());
    match IsoWeekday::of(today).get() {
        6 => today + Duration::days(2),
        7 => today + Duration::days(1),
        _ => today,
    }
}

/// The working day after `day` (Monday after a Friday).
fn next_working_day(day: chrono::NaiveDate) -> chrono::NaiveDate {
    match IsoWeekday::of(day).get() {
        5 => day + Duration::days(3),
        6 => day + Duration::days(2),
        _ => day + Duration::days(1),
    }
}

/// Books about two thirds of the demo day's (and the next working day's) slots of every specialist as teleconsultations from
/// care centres: past ones completed, the rest booked.
async fn book_today(
    db: &Db,
    specialists: &[(ClinicianId, Zone)],
    rules: &[(ClinicianId, WeeklyRule)],
    rng: &mut ChaCha8Rng,
) -> Result<(), sqlx::Error> {
    let centres: Vec<(FacilityId, ClinicianId)> = on_db!(db, pool => sqlx::query_as::<_, (FacilityId, ClinicianId)>(
        "SELECT f.id, MIN(c.id) FROM facilities f JOIN clinicians c ON c.facility_id = f.id
         WHERE f.kind = $1 GROUP BY f.id ORDER BY f.id",
    )
    .bind(FacilityKind::CareCentre)
    .fetch_all(pool)
    .await)?;
    let patients: Vec<(PatientId, Option<FacilityId>)> = on_db!(db, pool => sqlx::query_as::<_, (PatientId, Option<FacilityId>)>(
        "SELECT id, home_facility_id FROM patients ORDER BY id",
    )
    .fetch_all(pool)
    .await)?;
    if centres.is_empty() || patients.is_empty() {
        return Ok(());
    }
    let mut by_centre: HashMap<FacilityId, Vec<PatientId>> = HashMap::new();
    for (p, f) in &patients {
        if let Some(f) = f {
            by_centre.entry(*f).or_default().push(*p);
        }
    }
    let now = time::now();
    struct Planned {
        clinician: ClinicianId,
        patient: PatientId,
        centre: FacilityId,
        referring: ClinicianId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        status: Status,
        reason: &'static str,
        urgency: Urgency,
    }
    let mut planned = Vec::new();
    for (clinician, zone) in specialists {
        let today = demo_day(*zone);
        let theirs: Vec<WeeklyRule> = rules
            .iter()
            .filter(|(c, _)| c == clinician)
            .map(|(_, r)| r.clone())
            .collect();
        // The next working day too: a demo opened after the day's sessions still has bookings
        // ahead to manage (reschedule, cancel, join).
        let days = [today, next_working_day(today)];
        let slots = days
            .into_iter()
            .flat_map(|day| slots_on(day, *zone, &theirs, &[]));
        for slot in slots {
            if !rng.random_bool(0.65) {
                continue;
            }
            let (centre, referring) = centres[rng.random_range(0..centres.len())];
            let patient = by_centre
                .get(&centre)
                .and_then(|ps| ps.get(rng.random_range(0..ps.len().max(1))))
                .copied()
                .unwrap_or(patients[rng.random_range(0..patients.len())].0);
            let status = if slot.end <= now {
                Status::Completed
            } else if slot.start <= now {
                Status::InProgress
            } else {
                Status::Booked
            };
            planned.push(Planned {
                clinician: *clinician,
                patient,
                centre,
                referring,
                start: slot.start,
                end: slot.end,
                status,
                reason: REASONS[rng.random_range(0..REASONS.len())],
                urgency: [
                    Urgency::Routine,
                    Urgency::Routine,
                    Urgency::Routine,
                    Urgency::Soon,
                    Urgency::Urgent,
                ][rng.random_range(0..5)],
            });
        }
    }
    on_db!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            for p in &planned {
                let started = (p.status != Status::Booked).then_some(p.start);
                let ended = (p.status == Status::Completed).then_some(p.end);
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO consultations (kind, status, clinician_id, patient_id, requesting_facility_id,
                       referring_clinician_id, reason, urgency, start_at, end_at, started_at, ended_at,
                       created_at, updated_at, version)
                     VALUES ($13, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, 1)
                     RETURNING id",
                )
                .bind(p.status)
                .bind(p.clinician)
                .bind(p.patient)
                .bind(p.centre)
                .bind(p.referring)
                .bind(p.reason)
                .bind(p.urgency)
                .bind(p.start)
                .bind(p.end)
                .bind(started)
                .bind(ended)
                .bind(now - Duration::days(3))
                .bind(Kind::Teleconsultation)
                .fetch_one(&mut *tx)
                .await?;
                if p.status != Status::Completed {
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO slot_claims (clinician_id, cell, consultation_id) ",
                    );
                    q.push_values(time::cells(p.start, p.end), |mut v, cell| {
                        v.push_bind(p.clinician).push_bind(cell).push_bind(id);
                    });
                    q.build().execute(&mut *tx).await?;
                }
                sqlx::query(
                    "INSERT INTO consultation_events (consultation_id, occurred_at, actor, action, detail)
                     VALUES ($1, $2, 'demo:seed', $3, '')",
                )
                .bind(id)
                .bind(now - Duration::days(3))
                .bind(Status::Booked)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await
    })?;
    Ok(())
}

/// One account per role, tied to people who meet on the demo day: a hub specialist, the rural
/// clinician and patient of one of their consultations, that hub's scheduler, an administrator.
/// A consultation still ahead is preferred; once the day's sessions are over (a demo started in
/// the evening) the day's last one is taken, so every persona can still sign in.
async fn seed_accounts(db: &Db) -> Result<(), sqlx::Error> {
    let present = on_db!(db, pool => sqlx::query_scalar::<_, String>(
        "SELECT value FROM platform_meta WHERE key = $1",
    )
    .bind(ACCOUNTS_MARKER)
    .fetch_optional(pool)
    .await)?;
    if present.is_some() {
        return Ok(());
    }
    let zone = Zone::default();
    let day = demo_day(zone);
    let pick = on_db!(db, pool => sqlx::query_as::<_, (ClinicianId, FacilityId, Option<ClinicianId>, PatientId)>(
        "SELECT c.clinician_id, k.facility_id, c.referring_clinician_id, c.patient_id
         FROM consultations c JOIN clinicians k ON k.id = c.clinician_id
         WHERE c.start_at >= $1 AND c.referring_clinician_id IS NOT NULL
         ORDER BY CASE WHEN c.status = $2 THEN 0 ELSE 1 END,
                  CASE WHEN c.status = $2 THEN c.start_at END, c.start_at DESC, c.id LIMIT 1",
    )
    .bind(zone.day_start(day))
    .bind(Status::Booked)
    .fetch_optional(pool)
    .await)?;
    let hash = crate::auth::password::hash(DEMO_PASSWORD)
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let mut accounts = vec![NewAccount {
        username: "admin".into(),
        display_name: "Quản trị hệ thống".into(),
        password_hash: Some(hash.clone()),
        patient_id: None,
        clinician_id: None,
        grants: vec![Grant {
            role: Role::Administrator,
            facility_id: None,
        }],
    }];
    if let Some((specialist, hub, referring, patient)) = pick {
        accounts.push(NewAccount {
            username: "dieuphoi".into(),
            display_name: "Điều phối viên".into(),
            password_hash: Some(hash.clone()),
            patient_id: None,
            clinician_id: None,
            grants: vec![Grant {
                role: Role::Scheduler,
                facility_id: Some(hub),
            }],
        });
        accounts.push(NewAccount {
            username: "bacsi".into(),
            display_name: "Bác sĩ chuyên khoa".into(),
            password_hash: Some(hash.clone()),
            patient_id: None,
            clinician_id: Some(specialist),
            grants: vec![Grant {
                role: Role::Clinician,
                facility_id: None,
            }],
        });
        if let Some(rural) = referring {
            accounts.push(NewAccount {
                username: "tramyte".into(),
                display_name: "Bác sĩ trạm y tế".into(),
                password_hash: Some(hash.clone()),
                patient_id: None,
                clinician_id: Some(rural),
                grants: vec![Grant {
                    role: Role::Clinician,
                    facility_id: None,
                }],
            });
        }
        accounts.push(NewAccount {
            username: "benhnhan".into(),
            display_name: "Bệnh nhân".into(),
            password_hash: Some(hash),
            patient_id: Some(patient),
            clinician_id: None,
            grants: vec![Grant {
                role: Role::Patient,
                facility_id: None,
            }],
        });
    }
    for a in accounts {
        match create_account(db, a).await {
            Ok(_) | Err(AccountError::Duplicate(_)) => {}
            Err(AccountError::Storage(e)) => return Err(e),
            Err(e) => return Err(sqlx::Error::Protocol(e.to_string())),
        }
    }
    on_db!(db, pool => sqlx::query("INSERT INTO platform_meta (key, value) VALUES ($1, $2)")
        .bind(ACCOUNTS_MARKER)
        .bind(time::now().to_rfc3339())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

async fn summary(db: &Db, created: bool) -> Result<DemoSummary, sqlx::Error> {
    let count = |sql: &'static str| async move {
        on_db!(db, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)
    };
    let facilities = count("SELECT COUNT(*) FROM facilities").await?;
    let clinicians = count("SELECT COUNT(*) FROM clinicians").await?;
    let patients = count("SELECT COUNT(*) FROM patients").await?;
    let zone = Zone::default();
    let day = demo_day(zone);
    let (day_start, day_end) = (zone.day_start(day), zone.day_start(day + Duration::days(1)));
    let consultations_on_demo_day = on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM consultations WHERE start_at >= $1 AND start_at < $2",
    )
    .bind(day_start)
    .bind(day_end)
    .fetch_one(pool)
    .await)?;
    let example_hub = on_db!(db, pool => sqlx::query_as::<_, (FacilityId, String)>(
        "SELECT id, name FROM facilities WHERE kind = $1 ORDER BY id LIMIT 1",
    )
    .bind(FacilityKind::HubHospital)
    .fetch_optional(pool)
    .await)?;
    let example_specialist = on_db!(db, pool => sqlx::query_as::<_, (ClinicianId, String, String)>(
        "SELECT c.id, c.full_name, s.code FROM clinicians c
         JOIN clinician_specialties cs ON cs.clinician_id = c.id
         JOIN specialties s ON s.id = cs.specialty_id
         JOIN facilities f ON f.id = c.facility_id
         WHERE f.kind = $1 ORDER BY c.id LIMIT 1",
    )
    .bind(FacilityKind::HubHospital)
    .fetch_optional(pool)
    .await)?;
    let accounts: Vec<(String, String)> = on_db!(db, pool => sqlx::query_as(
        "SELECT a.username, a.display_name FROM accounts a
         JOIN platform_meta m ON m.key = 'demo_accounts'
         WHERE a.username IN ('admin', 'dieuphoi', 'bacsi', 'tramyte', 'benhnhan') ORDER BY a.id",
    )
    .fetch_all(pool)
    .await)?;
    let accounts = accounts
        .into_iter()
        .map(|(u, d)| {
            let role = match u.as_str() {
                "admin" => "administrator",
                "dieuphoi" => "scheduler",
                "benhnhan" => "patient",
                _ => "clinician",
            };
            (u, role, d)
        })
        .collect();
    Ok(DemoSummary {
        accounts,
        created,
        facilities,
        clinicians,
        patients,
        demo_day: day,
        consultations_on_demo_day,
        example_hub,
        example_specialist,
    })
}

/// The demo specialist's on-call session: an extra session starting at the next five-minute mark
/// today, so that a person trying the demo (or the browser tests) can book a teleconsultation
/// whose call opens at once.
#[derive(Clone, Debug)]
pub struct OnCall {
    pub date: chrono::NaiveDate,
    pub start: NaiveTime,
    pub end: NaiveTime,
    pub zone: &'static str,
    /// The specialist's first free slot from now (local time): their clinic's bookings may fill
    /// the start of the session.
    pub first_free: Option<chrono::NaiveDateTime>,
}

/// Adds the demo specialist's on-call session for now, unless one already covers it. Called each
/// time `demo` serves (not when it only seeds): the demo's "now" moves.
pub async fn on_call_now(db: &Db) -> Result<Option<OnCall>, sqlx::Error> {
    use crate::domain::availability::Exception;
    use chrono::Timelike;
    let found = on_db!(db, pool => sqlx::query_as::<_, (ClinicianId, String)>(
        "SELECT c.id, f.time_zone FROM accounts a
         JOIN clinicians c ON c.id = a.clinician_id JOIN facilities f ON f.id = c.facility_id
         WHERE a.username = 'bacsi'",
    )
    .fetch_optional(pool)
    .await)?;
    let Some((clinician, zone_name)) = found else {
        return Ok(None);
    };
    let zone = Zone::parse(&zone_name).unwrap_or_default();
    let local = zone.to_local(time::now());
    let minutes = local.hour() * 60 + local.minute();
    let next = (minutes / 5 + 1) * 5;
    // Up to two hours, within the day (a session ends by 23:55). After 23:40 no 15-minute slot
    // fits today, so the session starts at 00:00 tomorrow, whose call opens at 23:45.
    let last_end = 24 * 60 - 5;
    let (date, start, end) = if next + SLOT > last_end {
        (local.date() + Duration::days(1), 0, 120)
    } else {
        (local.date(), next, (next + 120).min(last_end))
    };
    let hm = |m: u32| NaiveTime::from_hms_opt(m / 60, m % 60, 0);
    let (Some(start), Some(end)) = (hm(start), hm(end)) else {
        return Ok(None);
    };
    let covered = on_db!(db, pool => sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM availability_exceptions
         WHERE clinician_id = $1 AND on_date = $2 AND kind = 'extra' AND note = $3
           AND start_time <= $4 AND end_time >= $5",
    )
    .bind(clinician)
    .bind(date)
    .bind(ON_CALL_NOTE)
    .bind(start)
    .bind(start + Duration::minutes(i64::from(SLOT)))
    .fetch_one(pool)
    .await)?;
    if covered == 0 {
        // An earlier on-call session may still run to a time after `start`: extra sessions of
        // one date may not overlap, so the new one starts where it ends.
        let running_until = on_db!(db, pool => sqlx::query_scalar::<_, Option<NaiveTime>>(
            "SELECT MAX(end_time) FROM availability_exceptions
             WHERE clinician_id = $1 AND on_date = $2 AND kind = 'extra'
               AND start_time < $4 AND end_time > $3",
        )
        .bind(clinician)
        .bind(date)
        .bind(start)
        .bind(end)
        .fetch_one(pool)
        .await)?;
        let start = running_until.map_or(start, |t| t.max(start));
        // Nothing fits after it today: the running session is the on-call one.
        let Ok(session) = Session::new(start, end, SLOT, 0) else {
            return Ok(None);
        };
        crate::scheduling::availability::create_exception(
            db,
            clinician,
            &Exception::Extra { date, session },
            ON_CALL_NOTE,
            None,
        )
        .await
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    }
    let free = crate::scheduling::calendar::search_slots(
        db,
        &crate::scheduling::calendar::SlotQuery {
            specialty: None,
            clinician_id: Some(clinician),
            facility_id: None,
            province: None,
            from: date,
            to: date,
            limit: 1,
        },
    )
    .await
    .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    Ok(Some(OnCall {
        date,
        start,
        end,
        zone: zone.name(),
        first_free: free.slots.first().map(|s| s.local_start),
    }))
}

/// Marks the demo's on-call sessions, so a restart reuses one that still covers now.
const ON_CALL_NOTE: &str = "on call (demo)";
/// Slot length of the on-call session, in minutes.
const SLOT: u32 = 15;

#[cfg(test)]
mod tests {
    use super::DEMO_PASSWORD;
    use crate::auth::password::check_new;

    #[test]
    fn the_demo_password_meets_the_password_rules() {
        // The demo's accounts (server/src/demo/seed.rs) all share its password.
        for (user, display) in [
            ("admin", "Quản trị hệ thống"),
            ("dieuphoi", "Điều phối viên"),
            ("bacsi", "Bác sĩ chuyên khoa"),
            ("tramyte", "Bác sĩ trạm y tế"),
            ("benhnhan", "Bệnh nhân"),
        ] {
            assert!(check_new(DEMO_PASSWORD, &[user, display]).is_ok(), "{user}");
        }
    }
}
