//! A clinic day's visit life cycle (issue 13, items 2 and 9): a visit is completed (after its call,
//! or without one) or recorded as not attended, either of which closes its room; the specialist's
//! day list sees who waits and who is in the call; a specialist running late tells the patients
//! waiting for them. Real server, real WebSocket clients, on both engines.

use chrono::{Duration, Utc};
use serde_json::{Value, json};
use telehealth_tests::ws::{Ws, answer, closed, join, send, token, try_join, until};
use telehealth_tests::{Cast, People, TestApp, both_engines, next_weekday};

/// The patient in `id`'s waiting room.
async fn patient_waits(app: &TestApp, who: &People, id: i64) -> Ws {
    let mut ws = join(app, &token(&who.patient, id, json!({})).await).await;
    assert_eq!(answer(&mut ws).await, "waiting");
    ws
}

/// The day list's view of `ids`' rooms, as `who` asks for it.
async fn rooms(who: &TestApp, ids: &[i64]) -> Vec<Value> {
    let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let r = who
        .get(&format!("/api/v1/rooms?consultation_ids={list}"))
        .await
        .expect(200);
    r.body["rooms"].as_array().expect("rooms").clone()
}

async fn consultation(who: &TestApp, id: i64) -> Value {
    who.get(&format!("/api/v1/consultations/{id}"))
        .await
        .expect(200)
        .body
}

both_engines!(
    a_visit_is_completed_with_or_without_its_call,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let who = People::sign_in(&app, &cast).await;
        // A visit next week cannot be completed yet.
        app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
            .await;
        let monday = next_weekday(1) + Duration::days(7);
        let later = app.free_slots(cast.specialist, monday, monday).await[0];
        let far = app
            .post("/api/v1/consultations", cast.booking(later))
            .await
            .expect(201)
            .id();
        let early = who
            .specialist
            .post(&format!("/api/v1/consultations/{far}/complete"), json!({}))
            .await
            .expect(409);
        assert_eq!(early.error_code(), "too_early");
        assert_eq!(consultation(&app, far).await["status"], "booked");

        // Today's visit: the patient waits; the day list shows them waiting, nobody in the call.
        let now = cast.book_now(&app).await;
        let mut patient = patient_waits(&app, &who, now).await;
        let seen = rooms(&who.specialist, &[now, far]).await;
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0]["consultation_id"], now);
        assert_eq!(seen[0]["waiting"].as_array().map(Vec::len), Some(1));
        assert_eq!(seen[0]["waiting"][0]["role"], "patient");
        assert_eq!(seen[0]["waiting"][0]["state"], "connected");
        assert!(seen[0]["waiting"][0]["since"].is_string());
        assert_eq!(seen[0]["in_call"], json!([]));
        assert!(seen[0]["call_started_at"].is_null());
        assert_eq!(seen[1]["waiting"], json!([]));
        // The scheduler of the hub sees it too; the patient may not ask.
        assert_eq!(
            rooms(&who.scheduler, &[now]).await[0]["waiting"][0]["role"],
            "patient"
        );
        who.patient
            .get(&format!("/api/v1/rooms?consultation_ids={now}"))
            .await
            .expect(403);

        // The call failed; the specialist phoned the patient and completes the visit: the
        // waiting patient is told, and the room is closed for good.
        let earlier = token(&who.specialist, now, json!({})).await;
        let done = who
            .specialist
            .post(&format!("/api/v1/consultations/{now}/complete"), json!({}))
            .await
            .expect(200);
        assert_eq!(done.body["status"], "completed");
        assert!(done.body["ended_at"].is_string());
        let before = closed(&mut patient, 1000).await;
        assert!(
            before
                .iter()
                .any(|m| m["type"] == "room-closed" && m["reason"] == "completed"),
            "{before:?}"
        );
        assert_eq!(try_join(&app, &earlier).await, "room_closed");
        let no_token = who
            .patient
            .post(
                &format!("/api/v1/consultations/{now}/join-token"),
                json!({}),
            )
            .await
            .expect(409);
        assert_eq!(no_token.error_code(), "not_joinable");
        assert_eq!(
            rooms(&who.specialist, &[now]).await[0]["waiting"],
            json!([])
        );
        // Completed twice: refused, and the patient's list keeps the visit, completed.
        let twice = who
            .specialist
            .post(&format!("/api/v1/consultations/{now}/complete"), json!({}))
            .await
            .expect(409);
        assert_eq!(twice.error_code(), "invalid_transition");
        let mine = who.patient.get("/api/v1/consultations").await.expect(200);
        let listed = mine
            .body
            .as_array()
            .expect("a list")
            .iter()
            .find(|c| c["id"] == now)
            .cloned();
        assert_eq!(
            listed.map(|c| c["status"].clone()),
            Some(json!("completed"))
        );
    }
);

both_engines!(
    the_day_list_follows_the_room_and_the_call,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let now = cast.book_now(&app).await;
        let mut patient = patient_waits(&app, &who, now).await;
        who.specialist
            .post(
                &format!("/api/v1/consultations/{now}/running-late"),
                json!({"minutes": 10}),
            )
            .await
            .expect(200);
        let mut doctor = join(&app, &token(&who.specialist, now, json!({})).await).await;
        let joined = until(&mut doctor, "joined").await;
        let waiting = joined["waiting"][0]["id"].clone();
        send(
            &mut doctor,
            json!({"v": 1, "type": "admit", "participant": waiting}),
        )
        .await;
        until(&mut patient, "joined").await;
        let seen = rooms(&who.specialist, &[now]).await;
        assert_eq!(seen[0]["waiting"], json!([]));
        let roles: Vec<_> = seen[0]["in_call"]
            .as_array()
            .expect("in call")
            .iter()
            .map(|p| p["role"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(roles.len(), 2, "{seen:?}");
        assert!(roles.contains(&"clinician".to_string()) && roles.contains(&"patient".to_string()));
        assert!(seen[0]["call_started_at"].is_string());
        // The call made it in progress; completing it ends the call for both.
        telehealth_tests::eventually("the call's start is recorded", || async {
            (consultation(&app, now).await["status"] == "in_progress").then_some(())
        })
        .await;
        // Once the visit has begun, the delay told to the waiting room is over.
        assert!(consultation(&app, now).await["running_late_minutes"].is_null());
        who.specialist
            .post(&format!("/api/v1/consultations/{now}/complete"), json!({}))
            .await
            .expect(200);
        for ws in [&mut patient, &mut doctor] {
            let before = closed(ws, 1000).await;
            assert!(
                before
                    .iter()
                    .any(|m| m["type"] == "room-closed" && m["reason"] == "completed"),
                "{before:?}"
            );
        }
        // The call's end is recorded from the room's close.
        telehealth_tests::eventually("the call's end is recorded", || async {
            let c = consultation(&app, now).await;
            c["events"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e["action"] == "call_ended"))
                .then_some(())
        })
        .await;
    }
);

both_engines!(
    a_patient_who_does_not_come_is_recorded_and_their_room_closed,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let now = cast.book_now(&app).await;
        // Before the start, a no-show is too early.
        let early = who
            .specialist
            .post(&format!("/api/v1/consultations/{now}/no-show"), json!({}))
            .await
            .expect(409);
        assert_eq!(early.error_code(), "too_early");
        // Someone else's tab of the patient sits in the waiting room; the visit began 20 minutes
        // ago.
        let mut patient = patient_waits(&app, &who, now).await;
        app.set_stored_time(
            "UPDATE consultations SET start_at = $1 WHERE id = $2",
            Utc::now() - Duration::minutes(20),
            now,
        )
        .await;
        let missed = who
            .specialist
            .post(&format!("/api/v1/consultations/{now}/no-show"), json!({}))
            .await
            .expect(200);
        assert_eq!(missed.body["status"], "no_show");
        let before = closed(&mut patient, 1000).await;
        assert!(
            before
                .iter()
                .any(|m| m["type"] == "room-closed" && m["reason"] == "no_show"),
            "{before:?}"
        );
    }
);

both_engines!(
    a_specialist_running_late_tells_the_waiting_room,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let now = cast.book_now(&app).await;
        let late = format!("/api/v1/consultations/{now}/running-late");
        let mut patient = patient_waits(&app, &who, now).await;
        let told = who
            .specialist
            .post(&late, json!({"minutes": 15}))
            .await
            .expect(200);
        assert_eq!(told.body["running_late_minutes"], 15);
        assert_eq!(until(&mut patient, "running-late").await["minutes"], 15);
        // Whoever opens the visit later reads it from the consultation; its event says by how
        // much (event details are for the clinic).
        assert_eq!(
            consultation(&who.patient, now).await["running_late_minutes"],
            15
        );
        let seen = consultation(&who.specialist, now).await;
        assert!(
            seen["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|e| e["action"] == "running_late" && e["detail"] == "15 min"),
            "{seen}"
        );
        // Bad delays change nothing; the patient may not announce one.
        for bad in [
            json!({"minutes": 7}),
            json!({"minutes": 185}),
            json!({"minutes": -5}),
        ] {
            let r = who.specialist.post(&late, bad).await.expect(422);
            assert_eq!(r.error_code(), "validation_failed");
        }
        for bad in [
            json!({}),
            json!({"minutes": "15"}),
            json!({"minutes": 15, "x": 1}),
        ] {
            who.specialist.post(&late, bad).await.expect(400);
        }
        who.patient
            .post(&late, json!({"minutes": 30}))
            .await
            .expect(403);
        assert_eq!(consultation(&app, now).await["running_late_minutes"], 15);
        // On time again.
        let back = who
            .specialist
            .post(&late, json!({"minutes": 0}))
            .await
            .expect(200);
        assert!(back.body["running_late_minutes"].is_null());
        assert_eq!(until(&mut patient, "running-late").await["minutes"], 0);
        // The scheduler may announce it for the specialist; once the visit is over, nobody.
        who.scheduler
            .post(&late, json!({"minutes": 10}))
            .await
            .expect(200);
        who.specialist
            .post(&format!("/api/v1/consultations/{now}/complete"), json!({}))
            .await
            .expect(200);
        let over = who
            .specialist
            .post(&late, json!({"minutes": 10}))
            .await
            .expect(409);
        assert_eq!(over.error_code(), "invalid_transition");
    }
);

both_engines!(a_reschedule_forgets_the_delay, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let who = People::sign_in(&app, &cast).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
        .await;
    let monday = next_weekday(1) + Duration::days(7);
    let slots = app.free_slots(cast.specialist, monday, monday).await;
    let id = app
        .post("/api/v1/consultations", cast.booking(slots[0]))
        .await
        .expect(201)
        .id();
    who.specialist
        .post(
            &format!("/api/v1/consultations/{id}/running-late"),
            json!({"minutes": 20}),
        )
        .await
        .expect(200);
    let moved = who
        .scheduler
        .post(
            &format!("/api/v1/consultations/{id}/reschedule"),
            json!({"start": slots[1].to_rfc3339(), "reason": "phòng khám đổi giờ"}),
        )
        .await
        .expect(200);
    assert!(
        moved.body["running_late_minutes"].is_null(),
        "{}",
        moved.text
    );
});

both_engines!(the_room_list_refuses_bad_lists, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let who = People::sign_in(&app, &cast).await;
    let now = cast.book_now(&app).await;
    for bad in ["", "a", "1,,2", "-3", "0", "1.5"] {
        let r = who
            .specialist
            .get(&format!("/api/v1/rooms?consultation_ids={bad}"))
            .await
            .expect(422);
        assert_eq!(r.error_code(), "validation_failed", "{bad}");
    }
    let many = (1..=51)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",");
    who.specialist
        .get(&format!("/api/v1/rooms?consultation_ids={many}"))
        .await
        .expect(422);
    who.specialist.get("/api/v1/rooms").await.expect(400);
    who.specialist
        .get(&format!("/api/v1/rooms?consultation_ids={now}&x=1"))
        .await
        .expect(400);
    // A consultation that does not exist hides the whole answer.
    who.specialist
        .get(&format!("/api/v1/rooms?consultation_ids={now},999999"))
        .await
        .expect(404);
    // The same id twice is one entry.
    assert_eq!(rooms(&who.specialist, &[now, now]).await.len(), 1);
});

both_engines!(
    a_guest_invitation_is_a_link_and_a_qr_code_that_open_the_call,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let now = cast.book_now(&app).await;
        let path = format!("/api/v1/consultations/{now}/join-token");
        let invite = who
            .specialist
            .post(&path, json!({"guest_name": "Lò Thị Hoa (phiên dịch)"}))
            .await
            .expect(201);
        let token = invite.body["token"].as_str().expect("token");
        // Absolute (a phone scanning the code opens it), the token after `#` (never sent to a
        // server, so never in a log).
        assert_eq!(
            invite.body["link"].as_str(),
            Some(format!("{}/guest#{token}", app.base_url()).as_str())
        );
        assert!(
            invite.body["qr_svg"]
                .as_str()
                .is_some_and(|q| q.contains("<svg") && !q.contains("<script")),
            "{}",
            invite.text
        );
        // The guest joins with it and waits, marked as a guest.
        let mut guest = join(&app, token).await;
        assert_eq!(answer(&mut guest).await, "waiting");
        let seen = rooms(&who.specialist, &[now]).await;
        assert_eq!(seen[0]["waiting"][0]["role"], "guest");
        assert_eq!(seen[0]["waiting"][0]["name"], "Lò Thị Hoa (phiên dịch)");
        // Everyone else's token has no link to hand on.
        let own = who.patient.post(&path, json!({})).await.expect(201);
        assert!(own.body.get("link").is_none() && own.body.get("qr_svg").is_none());
        // The guest page is the client's.
        let page = app.anonymous().get("/guest").await;
        assert_eq!(page.status, 200);
    }
);
