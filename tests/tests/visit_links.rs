//! Visit links behave like the links patients get from any clinic (issue 13), on both engines:
//! tapped twice, on one phone or on another, the link opens the visit until it expires; a device
//! with no session of the patient's confirms their date of birth; wrong dates count and lock the
//! link (and the clinic sees it); the clinic withdraws links, which ends the sessions they opened.

use serde_json::json;
use telehealth_tests::{Cast, PATIENT_BIRTH_DATE, TestApp, both_engines};

async fn link_of(app: &TestApp, k: i64) -> String {
    let link = app
        .post(&format!("/api/v1/consultations/{k}/visit-link"), json!({}))
        .await
        .expect(201);
    assert!(
        link.body["qr_svg"].as_str().unwrap_or("").contains("<svg"),
        "{}",
        link.text
    );
    link.body["token"].as_str().expect("token").to_string()
}

both_engines!(
    a_visit_link_opens_the_visit_again_on_any_device,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let k = cast.book_now(&app).await;
        let token = link_of(&app, k).await;

        // A new device must confirm the date of birth: without it nothing opens or counts.
        let phone = app.anonymous();
        let asked = phone
            .post("/api/v1/auth/visit", json!({"token": token}))
            .await
            .expect(401);
        assert_eq!(asked.error_code(), "date_of_birth_required");
        let bad = phone
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": "2.4.1988"}),
            )
            .await
            .expect(422);
        assert_eq!(bad.error_code(), "validation_failed", "{}", bad.text);
        let first = phone
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(200);
        let on_phone = app.as_token(first.body["token"].as_str().expect("token"));
        on_phone
            .get(&format!("/api/v1/consultations/{k}"))
            .await
            .expect(200);

        // The same phone taps the link again: it holds the patient's session, so no question.
        let again = on_phone
            .post("/api/v1/auth/visit", json!({"token": token}))
            .await
            .expect(200);
        assert!(again.body["token"].is_string());

        // Another device, with the date of birth.
        let tablet = app
            .anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(200);
        assert!(tablet.body["token"].is_string());

        let links = app
            .get(&format!("/api/v1/consultations/{k}/visit-links"))
            .await
            .expect(200)
            .body;
        assert_eq!(links[0]["uses"], 3, "{links}");
        assert!(links[0]["locked_at"].is_null());
        assert!(links[0].get("token").is_none(), "no token in the list");
        // The patient does not manage links.
        on_phone
            .get(&format!("/api/v1/consultations/{k}/visit-links"))
            .await
            .expect(403);
    }
);

both_engines!(
    wrong_dates_of_birth_lock_the_link_and_the_clinic_sees_it,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let k = cast.book_now(&app).await;
        let token = link_of(&app, k).await;
        let stranger = app.anonymous();
        for left in (1..5).rev() {
            let wrong = stranger
                .post(
                    "/api/v1/auth/visit",
                    json!({"token": token, "date_of_birth": "1990-01-01"}),
                )
                .await
                .expect(401);
            assert_eq!(wrong.error_code(), "wrong_date_of_birth", "{}", wrong.text);
            assert_eq!(wrong.body["error"]["details"]["tries_left"], left);
        }
        let locked = stranger
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": "1990-01-01"}),
            )
            .await
            .expect(401);
        assert_eq!(locked.error_code(), "visit_link_locked");
        // Locked for the right date too, and for a device that had a session.
        let still = app
            .anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(401);
        assert_eq!(still.error_code(), "visit_link_locked");
        let links = app
            .get(&format!("/api/v1/consultations/{k}/visit-links"))
            .await
            .expect(200)
            .body;
        assert!(links[0]["locked_at"].is_string(), "{links}");
        assert_eq!(links[0]["failed_attempts"], 5);
        assert_eq!(links[0]["uses"], 0);

        // The clinic sends a new link, which works.
        let fresh = link_of(&app, k).await;
        app.anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": fresh, "date_of_birth": PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(200);
    }
);

both_engines!(
    withdrawn_links_open_nothing_and_their_sessions_end,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let k = cast.book_now(&app).await;
        let token = link_of(&app, k).await;
        let opened = app
            .anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(200);
        let patient = app.as_token(opened.body["token"].as_str().expect("token"));
        patient
            .get(&format!("/api/v1/consultations/{k}"))
            .await
            .expect(200);

        let revoked = app
            .post(
                &format!("/api/v1/consultations/{k}/visit-links/revoke"),
                json!({}),
            )
            .await
            .expect(200);
        assert_eq!(revoked.body["revoked_links"], 1);
        patient
            .get(&format!("/api/v1/consultations/{k}"))
            .await
            .expect(401);
        let refused = app
            .anonymous()
            .post(
                "/api/v1/auth/visit",
                json!({"token": token, "date_of_birth": PATIENT_BIRTH_DATE}),
            )
            .await
            .expect(401);
        assert_eq!(refused.error_code(), "invalid_visit_link");
        assert!(refused.text.contains("withdrawn"), "{}", refused.text);
        // A rural clinician of another care centre may not withdraw them.
        let stranger_centre = app
            .create_facility("CC-9", "care_centre", "Asia/Ho_Chi_Minh")
            .await;
        let other = app.create_clinician(stranger_centre, &[]).await;
        let outsider = app
            .as_new_user("outsider", &[("clinician", None)], None, Some(other))
            .await;
        let r = outsider
            .post(
                &format!("/api/v1/consultations/{k}/visit-links/revoke"),
                json!({}),
            )
            .await;
        assert!(r.status == 403 || r.status == 404, "{}", r.text);
    }
);
