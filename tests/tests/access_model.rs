//! The access property test: a generated network, every caller against every record, compared
//! with a model of the care-relationship rules written here from their documentation
//! (`server/src/auth/policy.rs`), independently of the code under test.
//!
//! One round builds a network through the API — care centres and hubs, their clinicians,
//! schedulers of a hub, of a care centre and of the network, a clinician who also schedules for
//! another hub, patients with and without accounts, a visit-link session, consultations in every
//! status with signed notes, a live and an expired break-the-glass grant — then:
//! 1. every caller reads every patient, their contact preferences (and records them), timeline, consultation, note, note history, summary,
//!    hub calendar and the consultation list, and asks for a join token and a guest's invitation
//!    to every consultation; each answer (status, and the exact set of ids a list or timeline
//!    returns) must be the model's;
//! 2. every caller tries to book or hold every patient (and one that does not exist): a patient
//!    they may not see answers exactly like a missing one and writes nothing; hub schedulers try
//!    to move their hospital's consultations to another clinician and to send visit links; some
//!    of the new bookings are cancelled;
//! 3. the reads of step 1 run again against the model updated with what step 2 really did, so a
//!    write never grants a read the rules do not.
//!
//! `ACCESS_MODEL_ROUNDS=20 cargo test -p telehealth-tests --test access_model` runs more rounds
//! (each a fresh server and network); `ACCESS_MODEL_SEED=N` starts from another seed.

use std::collections::{BTreeSet, HashMap};

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use telehealth::storage::Db;
use telehealth_tests::{Engine, SplitMix as Rng, TestApp, both_engines, this_week};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Held,
    HeldExpired,
    Booked,
    InProgress,
    Completed,
    Cancelled,
    NoShow,
    Expired,
}

const STATUSES: [St; 8] = [
    St::Held,
    St::HeldExpired,
    St::Booked,
    St::InProgress,
    St::Completed,
    St::Cancelled,
    St::NoShow,
    St::Expired,
];

impl St {
    /// The rules' "booked, in progress or completed".
    fn relationship(self) -> bool {
        matches!(self, St::Booked | St::InProgress | St::Completed)
    }
    /// A timeline leaves out holds, live or lapsed, and expired holds.
    fn on_timeline(self) -> bool {
        !matches!(self, St::Held | St::HeldExpired | St::Expired)
    }
}

#[derive(Clone, Debug)]
struct Mc {
    id: i64,
    patient: i64,
    clinician: i64,
    referring: Option<i64>,
    status: St,
    /// Its encounter note is signed.
    signed: bool,
}

#[derive(Clone, Debug)]
enum Sched {
    Network,
    Facilities(Vec<i64>),
}

struct Caller {
    label: String,
    app: TestApp,
    patient: Option<i64>,
    only: Option<i64>,
    clinician: Option<i64>,
    sched: Option<Sched>,
}

/// The rules, as the policy's documentation states them.
#[derive(Default)]
struct Model {
    /// Patient → their own care centre.
    home: HashMap<i64, Option<i64>>,
    clinician_facility: HashMap<i64, i64>,
    consultations: Vec<Mc>,
    /// Unexpired break-the-glass grants: (clinician, patient).
    grants: Vec<(i64, i64)>,
}

impl Model {
    fn schedules_for(&self, k: &Caller, facility: i64) -> bool {
        match &k.sched {
            Some(Sched::Network) => true,
            Some(Sched::Facilities(f)) => f.contains(&facility),
            None => false,
        }
    }

    fn takes_part(&self, k: &Caller, c: &Mc) -> bool {
        k.clinician
            .is_some_and(|me| c.clinician == me || c.referring == Some(me))
    }

    fn own(&self, k: &Caller, c: &Mc) -> bool {
        k.patient == Some(c.patient) && k.only.is_none_or(|o| o == c.id)
    }

    /// A clinician of the patient's own care centre, or one with a grant on the patient.
    fn outsider(&self, k: &Caller, patient: i64) -> bool {
        let Some(me) = k.clinician else { return false };
        k.only.is_none()
            && (self.home[&patient].is_some()
                && self.home[&patient] == Some(self.clinician_facility[&me])
                || self.grants.contains(&(me, patient)))
    }

    /// A clinician or scheduler of patient `p`'s own care centre.
    fn staff_of_home(&self, k: &Caller, p: i64) -> bool {
        self.home[&p].is_some_and(|h| {
            k.clinician
                .is_some_and(|me| self.clinician_facility[&me] == h)
                || matches!(&k.sched, Some(Sched::Facilities(f)) if f.contains(&h))
        })
    }

    fn sees_patient(&self, k: &Caller, p: i64) -> bool {
        if k.patient == Some(p) {
            return true;
        }
        if k.only.is_some() {
            return false;
        }
        let staff_of_home = self.staff_of_home(k, p);
        let related = self
            .consultations
            .iter()
            .filter(|c| c.patient == p && c.status.relationship())
            .any(|c| {
                self.takes_part(k, c)
                    || self.schedules_for(k, self.clinician_facility[&c.clinician])
            });
        let network = matches!(k.sched, Some(Sched::Network));
        let glass = k.clinician.is_some_and(|me| self.grants.contains(&(me, p)));
        staff_of_home || related || network || glass
    }

    /// Records the patient's contact preferences: the patient, their care centre's staff, the
    /// schedulers of a consulted hospital and the network's.
    fn sets_contacts(&self, k: &Caller, p: i64) -> bool {
        if k.patient == Some(p) {
            return true;
        }
        if k.only.is_some() {
            return false;
        }
        let staff_of_home = self.staff_of_home(k, p);
        let referral = self
            .consultations
            .iter()
            .filter(|c| c.patient == p && c.status.relationship())
            .any(|c| self.schedules_for(k, self.clinician_facility[&c.clinician]));
        staff_of_home || referral || matches!(k.sched, Some(Sched::Network))
    }

    fn reads_consultation(&self, k: &Caller, c: &Mc) -> bool {
        if k.only.is_some() {
            return self.own(k, c);
        }
        self.own(k, c)
            || self.takes_part(k, c)
            || self.schedules_for(k, self.clinician_facility[&c.clinician])
            || self.outsider(k, c.patient)
    }

    /// The signed note (and the consultation on a timeline).
    fn reads_note(&self, k: &Caller, c: &Mc) -> bool {
        (self.takes_part(k, c) && k.only.is_none()) || self.own(k, c) || self.outsider(k, c.patient)
    }

    fn lists_anything(&self, k: &Caller) -> bool {
        k.patient.is_some() || k.clinician.is_some() || k.sched.is_some()
    }
}

/// The network of one round, with the handles the steps need.
struct World {
    hubs: Vec<i64>,
    centres: Vec<i64>,
    /// Per hub, its specialists.
    specialists: Vec<Vec<i64>>,
    /// Per care centre, its clinicians.
    rurals: Vec<Vec<i64>>,
    patients: Vec<i64>,
    /// Free slots per clinician, taken from the front as bookings are made.
    slots: HashMap<i64, Vec<chrono::DateTime<Utc>>>,
}

impl World {
    fn take_slot(&mut self, clinician: i64) -> String {
        let pool = self
            .slots
            .get_mut(&clinician)
            .expect("slots of a specialist");
        assert!(!pool.is_empty(), "the round ran out of free slots");
        pool.remove(0).to_rfc3339()
    }
}

async fn set_status(db: &Db, id: i64, status: St) {
    let now = Utc::now();
    let (text, expires) = match status {
        St::Held => ("held", Some(now + Duration::hours(2))),
        St::HeldExpired => ("held", Some(now - Duration::minutes(10))),
        St::Booked => ("booked", None),
        St::InProgress => ("in_progress", None),
        St::Completed => ("completed", None),
        St::Cancelled => ("cancelled", None),
        St::NoShow => ("no_show", None),
        St::Expired => ("expired", None),
    };
    let sql = "UPDATE consultations SET status = $1, hold_expires_at = $2 WHERE id = $3";
    match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .bind(text)
            .bind(expires)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()),
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(text)
            .bind(expires)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ()),
    }
    .expect("status set");
}

/// A break-the-glass grant that lapsed: written directly, as its hour cannot be waited for.
async fn expired_grant(db: &Db, patient: i64, clinician: i64, account: i64) {
    let now = Utc::now();
    let sql = "INSERT INTO break_glass_grants (patient_id, clinician_id, account_id, reason, granted_at, expires_at)
               VALUES ($1, $2, $3, 'lapsed grant of the access model', $4, $5)";
    let (at, until) = (now - Duration::hours(3), now - Duration::hours(2));
    match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .bind(patient)
            .bind(clinician)
            .bind(account)
            .bind(at)
            .bind(until)
            .execute(pool)
            .await
            .map(|_| ()),
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(patient)
            .bind(clinician)
            .bind(account)
            .bind(at)
            .bind(until)
            .execute(pool)
            .await
            .map(|_| ()),
    }
    .expect("lapsed grant");
}

fn ids(body: &Value, key: &str) -> BTreeSet<i64> {
    body.as_array()
        .unwrap_or_else(|| panic!("a list: {body}"))
        .iter()
        .map(|v| v[key].as_i64().expect("an id"))
        .collect()
}

async fn build(app: &TestApp, rng: &mut Rng, round: u64) -> (World, Model, Vec<Caller>) {
    let mut model = Model::default();
    app.create_specialty("cardiology").await;
    let mut hubs = Vec::new();
    let mut specialists = Vec::new();
    for h in 0..2 {
        let hub = app
            .create_facility(&format!("H{round}-{h}"), "hub_hospital", "Asia/Ho_Chi_Minh")
            .await;
        let mut list = Vec::new();
        for _ in 0..2 {
            let s = app.create_clinician(hub, &["cardiology"]).await;
            app.add_daily_rule(s, "07:00:00", "19:00:00", 30, 0).await;
            model.clinician_facility.insert(s, hub);
            list.push(s);
        }
        hubs.push(hub);
        specialists.push(list);
    }
    let mut centres = Vec::new();
    let mut rurals = Vec::new();
    let mut patients = Vec::new();
    for k in 0..3 {
        let centre = app
            .create_facility(&format!("C{round}-{k}"), "care_centre", "Asia/Ho_Chi_Minh")
            .await;
        let mut list = Vec::new();
        for _ in 0..(if k == 0 { 2 } else { 1 }) {
            let r = app.create_clinician(centre, &[]).await;
            model.clinician_facility.insert(r, centre);
            list.push(r);
        }
        for _ in 0..2 {
            let p = app.create_patient(Some(centre)).await;
            model.home.insert(p, Some(centre));
            patients.push(p);
        }
        centres.push(centre);
        rurals.push(list);
    }
    // A patient registered with no care centre.
    let homeless = app.create_patient(None).await;
    model.home.insert(homeless, None);
    patients.push(homeless);

    let (today, _) = this_week();
    let (from, to) = (today + Duration::days(1), today + Duration::days(7));
    let mut slots = HashMap::new();
    for s in specialists.iter().flatten() {
        slots.insert(*s, app.free_slots(*s, from, to).await);
    }
    let mut world = World {
        hubs,
        centres,
        specialists,
        rurals,
        patients,
        slots,
    };

    // Callers.
    let mut callers = Vec::new();
    let mut n = 0;
    let mut user = |prefix: &str| {
        n += 1;
        format!("{prefix}{round}x{n}")
    };
    let caller = |label: String, app: TestApp| Caller {
        label,
        app,
        patient: None,
        only: None,
        clinician: None,
        sched: None,
    };
    let admin = user("admin");
    callers.push(caller(
        admin.clone(),
        app.as_new_user(&admin, &[("administrator", None)], None, None)
            .await,
    ));
    let net = user("network");
    callers.push(Caller {
        sched: Some(Sched::Network),
        ..caller(
            net.clone(),
            app.as_new_user(&net, &[("scheduler", None)], None, None)
                .await,
        )
    });
    for hub in world.hubs.clone() {
        let name = user("hubsched");
        callers.push(Caller {
            sched: Some(Sched::Facilities(vec![hub])),
            ..caller(
                name.clone(),
                app.as_new_user(&name, &[("scheduler", Some(hub))], None, None)
                    .await,
            )
        });
    }
    let centre0 = world.centres[0];
    let name = user("centresched");
    callers.push(Caller {
        sched: Some(Sched::Facilities(vec![centre0])),
        ..caller(
            name.clone(),
            app.as_new_user(&name, &[("scheduler", Some(centre0))], None, None)
                .await,
        )
    });
    let mut spec_accounts: HashMap<i64, TestApp> = HashMap::new();
    for (h, list) in world.specialists.clone().iter().enumerate() {
        for (i, s) in list.iter().enumerate() {
            let name = user("spec");
            // The first specialist of the first hub also schedules for the other hub.
            let dual = h == 0 && i == 0;
            let other_hub = world.hubs[1];
            let roles: Vec<(&str, Option<i64>)> = if dual {
                vec![("clinician", None), ("scheduler", Some(other_hub))]
            } else {
                vec![("clinician", None)]
            };
            let a = app.as_new_user(&name, &roles, None, Some(*s)).await;
            spec_accounts.insert(*s, a.clone());
            callers.push(Caller {
                clinician: Some(*s),
                sched: dual.then(|| Sched::Facilities(vec![other_hub])),
                ..caller(name, a)
            });
        }
    }
    let mut rural_accounts: HashMap<i64, (TestApp, i64)> = HashMap::new();
    for list in world.rurals.clone() {
        for r in list {
            let name = user("rural");
            let a = app
                .as_new_user(&name, &[("clinician", None)], None, Some(r))
                .await;
            let account = a.get("/api/v1/auth/me").await.expect(200).body["account_id"]
                .as_i64()
                .expect("account id");
            rural_accounts.insert(r, (a.clone(), account));
            callers.push(Caller {
                clinician: Some(r),
                ..caller(name, a)
            });
        }
    }
    for p in world.patients.clone() {
        if rng.chance(50) {
            let name = user("patient");
            callers.push(Caller {
                patient: Some(p),
                ..caller(
                    name.clone(),
                    app.as_new_user(&name, &[("patient", None)], Some(p), None)
                        .await,
                )
            });
        }
    }

    // Consultations in every status, some with signed notes.
    let count = 14 + rng.below(8);
    for i in 0..count {
        let patient = world.patients[rng.below(world.patients.len())];
        let hub = rng.below(2);
        let clinician = world.specialists[hub][rng.below(2)];
        let start = world.take_slot(clinician);
        let (body, referring) = match model.home[&patient] {
            Some(home) if rng.chance(75) => {
                // Mostly referred by the patient's own centre, sometimes by another one.
                let k = if rng.chance(75) {
                    world
                        .centres
                        .iter()
                        .position(|c| *c == home)
                        .expect("a centre")
                } else {
                    rng.below(world.centres.len())
                };
                let referring = world.rurals[k][rng.below(world.rurals[k].len())];
                (
                    json!({"kind": "teleconsultation", "clinician_id": clinician, "patient_id": patient,
                           "requesting_facility_id": world.centres[k], "referring_clinician_id": referring,
                           "reason": "access model", "start": start}),
                    Some(referring),
                )
            }
            _ => (
                json!({"kind": "video_visit", "clinician_id": clinician, "patient_id": patient,
                       "reason": "access model", "start": start}),
                None,
            ),
        };
        let id = app
            .post("/api/v1/consultations", body)
            .await
            .expect(201)
            .id();
        // Every status at least once, then at random.
        let status = match STATUSES.get(i) {
            Some(s) => *s,
            None => STATUSES[rng.below(STATUSES.len())],
        };
        let signed = rng.chance(60);
        if signed {
            let spec = &spec_accounts[&clinician];
            let path = format!("/api/v1/consultations/{id}/note");
            spec.put(
                &path,
                json!({"version": 0, "content": {"assessment": "access model note", "plan": "review", "advice": "see plan", "follow_up": "none"}}),
            )
            .await
            .expect(200);
            spec.post(&format!("{path}/sign"), json!({"version": 1}))
                .await
                .expect(200);
        }
        set_status(app.db(), id, status).await;
        model.consultations.push(Mc {
            id,
            patient,
            clinician,
            referring,
            status,
            signed,
        });
    }

    // A rural clinician of the last centre breaks the glass on a patient of the first; one of
    // the second centre holds a grant that lapsed.
    let (glass_app, _) = &rural_accounts[&world.rurals[2][0]];
    let target = world.patients[0];
    glass_app
        .post(
            &format!("/api/v1/patients/{target}/break-glass"),
            json!({"reason": "unconscious on arrival, history needed"}),
        )
        .await
        .expect(201);
    model.grants.push((world.rurals[2][0], target));
    let (_, lapsed_account) = rural_accounts[&world.rurals[1][0]];
    expired_grant(
        app.db(),
        world.patients[1],
        world.rurals[1][0],
        lapsed_account,
    )
    .await;

    // A visit-link session for a booked consultation.
    if let Some(c) = model
        .consultations
        .iter()
        .find(|c| c.status == St::Booked)
        .cloned()
    {
        let link = app
            .post(
                &format!("/api/v1/consultations/{}/visit-link", c.id),
                json!({}),
            )
            .await
            .expect(201);
        let session = app
            .anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": link.body["token"].as_str().expect("token"), "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(200);
        callers.push(Caller {
            patient: Some(c.patient),
            only: Some(c.id),
            ..caller(
                format!("visit{round}"),
                app.as_token(session.body["token"].as_str().expect("token")),
            )
        });
    }
    (world, model, callers)
}

/// Answers checked, and those that differed from the model.
struct Tally<'a> {
    checked: usize,
    failures: &'a mut Vec<String>,
}

impl Tally<'_> {
    fn expect(&mut self, who: &str, what: String, want: u16, got: u16, text: &str) {
        self.checked += 1;
        if want != got {
            self.failures
                .push(format!("{who} {what}: expected {want}, got {got} {text}"));
        }
    }
}

/// Step 1 (and 3): every read, compared with the model. Returns how many answers were checked.
async fn check_reads(
    world: &World,
    model: &Model,
    callers: &[Caller],
    failures: &mut Vec<String>,
) -> usize {
    let mut t = Tally {
        checked: 0,
        failures,
    };
    for k in callers {
        for &p in &world.patients {
            let sees = model.sees_patient(k, p);
            let r = k.app.get(&format!("/api/v1/patients/{p}")).await;
            t.expect(
                &k.label,
                format!("GET /patients/{p}"),
                if sees { 200 } else { 404 },
                r.status,
                &r.text,
            );

            let contacts = format!("/api/v1/patients/{p}/contact-preferences");
            let r = k.app.get(&contacts).await;
            t.expect(
                &k.label,
                format!("GET {contacts}"),
                if sees { 200 } else { 404 },
                r.status,
                &r.text,
            );
            // Recording no consent changes nothing any rule looks at.
            let r = k
                .app
                .put(
                    &contacts,
                    json!({"consent": false, "channel": "none", "language": "vi"}),
                )
                .await;
            let want = match (sees, model.sets_contacts(k, p)) {
                (false, _) => 404,
                (true, false) => 403,
                (true, true) => 200,
            };
            t.expect(&k.label, format!("PUT {contacts}"), want, r.status, &r.text);

            let r = k.app.get(&format!("/api/v1/patients/{p}/timeline")).await;
            let may_timeline = k.only.is_none() && (k.patient == Some(p) || k.clinician.is_some());
            let want = match (sees, may_timeline) {
                (false, _) => 404,
                (true, false) => 403,
                (true, true) => 200,
            };
            t.expect(
                &k.label,
                format!("GET /patients/{p}/timeline"),
                want,
                r.status,
                &r.text,
            );
            if want == 200 && r.status == 200 {
                let got = ids(&r.body, "consultation_id");
                let wanted: BTreeSet<i64> = model
                    .consultations
                    .iter()
                    .filter(|c| c.patient == p && c.status.on_timeline() && model.reads_note(k, c))
                    .map(|c| c.id)
                    .collect();
                if got != wanted {
                    t.failures.push(format!(
                        "{} timeline of {p}: expected {wanted:?}, got {got:?}",
                        k.label
                    ));
                }
            }
        }
        let r = k.app.get("/api/v1/patients/999999").await;
        t.expect(
            &k.label,
            "GET /patients/999999".into(),
            404,
            r.status,
            &r.text,
        );

        for c in &model.consultations {
            let reads = model.reads_consultation(k, c);
            let r = k.app.get(&format!("/api/v1/consultations/{}", c.id)).await;
            t.expect(
                &k.label,
                format!("GET /consultations/{} ({:?})", c.id, c.status),
                if reads { 200 } else { 404 },
                r.status,
                &r.text,
            );
            let r = k
                .app
                .get(&format!("/api/v1/consultations/{}/note", c.id))
                .await;
            let want = match (reads, model.reads_note(k, c)) {
                (false, _) => 404,
                (true, false) => 403,
                (true, true) => 200,
            };
            t.expect(
                &k.label,
                format!("GET /consultations/{}/note", c.id),
                want,
                r.status,
                &r.text,
            );
            let writes = model.takes_part(k, c) && k.only.is_none();
            let r = k
                .app
                .get(&format!("/api/v1/consultations/{}/note/history", c.id))
                .await;
            let want = match (reads, writes) {
                (false, _) => 404,
                (true, false) => 403,
                (true, true) => 200,
            };
            t.expect(
                &k.label,
                format!("GET /consultations/{}/note/history", c.id),
                want,
                r.status,
                &r.text,
            );
            let r = k
                .app
                .get(&format!("/api/v1/consultations/{}/summary", c.id))
                .await;
            let want = match (reads, model.reads_note(k, c), c.signed) {
                (false, _, _) => 404,
                (true, false, _) => 403,
                (true, true, true) => 200,
                (true, true, false) => 409,
            };
            t.expect(
                &k.label,
                format!("GET /consultations/{}/summary", c.id),
                want,
                r.status,
                &r.text,
            );
            // Every consultation starts tomorrow or later, or is not joinable: one who may join
            // meets a 409, one who may not a 403.
            let joins = writes || model.own(k, c);
            let r = k
                .app
                .post(
                    &format!("/api/v1/consultations/{}/join-token", c.id),
                    json!({}),
                )
                .await;
            let want = match (reads, joins) {
                (false, _) => 404,
                (true, false) => 403,
                (true, true) => 409,
            };
            t.expect(
                &k.label,
                format!("POST /consultations/{}/join-token", c.id),
                want,
                r.status,
                &r.text,
            );
            // Inviting a guest: a clinician of the consultation who looks after the patient.
            let r = k
                .app
                .post(
                    &format!("/api/v1/consultations/{}/join-token", c.id),
                    json!({"guest_name": "Người phiên dịch"}),
                )
                .await;
            let want = match (reads, writes && model.sees_patient(k, c.patient)) {
                (false, _) => 404,
                (true, false) => 403,
                (true, true) => 409,
            };
            t.expect(
                &k.label,
                format!("POST /consultations/{}/join-token (guest)", c.id),
                want,
                r.status,
                &r.text,
            );
        }

        for &hub in &world.hubs {
            let r = k
                .app
                .get(&format!("/api/v1/facilities/{hub}/calendar"))
                .await;
            let want = if model.schedules_for(k, hub) {
                200
            } else {
                403
            };
            t.expect(
                &k.label,
                format!("GET /facilities/{hub}/calendar"),
                want,
                r.status,
                &r.text,
            );
        }

        let r = k.app.get("/api/v1/consultations?limit=500").await;
        if model.lists_anything(k) {
            t.expect(
                &k.label,
                "GET /consultations".into(),
                200,
                r.status,
                &r.text,
            );
            if r.status == 200 {
                let got = ids(&r.body, "id");
                let wanted: BTreeSet<i64> = model
                    .consultations
                    .iter()
                    .filter(|c| model.reads_consultation(k, c))
                    .map(|c| c.id)
                    .collect();
                if got != wanted {
                    t.failures.push(format!(
                        "{} GET /consultations: expected {wanted:?}, got {got:?}",
                        k.label
                    ));
                }
            }
        } else {
            t.expect(
                &k.label,
                "GET /consultations".into(),
                403,
                r.status,
                &r.text,
            );
        }
    }
    t.checked
}

async fn consultation_count(db: &Db) -> i64 {
    let sql = "SELECT COUNT(*) FROM consultations";
    match db {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .expect("count")
}

/// Step 2: writes first. Returns how many attempts were checked.
async fn attack(
    app: &TestApp,
    world: &mut World,
    model: &mut Model,
    callers: &[Caller],
    rng: &mut Rng,
    failures: &mut Vec<String>,
) -> usize {
    let mut checked = 0;
    let mut targets = world.patients.clone();
    targets.push(999_999);
    let mut made: Vec<i64> = Vec::new();
    for k in callers {
        for &p in &targets {
            let exists = model.home.contains_key(&p);
            let sees = exists && model.sees_patient(k, p);
            // The booking each kind of caller would make.
            let (clinician, referring, centre) = if let Some(me) = k.clinician {
                let facility = model.clinician_facility[&me];
                if world.centres.contains(&facility) {
                    (world.specialists[0][1], Some(me), Some(facility))
                } else {
                    (me, None, None)
                }
            } else {
                match &k.sched {
                    Some(Sched::Facilities(f)) if world.hubs.contains(&f[0]) => {
                        let h = world.hubs.iter().position(|x| *x == f[0]).expect("hub");
                        (world.specialists[h][1], None, None)
                    }
                    _ => (world.specialists[1][0], None, None),
                }
            };
            let allowed = sees
                && k.only.is_none()
                && (k.clinician.is_some()
                    || model.schedules_for(k, model.clinician_facility[&clinician]));
            let hold = rng.chance(50);
            let start = world.slots[&clinician][0].to_rfc3339();
            let body = match referring {
                Some(r) => {
                    json!({"kind": "teleconsultation", "clinician_id": clinician, "patient_id": p,
                                  "requesting_facility_id": centre, "referring_clinician_id": r,
                                  "reason": "write first, read later", "start": start, "hold": hold})
                }
                None => json!({"kind": "video_visit", "clinician_id": clinician, "patient_id": p,
                               "reason": "write first, read later", "start": start, "hold": hold}),
            };
            let before = consultation_count(app.db()).await;
            let r = k.app.post("/api/v1/consultations", body).await;
            let after = consultation_count(app.db()).await;
            checked += 1;
            let want = if !sees {
                404
            } else if allowed {
                201
            } else {
                403
            };
            if r.status != want {
                failures.push(format!(
                    "{} books patient {p}: expected {want}, got {} {}",
                    k.label, r.status, r.text
                ));
            }
            if want == 404 && r.status == 404 && r.body["error"]["message"] != "patient not found" {
                failures.push(format!(
                    "{} books patient {p}: a hidden patient must answer like a missing one, got {}",
                    k.label, r.text
                ));
            }
            if r.status == 201 {
                world.take_slot(clinician);
                let id = r.id();
                made.push(id);
                model.consultations.push(Mc {
                    id,
                    patient: p,
                    clinician,
                    referring,
                    status: if hold { St::Held } else { St::Booked },
                    signed: false,
                });
            } else if after != before {
                failures.push(format!(
                    "{} books patient {p}: refused with {} but wrote a consultation",
                    k.label, r.status
                ));
            }
        }
    }

    // Hub schedulers move their hospital's live consultations to the hospital's other specialist.
    for k in callers {
        let Some(Sched::Facilities(f)) = &k.sched else {
            continue;
        };
        let Some(h) = world.hubs.iter().position(|x| *x == f[0]) else {
            continue;
        };
        if k.clinician.is_some() {
            continue;
        }
        let movable: Vec<usize> = (0..model.consultations.len())
            .filter(|i| {
                let c = &model.consultations[*i];
                matches!(c.status, St::Held | St::Booked)
                    && model.clinician_facility[&c.clinician] == world.hubs[h]
            })
            .collect();
        for i in movable.into_iter().take(4) {
            let c = model.consultations[i].clone();
            let target = *world.specialists[h]
                .iter()
                .find(|s| **s != c.clinician)
                .expect("another specialist");
            if c.referring == Some(target) {
                continue;
            }
            let sees = model.sees_patient(k, c.patient);
            let start = world.slots[&target][0].to_rfc3339();
            let r = k
                .app
                .post(
                    &format!("/api/v1/consultations/{}/reschedule", c.id),
                    json!({"start": start, "clinician_id": target, "reason": "access model move"}),
                )
                .await;
            checked += 1;
            let want = if sees { 200 } else { 403 };
            if r.status != want {
                failures.push(format!(
                    "{} moves consultation {} to {target}: expected {want}, got {} {}",
                    k.label, c.id, r.status, r.text
                ));
            }
            if r.status == 200 {
                world.take_slot(target);
                model.consultations[i].clinician = target;
            }
        }
    }

    // Visit links, which open a patient's visit, are sent only by someone who looks after them.
    for k in callers {
        let Some(Sched::Facilities(f)) = &k.sched else {
            continue;
        };
        if k.clinician.is_some() || !world.hubs.contains(&f[0]) {
            continue;
        }
        let theirs: Vec<Mc> = model
            .consultations
            .iter()
            .filter(|c| model.clinician_facility[&c.clinician] == f[0])
            .take(6)
            .cloned()
            .collect();
        for c in theirs {
            let r = k
                .app
                .post(
                    &format!("/api/v1/consultations/{}/visit-link", c.id),
                    json!({}),
                )
                .await;
            checked += 1;
            let want = if !model.sees_patient(k, c.patient) {
                403
            } else if matches!(c.status, St::Booked | St::InProgress) {
                201
            } else {
                409
            };
            if r.status != want {
                failures.push(format!(
                    "{} sends a visit link for {} ({:?}): expected {want}, got {} {}",
                    k.label, c.id, c.status, r.status, r.text
                ));
            }
        }
    }

    // Some of what was made is cancelled again: a cancelled booking gives nobody anything.
    for id in made {
        if rng.chance(30) {
            let r = app
                .post(
                    &format!("/api/v1/consultations/{id}/cancel"),
                    json!({"reason": "access model"}),
                )
                .await;
            if r.status == 200
                && let Some(c) = model.consultations.iter_mut().find(|c| c.id == id)
            {
                c.status = St::Cancelled;
            }
        }
    }
    checked
}

async fn run(engine: Engine) {
    let rounds: u64 = std::env::var("ACCESS_MODEL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let seed: u64 = std::env::var("ACCESS_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_261_202);
    for round in 0..rounds {
        let seed = seed + round;
        let mut rng = Rng(seed);
        let app = TestApp::spawn(engine).await;
        let (mut world, mut model, callers) = build(&app, &mut rng, round).await;
        let mut failures = Vec::new();
        let mut checked = check_reads(&world, &model, &callers, &mut failures).await;
        checked += attack(
            &app,
            &mut world,
            &mut model,
            &callers,
            &mut rng,
            &mut failures,
        )
        .await;
        checked += check_reads(&world, &model, &callers, &mut failures).await;
        eprintln!(
            "access model, {engine:?}, seed {seed}: {} callers, {} consultations, {checked} answers checked",
            callers.len(),
            model.consultations.len()
        );
        assert!(
            failures.is_empty(),
            "seed {seed}: {} of {checked} answers differ from the model:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

// Each round starts a server of its own.
both_engines!(
    every_caller_against_every_record_matches_the_model,
    engine = run
);
