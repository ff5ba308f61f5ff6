//! Clinicians' calendar feeds (issue 14): a secret iCalendar URL of one clinician's
//! consultations, read without a session; no patient names unless the clinician chose them, never
//! the reason; a new feed or a revocation makes the old URL answer 404; every read audited.

use serde_json::json;
use telehealth_tests::{Cast, Engine, People, TestApp, both_engines, eventually, next_weekday};

/// The path of a feed URL (the server makes it whole with its origin).
fn path_of(url: &str) -> String {
    let at = url.find("/api/v1/calendar-feeds/").expect("a feed URL");
    url[at..].to_owned()
}

both_engines!(
    a_feed_lists_the_clinicians_own_visits_without_names_until_asked_and_dies_when_replaced,
    engine = |engine: Engine| async move {
        let app = TestApp::spawn(engine).await;
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let day = next_weekday(2);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let kept = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        let cancelled = app
            .post("/api/v1/consultations", cast.booking(slots[1]))
            .await
            .expect(201)
            .id();
        app.post(
            &format!("/api/v1/consultations/{cancelled}/cancel"),
            json!({"reason": "trùng lịch"}),
        )
        .await
        .expect(200);
        let mut held = cast.booking(slots[2]);
        held["hold"] = json!(true);
        let held = app
            .post("/api/v1/consultations", held)
            .await
            .expect(201)
            .id();
        // Another clinician's visit of the same patient never shows.
        let other = app.create_clinician(cast.hub, &["cardiology"]).await;
        app.add_daily_rule(other, "08:00:00", "12:00:00", 30, 0)
            .await;
        let theirs_slot = app.free_slots(other, day, day).await[0];
        let mut theirs = cast.booking(theirs_slot);
        theirs["clinician_id"] = json!(other);
        let theirs = app
            .post("/api/v1/consultations", theirs)
            .await
            .expect(201)
            .id();

        let people = People::sign_in(&app, &cast).await;
        let made = people
            .specialist
            .post("/api/v1/me/calendar-feed", json!({}))
            .await
            .expect(201);
        assert_eq!(made.body["with_patient_names"], false);
        let feed = path_of(made.body["url"].as_str().expect("a URL"));
        let read = app.anonymous().get(&feed).await;
        assert_eq!(read.status, 200);
        assert_eq!(
            read.headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("text/calendar; charset=utf-8")
        );
        let ics = read.text.replace("\r\n ", "");
        assert!(ics.starts_with("BEGIN:VCALENDAR"), "{ics}");
        let uid = |id: i64| format!("consultation-{id}@");
        assert!(ics.contains(&uid(kept)), "{ics}");
        assert!(ics.contains(&uid(cancelled)) && ics.contains("STATUS:CANCELLED"));
        assert!(!ics.contains(&uid(held)), "a hold is not on the calendar");
        assert!(
            !ics.contains(&uid(theirs)),
            "another clinician's visit is on the calendar"
        );
        assert!(ics.contains("SUMMARY:Telehealth consultation"));
        assert!(ics.contains(&format!("/consultations/{kept}")));
        for never in ["Lò Thị Mai", "Đau ngực", "trùng lịch"] {
            assert!(!ics.contains(never), "{never} in the feed");
        }
        let shown = people
            .specialist
            .get("/api/v1/me/calendar-feed")
            .await
            .expect(200);
        assert!(shown.body["live"]["last_fetched_at"].is_string());
        assert!(shown.body["live"].get("url").is_none() && !shown.text.contains(&feed));

        // With names, on a new URL; the old one stops at once.
        let named = people
            .specialist
            .post(
                "/api/v1/me/calendar-feed",
                json!({"with_patient_names": true}),
            )
            .await
            .expect(201);
        let named = path_of(named.body["url"].as_str().expect("a URL"));
        assert_eq!(app.anonymous().get(&feed).await.status, 404);
        let ics = app.anonymous().get(&named).await.text.replace("\r\n ", "");
        assert!(ics.contains("SUMMARY:Telehealth: Lò Thị Mai"), "{ics}");
        assert!(!ics.contains("Đau ngực"));
        // Each read is recorded, naming the patient when the feed showed their name.
        eventually("the named read in the audit trail", || {
            let app = &app;
            let patient = cast.patient;
            async move {
                let trail = app
                    .get(&format!("/api/v1/audit?patient_id={patient}&limit=200"))
                    .await
                    .expect(200);
                trail
                    .body
                    .as_array()
                    .expect("events")
                    .iter()
                    .any(|e| e["record_type"] == "calendar_feed")
                    .then_some(())
            }
        })
        .await;

        // Revoked: 404, and nothing live.
        let revoked = people
            .specialist
            .post("/api/v1/me/calendar-feed/revoke", json!({}))
            .await
            .expect(200);
        assert_eq!(revoked.body["revoked"], true);
        assert_eq!(app.anonymous().get(&named).await.status, 404);
        let shown = people
            .specialist
            .get("/api/v1/me/calendar-feed")
            .await
            .expect(200);
        assert!(shown.body["live"].is_null());
        // Guessed and malformed tokens are no feed.
        for bad in ["x", "../../etc/passwd", &"A".repeat(43)] {
            let r = app
                .anonymous()
                .get(&format!("/api/v1/calendar-feeds/{bad}"))
                .await;
            assert!(matches!(r.status, 400 | 404), "{bad}: {}", r.status);
        }
        // Only clinicians have feeds.
        people
            .scheduler
            .post("/api/v1/me/calendar-feed", json!({}))
            .await
            .expect(403);
        people
            .patient
            .get("/api/v1/me/calendar-feed")
            .await
            .expect(403);
    }
);
