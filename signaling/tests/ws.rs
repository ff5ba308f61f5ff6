//! The signaling protocol end to end: a real server, real WebSocket clients.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Read, Server, config, start};
use futures::SinkExt;
use serde_json::json;
use telehealth_signaling::protocol::{
    LeftReason, Presence, RoomClosedReason, ServerMessage, WaitingLeftReason,
};
use telehealth_signaling::token::Role;
use telehealth_signaling::{CloseReason, HubConfig, HubStats};
use tokio_tungstenite::tungstenite::Message;

/// A clinician and an admitted patient in consultation `id`.
async fn call(server: &Server, id: i64) -> (common::Client, common::Client) {
    let (mut clinician, _) = server.join(id, "c1").await;
    let (mut patient, greeting) = server.join(id, "p1").await;
    assert!(matches!(greeting, ServerMessage::Waiting { .. }));
    assert!(matches!(
        clinician.recv().await,
        ServerMessage::ParticipantWaiting { .. }
    ));
    clinician
        .send(json!({"type": "admit", "participant": "p1"}))
        .await;
    assert!(matches!(patient.recv().await, ServerMessage::Joined { .. }));
    clinician.recv().await; // waiting-left
    clinician.recv().await; // participant-joined
    (clinician, patient)
}

#[tokio::test]
async fn a_whole_call_from_waiting_room_to_the_end() {
    let server = start(config()).await;
    let (mut c1, joined) = server.join(7, "c1").await;
    match joined {
        ServerMessage::Joined {
            you,
            consultation,
            participants,
            waiting,
            resumed,
            ..
        } => {
            assert_eq!((you.id.as_str(), you.role), ("c1", Role::Clinician));
            assert_eq!(consultation, 7);
            assert!(participants.is_empty() && waiting.is_empty() && !resumed);
        }
        other => panic!("{other:?}"),
    }
    server
        .observer
        .until("call start", |o| o.started(7) == 1)
        .await;

    let (mut p1, waiting) = server.join(7, "p1").await;
    match waiting {
        ServerMessage::Waiting {
            you,
            consultation: 7,
            resumed: false,
            ..
        } => assert_eq!(you.role, Role::Patient),
        other => panic!("{other:?}"),
    }
    match c1.recv().await {
        ServerMessage::ParticipantWaiting { participant } => {
            assert_eq!(participant.id, "p1");
            assert_eq!(participant.name, "Name of p1");
        }
        other => panic!("{other:?}"),
    }
    // Waiting: no call messages yet, but media state is kept.
    p1.send(json!({"type": "offer", "to": "c1", "sdp": "v=0"}))
        .await;
    p1.expect_error("not_admitted").await;
    p1.send(json!({"type": "chat", "text": "hello?"})).await;
    p1.expect_error("not_admitted").await;
    p1.send(
        json!({"type": "media-state", "muted": true, "camera_off": false, "audio_only": false}),
    )
    .await;
    p1.expect_quiet().await;
    c1.expect_quiet().await;

    c1.send(json!({"type": "admit", "participant": "p1"})).await;
    match p1.recv().await {
        ServerMessage::Joined {
            participants,
            waiting,
            resumed: false,
            you,
            ..
        } => {
            assert_eq!(participants.len(), 1);
            assert_eq!(participants[0].id, "c1");
            assert_eq!(participants[0].state, Presence::Connected);
            assert!(waiting.is_empty());
            assert!(you.media.muted, "media state set while waiting is kept");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c1.recv().await,
        ServerMessage::WaitingLeft {
            participant: "p1".into(),
            reason: WaitingLeftReason::Admitted
        }
    );
    match c1.recv().await {
        ServerMessage::ParticipantJoined { participant } => assert_eq!(participant.id, "p1"),
        other => panic!("{other:?}"),
    }

    // Relays carry `from` and reach only the addressee.
    c1.send(json!({"type": "offer", "to": "p1", "sdp": "v=0 offer"}))
        .await;
    assert_eq!(
        p1.recv().await,
        ServerMessage::Offer {
            from: "c1".into(),
            sdp: "v=0 offer".into()
        }
    );
    p1.send(json!({"type": "answer", "to": "c1", "sdp": "v=0 answer"}))
        .await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::Answer {
            from: "p1".into(),
            sdp: "v=0 answer".into()
        }
    );
    p1.send(json!({"type": "ice-candidate", "to": "c1", "candidate": "candidate:1 1 udp 1 10.0.0.1 5000 typ host", "sdp_mid": "0", "sdp_m_line_index": 0}))
        .await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::IceCandidate {
            from: "p1".into(),
            candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host".into(),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0)
        }
    );
    p1.send(json!({"type": "end-of-candidates", "to": "c1"}))
        .await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::EndOfCandidates { from: "p1".into() }
    );
    c1.send(json!({"type": "ice-restart", "to": "p1"})).await;
    assert_eq!(
        p1.recv().await,
        ServerMessage::IceRestart { from: "c1".into() }
    );
    p1.expect_quiet().await;
    c1.expect_quiet().await;

    // Chat goes to everyone admitted, the sender included, with the server's time.
    p1.send(json!({"type": "chat", "text": "xin chào bác sĩ"}))
        .await;
    for client in [&mut c1, &mut p1] {
        match client.recv().await {
            ServerMessage::Chat { from, text, at } => {
                assert_eq!((from.as_str(), text.as_str()), ("p1", "xin chào bác sĩ"));
                let at = chrono::DateTime::parse_from_rfc3339(&at).expect("RFC 3339");
                assert!((Utc::now() - at.to_utc()).num_seconds().abs() < 60);
            }
            other => panic!("{other:?}"),
        }
    }
    // Media state goes to the others only.
    p1.send(json!({"type": "media-state", "muted": false, "camera_off": true, "audio_only": true}))
        .await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::MediaState {
            from: "p1".into(),
            muted: false,
            camera_off: true,
            audio_only: true
        }
    );
    p1.expect_quiet().await;
    p1.send(json!({"type": "ping", "nonce": 18446744073709551615u64}))
        .await;
    assert_eq!(p1.recv().await, ServerMessage::Pong { nonce: u64::MAX });
    assert_eq!(
        server.hub.stats(),
        HubStats {
            rooms: 1,
            participants: 2,
            waiting: 0,
            connections: 2
        }
    );

    // Leaving: the patient, then the clinician ends the call.
    p1.send(json!({"type": "leave"})).await;
    p1.expect_closed(1000).await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantLeft {
            participant: "p1".into(),
            reason: LeftReason::Left
        }
    );
    assert_eq!(server.observer.ended(7), 0, "the clinician is still there");
    c1.send(json!({"type": "leave"})).await;
    c1.expect_closed(1000).await;
    server.observer.until("call end", |o| o.ended(7) == 1).await;
    server
        .observer
        .until("sockets closed", |_| {
            server.hub.stats() == HubStats::default()
        })
        .await;
    assert_eq!(server.observer.started(7), 1);
    let actions: Vec<_> = server
        .observer
        .events()
        .iter()
        .map(|e| (e.action, e.actor.clone(), e.subject.clone(), e.allowed))
        .collect();
    assert_eq!(
        actions,
        vec![
            ("join", Some("c1".into()), None, true),
            ("wait", Some("p1".into()), None, true),
            ("admit", Some("c1".into()), Some("p1".into()), true),
            ("leave", Some("p1".into()), None, true),
            ("leave", Some("c1".into()), None, true),
        ]
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_and_close() {
    let server = start(config()).await;
    let now = Utc::now().timestamp();
    let forged = telehealth_signaling::token::issue(
        &telehealth_signaling::token::key_from_master(b"another key"),
        &telehealth_signaling::token::JoinClaims {
            consultation: 1,
            participant: "c1".into(),
            name: "x".into(),
            role: Role::Clinician,
            opens_at: now - 60,
            closes_at: now + 3600,
            expires_at: now + 600,
            access: common::FIRST_ACCESS,
            issued_at: now,
        },
    );
    let cases = [
        ("not a token".to_string(), "token_invalid"),
        (forged, "token_invalid"),
        (
            server.token_with(1, "p1", now - 3600, now + 3600, now - 1),
            "token_expired",
        ),
        (
            server.token_with(1, "p1", now + 600, now + 7200, now + 900),
            "too_early",
        ),
        (
            server.token_with(1, "p1", now - 7200, now - 10, now - 10),
            "too_late",
        ),
    ];
    for (token, code) in cases {
        let mut client = server.connect().await;
        client.send(json!({"type": "join", "token": token})).await;
        client.expect_error(code).await;
        client.expect_closed(1008).await;
    }
    server
        .observer
        .until("five refusals", |o| o.events().len() == 5)
        .await;
    let events = server.observer.events();
    assert!(
        events
            .iter()
            .all(|e| e.action == "join_refused" && !e.allowed)
    );
    assert_eq!((events[0].consultation, events[0].actor.clone()), (0, None));
    assert_eq!(events[2].actor.as_deref(), Some("p1"));
    assert_eq!(events[2].code, Some("token_expired"));
    assert_eq!(server.hub.stats().rooms, 0);
}

#[tokio::test]
async fn refused_frames_answer_an_error_and_the_socket_stays() {
    let server = start(config()).await;
    let mut client = server.connect().await;
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "malformed_json"),
        (r#"{"v":1,"type":"teleport"}"#.into(), "invalid_message"),
        (r#"{"v":1,"type":"leave","x":1}"#.into(), "invalid_message"),
        (r#"{"v":2,"type":"leave"}"#.into(), "unsupported_version"),
        (r#"{"v":1,"type":"chat","text":"hi"}"#.into(), "not_joined"),
        (r#"{"v":1,"type":"leave"}"#.into(), "not_joined"),
        (
            format!(
                r#"{{"v":1,"type":"chat","text":"{}"}}"#,
                "x".repeat(100_000)
            ),
            "frame_too_large",
        ),
    ];
    for (frame, code) in cases {
        client.send_raw(frame).await;
        client.expect_error(code).await;
    }
    client
        .ws
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .expect("send");
    client.expect_error("invalid_message").await;
    client.expect_quiet().await;

    // Joined: a second join and a too long chat are refused too.
    let (mut c1, _) = server.join(3, "c1").await;
    c1.send(json!({"type": "join", "token": server.token(3, "c1")}))
        .await;
    c1.expect_error("already_joined").await;
    c1.send(json!({"type": "chat", "text": "é".repeat(2001)}))
        .await;
    c1.expect_error("chat_too_long").await;
    c1.send(json!({"type": "offer", "to": "p9", "sdp": "v=0"}))
        .await;
    c1.expect_error("unknown_participant").await;
    c1.send(json!({"type": "admit", "participant": "p9"})).await;
    c1.expect_error("unknown_participant").await;
    c1.send(json!({"type": "remove", "participant": "c1"}))
        .await;
    c1.expect_error("unknown_participant").await;
    c1.expect_quiet().await;
}

#[tokio::test]
async fn a_message_over_one_mebibyte_closes_the_socket() {
    let server = start(config()).await;
    let (mut c1, _) = server.join(4, "c1").await;
    let huge = format!(
        r#"{{"v":1,"type":"chat","text":"{}"}}"#,
        "x".repeat(1024 * 1024 + 10)
    );
    // The server may close before the client has written everything.
    let _ = c1.ws.send(Message::Text(huge.into())).await;
    match c1.read().await {
        Read::Closed(code) => assert!(matches!(code, Some(1009) | None), "{code:?}"),
        Read::Message(m) => panic!("{m:?}"),
    }
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed() {
    let server = start(config()).await;
    let (mut c1, _) = server.join(5, "c1").await;
    for nonce in 0..2000u64 {
        let frame = json!({"v": 1, "type": "ping", "nonce": nonce}).to_string();
        if c1.ws.send(Message::Text(frame.into())).await.is_err() {
            break;
        }
    }
    let before = c1.expect_closed(1008).await;
    let pongs = before
        .iter()
        .filter(|m| matches!(m, ServerMessage::Pong { .. }))
        .count();
    let limited = before
        .iter()
        .filter(|m| matches!(m, ServerMessage::Error { code, .. } if code == "rate_limited"))
        .count();
    // The burst of 200 (the join took one) is served before anything is refused.
    assert!(pongs >= 199, "the burst is served: {pongs}");
    assert!(limited >= 50, "{limited}");
    assert!(
        matches!(before.last(), Some(ServerMessage::Error { code, .. }) if code == "rate_limited")
    );
}

#[tokio::test]
async fn only_clinicians_admit_deny_and_remove() {
    let server = start(config()).await;
    let (mut c1, mut p1) = call(&server, 8).await;
    let (_p2, _) = server.join(8, "p2").await;
    c1.recv().await; // participant-waiting
    for message in [
        json!({"type": "admit", "participant": "p2"}),
        json!({"type": "deny", "participant": "p2"}),
        json!({"type": "remove", "participant": "c1"}),
    ] {
        p1.send(message).await;
        p1.expect_error("not_permitted").await;
    }
    p1.expect_quiet().await;
    c1.expect_quiet().await;
    let refused: Vec<_> = server
        .observer
        .events()
        .into_iter()
        .filter(|e| !e.allowed)
        .map(|e| (e.action, e.code))
        .collect();
    assert_eq!(
        refused,
        vec![
            ("admit", Some("not_permitted")),
            ("deny", Some("not_permitted")),
            ("remove", Some("not_permitted"))
        ]
    );
}

#[tokio::test]
async fn deny_and_remove_close_the_socket() {
    let server = start(config()).await;
    let (mut c1, mut p1) = call(&server, 9).await;
    let (mut g1, _) = server.join(9, "g1").await;
    c1.recv().await; // participant-waiting
    c1.send(json!({"type": "deny", "participant": "g1"})).await;
    assert_eq!(g1.recv().await, ServerMessage::Denied);
    g1.expect_closed(1000).await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::WaitingLeft {
            participant: "g1".into(),
            reason: WaitingLeftReason::Denied
        }
    );
    c1.send(json!({"type": "admit", "participant": "g1"})).await;
    c1.expect_error("unknown_participant").await;

    c1.send(json!({"type": "remove", "participant": "p1"}))
        .await;
    assert_eq!(p1.recv().await, ServerMessage::Removed);
    p1.expect_closed(1000).await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantLeft {
            participant: "p1".into(),
            reason: LeftReason::Removed
        }
    );
    c1.expect_quiet().await;
    assert_eq!(server.hub.stats().participants, 1);
    let actions: Vec<_> = server
        .observer
        .events()
        .into_iter()
        .filter(|e| e.subject.is_some())
        .map(|e| (e.action, e.subject, e.allowed))
        .collect();
    assert!(actions.contains(&("deny", Some("g1".into()), true)));
    assert!(actions.contains(&("remove", Some("p1".into()), true)));
}

#[tokio::test]
async fn the_seventh_participant_finds_the_room_full() {
    let server = start(config()).await;
    let (mut c1, _) = server.join(10, "c1").await;
    let mut others = Vec::new();
    for i in 1..=5 {
        others.push(server.join(10, &format!("p{i}")).await.0);
    }
    let mut seventh = server.connect().await;
    seventh
        .send(json!({"type": "join", "token": server.token(10, "g7")}))
        .await;
    seventh.expect_error("room_full").await;
    seventh.expect_closed(1008).await;
    for _ in 1..=5 {
        assert!(matches!(
            c1.recv().await,
            ServerMessage::ParticipantWaiting { .. }
        ));
    }
    c1.expect_quiet().await;
    let expected = HubStats {
        rooms: 1,
        participants: 6,
        waiting: 5,
        connections: 6,
    };
    server
        .observer
        .until("the refused socket released", |_| {
            server.hub.stats() == expected
        })
        .await;
}

#[tokio::test]
async fn a_dropped_participant_resumes_within_the_grace_period() {
    let server = start(config()).await;
    let (mut c1, p1) = call(&server, 11).await;
    drop(p1);
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantReconnecting {
            participant: "p1".into()
        }
    );
    // A fresh token of the same participant takes the place back, still admitted.
    let (_p1, greeting) = server.join(11, "p1").await;
    match greeting {
        ServerMessage::Joined {
            resumed,
            participants,
            ..
        } => {
            assert!(resumed);
            assert_eq!(participants[0].id, "c1");
        }
        other => panic!("admission is kept: {other:?}"),
    }
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantReconnected {
            participant: "p1".into()
        }
    );
    c1.expect_quiet().await;
    assert_eq!(server.observer.ended(11), 0);
    assert_eq!(server.hub.stats().participants, 2);
}

#[tokio::test]
async fn the_grace_period_expires_and_the_call_ends() {
    let server = start(HubConfig {
        grace: Duration::from_millis(300),
        ..config()
    })
    .await;
    let (mut c1, p1) = call(&server, 12).await;
    // The reconnecting participant is shown as such to someone joining meanwhile.
    drop(p1);
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantReconnecting {
            participant: "p1".into()
        }
    );
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantLeft {
            participant: "p1".into(),
            reason: LeftReason::Timeout
        }
    );
    assert_eq!(server.observer.ended(12), 0);
    drop(c1);
    server
        .observer
        .until("call end", |o| o.ended(12) == 1)
        .await;
    server
        .observer
        .until("room gone", |_| server.hub.stats() == HubStats::default())
        .await;
    assert!(
        server
            .observer
            .events()
            .iter()
            .any(|e| e.action == "timeout" && e.actor.as_deref() == Some("p1"))
    );
}

#[tokio::test]
async fn a_reconnecting_participant_is_listed_as_such() {
    let server = start(config()).await;
    let (mut c1, p1) = call(&server, 13).await;
    drop(p1);
    c1.recv().await; // participant-reconnecting
    let (_c2, joined) = server.join(13, "c2").await;
    match joined {
        ServerMessage::Joined { participants, .. } => {
            let p1 = participants
                .iter()
                .find(|p| p.id == "p1")
                .expect("p1 listed");
            assert_eq!(p1.state, Presence::Reconnecting);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.observer.started(13),
        1,
        "a second clinician starts nothing"
    );
}

#[tokio::test]
async fn a_second_socket_replaces_the_first() {
    let server = start(config()).await;
    let (mut c1, mut p1) = call(&server, 14).await;
    let (mut p1_again, greeting) = server.join(14, "p1").await;
    assert!(matches!(
        greeting,
        ServerMessage::Joined { resumed: true, .. }
    ));
    p1.expect_error("replaced").await;
    p1.expect_closed(4000).await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantReconnected {
            participant: "p1".into()
        }
    );
    // The new socket works; the old one's end does not start a grace period.
    c1.send(json!({"type": "offer", "to": "p1", "sdp": "v=0"}))
        .await;
    assert!(matches!(p1_again.recv().await, ServerMessage::Offer { .. }));
    c1.expect_quiet().await;
    assert_eq!(server.hub.stats().participants, 2);
}

#[tokio::test]
async fn close_room_tells_everyone_and_ends_the_call() {
    let server = start(config()).await;
    let (mut c1, mut p1) = call(&server, 15).await;
    let (mut g1, _) = server.join(15, "g1").await;
    server.hub.close_room(15, CloseReason::Cancelled);
    for client in [&mut c1, &mut p1, &mut g1] {
        let before = client.expect_closed(1000).await;
        assert_eq!(
            before.last(),
            Some(&ServerMessage::RoomClosed {
                reason: RoomClosedReason::Cancelled
            })
        );
    }
    server
        .observer
        .until("call end", |o| o.ended(15) == 1)
        .await;
    assert_eq!(server.hub.stats().rooms, 0);
    server.hub.close_room(15, CloseReason::Rescheduled); // nothing left: a no-op
    // A token issued before the cancellation is still signed and in its window: refused.
    let mut late = server.connect().await;
    late.send(json!({"type": "join", "token": server.token(15, "p1")}))
        .await;
    late.expect_error("room_closed").await;
    late.expect_closed(1008).await;
    assert_eq!(server.hub.stats().rooms, 0);
}

#[tokio::test]
async fn a_socket_that_does_not_join_in_time_is_closed() {
    let server = start(HubConfig {
        join_timeout: Duration::from_millis(200),
        ..config()
    })
    .await;
    let mut client = server.connect().await;
    client.expect_closed(1008).await;
    server
        .observer
        .until("connection released", |_| {
            server.hub.stats().connections == 0
        })
        .await;
}

#[tokio::test]
async fn a_full_node_answers_server_busy() {
    let server = start(HubConfig {
        max_connections: 1,
        ..config()
    })
    .await;
    let (_c1, _) = server.join(16, "c1").await;
    let mut second = server.connect().await;
    second.expect_error("server_busy").await;
    second.expect_closed(1013).await;

    let server = start(HubConfig {
        max_rooms: 1,
        ..config()
    })
    .await;
    let (_c1, _) = server.join(17, "c1").await;
    let mut other_room = server.connect().await;
    other_room
        .send(json!({"type": "join", "token": server.token(18, "c2")}))
        .await;
    other_room.expect_error("server_busy").await;
    other_room.expect_closed(1013).await;
    // The same room still has space.
    let (_p1, _) = server.join(17, "p1").await;
}

#[tokio::test]
async fn a_silent_socket_is_closed_and_its_place_kept() {
    let server = start(HubConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..config()
    })
    .await;
    let (mut c1, _) = server.join(19, "c1").await;
    // A client that answers pings stays: tokio-tungstenite answers while it reads.
    let (mut p1, _) = server.join(19, "p1").await;
    c1.recv().await; // participant-waiting
    // p1 stops reading (so it answers no ping); c1 keeps reading.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        c1.recv().await,
        ServerMessage::ParticipantReconnecting {
            participant: "p1".into()
        }
    );
    let _ = p1.ws.close(None).await;
    c1.expect_quiet().await;
}

#[tokio::test]
async fn a_participant_who_does_not_read_is_disconnected_not_waited_for() {
    let server = start(HubConfig {
        rate_per_sec: 1_000_000,
        rate_burst: 1_000_000,
        ..config()
    })
    .await;
    let (c1, _p1_never_reads) = call(&server, 20).await;
    let (mut sink, mut stream) = futures::StreamExt::split(c1.ws);
    let reader = tokio::spawn(async move {
        while let Some(Ok(frame)) = futures::StreamExt::next(&mut stream).await {
            if let Message::Text(text) = frame {
                let message = telehealth_signaling::protocol::parse_server(text.as_str())
                    .expect("server message");
                if message
                    == (ServerMessage::ParticipantReconnecting {
                        participant: "p1".into(),
                    })
                {
                    return;
                }
            }
        }
        panic!("c1's socket ended");
    });
    let offer =
        json!({"v": 1, "type": "offer", "to": "p1", "sdp": "a".repeat(32 * 1024)}).to_string();
    // Kernel buffers take some megabytes first; then the outbox fills and p1 is dropped.
    for _ in 0..20_000 {
        if reader.is_finished() {
            break;
        }
        sink.send(Message::Text(offer.clone().into()))
            .await
            .expect("c1 is never held up");
    }
    reader.await.expect("p1 was disconnected");
}
