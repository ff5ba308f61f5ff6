//! Hold limits (issue 12, finding 8): caps on the holds one booker and one patient keep standing
//! at once, which must hold under concurrency, and the per-account rate of booking requests
//! (`429` with `Retry-After`). See `server/src/scheduling/booking/limits.rs`.

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use telehealth::config::Settings;
use telehealth::pause;
use telehealth_tests::races::{blocked_or_done, parked, post_in_task};
use telehealth_tests::{Cast, Reply, TestApp, both_engines, next_weekday};

/// A cast whose specialist is free 08:00-12:00 every day in 30-minute slots, and eight slots of
/// one day.
async fn cast_with_slots(app: &TestApp) -> (Cast, Vec<DateTime<Utc>>) {
    let cast = Cast::create(app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
        .await;
    let day = next_weekday(5);
    let slots = app.free_slots(cast.specialist, day, day).await;
    assert_eq!(slots.len(), 8);
    (cast, slots)
}

fn hold_body(cast: &Cast, patient: i64, start: DateTime<Utc>) -> Value {
    let mut body = cast.booking(start);
    body["hold"] = json!(true);
    body["patient_id"] = json!(patient);
    body
}

async fn hold(app: &TestApp, cast: &Cast, patient: i64, start: DateTime<Utc>) -> Reply {
    app.post("/api/v1/consultations", hold_body(cast, patient, start))
        .await
}

/// A second booker: a network-wide scheduler of its own.
async fn another_booker(app: &TestApp, name: &str) -> TestApp {
    app.as_new_user(name, &[("scheduler", None)], None, None)
        .await
}

#[track_caller]
fn refused_by(reply: Reply, limit: &str, max: u64) {
    let reply = reply.expect(409);
    assert_eq!(reply.error_code(), "too_many_holds");
    assert_eq!(
        reply.body["error"]["details"]["limit"], limit,
        "{}",
        reply.text
    );
    assert_eq!(reply.body["error"]["details"]["max"], max, "{}", reply.text);
}

fn caps(account: u32, patient: u32) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.holds_per_account = account;
        s.holds_per_patient = patient;
    }
}

both_engines!(
    one_account_keeps_at_most_its_cap_of_holds,
    settings = caps(2, 0),
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let p = cast.patient;
        let first = hold(&app, &cast, p, slots[0]).await.expect(201).id();
        let second = hold(&app, &cast, p, slots[1]).await.expect(201).id();
        let before = app.snapshot().await;
        refused_by(hold(&app, &cast, p, slots[2]).await, "account", 2);
        assert_eq!(
            app.snapshot().await,
            before,
            "a refused hold writes nothing"
        );
        // The cap is the booker's: another account holds on.
        let other = another_booker(&app, "dieuphoi2").await;
        hold(&other, &cast, p, slots[2]).await.expect(201);
        // A confirmed hold is a booking, and no longer counts.
        app.post(&format!("/api/v1/consultations/{first}/confirm"), json!({}))
            .await
            .expect(200);
        hold(&app, &cast, p, slots[3]).await.expect(201);
        refused_by(hold(&app, &cast, p, slots[4]).await, "account", 2);
        // Nor does a lapsed one, swept or not.
        let lapsed = app
            .set_stored_time(
                "UPDATE consultations SET hold_expires_at = $1 WHERE id = $2",
                telehealth::domain::time::now() - Duration::seconds(1),
                second,
            )
            .await;
        assert_eq!(lapsed, 1);
        hold(&app, &cast, p, slots[4]).await.expect(201);
        // Bookings outright are never capped.
        app.post("/api/v1/consultations", cast.booking(slots[5]))
            .await
            .expect(201);
    }
);

both_engines!(
    one_patient_has_at_most_their_cap_of_holds,
    settings = caps(0, 1),
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let other = another_booker(&app, "dieuphoi2").await;
        hold(&app, &cast, cast.patient, slots[0]).await.expect(201);
        // Whoever holds for them: the cap is the patient's.
        refused_by(
            hold(&other, &cast, cast.patient, slots[1]).await,
            "patient",
            1,
        );
        let someone_else = app.create_patient(Some(cast.centre)).await;
        hold(&other, &cast, someone_else, slots[1])
            .await
            .expect(201);
    }
);

/// Two holds at one below a cap, the first parked after counting the holds standing and before
/// adding its own: the second must wait for it and then be refused, not count the same standing
/// holds and pass too.
async fn two_holds_at_the_last_place(first: (TestApp, Value), second: (TestApp, Value)) {
    let app = &first.0;
    let paused = pause::arm(app.db(), "booking.hold.counted");
    let one = post_in_task(app, "/api/v1/consultations".into(), first.1);
    parked(&paused).await;
    let two = post_in_task(&second.0, "/api/v1/consultations".into(), second.1);
    blocked_or_done(app, &two).await;
    paused.release();
    let one = one.await.expect("the first hold returns");
    let two = two.await.expect("the second hold returns");
    assert_eq!(one.status, 201, "{}", one.text);
    assert_eq!(two.status, 409, "{}", two.text);
    assert_eq!(two.error_code(), "too_many_holds");
}

both_engines!(
    parallel_holds_cannot_both_take_a_bookers_last_place,
    settings = caps(2, 0),
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        hold(&app, &cast, cast.patient, slots[0]).await.expect(201);
        two_holds_at_the_last_place(
            (app.clone(), hold_body(&cast, cast.patient, slots[1])),
            (app.clone(), hold_body(&cast, cast.patient, slots[2])),
        )
        .await;
    }
);

both_engines!(
    parallel_holds_cannot_both_take_a_patients_last_place,
    settings = caps(0, 2),
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let other = another_booker(&app, "dieuphoi2").await;
        hold(&app, &cast, cast.patient, slots[0]).await.expect(201);
        two_holds_at_the_last_place(
            (app.clone(), hold_body(&cast, cast.patient, slots[1])),
            (other, hold_body(&cast, cast.patient, slots[2])),
        )
        .await;
    }
);

both_engines!(
    booking_requests_past_an_accounts_rate_get_429_with_retry_after,
    settings = |s: &mut Settings| {
        s.booking_per_account_per_minute = 1;
        s.booking_per_account_burst = 3;
    },
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let booker = another_booker(&app, "dieuphoi2").await;
        // The burst: every booking request counts, refused ones too.
        let booked = booker
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        booker
            .post("/api/v1/consultations", json!({"kind": "x"}))
            .await
            .expect(400);
        booker
            .post(
                &format!("/api/v1/consultations/{booked}/confirm"),
                json!({}),
            )
            .await
            .expect(409);
        let before = app.snapshot().await;
        let refused = booker
            .post("/api/v1/consultations", cast.booking(slots[1]))
            .await
            .expect(429);
        assert_eq!(refused.error_code(), "too_many_requests");
        let wait: u64 = refused.headers["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in whole seconds");
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        assert_eq!(
            refused.body["error"]["details"]["retry_after_seconds"],
            json!(wait)
        );
        // Reschedule and confirm are booking routes too; nothing was written.
        let moved = booker
            .post(
                &format!("/api/v1/consultations/{booked}/reschedule"),
                json!({"start": slots[2].to_rfc3339(), "reason": "Đổi giờ"}),
            )
            .await
            .expect(429);
        assert_eq!(moved.error_code(), "too_many_requests");
        booker
            .post(
                &format!("/api/v1/consultations/{booked}/confirm"),
                json!({}),
            )
            .await
            .expect(429);
        assert_eq!(app.snapshot().await, before);
        // Reading is not limited, and another account books on.
        booker
            .get(&format!("/api/v1/consultations/{booked}"))
            .await
            .expect(200);
        app.post("/api/v1/consultations", cast.booking(slots[1]))
            .await
            .expect(201);
    }
);

#[test]
fn the_defaults_leave_a_busy_clinic_alone() {
    let s = Settings::default();
    // A scheduler booking 40 specialists' day (some 640 slots) by script gets through in about a
    // minute; nobody holds a hundred slots at once, no patient ten.
    assert_eq!((s.holds_per_account, s.holds_per_patient), (100, 10));
    assert_eq!(
        (
            s.booking_per_account_per_minute,
            s.booking_per_account_burst
        ),
        (600, 120)
    );
}
