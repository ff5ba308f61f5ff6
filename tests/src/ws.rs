//! A signaling client for the tests: join a consultation's room over a real WebSocket, send
//! frames, and read what the server answers (with a 10-second limit, so a missing message fails
//! the test instead of hanging it).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::TestApp;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A join token of `who` for `consultation` (`body`: `{}` or a guest invitation).
pub async fn token(who: &TestApp, consultation: i64, body: Value) -> String {
    let r = who
        .post(
            &format!("/api/v1/consultations/{consultation}/join-token"),
            body,
        )
        .await
        .expect(201);
    r.body["token"].as_str().expect("token").to_string()
}

/// Opens `/signaling` on `app` and sends `join` with `token`.
pub async fn join(app: &TestApp, token: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/signaling", app.addr()))
        .await
        .expect("WebSocket upgrade at /signaling");
    send(&mut ws, json!({"v": 1, "type": "join", "token": token})).await;
    ws
}

pub async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// What a socket reads: a message, or its close code.
#[derive(Debug)]
pub enum Read {
    Message(Value),
    Closed(Option<u16>),
}

pub async fn read(ws: &mut Ws) -> Read {
    let next = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    return Read::Message(serde_json::from_str(&text).expect("server sends JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Read::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Read::Closed(None),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("the server answered within 10 s")
}

/// The next message of `kind`, skipping others.
pub async fn until(ws: &mut Ws, kind: &str) -> Value {
    loop {
        match read(ws).await {
            Read::Message(v) if v["type"] == kind => return v,
            Read::Message(_) => {}
            Read::Closed(code) => panic!("closed ({code:?}) while waiting for {kind}"),
        }
    }
}

/// The first answer to a join: `joined`, `waiting`, or the `error` code of a refusal (then the
/// socket must close with 1008 or 1013).
pub async fn answer(ws: &mut Ws) -> String {
    match read(ws).await {
        Read::Message(v) if v["type"] == "error" => {
            let code = v["code"].as_str().expect("code").to_string();
            match read(ws).await {
                Read::Closed(Some(1008)) | Read::Closed(Some(1013)) => code,
                other => panic!("a refused join closes the socket: {other:?}"),
            }
        }
        Read::Message(v) => v["type"].as_str().expect("type").to_string(),
        Read::Closed(code) => panic!("closed ({code:?}) instead of answering the join"),
    }
}

/// Joins with `token` and returns the first answer, for joins expected to be refused.
pub async fn try_join(app: &TestApp, token: &str) -> String {
    answer(&mut join(app, token).await).await
}

/// Expects the socket to be closed with `code`, returning the messages before.
pub async fn closed(ws: &mut Ws, code: u16) -> Vec<Value> {
    let mut before = Vec::new();
    loop {
        match read(ws).await {
            Read::Message(v) => before.push(v),
            Read::Closed(got) => {
                assert_eq!(got, Some(code), "read before the close: {before:?}");
                return before;
            }
        }
    }
}
