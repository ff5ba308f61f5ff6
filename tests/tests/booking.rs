//! Booking on both engines: the life cycle, holds, cancellation, rescheduling and, above all,
//! that no slot is ever booked twice, however many clients race for it.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use futures::future::join_all;
use serde_json::json;
use telehealth_tests::{Cast, TestApp, both_engines, next_weekday, this_week};

/// Live consultations of `clinician` that overlap `start`, read straight from the database.
async fn live_at(app: &TestApp, clinician: i64, start: DateTime<Utc>) -> i64 {
    let sql = "SELECT COUNT(*) FROM consultations
               WHERE clinician_id = $1 AND status IN ('held', 'booked', 'in_progress')
                 AND start_at <= $2 AND end_at > $2";
    match app.db() {
        telehealth::storage::Db::Sqlite(p) => {
            sqlx::query_scalar(sql)
                .bind(clinician)
                .bind(start)
                .fetch_one(p)
                .await
        }
        telehealth::storage::Db::Postgres(p) => {
            sqlx::query_scalar(sql)
                .bind(clinician)
                .bind(start)
                .fetch_one(p)
                .await
        }
    }
    .expect("count live consultations")
}

/// No grid cell is claimed twice and every live consultation claims exactly its own cells.
async fn claims_are_consistent(app: &TestApp) {
    let sql = "SELECT c.id, c.start_at, c.end_at,
                      (SELECT COUNT(*) FROM slot_claims s WHERE s.consultation_id = c.id) AS claimed
               FROM consultations c WHERE c.status IN ('held', 'booked', 'in_progress')";
    let rows: Vec<(i64, DateTime<Utc>, DateTime<Utc>, i64)> = match app.db() {
        telehealth::storage::Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await,
        telehealth::storage::Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await,
    }
    .expect("read claims");
    for (id, start, end, claimed) in rows {
        assert_eq!(
            claimed,
            (end - start).num_minutes() / 5,
            "consultation {id} claims the wrong number of cells"
        );
    }
}

both_engines!(life_cycle_hold_confirm_cancel, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
        .await;
    let day = next_weekday(3);
    let slots = app.free_slots(cast.specialist, day, day).await;
    assert_eq!(slots.len(), 8);
    let start = slots[2];

    // Hold, then confirm.
    let mut body = cast.booking(start);
    body["hold"] = json!(true);
    let held = app.post("/api/v1/consultations", body).await.expect(201);
    assert_eq!(held.body["status"], "held");
    assert!(held.body["hold_expires_at"].is_string());
    let id = held.id();
    assert!(
        !app.free_slots(cast.specialist, day, day)
            .await
            .contains(&start)
    );
    let booked = app
        .post(&format!("/api/v1/consultations/{id}/confirm"), json!({}))
        .await
        .expect(200);
    assert_eq!(booked.body["status"], "booked");
    assert!(booked.body["hold_expires_at"].is_null());
    // Confirming twice is a conflict, not a silent success.
    let again = app
        .post(&format!("/api/v1/consultations/{id}/confirm"), json!({}))
        .await
        .expect(409);
    assert_eq!(again.error_code(), "invalid_transition");

    // Too early to start (tomorrow or later) and to record a no-show.
    let early = app
        .post(&format!("/api/v1/consultations/{id}/start"), json!({}))
        .await
        .expect(409);
    assert_eq!(early.error_code(), "too_early");
    let early = app
        .post(&format!("/api/v1/consultations/{id}/no-show"), json!({}))
        .await
        .expect(409);
    assert_eq!(early.error_code(), "too_early");

    // Cancel needs a reason, frees the slot, and is recorded.
    let no_reason = app
        .post(
            &format!("/api/v1/consultations/{id}/cancel"),
            json!({"reason": "  "}),
        )
        .await
        .expect(422);
    assert_eq!(no_reason.error_code(), "validation_failed");
    let cancelled = app
        .post(
            &format!("/api/v1/consultations/{id}/cancel"),
            json!({"reason": "Bệnh nhân đã chuyển viện"}),
        )
        .await
        .expect(200);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["cancel_reason"], "Bệnh nhân đã chuyển viện");
    assert!(
        app.free_slots(cast.specialist, day, day)
            .await
            .contains(&start)
    );
    let actions = event_actions(&app, id).await;
    assert_eq!(actions, vec!["held", "confirm", "cancel"]);
    // The freed slot can be booked again.
    app.post("/api/v1/consultations", cast.booking(start))
        .await
        .expect(201);
    claims_are_consistent(&app).await;
});

both_engines!(
    start_and_complete_a_consultation_due_now,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        // Five-minute slots all day, every day: the next slot is at most ten minutes away.
        app.add_daily_rule(cast.specialist, "00:00:00", "23:55:00", 5, 0)
            .await;
        let (today, _) = this_week();
        let slots = app
            .free_slots(cast.specialist, today, today + Duration::days(1))
            .await;
        let start = slots[0];
        assert!(start - Utc::now() <= Duration::minutes(11));
        let id = app
            .post("/api/v1/consultations", cast.booking(start))
            .await
            .expect(201)
            .id();
        let started = app
            .post(&format!("/api/v1/consultations/{id}/start"), json!({}))
            .await
            .expect(200);
        assert_eq!(started.body["status"], "in_progress");
        assert!(started.body["started_at"].is_string());
        let cannot_cancel = app
            .post(
                &format!("/api/v1/consultations/{id}/cancel"),
                json!({"reason": "x"}),
            )
            .await
            .expect(409);
        assert_eq!(cannot_cancel.error_code(), "invalid_transition");
        let done = app
            .post(&format!("/api/v1/consultations/{id}/complete"), json!({}))
            .await
            .expect(200);
        assert_eq!(done.body["status"], "completed");
        assert!(done.body["ended_at"].is_string());
    }
);

both_engines!(an_expired_hold_frees_its_slot, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
        .await;
    let day = next_weekday(2);
    let start = app.free_slots(cast.specialist, day, day).await[0];
    let mut body = cast.booking(start);
    body["hold"] = json!(true);
    let before = telehealth::domain::time::now();
    let held = app.post("/api/v1/consultations", body).await.expect(201);
    let after = telehealth::domain::time::now();
    // A hold lasts `hold_seconds` from when it was taken.
    let ttl = Duration::seconds(i64::from(app.settings().hold_seconds));
    let expires: DateTime<Utc> = held.body["hold_expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a held consultation has an expiry");
    assert!(
        before + ttl <= expires && expires <= after + ttl,
        "expires {expires}, taken between {before} and {after}"
    );
    let held = held.id();
    // While held, another booking loses.
    let lost = app
        .post("/api/v1/consultations", cast.booking(start))
        .await
        .expect(409);
    assert_eq!(lost.error_code(), "slot_taken");
    // The hold's time runs out: to the server, its expiry is a second ago.
    let ran_out = app
        .set_stored_time(
            "UPDATE consultations SET hold_expires_at = $1 WHERE id = $2 AND status = 'held'",
            telehealth::domain::time::now() - Duration::seconds(1),
            held,
        )
        .await;
    assert_eq!(ran_out, 1, "the hold is still held when its time runs out");
    // Expired: the slot is free in search, confirm is refused, and a new booking wins.
    assert!(
        app.free_slots(cast.specialist, day, day)
            .await
            .contains(&start)
    );
    let late = app
        .post(&format!("/api/v1/consultations/{held}/confirm"), json!({}))
        .await
        .expect(409);
    assert_eq!(late.error_code(), "hold_expired");
    let got = app
        .post("/api/v1/consultations", cast.booking(start))
        .await
        .expect(201);
    assert_eq!(got.body["status"], "booked");
    let old = app
        .get(&format!("/api/v1/consultations/{held}"))
        .await
        .expect(200);
    assert_eq!(old.body["status"], "expired");
    assert_eq!(live_at(&app, cast.specialist, start).await, 1);
    claims_are_consistent(&app).await;
});

both_engines!(
    fifty_concurrent_bookings_of_one_slot_have_one_winner,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let day = next_weekday(4);
        let start = app.free_slots(cast.specialist, day, day).await[3];
        let before = app.count("consultations").await;
        let attempts = (0..64).map(|_| {
            let app = app.clone();
            let body = cast.booking(start);
            async move { app.post("/api/v1/consultations", body).await }
        });
        let replies = join_all(attempts).await;
        let won: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
        let lost: Vec<_> = replies.iter().filter(|r| r.status == 409).collect();
        assert_eq!(won.len(), 1, "exactly one booking wins");
        assert_eq!(lost.len(), 63, "every other attempt gets 409");
        for r in &lost {
            assert_eq!(r.error_code(), "slot_taken");
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("taken")
            );
        }
        assert_eq!(app.count("consultations").await, before + 1);
        assert_eq!(live_at(&app, cast.specialist, start).await, 1);
        assert_eq!(
            live_at(&app, cast.specialist, start + Duration::minutes(29)).await,
            1
        );
        claims_are_consistent(&app).await;
    }
);

both_engines!(
    concurrent_reschedules_into_one_slot,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "07:00:00", "17:00:00", 10, 0)
            .await;
        let day = next_weekday(5);
        let slots = app.free_slots(cast.specialist, day, day).await;
        assert!(slots.len() >= 52);
        let target = slots[0];
        // Fifty bookings in other slots, then all try to move into the same one at once.
        let mut ids = Vec::new();
        for s in &slots[1..51] {
            ids.push(
                app.post("/api/v1/consultations", cast.booking(*s))
                    .await
                    .expect(201)
                    .id(),
            );
        }
        let moves = ids.iter().map(|id| {
            let app = app.clone();
            let id = *id;
            async move {
                app.post(
                    &format!("/api/v1/consultations/{id}/reschedule"),
                    json!({"start": target.to_rfc3339(), "reason": "Bác sĩ đổi lịch"}),
                )
                .await
            }
        });
        let replies = join_all(moves).await;
        assert_eq!(replies.iter().filter(|r| r.status == 200).count(), 1);
        assert_eq!(replies.iter().filter(|r| r.status == 409).count(), 49);
        // Every consultation still holds exactly one slot: the winner the target, the losers their own.
        assert_eq!(live_at(&app, cast.specialist, target).await, 1);
        for (i, s) in slots[1..51].iter().enumerate() {
            let moved = replies[i].status == 200;
            assert_eq!(live_at(&app, cast.specialist, *s).await, i64::from(!moved));
        }
        claims_are_consistent(&app).await;
    }
);

both_engines!(reschedule_is_atomic, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
        .await;
    let day = next_weekday(1);
    let s = app.free_slots(cast.specialist, day, day).await;
    let a = app
        .post("/api/v1/consultations", cast.booking(s[0]))
        .await
        .expect(201)
        .id();
    app.post("/api/v1/consultations", cast.booking(s[1]))
        .await
        .expect(201);
    // Into a taken slot: refused, and A keeps its own.
    let refused = app
        .post(
            &format!("/api/v1/consultations/{a}/reschedule"),
            json!({"start": s[1].to_rfc3339(), "reason": "đổi giờ"}),
        )
        .await
        .expect(409);
    assert_eq!(refused.error_code(), "slot_taken");
    assert_eq!(live_at(&app, cast.specialist, s[0]).await, 1);
    // Into a free slot: moved, the old slot is free again.
    let moved = app
        .post(
            &format!("/api/v1/consultations/{a}/reschedule"),
            json!({"start": s[2].to_rfc3339(), "reason": "đổi giờ"}),
        )
        .await
        .expect(200);
    assert_eq!(
        moved.body["start_at"].as_str(),
        Some(s[2].to_rfc3339().replace("+00:00", "Z").as_str())
    );
    let free: HashSet<_> = app
        .free_slots(cast.specialist, day, day)
        .await
        .into_iter()
        .collect();
    assert!(free.contains(&s[0]) && !free.contains(&s[1]) && !free.contains(&s[2]));
    // To another clinician.
    let other = app.create_clinician(cast.hub, &["cardiology"]).await;
    app.add_daily_rule(other, "08:00:00", "10:00:00", 30, 0)
        .await;
    let moved = app
        .post(
            &format!("/api/v1/consultations/{a}/reschedule"),
            json!({"start": s[0].to_rfc3339(), "clinician_id": other, "reason": "chuyển bác sĩ"}),
        )
        .await
        .expect(200);
    assert_eq!(moved.body["clinician_id"], other);
    assert!(
        app.free_slots(cast.specialist, day, day)
            .await
            .contains(&s[2])
    );
    claims_are_consistent(&app).await;
});

both_engines!(
    video_visits_and_teleconsultation_rules,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
            .await;
        let day = next_weekday(2);
        let s = app.free_slots(cast.specialist, day, day).await;
        // A video visit needs no care centre.
        let visit = app
        .post(
            "/api/v1/consultations",
            json!({"kind": "video_visit", "clinician_id": cast.specialist, "patient_id": cast.patient,
                   "reason": "Tái khám", "start": s[0].to_rfc3339()}),
        )
        .await
        .expect(201);
        assert_eq!(visit.body["urgency"], "routine");
        // A teleconsultation without its care centre is refused, naming the field.
        let mut body = cast.booking(s[1]);
        body.as_object_mut()
            .map(|o| o.remove("requesting_facility_id"));
        let r = app.post("/api/v1/consultations", body).await.expect(422);
        assert_eq!(
            r.body["error"]["details"]["fields"][0]["field"],
            "requesting_facility_id"
        );
        // The requesting facility must be a care centre, the referring clinician must work there.
        let mut body = cast.booking(s[1]);
        body["requesting_facility_id"] = json!(cast.hub);
        app.post("/api/v1/consultations", body).await.expect(422);
        let mut body = cast.booking(s[1]);
        body["referring_clinician_id"] = json!(cast.specialist);
        app.post("/api/v1/consultations", body).await.expect(422);
        assert_eq!(app.count("consultations").await, 1);
    }
);

/// Moves a hold's expiry into the past, straight in the database: the hold has expired, and the
/// sweeper (every 15 s) has not released it yet.
async fn expire_hold_now(app: &TestApp, id: i64) {
    let sql = "UPDATE consultations SET hold_expires_at = $1 WHERE id = $2 AND status = 'held'";
    let past = Utc::now() - Duration::minutes(1);
    let done = match app.db() {
        telehealth::storage::Db::Sqlite(p) => {
            let done = sqlx::query(sql).bind(past).bind(id).execute(p).await;
            done.map(|r| r.rows_affected())
        }
        telehealth::storage::Db::Postgres(p) => {
            let done = sqlx::query(sql).bind(past).bind(id).execute(p).await;
            done.map(|r| r.rows_affected())
        }
    }
    .expect("expire the hold");
    assert_eq!(done, 1, "consultation {id} is a hold");
}

both_engines!(
    a_reschedule_takes_a_slot_from_an_expired_hold,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
            .await;
        let day = next_weekday(3);
        let s = app.free_slots(cast.specialist, day, day).await;
        let mover = app
            .post("/api/v1/consultations", cast.booking(s[1]))
            .await
            .expect(201)
            .id();
        let mut body = cast.booking(s[0]);
        body["hold"] = json!(true);
        let held = app
            .post("/api/v1/consultations", body)
            .await
            .expect(201)
            .id();
        let path = format!("/api/v1/consultations/{mover}/reschedule");
        let move_there = json!({"start": s[0].to_rfc3339(), "reason": "đổi giờ"});
        // While the hold stands, the move loses.
        let lost = app.post(&path, move_there.clone()).await.expect(409);
        assert_eq!(lost.error_code(), "slot_taken");
        // Expired but not yet swept: the reschedule itself releases the hold and tries again.
        expire_hold_now(&app, held).await;
        let moved = app.post(&path, move_there).await.expect(200);
        assert_eq!(moved.body["status"], "booked");
        let old = app
            .get(&format!("/api/v1/consultations/{held}"))
            .await
            .expect(200);
        assert_eq!(old.body["status"], "expired");
        let actions = event_actions(&app, mover).await;
        // The refused move left no event; the one that won did.
        assert_eq!(actions, vec!["booked", "reschedule"]);
        assert_eq!(live_at(&app, cast.specialist, s[0]).await, 1);
        assert_eq!(live_at(&app, cast.specialist, s[1]).await, 0);
        claims_are_consistent(&app).await;
    }
);

both_engines!(
    the_calendar_shows_each_booking_as_stored,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
            .await;
        let day = next_weekday(4);
        let s = app.free_slots(cast.specialist, day, day).await;
        let mut body = cast.booking(s[0]);
        body["hold"] = json!(true);
        let held = app
            .post("/api/v1/consultations", body)
            .await
            .expect(201)
            .id();
        let visit = app
            .post(
                "/api/v1/consultations",
                json!({"kind": "video_visit", "clinician_id": cast.specialist,
                       "patient_id": cast.patient, "reason": "Tái khám", "urgency": "urgent",
                       "start": s[1].to_rfc3339()}),
            )
            .await
            .expect(201)
            .id();
        let cal = app
            .get(&format!(
                "/api/v1/facilities/{}/calendar?date={day}",
                cast.hub
            ))
            .await
            .expect(200);
        let entries = cal.body["clinicians"][0]["days"][0]["entries"]
            .as_array()
            .expect("entries");
        let states: Vec<&str> = entries.iter().filter_map(|e| e["state"].as_str()).collect();
        assert_eq!(states, ["held", "booked", "free", "free"]);
        let (h, v) = (&entries[0]["booking"], &entries[1]["booking"]);
        assert_eq!(h["id"], held);
        assert_eq!(
            (&h["kind"], &h["status"], &h["urgency"]),
            (&json!("teleconsultation"), &json!("held"), &json!("soon"))
        );
        assert!(h["hold_expires_at"].is_string());
        assert_eq!(v["id"], visit);
        assert_eq!(
            (&v["kind"], &v["status"], &v["urgency"]),
            (&json!("video_visit"), &json!("booked"), &json!("urgent"))
        );
        assert!(v["requesting_facility_id"].is_null());
        assert!(entries[2]["booking"].is_null());
        // A hold still to come counts as booked time, like a booking.
        let u = app
            .get(&format!(
                "/api/v1/facilities/{}/utilisation?from={day}&to={day}",
                cast.hub
            ))
            .await
            .expect(200);
        let me = &u.body["clinicians"][0];
        assert_eq!(me["booked"], 2);
        assert_eq!(me["booked_minutes"], 60);
        assert_eq!(me["offered_minutes"], 120);
    }
);

/// The actions of a consultation's recorded events, oldest first.
async fn event_actions(app: &TestApp, id: i64) -> Vec<String> {
    let detail = app
        .get(&format!("/api/v1/consultations/{id}"))
        .await
        .expect(200);
    detail.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["action"].as_str().map(str::to_string))
        .collect()
}
