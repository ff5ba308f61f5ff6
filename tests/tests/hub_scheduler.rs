//! What a hub hospital's scheduler, looking after dozens of specialists, does in one go: a weekly
//! template applied to many clinicians at once (all or nothing), finding a patient's bookings at
//! the hospital by name (typed without diacritics), phone or national ID across dates, and the
//! calendar narrowed to a specialty or one clinician. On both engines, over real HTTP.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use telehealth_tests::{Cast, Reply, TestApp, both_engines, next_weekday};

const TEMPLATE: &str = "POST /api/v1/facilities/{id}/availability/rules";
const SEARCH: &str = "GET /api/v1/facilities/{id}/bookings";

/// A clinician named `name` at `facility`, with `specialties` and `title`.
async fn clinician(
    app: &TestApp,
    facility: i64,
    name: &str,
    title: &str,
    specialties: &[&str],
) -> i64 {
    app.post(
        "/api/v1/clinicians",
        json!({"facility_id": facility, "full_name": name, "title": title, "specialties": specialties}),
    )
    .await
    .expect(201)
    .id()
}

fn session(weekday: i64, start: &str, end: &str) -> Value {
    json!({"weekday": weekday, "start_time": start, "end_time": end, "slot_minutes": 30})
}

fn template_path(facility: i64) -> String {
    format!("/api/v1/facilities/{facility}/availability/rules")
}

async fn rules_of(app: &TestApp, clinician: i64) -> Vec<Value> {
    app.get(&format!(
        "/api/v1/clinicians/{clinician}/availability/rules"
    ))
    .await
    .expect(200)
    .body
    .as_array()
    .cloned()
    .expect("rules")
}

/// The single invalid field of a 422, and its message.
fn invalid_field(r: &Reply) -> (String, String) {
    assert_eq!(
        (r.status, r.error_code()),
        (422, "validation_failed"),
        "{}",
        r.text
    );
    let f = &r.body["error"]["details"]["fields"][0];
    (
        f["field"].as_str().unwrap_or_default().to_string(),
        f["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// The trail's events with `action`, as (actor, record_type, record_id), newest first; `query`
/// filters the trail (`actor=…` or `patient_id=…`).
async fn events(app: &TestApp, query: &str, action: &str) -> Vec<(String, String, String)> {
    let trail = app
        .get(&format!("/api/v1/audit?{query}&limit=500"))
        .await
        .expect(200);
    trail
        .body
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["action"] == action)
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("actor"), s("record_type"), s("record_id"))
        })
        .collect()
}

both_engines!(
    a_template_gives_every_clinician_its_rules,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let second = clinician(&app, cast.hub, "BS Trần Thị Bình", "BS", &["cardiology"]).await;
        let third = clinician(&app, cast.hub, "BS Phạm Văn Cường", "BS", &["cardiology"]).await;
        let scheduler = app
            .as_new_user("dieuphoi", &[("scheduler", Some(cast.hub))], None, None)
            .await;
        let ids = [cast.specialist, second, third];
        let mut wednesday = session(3, "13:30", "15:00");
        wednesday["buffer_minutes"] = json!(0);
        let r = scheduler
            .post(
                &template_path(cast.hub),
                json!({"clinician_ids": ids, "rules": [session(1, "08:00", "11:00"), wednesday]}),
            )
            .await
            .expect(201);
        assert_eq!(r.body["created"], 6, "{}", r.text);
        assert_eq!(r.body["clinicians"], 3);
        let rows = r.body["rules"].as_array().expect("rules");
        let answered: Vec<(i64, i64, &str)> = rows
            .iter()
            .map(|row| {
                (
                    row["clinician_id"].as_i64().expect("clinician"),
                    row["weekday"].as_i64().expect("weekday"),
                    row["start_time"].as_str().expect("start"),
                )
            })
            .collect();
        let expected: Vec<(i64, i64, &str)> = ids
            .iter()
            .flat_map(|c| [(*c, 1, "08:00:00"), (*c, 3, "13:30:00")])
            .collect();
        assert_eq!(answered, expected, "by clinician in the order given");

        // Each clinician has exactly the template's rules, and their slots are offered.
        let monday = next_weekday(1);
        for c in ids {
            let theirs: Vec<(i64, String, String)> = rules_of(&app, c)
                .await
                .iter()
                .map(|r| {
                    (
                        r["weekday"].as_i64().expect("weekday"),
                        r["start_time"].as_str().expect("start").to_string(),
                        r["end_time"].as_str().expect("end").to_string(),
                    )
                })
                .collect();
            assert_eq!(
                theirs,
                [
                    (1, "08:00:00".to_string(), "11:00:00".to_string()),
                    (3, "13:30:00".to_string(), "15:00:00".to_string())
                ]
            );
            let slots = app.free_slots(c, monday, monday).await;
            assert_eq!(
                slots.len(),
                6,
                "08:00 to 11:00 in 30 minutes, clinician {c}"
            );
            // 08:00 in Vietnam (UTC+7).
            assert_eq!(slots[0].to_rfc3339(), format!("{monday}T01:00:00+00:00"));
        }

        // One journaled event per rule, each naming its rule.
        let logged = events(&app, "actor=dieuphoi", TEMPLATE).await;
        let logged_ids: BTreeSet<String> = logged.iter().map(|(_, _, id)| id.clone()).collect();
        let row_ids: BTreeSet<String> = rows.iter().map(|r| r["id"].to_string()).collect();
        assert_eq!(logged.len(), 6, "{logged:?}");
        assert_eq!(logged_ids, row_ids);
        assert!(
            logged.iter().all(|(_, t, _)| t == "availability_rule"),
            "{logged:?}"
        );
    }
);

both_engines!(
    a_refused_template_writes_nothing_for_anyone,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let second = clinician(&app, cast.hub, "BS Trần Thị Bình", "BS", &["cardiology"]).await;
        let third = clinician(&app, cast.hub, "BS Phạm Văn Cường", "BS", &["cardiology"]).await;
        let scheduler = app
            .as_new_user("dieuphoi", &[("scheduler", Some(cast.hub))], None, None)
            .await;
        let path = template_path(cast.hub);
        let existing = app
            .post(
                &format!("/api/v1/clinicians/{third}/availability/rules"),
                session(1, "09:00", "10:00"),
            )
            .await
            .expect(201)
            .id();
        let before = app.snapshot().await;

        // The third clinician's Monday clashes: refused, named, and the first two get nothing.
        let clash = scheduler
            .post(
                &path,
                json!({"clinician_ids": [cast.specialist, second, third],
                       "rules": [session(2, "08:00", "11:00"), session(1, "08:00", "11:00")]}),
            )
            .await
            .expect(409);
        assert_eq!(clash.error_code(), "sessions_overlap");
        let named = &clash.body["error"]["details"]["clash"];
        assert_eq!(named["clinician_id"], third, "{}", clash.text);
        assert_eq!(named["rule_id"], existing);
        assert_eq!(named["start_time"], "09:00:00");
        let message = clash.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("BS Phạm Văn Cường") && message.contains("rules[1]"),
            "{message}"
        );
        for c in [cast.specialist, second] {
            assert!(
                rules_of(&app, c).await.is_empty(),
                "clinician {c} got rules"
            );
        }
        assert_eq!(rules_of(&app, third).await.len(), 1);
        assert_eq!(app.snapshot().await, before);

        // Rules of the template that overlap each other: 422 naming both.
        let r = scheduler
            .post(
                &path,
                json!({"clinician_ids": [cast.specialist],
                       "rules": [session(4, "08:00", "11:00"), session(5, "08:00", "09:00"),
                                 session(4, "10:30", "12:00")]}),
            )
            .await;
        let (field, message) = invalid_field(&r);
        assert_eq!(field, "rules");
        assert!(
            message.contains("rules[0]") && message.contains("rules[2]"),
            "{message}"
        );
        // A bad field of one rule is named by its position.
        let r = scheduler
            .post(
                &path,
                json!({"clinician_ids": [cast.specialist],
                       "rules": [session(4, "08:00", "11:00"), session(5, "08:03", "09:00")]}),
            )
            .await;
        assert_eq!(invalid_field(&r).0, "rules[1].start_time", "{}", r.text);
        let r = scheduler
            .post(
                &path,
                json!({"clinician_ids": [second, second], "rules": [session(4, "08:00", "11:00")]}),
            )
            .await;
        assert_eq!(invalid_field(&r).0, "clinician_ids");

        // A clinician of another facility (the care centre's): 422 naming them, nothing written.
        let r = scheduler
            .post(
                &path,
                json!({"clinician_ids": [second, cast.rural], "rules": [session(4, "08:00", "11:00")]}),
            )
            .await;
        let (field, message) = invalid_field(&r);
        assert_eq!(field, "clinician_ids");
        assert!(message.contains(&cast.rural.to_string()), "{message}");
        assert!(rules_of(&app, second).await.is_empty());
        assert!(rules_of(&app, cast.rural).await.is_empty());
        assert_eq!(app.snapshot().await, before);

        // The cap counts the template's rules: 49 one-hour sessions (7 a day) take the first
        // clinician to 49; two more are refused for them, and so for the second too.
        let week: Vec<Value> = (1..=7)
            .flat_map(|day| {
                (7..14)
                    .map(move |h| session(day, &format!("{h:02}:00"), &format!("{:02}:00", h + 1)))
            })
            .collect();
        scheduler
            .post(
                &path,
                json!({"clinician_ids": [cast.specialist], "rules": week}),
            )
            .await
            .expect(201);
        let full = app.snapshot().await;
        let r = scheduler
            .post(
                &path,
                json!({"clinician_ids": [second, cast.specialist],
                       "rules": [session(1, "20:00", "21:00"), session(1, "21:00", "22:00")]}),
            )
            .await
            .expect(409);
        assert_eq!(r.error_code(), "too_many_rules");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("clinician {}", cast.specialist))),
            "{}",
            r.text
        );
        assert!(rules_of(&app, second).await.is_empty());
        assert_eq!(app.snapshot().await, full);
        // One more is exactly the cap.
        scheduler
            .post(
                &path,
                json!({"clinician_ids": [cast.specialist], "rules": [session(1, "20:00", "21:00")]}),
            )
            .await
            .expect(201);
        assert_eq!(rules_of(&app, cast.specialist).await.len(), 50);

        scheduler
            .post(
                &template_path(987_654),
                json!({"clinician_ids": [second], "rules": [session(4, "08:00", "11:00")]}),
            )
            .await
            .expect(404);
    }
);

both_engines!(
    the_largest_template_is_written_in_one_go,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let mut ids = vec![cast.specialist];
        for i in 1..100 {
            ids.push(clinician(&app, cast.hub, &format!("BS Số {i}"), "BS", &["cardiology"]).await);
        }
        // Seven sessions a day, every day, and one more: 50, the most a clinician may have.
        let mut week: Vec<Value> = (1..=7)
            .flat_map(|day| {
                (7..14)
                    .map(move |h| session(day, &format!("{h:02}:00"), &format!("{:02}:00", h + 1)))
            })
            .collect();
        week.push(session(1, "20:00", "21:00"));
        let r = app
            .post(
                &template_path(cast.hub),
                json!({"clinician_ids": ids, "rules": week}),
            )
            .await
            .expect(201);
        assert_eq!(r.body["created"], 5000);
        let rows = r.body["rules"].as_array().expect("rules");
        assert_eq!(rows.len(), 5000);
        // In the order asked: the clinicians as listed, each one's rules by weekday and start.
        assert_eq!(rows[0]["clinician_id"], ids[0]);
        assert_eq!(rows[4999]["clinician_id"], ids[99]);
        assert_eq!(rows[50]["clinician_id"], ids[1]);
        assert_eq!(
            (&rows[50]["weekday"], &rows[50]["start_time"]),
            (&json!(1), &json!("07:00:00"))
        );
        assert_eq!(app.count("availability_rules").await, 5000);
        assert_eq!(rules_of(&app, ids[57]).await.len(), 50);
        // Every rule's event committed with the write; the trail chains a thousand-odd staged
        // events per flush, so the rest follow within a second or two.
        assert_eq!(
            app.scalar(
                "SELECT COUNT(*) FROM (SELECT action FROM audit_events
                   UNION ALL SELECT action FROM audit_pending) e
                 WHERE action = 'POST /api/v1/facilities/{id}/availability/rules'"
            )
            .await,
            5000
        );
        telehealth_tests::eventually("all 5000 events are chained", || async {
            let chained = app
                .scalar(
                    "SELECT COUNT(*) FROM audit_events
                     WHERE action = 'POST /api/v1/facilities/{id}/availability/rules'",
                )
                .await;
            (chained == 5000).then_some(())
        })
        .await;
    }
);

both_engines!(
    only_the_hospitals_schedulers_may_apply_a_template,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let other_hub = app
            .create_facility("HUB-2", "hub_hospital", "Asia/Ho_Chi_Minh")
            .await;
        let outsider = app
            .as_new_user("khac", &[("scheduler", Some(other_hub))], None, None)
            .await;
        let specialist = app
            .as_new_user("bacsi", &[("clinician", None)], None, Some(cast.specialist))
            .await;
        let patient = app
            .as_new_user("benhnhan", &[("patient", None)], Some(cast.patient), None)
            .await;
        let before = app.snapshot().await;
        let body =
            json!({"clinician_ids": [cast.specialist], "rules": [session(1, "08:00", "11:00")]});
        for caller in [&outsider, &specialist, &patient] {
            let r = caller.post(&template_path(cast.hub), body.clone()).await;
            assert_eq!((r.status, r.error_code()), (403, "forbidden"), "{}", r.text);
        }
        assert!(rules_of(&app, cast.specialist).await.is_empty());
        assert_eq!(app.snapshot().await, before);
        app.anonymous()
            .post(&template_path(cast.hub), body)
            .await
            .expect(401);
    }
);

/// Books `clinician`'s `n`th free slot on `day` for `patient`.
async fn book(
    app: &TestApp,
    cast: &Cast,
    clinician: i64,
    patient: i64,
    day: chrono::NaiveDate,
    n: usize,
) -> i64 {
    let slots = app.free_slots(clinician, day, day).await;
    let mut body = cast.booking(slots[n]);
    body["clinician_id"] = json!(clinician);
    body["patient_id"] = json!(patient);
    app.post("/api/v1/consultations", body)
        .await
        .expect(201)
        .id()
}

/// The ids of the bookings a search answered, in order.
fn found(r: &Reply) -> Vec<i64> {
    r.body["bookings"]
        .as_array()
        .unwrap_or_else(|| panic!("no bookings in {}", r.text))
        .iter()
        .map(|b| b["id"].as_i64().expect("id"))
        .collect()
}

both_engines!(
    a_patients_bookings_are_found_by_name_phone_or_national_id,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let an = app
            .post(
                "/api/v1/patients",
                json!({"full_name": "Nguyễn Văn Đức An", "date_of_birth": "1979-05-12", "sex": "male",
                       "phone": "0987654321", "national_id": "001079012345",
                       "home_facility_id": cast.centre}),
            )
            .await
            .expect(201)
            .id();
        let tuesday = next_weekday(2);
        let thursday = tuesday + chrono::Duration::days(2);
        let later = book(&app, &cast, cast.specialist, an, thursday, 1).await;
        let sooner = book(&app, &cast, cast.specialist, an, tuesday, 2).await;
        let cancelled = book(&app, &cast, cast.specialist, an, tuesday, 4).await;
        app.post(
            &format!("/api/v1/consultations/{cancelled}/cancel"),
            json!({"reason": "bệnh nhân đổi ý"}),
        )
        .await
        .expect(200);
        let mai = book(&app, &cast, cast.specialist, cast.patient, tuesday, 0).await;
        // The same patient booked at another hospital: not this hospital's to show.
        let other_hub = app
            .create_facility("HUB-2", "hub_hospital", "Asia/Ho_Chi_Minh")
            .await;
        let elsewhere = clinician(&app, other_hub, "BS Lê Minh", "BS", &["cardiology"]).await;
        app.add_daily_rule(elsewhere, "08:00:00", "12:00:00", 30, 0)
            .await;
        book(&app, &cast, elsewhere, an, tuesday, 0).await;

        let scheduler = app
            .as_new_user("dieuphoi", &[("scheduler", Some(cast.hub))], None, None)
            .await;
        let search = |q: &str| format!("/api/v1/facilities/{}/bookings?q={q}", cast.hub);
        let r = scheduler.get(&search("nguyen%20van")).await.expect(200);
        assert_eq!(found(&r), [sooner, later], "by start; {}", r.text);
        assert_eq!(r.body["q"], "nguyen van");
        assert_eq!(r.body["truncated"], false);
        assert_eq!(r.body["time_zone"], "Asia/Ho_Chi_Minh");
        let first = &r.body["bookings"][0];
        assert_eq!(first["patient_id"], an);
        assert_eq!(first["patient_name"], "Nguyễn Văn Đức An");
        assert_eq!(first["clinician_id"], cast.specialist);
        assert_eq!(first["clinician_name"], "BS Nguyễn Văn A");
        assert_eq!(first["specialties"], json!(["cardiology"]));
        assert_eq!(first["status"], "booked");
        // The third slot of 08:00, 08:30, 09:00…
        assert_eq!(first["local_start"], format!("{tuesday}T09:00:00"));
        assert_eq!(first["start_at"], format!("{tuesday}T02:00:00Z"));
        assert!(
            !r.text.contains("0987654321") && !r.text.contains("001079012345"),
            "no phone or national ID in the answer: {}",
            r.text
        );

        // However it is typed: case, marks, đ, the national ID, the phone in +84 form.
        for q in [
            "NGUY%E1%BB%84N%20v%C4%83n", // "NGUYỄN văn"
            "duc%20an",                  // "Đức An" without its marks
            "%C4%90%E1%BB%A9c",          // "Đức"
            "001079012345",
            "%2B84%20987%20654%20321", // "+84 987 654 321"
            "098-765-4321",
        ] {
            let r = scheduler.get(&search(q)).await.expect(200);
            assert_eq!(found(&r), [sooner, later], "q={q}: {}", r.text);
        }
        let r = scheduler.get(&search("l%C3%B2%20thi")).await.expect(200);
        assert_eq!(found(&r), [mai], "Lò Thị Mai; {}", r.text);
        // LIKE's wildcards are text like any other.
        let r = scheduler.get(&search("%25%25")).await.expect(200);
        assert!(found(&r).is_empty(), "{}", r.text);
        // The dates bound the search, in the facility's zone.
        let r = scheduler
            .get(&format!(
                "{}&from={thursday}&to={thursday}",
                search("nguyen")
            ))
            .await
            .expect(200);
        assert_eq!(found(&r), [later]);
        assert_eq!(r.body["from"], thursday.to_string());

        // Every patient named was recorded as seen by the scheduler; one not named was not.
        let seen = events(&app, &format!("patient_id={an}"), SEARCH).await;
        assert!(
            seen.iter().any(|(actor, _, _)| actor == "dieuphoi"),
            "{seen:?}"
        );
        let unseen = events(&app, &format!("patient_id={}", cast.patient), SEARCH).await;
        assert_eq!(
            unseen.len(),
            1,
            "only the search for Lò Thị Mai named her: {unseen:?}"
        );

        // Bad input is a 422 naming the field.
        for q in ["", "a", "%20a%20", &"x".repeat(101)] {
            let r = scheduler.get(&search(q)).await;
            assert_eq!(invalid_field(&r).0, "q", "q={q}");
        }
        let r = scheduler
            .get(&format!("/api/v1/facilities/{}/bookings", cast.hub))
            .await;
        assert_eq!(invalid_field(&r).0, "q");
        let r = scheduler
            .get(&format!(
                "{}&from=2027-01-01&to=2027-07-20",
                search("nguyen")
            ))
            .await;
        assert_eq!(invalid_field(&r).0, "to", "201 days");
        scheduler
            .get(&format!(
                "{}&from=2027-01-01&to=2027-07-19",
                search("nguyen")
            ))
            .await
            .expect(200);

        // Another hospital's scheduler and a clinician may not search here.
        let outsider = app
            .as_new_user("khac", &[("scheduler", Some(other_hub))], None, None)
            .await;
        let specialist = app
            .as_new_user("bacsi", &[("clinician", None)], None, Some(cast.specialist))
            .await;
        for caller in [&outsider, &specialist] {
            let r = caller.get(&search("nguyen")).await;
            assert_eq!((r.status, r.error_code()), (403, "forbidden"), "{}", r.text);
        }
        scheduler
            .get("/api/v1/facilities/987654/bookings?q=nguyen")
            .await
            .expect(404);
    }
);

both_engines!(
    names_written_before_search_are_folded_at_start,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let k = book(
            &app,
            &cast,
            cast.specialist,
            cast.patient,
            next_weekday(2),
            0,
        )
        .await;
        let path = format!("/api/v1/facilities/{}/bookings?q=lo%20thi%20mai", cast.hub);
        assert_eq!(found(&app.get(&path).await.expect(200)), [k]);
        // As a row from before the column (or from a tool that does not fold) has it.
        app.exec("UPDATE patients SET search_name = NULL").await;
        assert!(found(&app.get(&path).await.expect(200)).is_empty());
        let app = app.restart().await;
        assert_eq!(found(&app.get(&path).await.expect(200)), [k]);
        assert_eq!(
            app.scalar("SELECT COUNT(*) FROM patients WHERE search_name IS NULL")
                .await,
            0
        );
    }
);

both_engines!(
    the_calendar_shows_one_specialty_or_one_clinician,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.create_specialty("dermatology").await;
        let derm = clinician(
            &app,
            cast.hub,
            "BS Hoàng Thu Hà",
            "BS CKII",
            &["dermatology"],
        )
        .await;
        app.add_daily_rule(cast.specialist, "08:00:00", "09:00:00", 30, 0)
            .await;
        app.add_daily_rule(derm, "13:00:00", "14:00:00", 30, 0)
            .await;
        let day = next_weekday(3);
        let calendar = |query: String| {
            let app = app.clone();
            let hub = cast.hub;
            async move {
                app.get(&format!(
                    "/api/v1/facilities/{hub}/calendar?date={day}&{query}"
                ))
                .await
            }
        };
        let shown = |r: &Reply| -> Vec<i64> {
            r.body["clinicians"]
                .as_array()
                .unwrap_or_else(|| panic!("no clinicians in {}", r.text))
                .iter()
                .map(|c| c["clinician_id"].as_i64().expect("id"))
                .collect()
        };
        let all = calendar(String::new()).await.expect(200);
        assert_eq!(shown(&all), [cast.specialist, derm]);
        let r = calendar("specialty=dermatology".into()).await.expect(200);
        assert_eq!(shown(&r), [derm]);
        let only = &r.body["clinicians"][0];
        assert_eq!(only["title"], "BS CKII");
        assert_eq!(only["full_name"], "BS Hoàng Thu Hà");
        assert_eq!(only["specialties"], json!(["dermatology"]));
        assert_eq!(
            only["days"][0]["entries"][0]["local_start"],
            format!("{day}T13:00:00")
        );
        let r = calendar("specialty=cardiology".into()).await.expect(200);
        assert_eq!(shown(&r), [cast.specialist]);
        assert_eq!(r.body["clinicians"][0]["title"], "BS");
        // A code nobody has is an empty calendar, not an error.
        let r = calendar("specialty=neurology".into()).await.expect(200);
        assert!(shown(&r).is_empty());
        let r = calendar(format!("clinician_id={derm}")).await.expect(200);
        assert_eq!(shown(&r), [derm]);
        let r = calendar(format!("clinician_id={derm}&specialty=cardiology"))
            .await
            .expect(200);
        assert!(shown(&r).is_empty(), "both filters apply");
        // A clinician of another facility, or of none, is a mistake in the request.
        for id in [cast.rural, 987_654] {
            let r = calendar(format!("clinician_id={id}")).await;
            let (field, message) = invalid_field(&r);
            assert_eq!(field, "clinician_id");
            assert!(message.contains(&id.to_string()), "{message}");
        }
    }
);
