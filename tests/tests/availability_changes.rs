//! Availability changes that respect booked patients (issue 13, item 3): leave, a deleted or
//! changed weekly session, or a deleted extra session, that would leave booked consultations
//! outside every session is refused with those consultations named, and nothing is written
//! until they are moved or cancelled; overlapping sessions are refused with the clash named;
//! weekly sessions can be edited. On both engines.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use telehealth_tests::{Cast, TestApp, both_engines, next_weekday};

fn rules(cast: &Cast) -> String {
    format!("/api/v1/clinicians/{}/availability/rules", cast.specialist)
}

fn exceptions(cast: &Cast) -> String {
    format!(
        "/api/v1/clinicians/{}/availability/exceptions",
        cast.specialist
    )
}

fn session(weekday: i64, start: &str, end: &str) -> Value {
    json!({"weekday": weekday, "start_time": start, "end_time": end, "slot_minutes": 30})
}

/// The ids a `bookings_affected` refusal names, sorted.
fn named(r: &telehealth_tests::Reply) -> Vec<i64> {
    assert_eq!(r.error_code(), "bookings_affected", "{}", r.text);
    let mut ids: Vec<i64> = r.body["error"]["details"]["consultations"]
        .as_array()
        .expect("consultations")
        .iter()
        .map(|c| c["id"].as_i64().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(
        r.body["error"]["details"]["count"].as_u64(),
        Some(ids.len() as u64)
    );
    ids
}

async fn book(app: &TestApp, cast: &Cast, start: DateTime<Utc>) -> i64 {
    app.post("/api/v1/consultations", cast.booking(start))
        .await
        .expect(201)
        .id()
}

both_engines!(
    overlapping_sessions_are_refused_and_named,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let morning = app
            .post(&rules(&cast), session(1, "08:00:00", "12:00:00"))
            .await
            .expect(201)
            .id();
        let clash = app
            .post(&rules(&cast), session(1, "11:30:00", "13:00:00"))
            .await
            .expect(409);
        assert_eq!(clash.error_code(), "sessions_overlap");
        assert_eq!(clash.body["error"]["details"]["clash"]["rule_id"], morning);
        assert!(
            clash.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("08:00–12:00")),
            "{}",
            clash.text
        );
        // Back to back, another weekday, or dates that do not meet: all fine.
        app.post(&rules(&cast), session(1, "12:00:00", "13:00:00"))
            .await
            .expect(201);
        app.post(&rules(&cast), session(2, "08:00:00", "12:00:00"))
            .await
            .expect(201);
        let mut summer = session(1, "09:00:00", "10:00:00");
        summer["valid_from"] = json!("2030-06-01");
        summer["valid_until"] = json!("2030-08-31");
        let mut spring = session(1, "09:00:00", "10:00:00");
        spring["valid_from"] = json!("2030-03-01");
        spring["valid_until"] = json!("2030-05-31");
        // Both overlap the open-ended morning session.
        app.post(&rules(&cast), summer.clone()).await.expect(409);
        app.post(&rules(&cast), spring).await.expect(409);
        assert_eq!(
            app.get(&rules(&cast))
                .await
                .expect(200)
                .body
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        // Editing a rule onto another is refused; onto itself, changed, is not.
        let afternoon_path = |id: i64| format!("{}/{id}", rules(&cast));
        let afternoon = app
            .post(&rules(&cast), session(3, "13:00:00", "15:00:00"))
            .await
            .expect(201)
            .id();
        let onto = app
            .put(
                &afternoon_path(afternoon),
                session(1, "10:00:00", "11:00:00"),
            )
            .await
            .expect(409);
        assert_eq!(onto.error_code(), "sessions_overlap");
        let moved = app
            .put(
                &afternoon_path(afternoon),
                session(3, "14:00:00", "17:00:00"),
            )
            .await
            .expect(200);
        assert_eq!(moved.body["start_time"], "14:00:00");
        assert_eq!(moved.body["id"], afternoon);
        app.put(&afternoon_path(999_999), session(4, "08:00:00", "09:00:00"))
            .await
            .expect(404);
        app.put(
            &afternoon_path(afternoon),
            session(8, "08:00:00", "09:00:00"),
        )
        .await
        .expect(422);
        // Extra sessions on one date may not overlap each other, but may lie over a weekly one.
        let monday = next_weekday(1);
        let extra = |start: &str, end: &str| json!({"date": monday, "kind": "extra", "start_time": start, "end_time": end, "slot_minutes": 10});
        app.post(&exceptions(&cast), extra("09:00:00", "10:00:00"))
            .await
            .expect(201);
        let twice = app
            .post(&exceptions(&cast), extra("09:30:00", "11:00:00"))
            .await
            .expect(409);
        assert_eq!(twice.error_code(), "sessions_overlap");
        assert_eq!(
            twice.body["error"]["details"]["clash"]["start_time"],
            "09:00:00"
        );
    }
);

both_engines!(
    leave_over_booked_patients_waits_until_they_are_moved_or_cancelled,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
            .await;
        let wednesday = next_weekday(3);
        let slots = app.free_slots(cast.specialist, wednesday, wednesday).await;
        let (first, second) = (
            book(&app, &cast, slots[0]).await,
            book(&app, &cast, slots[1]).await,
        );
        // A hold counts too, until it lapses.
        let mut hold = cast.booking(slots[2]);
        hold["hold"] = json!(true);
        let held = app
            .post("/api/v1/consultations", hold)
            .await
            .expect(201)
            .id();
        let before = app.count("availability_exceptions").await;
        let leave = json!({"date": wednesday, "kind": "leave", "note": "hội nghị"});
        let refused = app
            .post(&exceptions(&cast), leave.clone())
            .await
            .expect(409);
        assert_eq!(named(&refused), vec![first, second, held]);
        assert_eq!(
            app.count("availability_exceptions").await,
            before,
            "nothing written"
        );
        // Part-day leave names only what it covers (08:00–08:45 local: the first two slots).
        let part = json!({"date": wednesday, "kind": "leave", "start_time": "08:00:00", "end_time": "08:45:00"});
        let r = app.post(&exceptions(&cast), part).await.expect(409);
        assert_eq!(named(&r), vec![first, second]);

        // The scheduler moves one to Thursday, cancels the other, lets the hold lapse.
        let thursday = wednesday + Duration::days(1);
        let later = app.free_slots(cast.specialist, thursday, thursday).await;
        app.post(
            &format!("/api/v1/consultations/{first}/reschedule"),
            json!({"start": later[0].to_rfc3339(), "reason": "bác sĩ nghỉ"}),
        )
        .await
        .expect(200);
        app.post(
            &format!("/api/v1/consultations/{second}/cancel"),
            json!({"reason": "bác sĩ nghỉ, người bệnh sẽ đặt lại"}),
        )
        .await
        .expect(200);
        let still = app
            .post(&exceptions(&cast), leave.clone())
            .await
            .expect(409);
        assert_eq!(named(&still), vec![held]);
        app.set_stored_time(
            "UPDATE consultations SET hold_expires_at = $1 WHERE id = $2",
            Utc::now() - Duration::minutes(1),
            held,
        )
        .await;
        app.post(&exceptions(&cast), leave).await.expect(201);
        assert!(
            app.free_slots(cast.specialist, wednesday, wednesday)
                .await
                .is_empty()
        );
    }
);

both_engines!(
    a_weekly_session_with_bookings_is_changed_only_around_them,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let thursday = next_weekday(4);
        let rule = app
            .post(&rules(&cast), session(4, "08:00:00", "10:00:00"))
            .await
            .expect(201)
            .id();
        let path = format!("{}/{rule}", rules(&cast));
        let slots = app.free_slots(cast.specialist, thursday, thursday).await;
        // The 09:30 slot (local) is booked.
        let late = book(&app, &cast, slots[3]).await;
        // Deleting the session, or cutting it short, would strand it.
        assert_eq!(named(&app.delete(&path).await.expect(409)), vec![late]);
        let shorter = app
            .put(&path, session(4, "08:00:00", "09:00:00"))
            .await
            .expect(409);
        assert_eq!(named(&shorter), vec![late]);
        // Other slot lengths put 09:30 off the grid (20-minute slots: 08:00, 08:20, …, 09:20).
        let mut twenty = session(4, "08:00:00", "10:00:00");
        twenty["slot_minutes"] = json!(20);
        assert_eq!(named(&app.put(&path, twenty).await.expect(409)), vec![late]);
        // Longer is fine, and the booking stays on its slot.
        let longer = app
            .put(&path, session(4, "08:00:00", "12:00:00"))
            .await
            .expect(200);
        assert_eq!(longer.body["end_time"], "12:00:00");
        assert_eq!(
            app.free_slots(cast.specialist, thursday, thursday)
                .await
                .len(),
            7
        );
        // Once it is cancelled, the session can go.
        app.post(
            &format!("/api/v1/consultations/{late}/cancel"),
            json!({"reason": "chuyển sang bác sĩ khác"}),
        )
        .await
        .expect(200);
        app.delete(&path).await.expect(204);

        // An extra session with a booking in it is not deleted either.
        let friday = next_weekday(5);
        let extra = app
            .post(
                &exceptions(&cast),
                json!({"date": friday, "kind": "extra", "start_time": "14:00:00", "end_time": "15:00:00", "slot_minutes": 30}),
            )
            .await
            .expect(201)
            .id();
        let in_it = app.free_slots(cast.specialist, friday, friday).await[0];
        let booked = book(&app, &cast, in_it).await;
        let gone = app
            .delete(&format!("{}/{extra}", exceptions(&cast)))
            .await
            .expect(409);
        assert_eq!(named(&gone), vec![booked]);
        // Deleting leave never strands anyone.
        let leave = app
            .post(
                &exceptions(&cast),
                json!({"date": friday, "kind": "leave", "start_time": "16:00:00", "end_time": "17:00:00"}),
            )
            .await
            .expect(201)
            .id();
        app.delete(&format!("{}/{leave}", exceptions(&cast)))
            .await
            .expect(204);
    }
);

both_engines!(
    a_booking_already_off_its_session_does_not_block_other_changes,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
            .await;
        let friday = next_weekday(5);
        let slots = app.free_slots(cast.specialist, friday, friday).await;
        let odd = book(&app, &cast, slots[0]).await;
        // Moved off the grid behind the platform's back (an import, an old rule): it is no
        // change's doing, so leave later that day is not refused for it; leave over another
        // booking still is, naming only that one.
        app.set_stored_time(
            "UPDATE consultations SET start_at = $1 WHERE id = $2",
            slots[0] + Duration::minutes(7),
            odd,
        )
        .await;
        let leave = |from: &str, to: &str| json!({"date": friday, "kind": "leave", "start_time": from, "end_time": to});
        app.post(&exceptions(&cast), leave("09:30:00", "10:00:00"))
            .await
            .expect(201);
        let other = book(&app, &cast, slots[1]).await;
        let r = app
            .post(&exceptions(&cast), leave("08:00:00", "09:00:00"))
            .await
            .expect(409);
        assert_eq!(named(&r), vec![other]);
    }
);
