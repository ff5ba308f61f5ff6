//! State and claims never disagree (issue 12, findings 1 and 2): races between a consultation's
//! transitions and the hold sweeper, forced inside their transactions with pause points
//! (`telehealth::pause`), and `telehealth check`, the scan that finds any disagreement.
//!
//! How an interleaving is forced (`telehealth_tests::races`): a request is parked at a pause point
//! just before its commit, its guarded update done and its row locked; the competing transaction
//! is started; the test waits until that one is either blocked on a lock or finished (PostgreSQL
//! reports its lock waits in `pg_stat_activity`), and only then lets the parked request commit.
//!
//! On SQLite the interleavings differ: the write transaction (`BEGIN IMMEDIATE`) holds the one
//! write lock from its start, so while a request is parked inside its transaction the competitor
//! cannot even begin; it waits (busy timeout) and runs entirely after the parked one commits. The
//! same tests run there and check the outcome of that order; the lost claims of findings 1 and 2
//! were possible only on PostgreSQL, and only its runs failed before the fix.

use chrono::{DateTime, Utc};
use serde_json::json;
use telehealth::pause;
use telehealth::scheduling::booking;
use telehealth::scheduling::consistency::{self, Finding, Wrong};
use telehealth::storage::Db;
use telehealth_tests::races::{blocked_or_done, parked, post_in_task};
use telehealth_tests::{Cast, TestApp, both_engines, next_weekday};
use tokio::task::JoinHandle;

/// Runs one sweep of lapsed holds in its own task, as of `at`.
fn sweep_at(app: &TestApp, at: DateTime<Utc>) -> JoinHandle<u64> {
    let db = app.db().clone();
    tokio::spawn(async move {
        booking::expire_holds_at(&db, at)
            .await
            .expect("the sweep runs")
    })
}

/// A hold of `start`, and the instant just after it lapses: when a sweep takes it.
async fn hold(app: &TestApp, cast: &Cast, start: DateTime<Utc>) -> (i64, DateTime<Utc>) {
    let mut body = cast.booking(start);
    body["hold"] = json!(true);
    let held = app.post("/api/v1/consultations", body).await.expect(201);
    let lapses: DateTime<Utc> = held.body["hold_expires_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a hold has an expiry");
    (held.id(), lapses + chrono::Duration::seconds(1))
}

/// A cast with a specialist free 08:00-10:00 every day, in 30-minute slots, and that day's slots.
async fn cast_with_slots(app: &TestApp) -> (Cast, Vec<DateTime<Utc>>) {
    let cast = Cast::create(app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
        .await;
    let day = next_weekday(4);
    let slots = app.free_slots(cast.specialist, day, day).await;
    assert_eq!(slots.len(), 4);
    (cast, slots)
}

/// Runs `sql` (one `$1` = `id`) for one integer, straight on the database.
async fn count(app: &TestApp, sql: &'static str, id: i64) -> i64 {
    match app.db() {
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await,
    }
    .expect("read the database")
}

/// The stored status of a consultation and how many cells it claims, straight from the database.
async fn stored(app: &TestApp, id: i64) -> (String, i64) {
    let sql = "SELECT status FROM consultations WHERE id = $1";
    let status: String = match app.db() {
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(id).fetch_one(p).await,
    }
    .expect("read the consultation");
    let claims = count(
        app,
        "SELECT COUNT(*) FROM slot_claims WHERE consultation_id = $1",
        id,
    )
    .await;
    (status, claims)
}

/// Runs `telehealth check`'s scan, `page` consultations at a time, collecting what it finds.
async fn check(db: &Db, page: i64) -> (Vec<Finding>, consistency::Summary) {
    let mut found = Vec::new();
    let summary = consistency::check(db, page, |f| found.push(f.clone()))
        .await
        .expect("the check runs");
    (found, summary)
}

/// Everything the check finds (in pages of two, so that it crosses pages).
async fn findings(app: &TestApp) -> Vec<Finding> {
    check(app.db(), 2).await.0
}

fn confirm_path(id: i64) -> String {
    format!("/api/v1/consultations/{id}/confirm")
}

// ---- finding 1: confirm racing the hold sweeper ----------------------------------------------

both_engines!(
    a_confirm_racing_the_sweeper_keeps_its_claims,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let (held, lapses) = hold(&app, &cast, slots[0]).await;
        // The confirm updates the row in time (the hold still stands) and is slow to commit...
        let paused = pause::arm(app.db(), "booking.confirm.before_commit");
        let confirm = post_in_task(&app, confirm_path(held), json!({}));
        parked(&paused).await;
        // ...while the sweeper runs just after the hold's expiry.
        let sweep = sweep_at(&app, lapses);
        blocked_or_done(&app, &sweep).await;
        paused.release();
        let confirmed = confirm.await.expect("the confirm returns").expect(200);
        assert_eq!(confirmed.body["status"], "booked");
        sweep.await.expect("the sweep returns");
        // The next sweep, too, leaves a booking alone.
        assert_eq!(sweep_at(&app, lapses).await.expect("sweep"), 0);
        assert_eq!(stored(&app, held).await, ("booked".to_string(), 6));
        // So the slot stays taken: a second booking of it loses.
        let second = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(409);
        assert_eq!(second.error_code(), "slot_taken");
        assert_eq!(findings(&app).await, []);
    }
);

both_engines!(
    a_sweep_that_commits_first_leaves_the_confirm_too_late,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let (held, lapses) = hold(&app, &cast, slots[0]).await;
        // The other order: the sweep has expired the hold and freed its cells, not committed yet.
        let paused = pause::arm(app.db(), "booking.sweep.before_commit");
        let sweep = sweep_at(&app, lapses);
        parked(&paused).await;
        let confirm = post_in_task(&app, confirm_path(held), json!({}));
        blocked_or_done(&app, &confirm).await;
        paused.release();
        assert_eq!(sweep.await.expect("the sweep returns"), 1);
        let late = confirm.await.expect("the confirm returns").expect(409);
        assert_eq!(late.error_code(), "hold_expired");
        assert_eq!(stored(&app, held).await, ("expired".to_string(), 0));
        app.post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201);
        assert_eq!(findings(&app).await, []);
    }
);

// ---- finding 2: reschedule racing the hold sweeper -------------------------------------------

both_engines!(
    a_reschedule_racing_the_sweeper_frees_the_new_slot_when_the_hold_lapses,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let (held, lapses) = hold(&app, &cast, slots[0]).await;
        // The hold is moved to another slot in time, and the move is slow to commit...
        let paused = pause::arm(app.db(), "booking.reschedule.before_commit");
        let moved = post_in_task(
            &app,
            format!("/api/v1/consultations/{held}/reschedule"),
            json!({"start": slots[2].to_rfc3339(), "reason": "Bệnh nhân xin đổi giờ"}),
        );
        parked(&paused).await;
        // ...while the sweeper runs just after the hold's expiry, and again on its next round.
        let sweep = sweep_at(&app, lapses);
        blocked_or_done(&app, &sweep).await;
        paused.release();
        let moved = moved.await.expect("the reschedule returns").expect(200);
        assert_eq!(moved.body["status"], "held");
        sweep.await.expect("the sweep returns");
        sweep_at(&app, lapses).await.expect("the next sweep");
        // The hold lapsed: expired, and nothing of it stays claimed, the new slot included.
        assert_eq!(stored(&app, held).await, ("expired".to_string(), 0));
        let day = next_weekday(4);
        let free = app.free_slots(cast.specialist, day, day).await;
        assert!(free.contains(&slots[0]) && free.contains(&slots[2]));
        app.post("/api/v1/consultations", cast.booking(slots[2]))
            .await
            .expect(201);
        assert_eq!(findings(&app).await, []);
    }
);

both_engines!(
    a_cancel_racing_the_sweeper_leaves_nothing_claimed,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let (held, lapses) = hold(&app, &cast, slots[1]).await;
        let paused = pause::arm(app.db(), "booking.cancel.before_commit");
        let cancel = post_in_task(
            &app,
            format!("/api/v1/consultations/{held}/cancel"),
            json!({"reason": "Bệnh nhân đã khỏi"}),
        );
        parked(&paused).await;
        let sweep = sweep_at(&app, lapses);
        blocked_or_done(&app, &sweep).await;
        paused.release();
        cancel.await.expect("the cancel returns").expect(200);
        sweep.await.expect("the sweep returns");
        sweep_at(&app, lapses).await.expect("the next sweep");
        assert_eq!(stored(&app, held).await, ("cancelled".to_string(), 0));
        app.post("/api/v1/consultations", cast.booking(slots[1]))
            .await
            .expect(201);
        assert_eq!(findings(&app).await, []);
    }
);

// ---- every transition keeps state and claims together ----------------------------------------

both_engines!(
    the_check_agrees_after_every_transition,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let (held, _) = hold(&app, &cast, slots[0]).await;
        assert_eq!(findings(&app).await, []);
        app.post(&confirm_path(held), json!({})).await.expect(200);
        assert_eq!(stored(&app, held).await, ("booked".to_string(), 6));
        app.post(
            &format!("/api/v1/consultations/{held}/reschedule"),
            json!({"start": slots[1].to_rfc3339(), "reason": "Đổi giờ"}),
        )
        .await
        .expect(200);
        assert_eq!(stored(&app, held).await, ("booked".to_string(), 6));
        assert_eq!(findings(&app).await, []);
        app.post(
            &format!("/api/v1/consultations/{held}/cancel"),
            json!({"reason": "Bệnh nhân chuyển viện"}),
        )
        .await
        .expect(200);
        assert_eq!(stored(&app, held).await, ("cancelled".to_string(), 0));
        // Start and complete need a consultation whose time has come (20-minute slots).
        let now = cast.book_now(&app).await;
        app.post(&format!("/api/v1/consultations/{now}/start"), json!({}))
            .await
            .expect(200);
        assert_eq!(stored(&app, now).await, ("in_progress".to_string(), 4));
        assert_eq!(findings(&app).await, []);
        app.post(&format!("/api/v1/consultations/{now}/complete"), json!({}))
            .await
            .expect(200);
        assert_eq!(stored(&app, now).await, ("completed".to_string(), 0));
        // A no-show, once its time has come (to the server: its start moved into the past).
        let missed = app
            .post("/api/v1/consultations", cast.booking(slots[3]))
            .await
            .expect(201)
            .id();
        let moved = app
            .set_stored_time(
                "UPDATE consultations SET start_at = $1 WHERE id = $2",
                telehealth::domain::time::now() - chrono::Duration::minutes(1),
                missed,
            )
            .await;
        assert_eq!(moved, 1);
        app.post(
            &format!("/api/v1/consultations/{missed}/no-show"),
            json!({}),
        )
        .await
        .expect(200);
        assert_eq!(stored(&app, missed).await.1, 0);
        // A lapsed hold, swept.
        let (lapsing, lapses) = hold(&app, &cast, slots[2]).await;
        assert_eq!(sweep_at(&app, lapses).await.expect("sweep"), 1);
        assert_eq!(stored(&app, lapsing).await, ("expired".to_string(), 0));
        // The no-show's start was moved by hand, so its cells no longer match its time: skip it
        // by checking the others only.
        let (found, _) = check(app.db(), consistency::PAGE).await;
        assert!(found.iter().all(|f| f.consultation == missed), "{found:?}");
    }
);

// ---- telehealth check ------------------------------------------------------------------------

/// Runs one statement with two integer parameters, to corrupt the database on purpose.
async fn corrupt(app: &TestApp, sql: &'static str, a: i64, b: i64) -> u64 {
    match app.db() {
        Db::Sqlite(p) => sqlx::query(sql)
            .bind(a)
            .bind(b)
            .execute(p)
            .await
            .map(|d| d.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql)
            .bind(a)
            .bind(b)
            .execute(p)
            .await
            .map(|d| d.rows_affected()),
    }
    .expect("the corruption is written")
}

both_engines!(
    the_check_names_every_consultation_whose_claims_disagree,
    |app: TestApp| async move {
        let (cast, slots) = cast_with_slots(&app).await;
        let later = next_weekday(4) + chrono::Duration::days(7);
        let later = app.free_slots(cast.specialist, later, later).await[0];
        let book = |start: DateTime<Utc>| app.post("/api/v1/consultations", cast.booking(start));
        let short = book(slots[0]).await.expect(201).id();
        let (strayed, _) = hold(&app, &cast, slots[1]).await;
        let dead = book(slots[2]).await.expect(201).id();
        app.post(
            &format!("/api/v1/consultations/{dead}/cancel"),
            json!({"reason": "Hủy"}),
        )
        .await
        .expect(200);
        let gone = book(slots[3]).await.expect(201).id();
        let fine = book(later).await.expect(201).id();
        let (clean, before) = check(app.db(), consistency::PAGE).await;
        assert_eq!(clean, []);
        assert_eq!((before.consultations, before.claims), (5, 24));
        // A booked consultation loses two of its cells; one cell of a hold moves to another
        // clinician; the cancelled one claims a cell again; one consultation's row disappears
        // with its claims left behind (an id between real ones); two claims name an id after
        // every real one.
        let cell = |t: DateTime<Utc>| t.timestamp() / 300;
        let removed = corrupt(
            &app,
            "DELETE FROM slot_claims WHERE consultation_id = $1 AND cell >= $2",
            short,
            cell(slots[0]) + 4,
        )
        .await;
        assert_eq!(removed, 2);
        let moved = corrupt(
            &app,
            "UPDATE slot_claims SET clinician_id = clinician_id + 1000
             WHERE consultation_id = $1 AND cell = $2",
            strayed,
            cell(slots[1]),
        )
        .await;
        assert_eq!(moved, 1);
        let insert =
            "INSERT INTO slot_claims (clinician_id, cell, consultation_id) VALUES (7, $1, $2)";
        corrupt(&app, insert, cell(slots[2]), dead).await;
        corrupt(
            &app,
            "DELETE FROM consultation_events WHERE consultation_id = $1 AND $2 = $2",
            gone,
            0,
        )
        .await;
        corrupt(
            &app,
            "DELETE FROM consultations WHERE id = $1 AND $2 = $2",
            gone,
            0,
        )
        .await;
        corrupt(&app, insert, cell(slots[0]) - 100, fine + 1000).await;
        corrupt(&app, insert, cell(slots[0]) - 101, fine + 1000).await;
        use telehealth::domain::consultation::Status;
        let expected = vec![
            Finding {
                consultation: short,
                status: Some(Status::Booked),
                wrong: Wrong::MissingCells {
                    claimed: 4,
                    expected: 6,
                },
            },
            Finding {
                consultation: strayed,
                status: Some(Status::Held),
                wrong: Wrong::MissingCells {
                    claimed: 5,
                    expected: 6,
                },
            },
            Finding {
                consultation: strayed,
                status: Some(Status::Held),
                wrong: Wrong::ForeignCells { count: 1 },
            },
            Finding {
                consultation: dead,
                status: Some(Status::Cancelled),
                wrong: Wrong::ClaimsWhileDead { count: 1 },
            },
            Finding {
                consultation: gone,
                status: None,
                wrong: Wrong::NoConsultation { count: 6 },
            },
            Finding {
                consultation: fine + 1000,
                status: None,
                wrong: Wrong::NoConsultation { count: 2 },
            },
        ];
        // Every page size finds the same, in id order: pages of one, two and three (which the
        // findings cross), and the default.
        for page in [1, 2, 3, consistency::PAGE] {
            let (found, summary) = check(app.db(), page).await;
            assert_eq!(found, expected, "page size {page}");
            assert_eq!(
                (summary.consultations, summary.claims, summary.findings),
                (4, 25, 6),
                "page size {page}"
            );
        }
        // Printed, each names the consultation, its status and what is wrong.
        let printed: Vec<String> = expected.iter().map(ToString::to_string).collect();
        assert!(
            printed[0].starts_with(&format!("consultation {short} (booked): claims 4 of the 6")),
            "{}",
            printed[0]
        );
        assert!(
            printed[3].starts_with(&format!("consultation {dead} (cancelled): still claims 1")),
            "{}",
            printed[3]
        );
        assert!(printed[4].contains("does not exist"), "{}", printed[4]);
    }
);
