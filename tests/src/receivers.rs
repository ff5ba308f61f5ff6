//! Real receivers on loopback for the messages the server sends: an HTTP server standing in for
//! an SMS gateway or Zalo (it records each request and answers from a script), and a real SMTP
//! server (Python's `aiosmtpd`, installed by `tests/run.sh`) that hands each email over as
//! Python's own `email` parser reads it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// One request an [`HttpReceiver`] got.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// The body as sent (what a signature covers).
    pub raw: String,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An answer: an HTTP status and a JSON body.
pub type Answer = (u16, Value);

/// An HTTP server on loopback that records every POST and answers with the next scripted answer,
/// or its standing one once the script is out.
#[derive(Clone)]
pub struct HttpReceiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    standing: Arc<Mutex<Answer>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl HttpReceiver {
    /// Starts one answering `standing` to every request.
    pub async fn start(standing: Answer) -> HttpReceiver {
        HttpReceiver::start_slow(standing, Duration::ZERO).await
    }

    /// [`HttpReceiver::start`], taking `delay` over each answer (a request is recorded when it
    /// arrives, so a sender killed meanwhile has been seen to send).
    pub async fn start_slow(standing: Answer, delay: Duration) -> HttpReceiver {
        use warp::Filter;
        let requests: Arc<Mutex<Vec<Request>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let standing = Arc::new(Mutex::new(standing));
        let (r, s, a) = (requests.clone(), script.clone(), standing.clone());
        let route = warp::post()
            .and(warp::path::full())
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |path: warp::path::FullPath,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let (r, s, a) = (r.clone(), s.clone(), a.clone());
                    async move {
                        r.lock().expect("requests").push(Request {
                            path: path.as_str().to_owned(),
                            headers: headers
                                .iter()
                                .map(|(n, v)| {
                                    (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect(),
                            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                            raw: String::from_utf8_lossy(&body).into_owned(),
                        });
                        let (status, body) = s
                            .lock()
                            .expect("script")
                            .pop_front()
                            .unwrap_or_else(|| a.lock().expect("standing").clone());
                        tokio::time::sleep(delay).await;
                        warp::reply::with_status(
                            warp::reply::json(&body),
                            warp::http::StatusCode::from_u16(status).expect("a status"),
                        )
                    }
                },
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let addr = listener.local_addr().expect("its address");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move {
                    let _ = stop_rx.await;
                })
                .run(),
        );
        HttpReceiver {
            addr,
            requests,
            script,
            standing,
            _stop: Arc::new(stop_tx),
        }
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The next requests get these answers, in order.
    pub fn answer(&self, answers: impl IntoIterator<Item = Answer>) {
        self.script.lock().expect("script").extend(answers);
    }

    /// Every request after the script gets this.
    pub fn always(&self, answer: Answer) {
        *self.standing.lock().expect("standing") = answer;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }
}

/// One email the SMTP server accepted, as Python's `email` parser read it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: Option<String>,
    pub attachments: Vec<Attachment>,
}

#[derive(Clone, Debug, serde::Deserialize)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub content: String,
}

/// The interpreter that has `aiosmtpd`: the test command's virtual environment
/// (`TEST_PYTHON`), else `python3`.
fn python() -> String {
    std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// A real SMTP server (aiosmtpd) on loopback, stopped when dropped.
pub struct SmtpReceiver {
    port: u16,
    out: tempfile::TempDir,
    child: tokio::process::Child,
}

impl SmtpReceiver {
    pub async fn start() -> SmtpReceiver {
        let out = tempfile::tempdir().expect("a folder for received mail");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/smtp_receiver.py");
        // aiosmtpd binds the port itself: take a free one and hand it over (another process
        // taking it in between fails the start below, loudly).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut child = tokio::process::Command::new(python())
            .arg(&script)
            .arg(port.to_string())
            .arg(out.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("python starts (tests/run.sh installs aiosmtpd in its virtual environment)");
        let stdout = child.stdout.take().expect("its stdout");
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP receiver starts within 20 s")
            .expect("its stdout reads");
        assert_eq!(
            ready.as_deref(),
            Some("ready"),
            "the SMTP receiver did not start: is aiosmtpd installed for {}? (tests/run.sh installs it)",
            python()
        );
        SmtpReceiver { port, out, child }
    }

    /// `smtp://127.0.0.1:PORT`, plain SMTP on loopback.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The emails accepted so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.out.path())
            .expect("the mail folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| {
                serde_json::from_slice(&std::fs::read(f).expect("a mail file")).expect("mail JSON")
            })
            .collect()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
