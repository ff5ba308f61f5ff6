//! A TCP proxy in front of the test PostgreSQL, so a test can cut a running server off from its
//! database the ways networks and database servers fail, without touching the shared server.
//!
//! - [`Mode::Down`] closes every connection and refuses new ones, as a stopped or restarted
//!   PostgreSQL does;
//! - [`Mode::BlackHole`] keeps every connection open and accepts new ones, but passes no byte
//!   either way, as a network that drops packets does: a query sent on an open connection gets
//!   no answer, and neither does a new connection's handshake;
//! - [`Mode::Forward`] passes bytes again; connections held open through a black hole carry on
//!   where they stopped (what was sent meanwhile waited in the proxy's socket buffers).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Forward,
    BlackHole,
    Down,
}

/// A running proxy; dropping it stops it and closes its connections.
pub struct TcpProxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy on a free loopback port in front of the host and port `url` names (a
    /// `postgres://` URL such as [`crate::postgres_admin_url`]).
    pub async fn in_front_of(url: &str) -> TcpProxy {
        let (_, host_port, _) = split_authority(url);
        let upstream = tokio::net::lookup_host(host_port.to_string())
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("the database address {host_port} does not resolve"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, watching) = watch::channel(Mode::Forward);
        let task = tokio::spawn(serve(listener, addr, upstream, watching));
        TcpProxy { addr, mode, task }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the mode; connections already open follow at once.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_through(&self, url: &str) -> String {
        let (before, _, after) = split_authority(url);
        format!("{before}{}{after}", self.addr)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Down);
        self.task.abort();
    }
}

/// `scheme://user@` / `host:port` / `/path?query` of a URL.
fn split_authority(url: &str) -> (&str, &str, &str) {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let host = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    (&url[..host], &url[host..end], &url[end..])
}

/// Accepts connections while the mode is not [`Mode::Down`]; while it is, nothing listens on the
/// port, so connecting is refused (the port is bound again on the way back).
async fn serve(
    first: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
) {
    let mut first = Some(first);
    loop {
        while *mode.borrow_and_update() == Mode::Down {
            first = None;
            if mode.changed().await.is_err() {
                return;
            }
        }
        let listener = match first.take() {
            Some(listener) => listener,
            None => TcpListener::bind(addr)
                .await
                .unwrap_or_else(|e| panic!("the proxy cannot listen on {addr} again: {e}")),
        };
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    if let Ok((client, _)) = accepted {
                        tokio::spawn(pipe(client, upstream, mode.clone()));
                    }
                }
                changed = mode.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if *mode.borrow() == Mode::Down {
                        break;
                    }
                }
            }
        }
    }
}

/// One client connection: connects upstream once bytes may pass, then copies both ways until
/// either side closes or the proxy goes down.
async fn pipe(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if !until_forwarding(&mut mode).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = copy(client_read, server_write, mode.clone()) => {}
        () = copy(server_read, client_write, mode) => {}
    }
}

async fn copy(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut mode: watch::Receiver<Mode>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if !until_forwarding(&mut mode).await {
            return;
        }
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            },
            // A read is cancel-safe: nothing read is lost when the mode changes first.
            _ = mode.changed() => {}
        }
    }
}

/// Waits while the proxy is a black hole; true once it forwards, false when it is down.
async fn until_forwarding(mode: &mut watch::Receiver<Mode>) -> bool {
    loop {
        match *mode.borrow_and_update() {
            Mode::Forward => return true,
            Mode::Down => return false,
            Mode::BlackHole => {}
        }
        if mode.changed().await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_authority;

    #[test]
    fn the_authority_is_found_with_and_without_user_and_path() {
        assert_eq!(
            split_authority("postgres://postgres@127.0.0.1:5432/th_test_1?sslmode=disable"),
            (
                "postgres://postgres@",
                "127.0.0.1:5432",
                "/th_test_1?sslmode=disable"
            )
        );
        assert_eq!(
            split_authority("postgres://u:p@w@db:5433"),
            ("postgres://u:p@w@", "db:5433", "")
        );
    }
}
