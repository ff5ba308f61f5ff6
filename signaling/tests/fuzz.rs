//! Arbitrary frames against a live, joined connection: every frame gets an answer or is
//! relayed, every answer is a valid server message, and the socket stays open (nothing here
//! breaks an abuse rule: the rate is raised and a valid ping comes often enough).

mod common;

use common::{config, start};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use telehealth_signaling::HubConfig;
use telehealth_signaling::protocol::{ClientMessage, ServerMessage, parse, parse_server};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn arbitrary_frames_never_kill_a_live_connection() {
    let server = start(HubConfig {
        rate_per_sec: 1_000_000,
        rate_burst: 1_000_000,
        ..config()
    })
    .await;
    let (client, _) = server.join(1, "c1").await;
    let (mut sink, mut stream) = client.ws.split();
    let reader = tokio::spawn(async move {
        let mut messages = Vec::new();
        while let Some(frame) = stream.next().await {
            match frame {
                Ok(Message::Text(text)) => {
                    let message = parse_server(text.as_str()).expect("a valid server message");
                    let last = matches!(message, ServerMessage::Pong { nonce: u64::MAX });
                    messages.push(message);
                    if last {
                        return (messages, None);
                    }
                }
                Ok(Message::Close(frame)) => return (messages, Some(frame)),
                Ok(_) => {}
                Err(e) => panic!("socket error: {e}"),
            }
        }
        panic!("the socket ended");
    });

    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let seeds = [
        r#"{"v":1,"type":"offer","to":"p2","sdp":"v=0"}"#,
        r#"{"v":1,"type":"chat","text":"hello"}"#,
        r#"{"v":1,"type":"media-state","muted":true,"camera_off":false,"audio_only":false}"#,
        r#"{"v":1,"type":"ice-candidate","to":"c1","candidate":"c","sdp_m_line_index":3}"#,
        r#"{"v":1,"type":"admit","participant":"p1"}"#,
        r#"{"v":1,"type":"remove","participant":"c1"}"#,
        r#"{"v":1,"type":"join","token":"j1.x.y"}"#,
        r#"{"v":1,"type":"ping","nonce":5}"#,
    ];
    let alphabet = b"{}[]\":,0123456789-eE.truefalsnul \\u00ffvtype";
    let mut sent = 0;
    for i in 0..3000u32 {
        if i % 20 == 0 {
            // Resets the count of refused frames in a row.
            let ping = json!({"v": 1, "type": "ping", "nonce": i}).to_string();
            sink.send(Message::Text(ping.into())).await.expect("send");
            continue;
        }
        let mut bytes: Vec<u8> = if i % 3 == 0 {
            (0..(next() % 300)).map(|_| (next() % 256) as u8).collect()
        } else {
            seeds[(next() % seeds.len() as u64) as usize]
                .as_bytes()
                .to_vec()
        };
        for _ in 0..(next() % 6) {
            if bytes.is_empty() {
                break;
            }
            let at = (next() as usize) % bytes.len();
            match next() % 3 {
                0 => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        let frame = if i % 7 == 0 {
            Message::Binary(bytes.into())
        } else {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // Leaving is allowed to close the socket; it is not what this test is about.
            if matches!(parse(&text), Ok(ClientMessage::Leave)) {
                continue;
            }
            Message::Text(text.into())
        };
        sink.send(frame).await.expect("the socket is still open");
        sent += 1;
    }
    let last = json!({"v": 1, "type": "ping", "nonce": u64::MAX}).to_string();
    sink.send(Message::Text(last.into())).await.expect("send");
    let (messages, closed) = reader.await.expect("reader");
    assert!(closed.is_none(), "closed: {closed:?}");
    let errors = messages
        .iter()
        .filter(|m| matches!(m, ServerMessage::Error { .. }))
        .count();
    let others = messages.len() - errors;
    // Most frames are refused, some are accepted (chat echoes, pongs).
    assert!(errors > sent / 2, "{errors} errors for {sent} frames");
    assert!(others > 150, "{others}");
    assert_eq!(server.hub.stats().participants, 1);
}
