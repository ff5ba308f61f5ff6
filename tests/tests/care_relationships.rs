//! Regression tests of the access findings: each proves one rule of the care relationship
//! (`server/src/auth/policy.rs`), on both engines. The generated version of all of them is
//! `access_model.rs`.

use serde_json::json;
use telehealth_tests::{Cast, TestApp, both_engines, next_weekday};

/// A second care centre with its own clinician and patient, and a second hub with a
/// specialist, beside the usual cast; the specialists work every day.
struct Network {
    cast: Cast,
    other_centre: i64,
    other_rural: i64,
    other_patient: i64,
    other_hub: i64,
    other_specialist: i64,
}

async fn network(app: &TestApp) -> Network {
    let cast = Cast::create(app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
        .await;
    let other_centre = app
        .create_facility("CC-2", "care_centre", "Asia/Ho_Chi_Minh")
        .await;
    let other_rural = app.create_clinician(other_centre, &[]).await;
    let other_patient = app.create_patient(Some(other_centre)).await;
    let other_hub = app
        .create_facility("HUB-2", "hub_hospital", "Asia/Ho_Chi_Minh")
        .await;
    let other_specialist = app.create_clinician(other_hub, &["cardiology"]).await;
    app.add_daily_rule(other_specialist, "08:00:00", "12:00:00", 30, 0)
        .await;
    Network {
        cast,
        other_centre,
        other_rural,
        other_patient,
        other_hub,
        other_specialist,
    }
}

async fn slot(app: &TestApp, clinician: i64, n: usize) -> String {
    let day = next_weekday(3);
    app.free_slots(clinician, day, day).await[n].to_rfc3339()
}

both_engines!(
    booking_a_hidden_patient_answers_like_a_missing_one_and_writes_nothing,
    |app: TestApp| async move {
        let n = network(&app).await;
        // The rural clinician of the other centre cannot see the cast's patient...
        let intruder = app
            .as_new_user(
                "intruder",
                &[("clinician", None)],
                None,
                Some(n.other_rural),
            )
            .await;
        intruder
            .get(&format!("/api/v1/patients/{}", n.cast.patient))
            .await
            .expect(404);
        // ...so holding a slot for them, naming itself as the referring clinician, is refused
        // exactly as for a patient that does not exist, and nothing is written.
        let before = app.snapshot().await;
        let start = slot(&app, n.cast.specialist, 0).await;
        let attempt = |patient: i64| {
            json!({"kind": "teleconsultation", "clinician_id": n.cast.specialist, "patient_id": patient,
                   "requesting_facility_id": n.other_centre, "referring_clinician_id": n.other_rural,
                   "reason": "probe", "start": start, "hold": true})
        };
        let hidden = intruder
            .post("/api/v1/consultations", attempt(n.cast.patient))
            .await
            .expect(404);
        let missing = intruder
            .post("/api/v1/consultations", attempt(987_654))
            .await
            .expect(404);
        assert_eq!(hidden.body, missing.body, "an existence oracle");
        assert_eq!(app.snapshot().await, before);
        for path in [
            format!("/api/v1/patients/{}", n.cast.patient),
            format!("/api/v1/patients/{}/timeline", n.cast.patient),
        ] {
            intruder.get(&path).await.expect(404);
        }
    }
);

both_engines!(
    a_specialist_cannot_book_itself_a_visit_with_a_stranger,
    |app: TestApp| async move {
        let n = network(&app).await;
        let spec = app
            .as_new_user(
                "spec2",
                &[("clinician", None)],
                None,
                Some(n.other_specialist),
            )
            .await;
        let start = slot(&app, n.other_specialist, 0).await;
        spec.post(
            "/api/v1/consultations",
            json!({"kind": "video_visit", "clinician_id": n.other_specialist, "patient_id": n.cast.patient,
                   "reason": "probe", "start": start}),
        )
        .await
        .expect(404);
        assert_eq!(app.count("consultations").await, 0);
    }
);

both_engines!(
    a_hub_scheduler_cannot_hold_a_slot_for_a_patient_never_referred,
    |app: TestApp| async move {
        let n = network(&app).await;
        let sched = app
            .as_new_user("sched", &[("scheduler", Some(n.cast.hub))], None, None)
            .await;
        let start = slot(&app, n.cast.specialist, 0).await;
        let body = |patient: i64| {
            json!({"kind": "video_visit", "clinician_id": n.cast.specialist, "patient_id": patient,
                   "reason": "probe", "start": start, "hold": true})
        };
        sched
            .post("/api/v1/consultations", body(n.other_patient))
            .await
            .expect(404);
        sched
            .get(&format!("/api/v1/patients/{}", n.other_patient))
            .await
            .expect(404);
        // Once the patient is referred to the hub (a booking by their own centre), the hub's
        // scheduler sees them and may book them.
        let rural = app
            .as_new_user("rural2", &[("clinician", None)], None, Some(n.other_rural))
            .await;
        rural
            .post(
                "/api/v1/consultations",
                json!({"kind": "teleconsultation", "clinician_id": n.cast.specialist,
                       "patient_id": n.other_patient, "requesting_facility_id": n.other_centre,
                       "referring_clinician_id": n.other_rural, "reason": "referral",
                       "start": slot(&app, n.cast.specialist, 1).await}),
            )
            .await
            .expect(201);
        sched
            .get(&format!("/api/v1/patients/{}", n.other_patient))
            .await
            .expect(200);
        sched
            .post("/api/v1/consultations", body(n.other_patient))
            .await
            .expect(201);
    }
);

both_engines!(
    only_a_booked_or_completed_consultation_is_a_care_relationship,
    |app: TestApp| async move {
        let n = network(&app).await;
        let spec = app
            .as_new_user(
                "spec",
                &[("clinician", None)],
                None,
                Some(n.cast.specialist),
            )
            .await;
        let patient = format!("/api/v1/patients/{}", n.cast.patient);
        // A hold made by the network desk does not open the record to its specialist...
        let start = slot(&app, n.cast.specialist, 0).await;
        let mut body = n.cast.booking(
            chrono::DateTime::parse_from_rfc3339(&start)
                .expect("time")
                .into(),
        );
        body["hold"] = json!(true);
        let held = app
            .post("/api/v1/consultations", body)
            .await
            .expect(201)
            .id();
        spec.get(&patient).await.expect(404);
        // ...the specialist still sees the hold on their own list...
        spec.get(&format!("/api/v1/consultations/{held}"))
            .await
            .expect(200);
        // ...confirming it does...
        app.post(&format!("/api/v1/consultations/{held}/confirm"), json!({}))
            .await
            .expect(200);
        spec.get(&patient).await.expect(200);
        // ...and cancelling it takes the access away again.
        app.post(
            &format!("/api/v1/consultations/{held}/cancel"),
            json!({"reason": "no longer needed"}),
        )
        .await
        .expect(200);
        spec.get(&patient).await.expect(404);
        spec.get(&format!("{patient}/timeline")).await.expect(404);
    }
);

both_engines!(
    a_timeline_shows_only_what_the_caller_may_read,
    |app: TestApp| async move {
        let n = network(&app).await;
        // The cast's patient is referred to both hubs.
        let here = app
            .post(
                "/api/v1/consultations",
                n.cast.booking(
                    chrono::DateTime::parse_from_rfc3339(&slot(&app, n.cast.specialist, 0).await)
                        .expect("time")
                        .into(),
                ),
            )
            .await
            .expect(201)
            .id();
        let mut elsewhere = n.cast.booking(
            chrono::DateTime::parse_from_rfc3339(&slot(&app, n.other_specialist, 0).await)
                .expect("time")
                .into(),
        );
        elsewhere["clinician_id"] = json!(n.other_specialist);
        let there = app
            .post("/api/v1/consultations", elsewhere)
            .await
            .expect(201)
            .id();
        let other = app
            .as_new_user(
                "other",
                &[("clinician", None)],
                None,
                Some(n.other_specialist),
            )
            .await;
        let path = format!("/api/v1/consultations/{there}/note");
        other
            .put(&path, json!({"version": 0, "content": {"assessment": "hub 2 finding", "plan": "review", "advice": "see plan", "follow_up": "none"}}))
            .await
            .expect(200);
        other
            .post(&format!("{path}/sign"), json!({"version": 1}))
            .await
            .expect(200);
        let spec = app
            .as_new_user(
                "spec",
                &[("clinician", None)],
                None,
                Some(n.cast.specialist),
            )
            .await;
        // The hub-1 specialist may not read the hub-2 consultation or its note...
        spec.get(&format!("/api/v1/consultations/{there}"))
            .await
            .expect(404);
        spec.get(&path).await.expect(404);
        // ...so its timeline of the shared patient does not show it either.
        let timeline = spec
            .get(&format!("/api/v1/patients/{}/timeline", n.cast.patient))
            .await
            .expect(200);
        let listed: Vec<i64> = timeline
            .body
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["consultation_id"].as_i64().expect("id"))
            .collect();
        assert_eq!(listed, vec![here], "{}", timeline.text);
        // The patient's own care centre reads the whole record, the signed hub-2 note included.
        let rural = app
            .as_new_user("rural", &[("clinician", None)], None, Some(n.cast.rural))
            .await;
        let timeline = rural
            .get(&format!("/api/v1/patients/{}/timeline", n.cast.patient))
            .await
            .expect(200);
        assert_eq!(
            timeline.body.as_array().expect("items").len(),
            2,
            "{}",
            timeline.text
        );
        rural.get(&path).await.expect(200);
    }
);

both_engines!(
    list_reads_name_every_patient_in_the_audit_trail,
    |app: TestApp| async move {
        let n = network(&app).await;
        for (i, patient) in [n.cast.patient, n.other_patient].into_iter().enumerate() {
            let mut body = n.cast.booking(
                chrono::DateTime::parse_from_rfc3339(&slot(&app, n.cast.specialist, i).await)
                    .expect("time")
                    .into(),
            );
            body["patient_id"] = json!(patient);
            if patient == n.other_patient {
                body["requesting_facility_id"] = json!(n.other_centre);
                body["referring_clinician_id"] = json!(n.other_rural);
            }
            app.post("/api/v1/consultations", body).await.expect(201);
        }
        let sched = app
            .as_new_user("lister", &[("scheduler", Some(n.cast.hub))], None, None)
            .await;
        sched.get("/api/v1/consultations").await.expect(200);
        let day = next_weekday(3);
        sched
            .get(&format!(
                "/api/v1/facilities/{}/calendar?date={day}",
                n.cast.hub
            ))
            .await
            .expect(200);
        app.get("/api/v1/patients?limit=500").await.expect(200);
        // Each list read is found by each of the patients it returned.
        for patient in [n.cast.patient, n.other_patient] {
            let events = app
                .get(&format!("/api/v1/audit?patient_id={patient}&limit=500"))
                .await
                .expect(200);
            let actions: Vec<(String, String)> = events
                .body
                .as_array()
                .expect("events")
                .iter()
                .map(|e| {
                    (
                        e["actor"].as_str().unwrap_or("").to_string(),
                        e["action"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect();
            for (actor, action) in [
                ("lister", "GET /api/v1/consultations"),
                ("lister", "GET /api/v1/facilities/{id}/calendar"),
                ("root", "GET /api/v1/patients"),
            ] {
                assert!(
                    actions.iter().any(|(a, b)| a == actor && b == action),
                    "patient {patient}: no {action} by {actor} in {actions:?}"
                );
            }
        }
        // An account list names the patients whose accounts it shows.
        app.as_new_user("patacct", &[("patient", None)], Some(n.cast.patient), None)
            .await;
        app.get("/api/v1/accounts?limit=500").await.expect(200);
        let events = app
            .get(&format!(
                "/api/v1/audit?patient_id={}&actor=root&limit=500",
                n.cast.patient
            ))
            .await
            .expect(200);
        assert!(
            events
                .body
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["action"] == "GET /api/v1/accounts"),
            "{}",
            events.text
        );
        // The patients of a list are covered by the chain.
        let verified = telehealth::audit::verify(app.db())
            .await
            .expect("verify runs");
        assert_eq!(verified.first_broken, None);
    }
);

both_engines!(
    breaking_the_glass_needs_a_reason_and_is_listed_for_review,
    |app: TestApp| async move {
        let n = network(&app).await;
        let er = app
            .as_new_user("erdoc", &[("clinician", None)], None, Some(n.other_rural))
            .await;
        let record = format!("/api/v1/patients/{}", n.cast.patient);
        er.get(&record).await.expect(404);
        let glass = format!("{record}/break-glass");
        er.post(&glass, json!({"reason": "urgent"}))
            .await
            .expect(422);
        let grant = er
            .post(&glass, json!({"reason": "unconscious, allergies unknown"}))
            .await
            .expect(201);
        assert_eq!(grant.body["patient_id"], n.cast.patient);
        er.get(&record).await.expect(200);
        er.get(&format!("{record}/timeline")).await.expect(200);
        let booked = app
            .post(
                "/api/v1/consultations",
                n.cast.booking(
                    chrono::DateTime::parse_from_rfc3339(&slot(&app, n.cast.specialist, 0).await)
                        .expect("time")
                        .into(),
                ),
            )
            .await
            .expect(201)
            .id();
        er.get(&format!("/api/v1/consultations/{booked}"))
            .await
            .expect(200);
        // Every read under the grant is marked in the audit trail.
        let events = app
            .get(&format!(
                "/api/v1/audit?patient_id={}&actor=erdoc",
                n.cast.patient
            ))
            .await
            .expect(200);
        let actions: Vec<&str> = events
            .body
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["action"].as_str())
            .collect();
        for marked in [
            "GET /api/v1/patients/{id} (break_glass)",
            "GET /api/v1/consultations/{id} (break_glass)",
        ] {
            assert!(actions.contains(&marked), "{marked} not in {actions:?}");
        }
        // A clinician who already sees the patient is told no grant is needed.
        let rural = app
            .as_new_user("rural", &[("clinician", None)], None, Some(n.cast.rural))
            .await;
        rural
            .post(&glass, json!({"reason": "checking the button works"}))
            .await
            .expect(409);
        // Schedulers and patients do not break the glass.
        let sched = app
            .as_new_user("sched", &[("scheduler", Some(n.other_hub))], None, None)
            .await;
        sched
            .post(&glass, json!({"reason": "a scheduler wants to look"}))
            .await
            .expect(403);
        // The review: administrators see every grant, the patient's own centre sees it, an
        // unrelated clinician does not.
        let admin = app
            .as_new_user("auditor", &[("administrator", None)], None, None)
            .await;
        let all = admin.get("/api/v1/break-glass").await.expect(200);
        assert_eq!(all.body.as_array().expect("grants").len(), 1);
        assert_eq!(all.body[0]["reason"], "unconscious, allergies unknown");
        let by = admin
            .get(&format!(
                "/api/v1/break-glass?clinician_id={}",
                n.other_rural
            ))
            .await
            .expect(200);
        assert_eq!(by.body.as_array().expect("grants").len(), 1);
        let centre = rural.get("/api/v1/break-glass").await.expect(200);
        assert_eq!(centre.body.as_array().expect("grants").len(), 1);
        let stranger = app
            .as_new_user(
                "stranger",
                &[("clinician", None)],
                None,
                Some(n.other_specialist),
            )
            .await;
        let none = stranger.get("/api/v1/break-glass").await.expect(200);
        assert_eq!(none.body.as_array().expect("grants").len(), 0);
    }
);

both_engines!(
    removing_a_patient_from_a_list_event_breaks_the_audit_chain,
    |app: TestApp| async move {
        network(&app).await;
        app.get("/api/v1/patients?limit=500").await.expect(200);
        assert_eq!(
            telehealth::audit::verify(app.db())
                .await
                .expect("verify")
                .first_broken,
            None
        );
        // Whoever holds the database drops the append-only trigger and hides one patient from a
        // list read: the chain no longer verifies.
        let statements: &[&'static str] = match app.engine {
            telehealth_tests::Engine::Sqlite => &[
                "DROP TRIGGER audit_event_patients_no_delete",
                "DELETE FROM audit_event_patients WHERE patient_id = (SELECT MIN(patient_id) FROM audit_event_patients)",
            ],
            telehealth_tests::Engine::Postgres => &[
                "DROP TRIGGER audit_event_patients_no_change ON audit_event_patients",
                "DELETE FROM audit_event_patients WHERE patient_id = (SELECT MIN(patient_id) FROM audit_event_patients)",
            ],
        };
        for sql in statements.iter().copied() {
            match app.db() {
                telehealth::storage::Db::Sqlite(pool) => {
                    sqlx::query(sql).execute(pool).await.map(|_| ())
                }
                telehealth::storage::Db::Postgres(pool) => {
                    sqlx::query(sql).execute(pool).await.map(|_| ())
                }
            }
            .expect("tamper");
        }
        let verified = telehealth::audit::verify(app.db()).await.expect("verify");
        assert!(verified.first_broken.is_some(), "{verified:?}");
    }
);
