//! Join tokens follow the consultation: what the hub does with the platform's answer at each join
//! (access version, denials and removals, moved windows, an unreachable database), and how it
//! removes people whose access the platform took away. Real server, real WebSocket clients; the
//! platform's records are kept in memory here (the server's own, on both database engines, are
//! tested in `tests/tests/join_revocation.rs`).

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use common::{FIRST_ACCESS, MemoryAdmission, Server, config, role_of, start, start_with};
use serde_json::json;
use telehealth_signaling::RoomState;
use telehealth_signaling::protocol::{LeftReason, RevokeReason, ServerMessage};
use telehealth_signaling::token::JoinClaims;

/// A clinician and an admitted patient in consultation `id`.
async fn call(server: &Server, id: i64) -> (common::Client, common::Client) {
    let (mut clinician, _) = server.join(id, "c1").await;
    let (mut patient, _) = server.join(id, "p1").await;
    clinician.recv().await; // participant-waiting
    clinician
        .send(json!({"type": "admit", "participant": "p1"}))
        .await;
    assert!(matches!(patient.recv().await, ServerMessage::Joined { .. }));
    clinician.recv().await; // waiting-left
    clinician.recv().await; // participant-joined
    (clinician, patient)
}

/// Joins with `token` and expects the refusal `code` and the close that follows.
async fn refused(server: &Server, token: &str, code: &str, close: u16) {
    let mut client = server.connect().await;
    client.send(json!({"type": "join", "token": token})).await;
    client.expect_error(code).await;
    client.expect_closed(close).await;
}

/// Claims for `participant` of `consultation`, valid now, issued `issued_after` seconds from now.
fn claims(consultation: i64, participant: &str, access: i64, issued_after: i64) -> JoinClaims {
    let now = Utc::now().timestamp();
    JoinClaims {
        consultation,
        participant: participant.into(),
        name: format!("Name of {participant}"),
        role: role_of(participant),
        opens_at: now - 60,
        closes_at: now + 3600,
        expires_at: now + 600,
        access,
        issued_at: now + issued_after,
    }
}

#[tokio::test]
async fn a_denied_guest_and_a_removed_patient_stay_refused_with_their_tokens_also_after_a_restart()
{
    let admission = Arc::new(MemoryAdmission::default());
    let server = start_with(config(), admission.clone()).await;
    let (mut c1, mut p1) = call(&server, 30).await;
    let guest_token = server.token(30, "g1");
    let patient_token = server.token(30, "p1");
    let mut g1 = server.connect().await;
    g1.send(json!({"type": "join", "token": guest_token})).await;
    assert!(matches!(g1.recv().await, ServerMessage::Waiting { .. }));
    c1.recv().await; // participant-waiting

    c1.send(json!({"type": "deny", "participant": "g1"})).await;
    assert_eq!(g1.recv().await, ServerMessage::Denied);
    g1.expect_closed(1000).await;
    c1.send(json!({"type": "remove", "participant": "p1"}))
        .await;
    assert_eq!(p1.recv().await, ServerMessage::Removed);
    p1.expect_closed(1000).await;

    // The same tokens, still signed and in their window, no longer join.
    refused(&server, &guest_token, "token_revoked", 1008).await;
    refused(&server, &patient_token, "token_revoked", 1008).await;
    assert_eq!(
        admission.revocations(),
        2,
        "the platform was told to keep both"
    );

    // Another node, or this one after a restart: no memory of the room, only the platform's.
    let restarted = start_with(config(), admission.clone()).await;
    refused(&restarted, &guest_token, "token_revoked", 1008).await;
    refused(&restarted, &patient_token, "token_revoked", 1008).await;
    // A token issued after the removal lets the patient knock again: back to the waiting room.
    let mut again = restarted.connect().await;
    let fresh = restarted.token_of(claims(30, "p1", FIRST_ACCESS, 2));
    again.send(json!({"type": "join", "token": fresh})).await;
    assert!(matches!(again.recv().await, ServerMessage::Waiting { .. }));
    // Every refusal is in the audit trail with its code.
    restarted
        .observer
        .until("the refusals reported", |o| {
            o.events()
                .iter()
                .filter(|e| e.action == "join_refused" && e.code == Some("token_revoked"))
                .count()
                == 2
        })
        .await;
}

#[tokio::test]
async fn a_denial_is_refused_on_this_node_before_the_platform_has_kept_it() {
    let admission = Arc::new(MemoryAdmission::default());
    // The platform's write has not landed yet: only the hub's memory can refuse.
    admission.forget.store(true, Ordering::Relaxed);
    let server = start_with(config(), admission.clone()).await;
    let (mut c1, _) = server.join(31, "c1").await;
    let guest_token = server.token(31, "g7");
    let mut g7 = server.connect().await;
    g7.send(json!({"type": "join", "token": guest_token})).await;
    assert!(matches!(g7.recv().await, ServerMessage::Waiting { .. }));
    c1.recv().await; // participant-waiting
    c1.send(json!({"type": "deny", "participant": "g7"})).await;
    g7.expect_closed(1000).await;
    refused(&server, &guest_token, "token_revoked", 1008).await;
    assert_eq!(admission.revocations(), 0);
}

#[tokio::test]
async fn a_token_the_platform_no_longer_stands_behind_is_refused_with_its_reason() {
    let server = start(config()).await;
    let admission = &server.admission;
    let old = server.token(32, "p1");

    // Reassigned (or otherwise changed who may join): the access version moved on.
    admission.set(32, |a| a.version = FIRST_ACCESS + 1);
    refused(&server, &old, "token_revoked", 1008).await;
    // A token of the current version joins.
    let current = server.token_of(claims(32, "p1", FIRST_ACCESS + 1, 0));
    let mut p1 = server.connect().await;
    p1.send(json!({"type": "join", "token": current})).await;
    assert!(matches!(p1.recv().await, ServerMessage::Waiting { .. }));
    p1.send(json!({"type": "leave"})).await;
    p1.expect_closed(1000).await;

    let current = server.token_of(claims(32, "c9", FIRST_ACCESS + 1, 0));
    admission.set(32, |a| a.listed = false);
    refused(&server, &current, "token_revoked", 1008).await;
    admission.set(32, |a| {
        a.listed = true;
        a.state = RoomState::Cancelled;
    });
    refused(&server, &current, "room_closed", 1008).await;
    admission.set(32, |a| a.state = RoomState::Ended);
    refused(&server, &current, "room_closed", 1008).await;

    // Moved to another time: the consultation's current window decides as well as the token's.
    let now = Utc::now().timestamp();
    admission.set(32, |a| {
        a.state = RoomState::Open;
        a.opens_at = now + 3600;
        a.closes_at = now + 7200;
    });
    refused(&server, &current, "too_early", 1008).await;
    admission.set(32, |a| {
        a.opens_at = now - 7200;
        a.closes_at = now - 60;
    });
    refused(&server, &current, "too_late", 1008).await;
    assert_eq!(server.hub.stats().rooms, 0, "no refused join opened a room");
}

#[tokio::test]
async fn joins_are_refused_while_the_platform_cannot_answer() {
    let server = start(config()).await;
    server.admission.down.store(true, Ordering::Relaxed);
    refused(&server, &server.token(33, "c1"), "unavailable", 1013).await;
    assert_eq!(server.hub.stats().rooms, 0);
    server.admission.down.store(false, Ordering::Relaxed);
    server.join(33, "c1").await;
}

#[tokio::test]
async fn the_platform_is_asked_once_per_join_and_never_per_message() {
    let server = start(config()).await;
    let (mut c1, mut p1) = call(&server, 34).await;
    let asked = server.admission.checks.load(Ordering::Relaxed);
    assert_eq!(asked, 2, "one check for each of the two joins");
    for i in 0..20 {
        p1.send(json!({"type": "chat", "text": format!("tin nhắn {i}")}))
            .await;
        c1.send(json!({"type": "offer", "to": "p1", "sdp": "v=0"}))
            .await;
    }
    for _ in 0..20 {
        assert!(matches!(p1.recv().await, ServerMessage::Chat { .. }));
    }
    assert_eq!(server.admission.checks.load(Ordering::Relaxed), asked);
}

#[tokio::test]
async fn revoking_removes_whoever_lost_access_and_tells_the_others() {
    let server = start(config()).await;
    let (mut c1, mut p1) = call(&server, 35).await;
    let (mut c2, _) = server.join(35, "c2").await;
    c1.recv().await; // participant-joined c2
    p1.recv().await; // participant-joined c2
    let old_token = server.token(35, "c1");

    // The consultation moved from c1 to c2.
    let removed = server.hub.revoke_participants(
        35,
        |participant, _| participant != "c1",
        RevokeReason::Reassigned,
    );
    assert_eq!(removed, 1);
    let before_close = c1.expect_closed(1000).await;
    assert_eq!(
        before_close.last(),
        Some(&ServerMessage::AccessRevoked {
            reason: RevokeReason::Reassigned
        })
    );
    for other in [&mut p1, &mut c2] {
        assert_eq!(
            other.recv().await,
            ServerMessage::ParticipantLeft {
                participant: "c1".into(),
                reason: LeftReason::Revoked
            }
        );
    }
    // Refused on this node at once, whatever the platform's record says yet.
    refused(&server, &old_token, "token_revoked", 1008).await;
    // The call goes on with the new clinician.
    p1.send(json!({"type": "chat", "text": "chào bác sĩ mới"}))
        .await;
    assert!(matches!(c2.recv().await, ServerMessage::Chat { .. }));
    assert_eq!(server.observer.ended(35), 0);
    assert!(
        server
            .observer
            .events()
            .iter()
            .any(|e| e.action == "revoked" && e.actor.as_deref() == Some("c1"))
    );
    // Revoking nobody changes nothing.
    assert_eq!(
        server
            .hub
            .revoke_participants(35, |_, _| true, RevokeReason::Reassigned),
        0
    );
    c2.expect_quiet().await;
}
