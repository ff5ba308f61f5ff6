//! Join tokens follow the consultation (issue 10, finding 6): a reassignment, a cancellation, a
//! denial or a removal revokes the tokens issued before it at once, also after a restart, while
//! people still in the consultation keep joining and reconnecting. Real server, real WebSocket
//! clients, on both engines; "restart" is a new server on the same database and data folder.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::json;
use telehealth::storage::Db;
use telehealth_tests::ws::{answer, closed, join, send, token, try_join, until};
use telehealth_tests::{Cast, People, TestApp, both_engines, eventually};

/// A number about consultation `id` read straight from the database.
async fn scalar(app: &TestApp, sql: &'static str, id: i64) -> i64 {
    match app.db() {
        Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
        Db::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await,
    }
    .expect("query")
}

async fn status(app: &TestApp, id: i64) -> String {
    let c = app
        .get(&format!("/api/v1/consultations/{id}"))
        .await
        .expect(200);
    c.body["status"].as_str().expect("status").to_string()
}

async fn start_of(app: &TestApp, id: i64) -> DateTime<Utc> {
    let c = app
        .get(&format!("/api/v1/consultations/{id}"))
        .await
        .expect(200);
    c.body["start_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("start_at")
}

/// Gives `clinician` an extra session of `slot` -minute slots starting at `start` (a five-minute
/// mark, Vietnam time, not crossing midnight).
async fn extra_session(app: &TestApp, clinician: i64, start: DateTime<Utc>, slot: u32) {
    let local = (start + Span::hours(7)).naive_utc();
    // A session does not cross midnight: near it, a shorter one.
    let end = (local + Span::minutes(60)).min(local.date().and_hms_opt(23, 55, 0).expect("a time"));
    app.post(
        &format!("/api/v1/clinicians/{clinician}/availability/exceptions"),
        json!({"date": local.date(), "kind": "extra", "start_time": local.format("%H:%M").to_string(),
               "end_time": end.format("%H:%M").to_string(), "slot_minutes": slot, "buffer_minutes": 0}),
    )
    .await
    .expect(201);
}

both_engines!(
    after_a_reassignment_the_old_clinicians_token_is_refused_and_the_others_ask_again,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let id = cast.book_now(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let old_doctor = token(&who.specialist, id, json!({})).await;
        let old_patient = token(&who.patient, id, json!({})).await;

        let successor = app.create_clinician(cast.hub, &["cardiology"]).await;
        let start = start_of(&app, id).await;
        extra_session(&app, successor, start, 20).await;
        who.scheduler
            .post(
                &format!("/api/v1/consultations/{id}/reschedule"),
                json!({"start": start, "clinician_id": successor, "reason": "bác sĩ nghỉ ốm"}),
            )
            .await
            .expect(200);

        // The old clinician's token, signed and inside its window, no longer joins, and the API
        // gives them no new one.
        assert_eq!(try_join(&app, &old_doctor).await, "token_revoked");
        assert!(
            [403, 404].contains(
                &who.specialist
                    .post(&format!("/api/v1/consultations/{id}/join-token"), json!({}))
                    .await
                    .status
            ),
            "no new token for the old clinician"
        );
        // The patient's old token is revoked too; a fresh one joins the waiting room.
        assert_eq!(try_join(&app, &old_patient).await, "token_revoked");
        let mut sick = join(&app, &token(&who.patient, id, json!({})).await).await;
        assert_eq!(answer(&mut sick).await, "waiting");
        // The new clinician joins, admitted, and starts the call.
        let new_doctor = app
            .as_new_user("bacsi2", &[("clinician", None)], None, Some(successor))
            .await;
        let mut doctor = join(&app, &token(&new_doctor, id, json!({})).await).await;
        let joined = until(&mut doctor, "joined").await;
        assert_eq!(joined["you"]["id"], format!("c{successor}"));
        // The refusals are in the audit trail, under the patient.
        eventually("the refused joins audited", || {
            let app = app.clone();
            async move {
                let r = app
                    .get(&format!(
                        "/api/v1/audit?patient_id={}&limit=500",
                        cast.patient
                    ))
                    .await
                    .expect(200);
                let refused = r
                    .body
                    .as_array()?
                    .iter()
                    .filter(|e| {
                        e["action"].as_str().is_some_and(|a| {
                            a.starts_with("signaling join_refused (token_revoked)")
                        })
                    })
                    .count();
                (refused == 2).then_some(())
            }
        })
        .await;
    }
);

both_engines!(
    a_connected_old_clinician_is_removed_when_the_consultation_is_reassigned,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let id = cast.book_now(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let old_token = token(&who.specialist, id, json!({})).await;
        let mut doctor = join(&app, &old_token).await;
        until(&mut doctor, "joined").await;
        let mut sick = join(&app, &token(&who.patient, id, json!({})).await).await;
        assert_eq!(answer(&mut sick).await, "waiting");
        until(&mut doctor, "participant-waiting").await;
        // The clinician's join moved the consultation to in_progress, which cannot be
        // rescheduled. That write is queued behind the join: a reassignment committed before it
        // lands finds the consultation still booked with its old clinician in the room. Put the
        // consultation back in that state to make the race certain.
        eventually("the call to start", || {
            let app = app.clone();
            async move { (status(&app, id).await == "in_progress").then_some(()) }
        })
        .await;
        match app.db() {
            Db::Sqlite(pool) => {
                sqlx::query("UPDATE consultations SET status = 'booked' WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            }
            Db::Postgres(pool) => {
                sqlx::query("UPDATE consultations SET status = 'booked' WHERE id = $1")
                    .bind(id)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            }
        }
        .expect("back to booked");

        let successor = app.create_clinician(cast.hub, &["cardiology"]).await;
        let start = start_of(&app, id).await;
        extra_session(&app, successor, start, 20).await;
        who.scheduler
            .post(
                &format!("/api/v1/consultations/{id}/reschedule"),
                json!({"start": start, "clinician_id": successor, "reason": "chuyển bác sĩ"}),
            )
            .await
            .expect(200);

        // At once: told why, then closed.
        let before = closed(&mut doctor, 1000).await;
        let last = before.last().expect("a message before the close");
        assert_eq!(last["type"], "access-revoked", "{before:?}");
        assert_eq!(last["reason"], "reassigned");
        // The patient stays in the waiting room and gets the new clinician.
        let new_doctor = app
            .as_new_user("bacsi2", &[("clinician", None)], None, Some(successor))
            .await;
        let mut doctor2 = join(&app, &token(&new_doctor, id, json!({})).await).await;
        let joined = until(&mut doctor2, "joined").await;
        assert_eq!(
            joined["waiting"][0]["id"],
            format!("p{}", cast.patient),
            "{joined}"
        );
        assert_eq!(try_join(&app, &old_token).await, "token_revoked");
    }
);

both_engines!(
    a_cancelled_consultations_tokens_stay_refused_after_a_restart_and_write_no_call,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let id = cast.book_now(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let doctor = token(&who.specialist, id, json!({})).await;
        let patient = token(&who.patient, id, json!({})).await;
        who.scheduler
            .post(
                &format!("/api/v1/consultations/{id}/cancel"),
                json!({"reason": "bệnh nhân chuyển viện"}),
            )
            .await
            .expect(200);
        assert_eq!(try_join(&app, &doctor).await, "room_closed");

        let restarted = app.restart().await;
        assert_eq!(try_join(&restarted, &doctor).await, "room_closed");
        assert_eq!(try_join(&restarted, &patient).await, "room_closed");
        // Give a wrongly admitted clinician's call start time to be written, then look.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            scalar(
                &restarted,
                "SELECT COUNT(*) FROM calls WHERE consultation_id = $1",
                id
            )
            .await,
            0,
            "a cancelled consultation has no call"
        );
        assert_eq!(status(&restarted, id).await, "cancelled");
    }
);

both_engines!(
    a_denied_guest_cannot_rejoin_with_the_same_token_also_after_a_restart,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let id = cast.book_now(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let mut doctor = join(&app, &token(&who.specialist, id, json!({})).await).await;
        until(&mut doctor, "joined").await;
        let invite = token(&who.rural, id, json!({"guest_name": "Con gái bệnh nhân"})).await;
        let mut guest = join(&app, &invite).await;
        let waiting = until(&mut guest, "waiting").await;
        let guest_id = waiting["you"]["id"].as_str().expect("id").to_string();
        until(&mut doctor, "participant-waiting").await;
        send(
            &mut doctor,
            json!({"v": 1, "type": "deny", "participant": guest_id}),
        )
        .await;
        until(&mut guest, "denied").await;

        assert_eq!(try_join(&app, &invite).await, "token_revoked");
        // The denial is kept by the platform, not only in this node's memory.
        eventually("the denial to be kept", || {
            let app = app.clone();
            async move {
                let kept = scalar(
                    &app,
                    "SELECT COUNT(*) FROM call_revocations WHERE consultation_id = $1",
                    id,
                )
                .await;
                (kept == 1).then_some(())
            }
        })
        .await;
        let restarted = app.restart().await;
        assert_eq!(try_join(&restarted, &invite).await, "token_revoked");
    }
);

both_engines!(
    a_removed_patient_cannot_rejoin_with_the_same_token_also_after_a_restart_but_may_knock_again,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let id = cast.book_now(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let mut doctor = join(&app, &token(&who.specialist, id, json!({})).await).await;
        until(&mut doctor, "joined").await;
        let old = token(&who.patient, id, json!({})).await;
        let mut sick = join(&app, &old).await;
        until(&mut sick, "waiting").await;
        let me = format!("p{}", cast.patient);
        until(&mut doctor, "participant-waiting").await;
        send(
            &mut doctor,
            json!({"v": 1, "type": "admit", "participant": me}),
        )
        .await;
        until(&mut sick, "joined").await;
        send(
            &mut doctor,
            json!({"v": 1, "type": "remove", "participant": me}),
        )
        .await;
        until(&mut sick, "removed").await;

        assert_eq!(try_join(&app, &old).await, "token_revoked");
        eventually("the removal to be kept", || {
            let app = app.clone();
            async move {
                let kept = scalar(
                    &app,
                    "SELECT COUNT(*) FROM call_revocations WHERE consultation_id = $1",
                    id,
                )
                .await;
                (kept == 1).then_some(())
            }
        })
        .await;
        let restarted = app.restart().await;
        assert_eq!(try_join(&restarted, &old).await, "token_revoked");
        // A token issued after the removal (a later second) lets the patient knock again: the
        // waiting room, never straight back into the call. Tokens count in whole seconds, so the
        // removal is moved a second back rather than waited a second for.
        let removed_at = restarted
            .stored_time(
                "SELECT revoked_at FROM call_revocations WHERE consultation_id = $1",
                id,
            )
            .await;
        assert!(
            removed_at <= Utc::now(),
            "removed in the future: {removed_at}"
        );
        let moved = restarted
            .set_stored_time(
                "UPDATE call_revocations SET revoked_at = $1 WHERE consultation_id = $2",
                removed_at - Span::seconds(1),
                id,
            )
            .await;
        assert_eq!(moved, 1, "the removal is kept");
        let patient = restarted.as_token(who.patient.token.as_deref().expect("signed in"));
        let fresh = token(&patient, id, json!({})).await;
        assert_eq!(try_join(&restarted, &fresh).await, "waiting");
    }
);

/// A consultation of the specialist starting at the next five-minute mark (its window is open),
/// in an extra session of `slot` -minute slots.
async fn book_now_in_slots_of(app: &TestApp, cast: &Cast, slot: u32) -> i64 {
    let now = Utc::now();
    let minutes = now.timestamp().div_euclid(60);
    let start = DateTime::from_timestamp((minutes / 5 + 1) * 5 * 60, 0).expect("a time");
    extra_session(app, cast.specialist, start, slot).await;
    app.post("/api/v1/consultations", cast.booking(start))
        .await
        .expect(201)
        .id()
}

both_engines!(
    a_time_only_reschedule_keeps_tokens_and_reconnection_while_the_window_contains_now,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let who = People::sign_in(&app, &cast).await;
        // Ten-minute slots: the next slot's window (it opens 15 minutes before) contains now too.
        let id = book_now_in_slots_of(&app, &cast, 10).await;
        let doctor = token(&who.specialist, id, json!({})).await;
        let old = token(&who.patient, id, json!({})).await;
        let mut sick = join(&app, &old).await;
        until(&mut sick, "waiting").await;
        // The patient's connection drops: their place is kept for the grace period.
        drop(sick);
        let moved_to = start_of(&app, id).await + Span::minutes(10);
        who.scheduler
            .post(
                &format!("/api/v1/consultations/{id}/reschedule"),
                json!({"start": moved_to, "reason": "lùi 10 phút"}),
            )
            .await
            .expect(200);
        assert!(
            Utc::now() >= moved_to - Span::minutes(15),
            "the moved window contains now"
        );

        // The patient comes back with the same token and takes the place back.
        let mut again = join(&app, &old).await;
        let waiting = until(&mut again, "waiting").await;
        assert_eq!(waiting["resumed"], true, "{waiting}");
        // The clinician's token from before the move still admits.
        let mut doc = join(&app, &doctor).await;
        let joined = until(&mut doc, "joined").await;
        assert_eq!(joined["waiting"][0]["id"], format!("p{}", cast.patient));
    }
);

both_engines!(
    a_reschedule_out_of_the_present_window_closes_the_room_and_old_tokens_are_too_early,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let who = People::sign_in(&app, &cast).await;
        let id = cast.book_now(&app).await;
        let old = token(&who.patient, id, json!({})).await;
        let mut sick = join(&app, &old).await;
        until(&mut sick, "waiting").await;
        // 09:00 in Vietnam (02:00 UTC), two days from now.
        let later = (Utc::now() + Span::hours(7) + Span::days(2)).date_naive();
        let later = later.and_hms_opt(2, 0, 0).expect("a time").and_utc();
        extra_session(&app, cast.specialist, later, 20).await;
        who.scheduler
            .post(
                &format!("/api/v1/consultations/{id}/reschedule"),
                json!({"start": later, "reason": "dời sang ngày kia"}),
            )
            .await
            .expect(200);
        let before = closed(&mut sick, 1000).await;
        let last = before.last().expect("a message before the close");
        assert_eq!(last["type"], "room-closed", "{before:?}");
        assert_eq!(last["reason"], "rescheduled");
        assert_eq!(try_join(&app, &old).await, "too_early");
    }
);
