//! Availability, free-slot search, calendars and utilisation on both engines, including a zone
//! with daylight saving.

use chrono::NaiveDate;
use serde_json::json;
use telehealth_tests::{Cast, TestApp, both_engines, next_weekday};

fn local_times(reply: &telehealth_tests::Reply) -> Vec<String> {
    reply.body["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .filter_map(|s| s["local_start"].as_str().map(str::to_string))
        .collect()
}

both_engines!(
    rules_exceptions_and_search_filters,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let monday = next_weekday(1);
        let tuesday = monday + chrono::Duration::days(1);
        let wednesday = monday + chrono::Duration::days(2);
        // Monday mornings only: 08:00-10:00, 20-minute slots with 10 minutes between.
        let rule = app
            .post(
                &format!("/api/v1/clinicians/{}/availability/rules", cast.specialist),
                json!({"weekday": 1, "start_time": "08:00:00", "end_time": "10:00:00",
                   "slot_minutes": 20, "buffer_minutes": 10}),
            )
            .await
            .expect(201);
        let slots = app.free_slots(cast.specialist, monday, wednesday).await;
        assert_eq!(slots.len(), 4); // 08:00, 08:30, 09:00, 09:30
        let r = app
            .get(&format!(
                "/api/v1/slots?clinician_id={}&from={monday}&to={monday}",
                cast.specialist
            ))
            .await
            .expect(200);
        assert_eq!(
            local_times(&r),
            ["08:00:00", "08:30:00", "09:00:00", "09:30:00"].map(|t| format!("{monday}T{t}"))
        );
        // Vietnam is UTC+7: 08:00 local is 01:00 UTC.
        assert_eq!(r.body["slots"][0]["start"], format!("{monday}T01:00:00Z"));

        // Partial leave removes the slots it touches; an extra session adds some on Tuesday.
        app.post(
        &format!("/api/v1/clinicians/{}/availability/exceptions", cast.specialist),
        json!({"date": monday, "kind": "leave", "start_time": "08:15:00", "end_time": "09:00:00", "note": "họp"}),
    )
    .await
    .expect(201);
        app.post(
        &format!("/api/v1/clinicians/{}/availability/exceptions", cast.specialist),
        json!({"date": tuesday, "kind": "extra", "start_time": "14:00:00", "end_time": "15:00:00", "slot_minutes": 30}),
    )
    .await
    .expect(201);
        assert_eq!(
            app.free_slots(cast.specialist, monday, monday).await.len(),
            2
        );
        assert_eq!(
            app.free_slots(cast.specialist, tuesday, tuesday)
                .await
                .len(),
            2
        );
        // Whole-day leave empties Monday.
        let leave = app
            .post(
                &format!(
                    "/api/v1/clinicians/{}/availability/exceptions",
                    cast.specialist
                ),
                json!({"date": monday, "kind": "leave"}),
            )
            .await
            .expect(201);
        assert!(
            app.free_slots(cast.specialist, monday, monday)
                .await
                .is_empty()
        );
        let listed = app
            .get(&format!(
                "/api/v1/clinicians/{}/availability/exceptions?from={monday}&to={tuesday}",
                cast.specialist
            ))
            .await
            .expect(200);
        assert_eq!(listed.body.as_array().map(Vec::len), Some(3));
        app.delete(&format!(
            "/api/v1/clinicians/{}/availability/exceptions/{}",
            cast.specialist,
            leave.id()
        ))
        .await
        .expect(204);
        assert_eq!(
            app.free_slots(cast.specialist, monday, monday).await.len(),
            2
        );

        // Search by specialty, facility and province finds the specialist; other filters do not.
        for q in [
            "specialty=cardiology".to_string(),
            format!("facility_id={}", cast.hub),
            "province=L%C3%A0o%20Cai".to_string(),
        ] {
            let r = app
                .get(&format!("/api/v1/slots?{q}&from={monday}&to={tuesday}"))
                .await
                .expect(200);
            assert_eq!(r.body["slots"].as_array().map(Vec::len), Some(4), "{q}");
        }
        let r = app
            .get(&format!(
                "/api/v1/slots?specialty=dermatology&from={monday}&to={tuesday}"
            ))
            .await
            .expect(200);
        assert_eq!(r.body["slots"].as_array().map(Vec::len), Some(0));
        let r = app
            .get(&format!(
                "/api/v1/slots?specialty=cardiology&from={monday}&to={tuesday}&limit=1"
            ))
            .await
            .expect(200);
        assert_eq!(r.body["truncated"], true);

        // Deleting the rule removes its slots; deleting it again is a 404.
        let path = format!(
            "/api/v1/clinicians/{}/availability/rules/{}",
            cast.specialist,
            rule.id()
        );
        app.delete(&path).await.expect(204);
        app.delete(&path).await.expect(404);
        assert_eq!(
            app.free_slots(cast.specialist, monday, monday).await.len(),
            0
        );
    }
);

both_engines!(daylight_saving_zone_slots, |app: TestApp| async move {
    // A facility in New York: on 2027-03-14 clocks jump from 02:00 to 03:00, on 2027-11-07
    // 01:00-02:00 happens twice.
    app.create_specialty("dermatology").await;
    let hub = app
        .create_facility("HUB-NY", "hub_hospital", "America/New_York")
        .await;
    let doc = app.create_clinician(hub, &["dermatology"]).await;
    app.add_daily_rule(doc, "00:30:00", "04:00:00", 30, 0).await;
    let spring = NaiveDate::from_ymd_opt(2027, 3, 14).expect("date");
    let r = app
        .get(&format!(
            "/api/v1/slots?clinician_id={doc}&from={spring}&to={spring}"
        ))
        .await
        .expect(200);
    let local: Vec<String> = local_times(&r)
        .iter()
        .map(|t| t[11..16].to_string())
        .collect();
    assert_eq!(local, ["00:30", "01:00", "01:30", "03:00", "03:30"]);
    // 01:30 EST is 06:30 UTC; 03:00 EDT is 07:00 UTC.
    assert_eq!(r.body["slots"][2]["start"], "2027-03-14T06:30:00Z");
    assert_eq!(r.body["slots"][3]["start"], "2027-03-14T07:00:00Z");

    let autumn = NaiveDate::from_ymd_opt(2027, 11, 7).expect("date");
    let slots = app.free_slots(doc, autumn, autumn).await;
    assert_eq!(slots.len(), 7);
    assert!(slots.windows(2).all(|w| w[0] < w[1]));
    // Booking a DST-day slot works and takes exactly that slot.
    let patient = app.create_patient(None).await;
    let booked = app
        .post(
            "/api/v1/consultations",
            json!({"kind": "video_visit", "clinician_id": doc, "patient_id": patient,
                   "reason": "rash", "start": "2027-03-14T07:00:00Z"}),
        )
        .await
        .expect(201);
    assert_eq!(booked.body["end_at"], "2027-03-14T07:30:00Z");
    assert_eq!(
        app.free_slots(doc, spring, spring).await.len(),
        4,
        "the booked slot is gone from search"
    );
});

both_engines!(calendar_and_utilisation, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    app.add_daily_rule(cast.specialist, "08:00:00", "10:00:00", 30, 0)
        .await;
    let day = next_weekday(4);
    let s = app.free_slots(cast.specialist, day, day).await;
    let a = app
        .post("/api/v1/consultations", cast.booking(s[0]))
        .await
        .expect(201)
        .id();
    let b = app
        .post("/api/v1/consultations", cast.booking(s[2]))
        .await
        .expect(201)
        .id();
    app.post(
        &format!("/api/v1/consultations/{b}/cancel"),
        json!({"reason": "ốm"}),
    )
    .await
    .expect(200);

    let cal = app
        .get(&format!(
            "/api/v1/facilities/{}/calendar?date={day}",
            cast.hub
        ))
        .await
        .expect(200);
    assert_eq!(cal.body["time_zone"], "Asia/Ho_Chi_Minh");
    let entries = cal.body["clinicians"][0]["days"][0]["entries"]
        .as_array()
        .expect("entries");
    let states: Vec<&str> = entries.iter().filter_map(|e| e["state"].as_str()).collect();
    assert_eq!(states, ["booked", "free", "free", "free"]);
    assert_eq!(entries[0]["booking"]["id"], a);
    assert_eq!(entries[0]["booking"]["patient_name"], "Lò Thị Mai");
    assert_eq!(entries[0]["local_start"], format!("{day}T08:00:00"));

    let week = app
        .get(&format!(
            "/api/v1/facilities/{}/calendar?date={day}&view=week",
            cast.hub
        ))
        .await
        .expect(200);
    assert_eq!(
        week.body["clinicians"][0]["days"].as_array().map(Vec::len),
        Some(7)
    );

    let to = day + chrono::Duration::days(6);
    let u = app
        .get(&format!(
            "/api/v1/facilities/{}/utilisation?from={day}&to={to}",
            cast.hub
        ))
        .await
        .expect(200);
    let me = &u.body["clinicians"][0];
    assert_eq!(me["offered_slots"], 28);
    assert_eq!(me["offered_minutes"], 840);
    assert_eq!(me["booked"], 1);
    assert_eq!(me["cancelled"], 1);
    assert_eq!(me["booked_minutes"], 30);
    let ratio = me["utilisation"].as_f64().expect("ratio");
    assert!((ratio - 30.0 / 840.0).abs() < 1e-9);

    let r = app
        .get(&format!(
            "/api/v1/facilities/{}/calendar?view=month",
            cast.hub
        ))
        .await;
    assert_eq!((r.status, r.error_code()), (422, "validation_failed"));
    app.get("/api/v1/facilities/987654/calendar")
        .await
        .expect(404);
});
