//! The signaling server as mounted by the platform, on both engines: join tokens from the API,
//! real WebSocket clients at `/signaling`, the waiting room, and what a call writes to the
//! consultation, its calls and the audit trail.
//!
//! The room logic's every message and failure is tested in the signaling crate
//! (`signaling/tests/`); here is what needs the server: who gets a token, the window, and the
//! records.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use telehealth_tests::{Cast, TestApp, both_engines, eventually};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The specialist, the rural clinician and the patient of `cast`, signed in.
async fn people(app: &TestApp, cast: &Cast) -> (TestApp, TestApp, TestApp) {
    let specialist = app
        .as_new_user("bacsi", &[("clinician", None)], None, Some(cast.specialist))
        .await;
    let rural = app
        .as_new_user("tramyte", &[("clinician", None)], None, Some(cast.rural))
        .await;
    let patient = app
        .as_new_user("benhnhan", &[("patient", None)], Some(cast.patient), None)
        .await;
    (specialist, rural, patient)
}

async fn token(app: &TestApp, consultation: i64) -> String {
    let r = app
        .post(
            &format!("/api/v1/consultations/{consultation}/join-token"),
            json!({}),
        )
        .await
        .expect(201);
    r.body["token"].as_str().expect("token").to_string()
}

async fn connect(app: &TestApp) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/signaling", app.addr()))
        .await
        .expect("WebSocket upgrade at /signaling");
    ws
}

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// The next message of `kind`, skipping others; fails after 10 s.
async fn until(ws: &mut Ws, kind: &str) -> Value {
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text).expect("server sends JSON");
                    assert_eq!(v["v"], 1, "{v}");
                    if v["type"] == kind {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended while waiting for {kind}: {other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind} within 10 s"))
}

async fn join(app: &TestApp, token: &str) -> Ws {
    let mut ws = connect(app).await;
    send(&mut ws, json!({"v": 1, "type": "join", "token": token})).await;
    ws
}

both_engines!(
    join_tokens_go_to_the_consultations_people_inside_its_window,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let now_id = cast.book_now(&app).await;
        let (specialist, rural, patient) = people(&app, &cast).await;
        let path = format!("/api/v1/consultations/{now_id}/join-token");

        let mine = patient.post(&path, json!({})).await.expect(201);
        assert_eq!(mine.body["participant"], format!("p{}", cast.patient));
        assert_eq!(mine.body["role"], "patient");
        assert_eq!(mine.body["url"], "/signaling");
        let expires = mine.body["expires_at"].as_str().expect("expiry");
        let expires: DateTime<Utc> = expires.parse().expect("RFC 3339");
        assert!(
            expires <= Utc::now() + Span::minutes(11),
            "short-lived: {expires}"
        );

        let doctor = specialist.post(&path, json!({})).await.expect(201);
        assert_eq!(doctor.body["participant"], format!("c{}", cast.specialist));
        assert_eq!(doctor.body["role"], "clinician");
        let referring = rural.post(&path, json!({})).await.expect(201);
        assert_eq!(referring.body["participant"], format!("c{}", cast.rural));

        // A guest (an interpreter) is invited by a clinician, never by the patient.
        let guest = rural
            .post(&path, json!({"guest_name": "Phiên dịch viên"}))
            .await
            .expect(201);
        assert_eq!(guest.body["role"], "guest");
        assert!(
            guest.body["participant"]
                .as_str()
                .expect("id")
                .starts_with('g')
        );
        assert_eq!(
            patient
                .post(&path, json!({"guest_name": "Con gái"}))
                .await
                .expect(403)
                .error_code(),
            "forbidden"
        );
        // The root account schedules the whole network: it sees the consultation but does not join.
        assert_eq!(
            app.post(&path, json!({})).await.expect(403).error_code(),
            "forbidden"
        );
        // Another patient does not learn that the consultation exists.
        let other_patient_id = app.create_patient(Some(cast.centre)).await;
        let other = app
            .as_new_user("other", &[("patient", None)], Some(other_patient_id), None)
            .await;
        other.post(&path, json!({})).await.expect(404);
        assert_eq!(
            app.anonymous()
                .post(&path, json!({}))
                .await
                .expect(401)
                .error_code(),
            "unauthenticated"
        );

        // Bad bodies: nothing issued.
        patient
            .post(&path, json!({"participant": "c1"}))
            .await
            .expect(400);
        rural
            .post(&path, json!({"guest_name": "x".repeat(101)}))
            .await
            .expect(422);
        rural
            .post(&path, json!({"guest_name": "  "}))
            .await
            .expect(422);

        // Tomorrow's consultation: too early, and the answer says when the room opens.
        let tomorrow = app
            .free_slots(
                cast.specialist,
                (Utc::now() + Span::hours(7) + Span::days(2)).date_naive(),
                (Utc::now() + Span::hours(7) + Span::days(2)).date_naive(),
            )
            .await;
        if let Some(later) = tomorrow.first() {
            let later_id = app
                .post("/api/v1/consultations", cast.booking(*later))
                .await
                .expect(201)
                .id();
            let early = patient
                .post(
                    &format!("/api/v1/consultations/{later_id}/join-token"),
                    json!({}),
                )
                .await
                .expect(409);
            assert_eq!(early.error_code(), "too_early");
            assert!(early.body["error"]["details"]["opens_at"].is_string());
        }

        // A cancelled consultation has no call.
        app.post(
            &format!("/api/v1/consultations/{now_id}/cancel"),
            json!({"reason": "bệnh nhân chuyển viện"}),
        )
        .await
        .expect(200);
        assert_eq!(
            patient
                .post(&path, json!({}))
                .await
                .expect(409)
                .error_code(),
            "not_joinable"
        );
    }
);

both_engines!(
    a_call_through_the_server_is_recorded,
    |app: TestApp| async move {
        let cast = Cast::create(&app).await;
        let id = cast.book_now(&app).await;
        let (specialist, _rural, patient) = people(&app, &cast).await;

        // Garbage never opens a room.
        let mut forged = join(&app, "j1.forged.token").await;
        let refused = until(&mut forged, "error").await;
        assert_eq!(refused["code"], "token_invalid");

        let mut doctor = join(&specialist, &token(&specialist, id).await).await;
        let joined = until(&mut doctor, "joined").await;
        assert_eq!(joined["you"]["id"], format!("c{}", cast.specialist));
        assert_eq!(joined["consultation"], id);
        assert!(joined["ice_servers"].is_array());

        // The first clinician in moved the consultation to in_progress and opened a call.
        eventually("the consultation to start", || {
            let app = app.clone();
            async move {
                let c = app
                    .get(&format!("/api/v1/consultations/{id}"))
                    .await
                    .expect(200);
                (c.body["status"] == "in_progress"
                    && c.body["calls"].as_array()?.len() == 1
                    && c.body["started_at"].is_string())
                .then_some(())
            }
        })
        .await;

        let mut sick = join(&patient, &token(&patient, id).await).await;
        let waiting = until(&mut sick, "waiting").await;
        assert_eq!(waiting["you"]["id"], format!("p{}", cast.patient));
        let seen = until(&mut doctor, "participant-waiting").await;
        assert_eq!(seen["participant"]["id"], format!("p{}", cast.patient));

        // A call message from the waiting room is refused; the socket stays.
        send(
            &mut sick,
            json!({"v": 1, "type": "chat", "text": "cho tôi vào"}),
        )
        .await;
        assert_eq!(until(&mut sick, "error").await["code"], "not_admitted");

        send(
            &mut doctor,
            json!({"v": 1, "type": "admit", "participant": format!("p{}", cast.patient)}),
        )
        .await;
        let admitted = until(&mut sick, "joined").await;
        assert_eq!(
            admitted["participants"][0]["id"],
            format!("c{}", cast.specialist)
        );
        until(&mut doctor, "participant-joined").await;

        send(
            &mut sick,
            json!({"v": 1, "type": "offer", "to": format!("c{}", cast.specialist), "sdp": "v=0"}),
        )
        .await;
        let offer = until(&mut doctor, "offer").await;
        assert_eq!(offer["from"], format!("p{}", cast.patient));
        assert_eq!(offer["sdp"], "v=0");
        send(
            &mut doctor,
            json!({"v": 1, "type": "chat", "text": "Chào bác, bác nghe rõ không?"}),
        )
        .await;
        let chat = until(&mut sick, "chat").await;
        assert_eq!(chat["text"], "Chào bác, bác nghe rõ không?");

        send(&mut sick, json!({"v": 1, "type": "leave"})).await;
        until(&mut doctor, "participant-left").await;
        send(&mut doctor, json!({"v": 1, "type": "leave"})).await;

        // Everyone left: the call's end and duration are recorded.
        let call = eventually("the call to end", || {
            let app = app.clone();
            async move {
                let c = app
                    .get(&format!("/api/v1/consultations/{id}"))
                    .await
                    .expect(200);
                let call = c.body["calls"].as_array()?.first()?.clone();
                call["ended_at"].is_string().then_some(call)
            }
        })
        .await;
        // The duration is the call's own span (within the second the stored instants may lose).
        let at = |field: &str| -> DateTime<Utc> {
            call[field]
                .as_str()
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{field} in {call}"))
        };
        let span = (at("ended_at") - at("started_at")).num_seconds();
        let duration = call["duration_seconds"].as_i64().expect("duration");
        assert!((duration - span).abs() <= 1, "{duration} s for {call}");

        // The clinician's join, the patient's wait and the admission are in the audit trail, filed
        // under the patient.
        let trail = eventually("the audit events", || {
            let app = app.clone();
            async move {
                let r = app
                    .get(&format!(
                        "/api/v1/audit?patient_id={}&limit=500",
                        cast.patient
                    ))
                    .await
                    .expect(200);
                let actions: Vec<String> = r
                    .body
                    .as_array()?
                    .iter()
                    .filter_map(|e| e["action"].as_str().map(str::to_string))
                    .filter(|a| a.starts_with("signaling "))
                    .collect();
                let has = |prefix: &str| actions.iter().any(|a| a.starts_with(prefix));
                // Each event names the account behind the participant.
                let by = |prefix: &str, actor: &str| {
                    r.body.as_array().is_some_and(|events| {
                        events.iter().any(|e| {
                            e["action"].as_str().is_some_and(|a| a.starts_with(prefix))
                                && e["actor"] == actor
                                && e["actor_account_id"].is_i64()
                        })
                    })
                };
                (has("signaling join")
                    && has("signaling wait")
                    && has("signaling admit")
                    && by("signaling join", "bacsi")
                    && by("signaling wait", "benhnhan")
                    && by("signaling admit", "bacsi"))
                .then_some(actions)
            }
        })
        .await;
        assert!(!trail.is_empty());
    }
);

both_engines!(cancelling_closes_the_room, |app: TestApp| async move {
    let cast = Cast::create(&app).await;
    let id = cast.book_now(&app).await;
    let (_specialist, _rural, patient) = people(&app, &cast).await;
    let issued = token(&patient, id).await;
    let mut sick = join(&patient, &issued).await;
    until(&mut sick, "waiting").await;
    app.post(
        &format!("/api/v1/consultations/{id}/cancel"),
        json!({"reason": "bác sĩ bận cấp cứu"}),
    )
    .await
    .expect(200);
    let closed = until(&mut sick, "room-closed").await;
    assert_eq!(closed["reason"], "cancelled");
    // The token issued before the cancellation is still signed and unexpired: refused anyway.
    let mut again = join(&patient, &issued).await;
    assert_eq!(until(&mut again, "error").await["code"], "room_closed");
});
