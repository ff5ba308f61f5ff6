//! Attacks and abuse on both engines: stolen, expired and revoked tokens, visit links used twice
//! or for another consultation, brute-force sign-in, cross-site requests, path traversal, and a
//! tamper-evident audit trail.

use serde_json::json;
use telehealth::storage::Db;
use telehealth_tests::{Cast, PASSWORD, TestApp, both_engines, next_weekday};

async fn exec(app: &TestApp, sql: &'static str) -> Result<u64, sqlx::Error> {
    match app.db() {
        Db::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        Db::Postgres(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
    }
}

both_engines!(tokens_that_must_not_work, |app: TestApp| async move {
    let me = app.get("/api/v1/auth/me").await.expect(200);
    assert_eq!(me.body["username"], "root");
    // No token, garbage, an oversized token, a token with the right shape but unknown.
    app.anonymous().get("/api/v1/auth/me").await.expect(401);
    app.as_token("garbage")
        .get("/api/v1/auth/me")
        .await
        .expect(401);
    app.as_token(&"x".repeat(5000))
        .get("/api/v1/auth/me")
        .await
        .expect(401);
    app.as_token("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .get("/api/v1/auth/me")
        .await
        .expect(401);
    // A token stops working at logout.
    let t = app.login("root", PASSWORD).await;
    app.as_token(&t).get("/api/v1/auth/me").await.expect(200);
    app.as_token(&t)
        .post("/api/v1/auth/logout", json!({}))
        .await
        .expect(204);
    app.as_token(&t).get("/api/v1/auth/me").await.expect(401);
    // An administrator can end someone's sessions.
    let user = app
        .as_new_user("victim", &[("administrator", None)], None, None)
        .await;
    user.get("/api/v1/auth/me").await.expect(200);
    let id = user.get("/api/v1/auth/me").await.body["account_id"]
        .as_i64()
        .expect("account id");
    let r = app
        .post(&format!("/api/v1/accounts/{id}/revoke-sessions"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.body["revoked_sessions"], 1);
    user.get("/api/v1/auth/me").await.expect(401);
    // An expired session is refused (expiry moved into the past in storage).
    let t = app.login("root", PASSWORD).await;
    exec(
        &app,
        "UPDATE sessions SET expires_at = created_at WHERE revoked_at IS NULL",
    )
    .await
    .expect("expire sessions");
    app.as_token(&t).get("/api/v1/auth/me").await.expect(401);
    // Tokens are stored hashed: the database does not contain the token itself.
    let t = app.login("root", PASSWORD).await;
    let sql = "SELECT COUNT(*) FROM sessions WHERE token_hash = $1";
    let found: i64 = match app.db() {
        Db::Sqlite(p) => sqlx::query_scalar(sql).bind(&t).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar(sql).bind(&t).fetch_one(p).await,
    }
    .expect("query");
    assert_eq!(found, 0);
});

both_engines!(
    brute_force_sign_in_is_refused_for_that_account_from_that_address,
    |app: TestApp| async move {
        let anon = app.anonymous();
        for _ in 0..5 {
            let r = anon
                .post(
                    "/api/v1/auth/login",
                    json!({"username": "root", "password": "guess"}),
                )
                .await
                .expect(401);
            assert_eq!(r.error_code(), "invalid_credentials");
        }
        // Refused from here: even the right password, with a message and a Retry-After that
        // say when to try again (the details of every rule: tests/tests/sign_in_limits.rs).
        let r = anon
            .post(
                "/api/v1/auth/login",
                json!({"username": "root", "password": PASSWORD}),
            )
            .await
            .expect(429);
        assert_eq!(r.error_code(), "too_many_attempts");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("minutes")
        );
        let wait: u64 = r
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("Retry-After in seconds");
        assert!((14 * 60..=15 * 60).contains(&wait), "Retry-After {wait}");
        // Unknown users answer exactly like wrong passwords.
        let r = anon
            .post(
                "/api/v1/auth/login",
                json!({"username": "nobody", "password": "guess"}),
            )
            .await
            .expect(401);
        assert_eq!(r.error_code(), "invalid_credentials");
        // An injection attempt in the user name is just a wrong name.
        let r = anon
            .post(
                "/api/v1/auth/login",
                json!({"username": "root' OR '1'='1", "password": "' OR '1'='1"}),
            )
            .await
            .expect(401);
        assert_eq!(r.error_code(), "invalid_credentials");
        // Not a lock-out: other accounts still sign in from this address even after twenty
        // more failures here (once that locked every account behind the address), and root
        // still signs in from another address.
        app.post(
            "/api/v1/accounts",
            json!({"username": "fresh", "display_name": "fresh", "password": PASSWORD,
               "roles": []}),
        )
        .await
        .expect(201);
        for i in 0..20 {
            anon.post(
                "/api/v1/auth/login",
                json!({"username": format!("user{i}"), "password": "guess"}),
            )
            .await
            .expect(401);
        }
        app.login("fresh", PASSWORD).await;
        app.from_address("127.0.0.9").login("root", PASSWORD).await;
        // Each failure is in the audit trail, and so is the refusal.
        let audit = app
            .get("/api/v1/audit?actor=root&limit=50")
            .await
            .expect(200);
        let events = audit.body.as_array().expect("events");
        let outcome = |o: &str| {
            events
                .iter()
                .filter(|e| e["action"] == "login" && e["outcome"] == o)
                .count()
        };
        assert_eq!(outcome("denied"), 5);
        assert_eq!(outcome("failed"), 1);
    }
);

both_engines!(
    visit_links_are_one_time_and_bound,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let day = next_weekday(3);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let mine = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        let other_patient = app.create_patient(None).await;
        let mut body = cast.booking(slots[1]);
        body["patient_id"] = json!(other_patient);
        let theirs = app
            .post("/api/v1/consultations", body)
            .await
            .expect(201)
            .id();

        let link = app
            .post(
                &format!("/api/v1/consultations/{mine}/visit-link"),
                json!({}),
            )
            .await
            .expect(201);
        let token = link.body["token"].as_str().expect("token").to_string();
        assert!(
            link.body["path"]
                .as_str()
                .unwrap_or("")
                .starts_with("/visit#")
        );
        let session = app
            .anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(200);
        assert!(
            session.headers["set-cookie"]
                .to_str()
                .unwrap_or("")
                .contains("HttpOnly; SameSite=Strict")
        );
        let patient = app.as_token(session.body["token"].as_str().expect("token"));
        // The session reaches its consultation, and nothing else.
        patient
            .get(&format!("/api/v1/consultations/{mine}"))
            .await
            .expect(200);
        patient
            .get(&format!("/api/v1/consultations/{theirs}"))
            .await
            .expect(404);
        let list = patient.get("/api/v1/consultations").await.expect(200);
        assert_eq!(list.body.as_array().map(Vec::len), Some(1));
        patient
            .get(&format!("/api/v1/patients/{other_patient}"))
            .await
            .expect(404);
        patient
            .post(
                &format!("/api/v1/consultations/{mine}/cancel"),
                json!({"reason": "x"}),
            )
            .await
            .expect(403);
        // Tapped again on another device, with the date of birth: it opens the same visit (the
        // link works until it expires; tests/visit_links.rs covers the rest).
        let again = app
            .anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(200);
        let again = app.as_token(again.body["token"].as_str().expect("token"));
        again
            .get(&format!("/api/v1/consultations/{theirs}"))
            .await
            .expect(404);
        // A link altered to point at another consultation fails its signature.
        let fresh = app
            .post(
                &format!("/api/v1/consultations/{mine}/visit-link"),
                json!({}),
            )
            .await
            .expect(201);
        let fresh = fresh.body["token"].as_str().expect("token").to_string();
        let parts: Vec<&str> = fresh.split('.').collect();
        let forged = format!("v1.{}.{}", parts[1].replace('A', "B"), parts[2]);
        let r = app
            .anonymous()
            .post("/api/v1/auth/visit", json!({"token": forged}))
            .await
            .expect(401);
        assert_eq!(r.error_code(), "invalid_visit_link");
        // A link of a cancelled consultation cannot be issued.
        app.post(
            &format!("/api/v1/consultations/{theirs}/cancel"),
            json!({"reason": "x"}),
        )
        .await
        .expect(200);
        app.post(
            &format!("/api/v1/consultations/{theirs}/visit-link"),
            json!({}),
        )
        .await
        .expect(409);
    }
);

both_engines!(
    cross_site_requests_with_the_cookie_are_refused,
    |app: TestApp| async move {
        let login = app
            .anonymous()
            .post(
                "/api/v1/auth/login",
                json!({"username": "root", "password": PASSWORD}),
            )
            .await
            .expect(200);
        let cookie = login.headers["set-cookie"]
            .to_str()
            .expect("cookie")
            .to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        assert!(!cookie.contains("Secure"), "no Secure flag on plain HTTP");
        let pair = cookie.split(';').next().expect("name=value").to_string();
        let post =
            |origin: Option<&str>, site: Option<&str>| {
                let mut req = app
            .http
            .post(app.url("/api/v1/specialties"))
            .header("cookie", &pair)
            .json(&json!({"code": "dermatology", "name_en": "Dermatology", "name_vi": "Da liễu"}));
                if let Some(o) = origin {
                    req = req.header("origin", o);
                }
                if let Some(s) = site {
                    req = req.header("sec-fetch-site", s);
                }
                req
            };
        let anon = app.anonymous();
        let r = anon
            .send(post(Some("https://evil.example"), None))
            .await
            .expect(403);
        assert_eq!(r.error_code(), "cross_site_request");
        let r = anon.send(post(None, Some("cross-site"))).await.expect(403);
        assert_eq!(r.error_code(), "cross_site_request");
        assert_eq!(app.count("specialties").await, 0);
        // The same request from the page itself works, and reads are never blocked.
        let own = format!("http://{}", app.addr());
        anon.send(post(Some(&own), Some("same-origin")))
            .await
            .expect(201);
        anon.send(
            app.http
                .get(app.url("/api/v1/auth/me"))
                .header("cookie", &pair)
                .header("origin", "https://evil.example"),
        )
        .await
        .expect(200);
    }
);

both_engines!(static_files_do_not_traverse, |app: TestApp| async move {
    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/..%2f..%2f..%2fCargo.toml",
        "/web-client/../Cargo.toml",
        "/%00",
    ] {
        let r = app.anonymous().send(app.http.get(app.url(path))).await;
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.status);
        assert!(
            !r.text.contains("root:") && !r.text.contains("[workspace]"),
            "{path} leaked a file"
        );
    }
});

both_engines!(
    the_audit_trail_records_and_verifies,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let day = next_weekday(4);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let k = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        app.get(&format!("/api/v1/consultations/{k}"))
            .await
            .expect(200);
        app.get(&format!("/api/v1/patients/{}", cast.patient))
            .await
            .expect(200);
        let stranger = app
            .as_new_user("stranger", &[("clinician", None)], None, None)
            .await;
        stranger
            .get(&format!("/api/v1/consultations/{k}"))
            .await
            .expect(404);

        // By patient: the booking, both reads, and the refused read, each with actor and outcome.
        let events = app
            .get(&format!(
                "/api/v1/audit?patient_id={}&limit=100",
                cast.patient
            ))
            .await
            .expect(200)
            .body;
        let events = events.as_array().expect("events").clone();
        let has = |actor: &str, action: &str, outcome: &str| {
            events
                .iter()
                .any(|e| e["actor"] == actor && e["action"] == action && e["outcome"] == outcome)
        };
        assert!(has("root", "POST /api/v1/consultations", "allowed"));
        assert!(has("root", "GET /api/v1/consultations/{id}", "allowed"));
        assert!(has("root", "GET /api/v1/patients/{id}", "allowed"));
        assert!(has("stranger", "GET /api/v1/consultations/{id}", "denied"));
        let read = events
            .iter()
            .find(|e| e["action"] == "GET /api/v1/consultations/{id}" && e["actor"] == "root")
            .expect("read event");
        assert_eq!(read["record_type"], "consultation");
        assert_eq!(read["record_id"], k.to_string());
        assert_eq!(read["client_addr"], "127.0.0.1");
        assert!(
            read["actor_role"]
                .as_str()
                .unwrap_or("")
                .contains("scheduler")
        );
        // By person and by time range.
        let by_person = app.get("/api/v1/audit?actor=stranger").await.expect(200);
        assert!(by_person.body.as_array().is_some_and(|a| !a.is_empty()));
        let future = app
            .get("/api/v1/audit?from=2099-01-01T00:00:00Z")
            .await
            .expect(200);
        assert_eq!(future.body.as_array().map(Vec::len), Some(0));

        // The chain verifies.
        let ok = telehealth::audit::verify(app.db()).await.expect("verify");
        assert!(ok.first_broken.is_none());
        assert!(ok.events >= 8);
        // The application's own connection cannot change or delete an event.
        assert!(
            exec(
                &app,
                "UPDATE audit_events SET outcome = 'allowed' WHERE seq = 3"
            )
            .await
            .is_err()
        );
        assert!(
            exec(&app, "DELETE FROM audit_events WHERE seq = 3")
                .await
                .is_err()
        );
        // Someone with direct database access who bypasses that is caught by verify.
        match app.engine {
            telehealth_tests::Engine::Sqlite => {
                exec(&app, "DROP TRIGGER audit_events_no_update")
                    .await
                    .expect("drop trigger");
            }
            telehealth_tests::Engine::Postgres => {
                exec(
                    &app,
                    "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_change",
                )
                .await
                .expect("disable trigger");
            }
        }
        exec(
            &app,
            "UPDATE audit_events SET actor = 'someone-else' WHERE seq = 3",
        )
        .await
        .expect("tamper");
        let broken = telehealth::audit::verify(app.db()).await.expect("verify");
        let (seq, why) = broken.first_broken.expect("tampering is detected");
        assert_eq!(seq, 3);
        assert!(why.contains("altered"), "{why}");
    }
);

both_engines!(
    weak_and_common_passwords_are_refused_with_advice,
    |app: TestApp| async move {
        // Too short (ASVS V2.1.1: at least 12), then long enough but common, repeated, a
        // keyboard row, or built from the person's own name (context words).
        let refused = [
            ("aaaaaaaaaa", "at least 12 characters"),
            ("password12", "at least 12 characters"),
            ("aaaaaaaaaaaa", "too easy to guess"),
            ("password1234", "too easy to guess"),
            ("qwertyuiop12", "too easy to guess"),
            ("Password123!", "too easy to guess"),
            ("hoangthimai1990", "too easy to guess"),
        ];
        for (i, (password, says)) in refused.iter().enumerate() {
            let username = format!("hoangthimai{i}");
            let r = app
                .post(
                    "/api/v1/accounts",
                    json!({"username": username, "display_name": "Hoàng Thị Mai",
                           "password": password, "roles": []}),
                )
                .await
                .expect(422);
            assert_eq!(r.error_code(), "validation_failed");
            assert_eq!(
                r.body["error"]["details"]["fields"][0]["field"], "password",
                "{password}: {}",
                r.text
            );
            let message = r.body["error"]["message"].as_str().unwrap_or("");
            assert!(message.contains(says), "{password}: {message}");
            // The message says what to do instead.
            assert!(message.contains("words"), "{password}: {message}");
            // Nothing was created: the account cannot sign in.
            let login = app
                .anonymous()
                .post(
                    "/api/v1/auth/login",
                    json!({"username": username, "password": password}),
                )
                .await;
            assert_eq!(login.status, 401, "{password} created an account");
        }
        // A passphrase of uncommon words is accepted.
        app.post(
            "/api/v1/accounts",
            json!({"username": "hoangthimai", "display_name": "Hoàng Thị Mai",
                   "password": "lantern orbit velvet ferry", "roles": []}),
        )
        .await
        .expect(201);
        app.login("hoangthimai", "lantern orbit velvet ferry").await;
    }
);

both_engines!(
    cross_site_checks_compare_scheme_host_and_port,
    |app: TestApp| async move {
        let login = app
            .anonymous()
            .post(
                "/api/v1/auth/login",
                json!({"username": "root", "password": PASSWORD}),
            )
            .await
            .expect(200);
        let cookie = login.headers["set-cookie"]
            .to_str()
            .expect("cookie")
            .split(';')
            .next()
            .expect("name=value")
            .to_string();
        let port = app.addr().port();
        let mut n = 0;
        let mut post = |origin: &str, host: Option<&str>| {
            n += 1;
            let mut req = app
                .http
                .post(app.url("/api/v1/specialties"))
                .header("cookie", &cookie)
                .header("origin", origin)
                .json(&json!({"code": format!("s{n}"), "name_en": "S", "name_vi": "S"}));
            if let Some(h) = host {
                req = req.header("host", h);
            }
            req
        };
        let anon = app.anonymous();
        // The server speaks plain HTTP: an https page of the same host and port is another
        // origin, as are another port, another host, and the opaque origin "null".
        for origin in [
            format!("https://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{}", port.wrapping_add(1)),
            format!("http://localhost:{port}"),
            format!("http://127.0.0.1:{port}.evil.example"),
            format!("http://127.0.0.1:{port}@evil.example"),
            "null".to_string(),
            "127.0.0.1".to_string(),
        ] {
            let r = anon.send(post(&origin, None)).await;
            assert_eq!(
                (r.status, r.error_code()),
                (403, "cross_site_request"),
                "{origin}"
            );
        }
        assert_eq!(app.count("specialties").await, 0);
        // The page's own origin passes; a default port may be written or left out, and host
        // names compare without regard to case.
        anon.send(post(&format!("http://127.0.0.1:{port}"), None))
            .await
            .expect(201);
        anon.send(post("http://clinic.example", Some("clinic.example:80")))
            .await
            .expect(201);
        anon.send(post("http://Clinic.Example:80", Some("clinic.example")))
            .await
            .expect(201);
        let r = anon
            .send(post("https://clinic.example", Some("clinic.example:443")))
            .await;
        assert_eq!((r.status, r.error_code()), (403, "cross_site_request"));
        assert_eq!(app.count("specialties").await, 3);
    }
);

/// The consultation as `who` sees it, with the checks that apply to everyone who is not staff
/// of the clinician's hospital: no staff user names and no staff-written reasons in the events.
async fn assert_no_staff_details(who: &TestApp, k: i64, reason: &str) {
    let r = who
        .get(&format!("/api/v1/consultations/{k}"))
        .await
        .expect(200);
    let events = r.body["events"].as_array().expect("events");
    assert!(
        events.iter().any(|e| e["action"] == "reschedule"),
        "{}",
        r.text
    );
    for e in events {
        assert!(e.get("actor").is_none(), "an actor is shown: {e}");
        assert!(e.get("detail").is_none(), "a detail is shown: {e}");
    }
    assert!(!r.text.contains(reason), "{}", r.text);
    assert!(!r.text.contains("\"root\""), "{}", r.text);
}

both_engines!(
    patients_see_no_staff_names_reasons_or_leave_notes,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        app.add_daily_rule(cast.specialist, "08:00:00", "12:00:00", 30, 0)
            .await;
        let day = next_weekday(4);
        let slots = app.free_slots(cast.specialist, day, day).await;
        let k = app
            .post("/api/v1/consultations", cast.booking(slots[0]))
            .await
            .expect(201)
            .id();
        let moved = "BS Hùng nghỉ ốm; chuyển sang giờ sau";
        app.post(
            &format!("/api/v1/consultations/{k}/reschedule"),
            json!({"start": slots[2].to_rfc3339(), "reason": moved}),
        )
        .await
        .expect(200);
        let cancelled = app
            .post("/api/v1/consultations", cast.booking(slots[4]))
            .await
            .expect(201)
            .id();
        let why_cancelled = "Bác sĩ bận hội chẩn cấp cứu; trạm y tế sẽ gọi để hẹn lại";
        app.post(
            &format!("/api/v1/consultations/{cancelled}/cancel"),
            json!({"reason": why_cancelled}),
        )
        .await
        .expect(200);
        let leave = "phẫu thuật cá nhân";
        app.post(
            &format!(
                "/api/v1/clinicians/{}/availability/exceptions",
                cast.specialist
            ),
            json!({"date": day + chrono::Duration::days(7), "kind": "leave", "note": leave}),
        )
        .await
        .expect(201);

        let patient = app
            .as_new_user("pat", &[("patient", None)], Some(cast.patient), None)
            .await;
        let link = app
            .post(&format!("/api/v1/consultations/{k}/visit-link"), json!({}))
            .await
            .expect(201);
        let visit = app
            .anonymous()
            .post("/api/v1/auth/visit", json!({"token": link.body["token"], "date_of_birth": telehealth_tests::PATIENT_BIRTH_DATE}))
            .await
            .expect(200);
        let visit = app.as_token(visit.body["token"].as_str().expect("token"));
        // The referring clinician takes part, but works at the care centre, not the hospital.
        let rural = app
            .as_new_user("rural", &[("clinician", None)], None, Some(cast.rural))
            .await;
        for who in [&patient, &visit, &rural] {
            assert_no_staff_details(who, k, moved).await;
        }
        // The patient learns that and why the visit was cancelled, from the consultation itself.
        let r = patient
            .get(&format!("/api/v1/consultations/{cancelled}"))
            .await
            .expect(200);
        assert_eq!(r.body["status"], "cancelled");
        assert_eq!(r.body["cancel_reason"], why_cancelled);
        assert!(
            r.body["events"]
                .as_array()
                .expect("events")
                .iter()
                .all(|e| e.get("actor").is_none())
        );

        // Leave notes: the dates are public (they shape the free slots), the note is not.
        let exceptions = format!(
            "/api/v1/clinicians/{}/availability/exceptions",
            cast.specialist
        );
        for who in [&patient, &rural] {
            let r = who.get(&exceptions).await.expect(200);
            let list = r.body.as_array().expect("exceptions");
            assert_eq!(list.len(), 1, "{}", r.text);
            assert_eq!(list[0]["kind"], "leave");
            assert!(list[0].get("note").is_none(), "{}", r.text);
            assert!(!r.text.contains(leave));
        }

        // Staff of the clinician's hospital see all of it: the specialist, a hub scheduler,
        // and the network scheduler.
        let spec = app
            .as_new_user("spec", &[("clinician", None)], None, Some(cast.specialist))
            .await;
        let hub_scheduler = app
            .as_new_user("hubsched", &[("scheduler", Some(cast.hub))], None, None)
            .await;
        for who in [&spec, &hub_scheduler, &app] {
            let r = who
                .get(&format!("/api/v1/consultations/{k}"))
                .await
                .expect(200);
            let events = r.body["events"].as_array().expect("events");
            let rescheduled = events
                .iter()
                .find(|e| e["action"] == "reschedule")
                .expect("a reschedule event");
            assert_eq!(rescheduled["actor"], "root");
            assert_eq!(rescheduled["detail"], moved);
            let r = who.get(&exceptions).await.expect(200);
            assert_eq!(r.body[0]["note"], leave);
        }
    }
);
