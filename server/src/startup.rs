//! Building and running the application: what `telehealth serve` runs and what tests start.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::routes::{Router, RouterError, route_table};
use crate::audit::AuditLog;
use crate::config::Settings;
use crate::journal;
use crate::scheduling::booking;
use crate::state::AppState;
use crate::storage::{Db, PoolSettings, StorageError};
use crate::tls::TlsError;
use crate::{http, telemetry};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Routes(#[from] RouterError),
    #[error("visit-link key {path}: {reason}")]
    VisitLinkKey { path: String, reason: String },
    #[error("note signing keys' key-encryption key {path}: {reason}")]
    NotesKek { path: String, reason: String },
    #[error(transparent)]
    Passkeys(#[from] crate::notes::passkeys::RelyingPartyError),
    #[error("recording the legacy note signing keys: {0}")]
    LegacyKeys(#[from] crate::notes::NotesError),
    /// A TLS setting names a missing or unusable file, or the settings conflict.
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(
        "turn_urls are set but turn_secret is not: TURN servers need the shared secret to issue credentials"
    )]
    TurnWithoutSecret,
    #[error(
        "metrics_token must be at least 16 characters: it is the only thing between /metrics and anyone who can reach the port"
    )]
    MetricsTokenTooShort,
    /// The audit checkpoint key or log cannot be read or created.
    #[error(transparent)]
    Checkpoint(#[from] crate::audit::checkpoint::CheckpointError),
    #[error(transparent)]
    Outbox(#[from] crate::outbox::setup::SetupError),
    #[error("filling in the folded names patient search compares: {0}")]
    SearchNames(#[source] crate::scheduling::SchedulingError),
}

/// A bound, migrated server that has not started serving yet.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    router: Arc<Router>,
    tls: Option<Arc<rustls::ServerConfig>>,
    /// `/metrics` on an address of its own, when `metrics_listen` is set.
    metrics_listener: Option<(TcpListener, SocketAddr)>,
    metrics_token: Option<crate::config::Secret>,
    /// The outbox dispatcher this node runs, unless `outbox_dispatcher = false`.
    dispatcher: Option<crate::outbox::Dispatcher>,
}

/// The key that signs visit links: read from its file, or created there (owner-only) on first
/// start, so links survive restarts.
pub fn visit_link_key(settings: &Settings) -> Result<Vec<u8>, StartupError> {
    let path = settings
        .visit_link_key_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("visit-link.key"));
    crate::storage::secret_file(&path, true)
        .map(|(key, _)| key)
        .map_err(|reason| StartupError::VisitLinkKey {
            path: path.display().to_string(),
            reason,
        })
}

/// Where the KEK of note signing keys is kept.
pub fn notes_kek_path(settings: &Settings) -> std::path::PathBuf {
    settings
        .notes_kek_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("notes-kek.key"))
}

/// The key-encryption key of note signing keys, read from its file; with `create`, made there
/// (owner-only) when missing. Also says whether it was made now.
pub fn notes_kek(
    settings: &Settings,
    create: bool,
) -> Result<(crate::notes::Kek, bool), StartupError> {
    let path = notes_kek_path(settings);
    crate::storage::secret_file(&path, create)
        .map(|(key, created)| (crate::notes::Kek::from_secret(&key), created))
        .map_err(|reason| StartupError::NotesKek {
            path: path.display().to_string(),
            reason,
        })
}

/// Connects to the configured database and applies migrations.
pub async fn open_database(settings: &Settings) -> Result<Db, StorageError> {
    // A PostgreSQL URL may ask for TLS: the provider must be chosen before the first connection.
    crate::tls::install_crypto_provider();
    let db = Db::connect(
        settings.database_url().expose(),
        PoolSettings {
            max_connections: settings.database_max_connections,
            // Zero would fail every request at once; the documented floor is 1 ms.
            acquire_timeout: Duration::from_millis(settings.database_acquire_timeout_ms.max(1)),
            statement_timeout: Duration::from_millis(settings.database_statement_timeout_ms.max(1)),
            sqlite_max_page_count: settings.sqlite_max_page_count,
        },
    )
    .await?;
    db.migrate().await?;
    Ok(db)
}

impl Application {
    /// Loads the TLS certificate (when configured), opens the database, migrates it, and binds
    /// the listener (port 0 picks a free port).
    pub async fn build(settings: &Settings) -> Result<Application, StartupError> {
        // A bad certificate path is found before any migration runs.
        let tls = crate::tls::from_settings(settings)?;
        let db = open_database(settings).await?;
        Self::assemble(settings, db, tls).await
    }

    /// Like [`Application::build`] with an already open, migrated database.
    pub async fn with_db(settings: &Settings, db: Db) -> Result<Application, StartupError> {
        let tls = crate::tls::from_settings(settings)?;
        Self::assemble(settings, db, tls).await
    }

    async fn assemble(
        settings: &Settings,
        db: Db,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Application, StartupError> {
        let listener =
            TcpListener::bind(settings.listen)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: settings.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.listen,
            source,
        })?;
        if !settings.turn_urls.is_empty() && settings.turn_secret.is_none() {
            return Err(StartupError::TurnWithoutSecret);
        }
        if settings
            .metrics_token
            .as_ref()
            .is_some_and(|t| t.expose().chars().count() < 16)
        {
            return Err(StartupError::MetricsTokenTooShort);
        }
        let metrics_listener = match settings.metrics_listen {
            None => None,
            Some(addr) => {
                let bind = |source| StartupError::Bind { addr, source };
                let listener = TcpListener::bind(addr).await.map_err(bind)?;
                let bound = listener.local_addr().map_err(bind)?;
                Some((listener, bound))
            }
        };
        let visit_secret = visit_link_key(settings)?;
        let (notes_kek, kek_created) = notes_kek(settings, true)?;
        if !crate::notes::keys::kek_matches(&db, &notes_kek).await? {
            // Not fatal: reads still answer (every entry then fails verification, as it should),
            // but signing is refused until the deployment's KEK file is back in place.
            tracing::error!(
                path = %notes_kek_path(settings).display(),
                "the notes KEK file does not match the stored note signing keys: signing will fail \
                 and every signed entry will fail verification until the deployment's KEK is restored"
            );
        }
        if kek_created {
            // Only now, with the entries as they are when the KEK is born: see adopt_legacy.
            let adopted = crate::notes::keys::adopt_legacy(&db, &notes_kek, &visit_secret).await?;
            if adopted > 0 {
                tracing::info!(adopted, "recorded legacy note signing keys as retired keys");
            }
        }
        let folded = crate::scheduling::directory::fold_missing_names(&db)
            .await
            .map_err(StartupError::SearchNames)?;
        if folded > 0 {
            tracing::info!(folded, "filled in the folded names of patients for search");
        }
        let visit_secret = Arc::new(visit_secret);
        let (outbox, dispatcher) =
            crate::outbox::setup::from_settings(settings, &db, &visit_secret)?;
        let checkpoints = crate::audit::checkpoint::Checkpointer::start(
            &crate::audit::checkpoint::CheckpointSettings::from_settings(settings),
        )?;
        let (audit, _writer) = AuditLog::start(db.clone(), checkpoints);
        let join_key = telehealth_signaling::token::key_from_master(&visit_secret);
        let outbox = Arc::new(outbox);
        let recorder =
            crate::calls::CallRecorder::start(db.clone(), audit.clone(), Some(outbox.clone()));
        let hub = telehealth_signaling::Hub::new(
            telehealth_signaling::HubConfig {
                max_connections: settings.signaling_max_connections,
                max_rooms: settings.signaling_max_rooms,
                ice: telehealth_signaling::ice::IceConfig {
                    stun_urls: settings.stun_urls.clone(),
                    turn_urls: settings.turn_urls.clone(),
                    turn_secret: settings
                        .turn_secret
                        .as_ref()
                        .map(|s| s.expose().to_string()),
                    turn_ttl_secs: settings.turn_ttl_seconds,
                },
                ..telehealth_signaling::HubConfig::default()
            },
            join_key.clone(),
            recorder.clone(),
            recorder,
        );
        let state = AppState {
            db,
            audit,
            hold_ttl: chrono::Duration::seconds(i64::from(settings.hold_seconds.max(1))),
            max_body_bytes: settings.max_body_bytes,
            metrics: telemetry::metrics_handle(),
            visit_secret,
            public_url: settings.public_url.clone(),
            notes: Arc::new(crate::notes::Signatures {
                kek: notes_kek,
                passkeys: crate::notes::passkeys::RelyingParty::new(
                    settings.public_url.as_deref(),
                )?,
            }),
            secure_cookies: tls.is_some(),
            sessions: Arc::new(crate::auth::cache::SessionCache::default()),
            hub,
            join_key: Arc::new(join_key),
            sign_in: Arc::new(crate::auth::throttle::SignInLimits::new(
                settings.sign_in_per_address_per_minute,
                settings.sign_in_per_address_burst,
            )),
            booking_limits: Arc::new(crate::scheduling::booking::BookingLimits::new(
                crate::scheduling::booking::HoldCaps {
                    per_account: settings.holds_per_account,
                    per_patient: settings.holds_per_patient,
                },
                settings.booking_per_account_per_minute,
                settings.booking_per_account_burst,
            )),
            outbox,
        };
        let routes = route_table();
        crate::api::dispatch::register_unjournaled_counters(&routes);
        let router = Arc::new(Router::new(routes)?);
        Ok(Application {
            listener,
            addr,
            state,
            router,
            tls,
            metrics_listener,
            metrics_token: settings.metrics_token.clone(),
            dispatcher,
        })
    }

    /// Whether the server speaks HTTPS (and only HTTPS) on its port.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `https` or `http`, for the URLs the server prints.
    pub fn scheme(&self) -> &'static str {
        if self.is_tls() { "https" } else { "http" }
    }

    /// Where the server answers, such as `https://192.168.1.20:8080`.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme(), self.addr)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `/metrics` is served, when it has an address of its own (`metrics_listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().map(|(_, addr)| *addr)
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Serves until `shutdown` completes, then drains connections and closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let dispatcher = self
            .dispatcher
            .map(|d| tokio::spawn(d.run(stop_tx.subscribe())));
        let sweeper = tokio::spawn(sweep_holds(self.state.db.clone(), stop_rx));
        let token_access = self.metrics_token.clone().map(http::MetricsAccess::Token);
        // The metrics address has its own little server, stopped after the main one drains.
        let (main_access, metrics_server) = match self.metrics_listener {
            None => (token_access.unwrap_or(http::MetricsAccess::Off), None),
            Some((listener, _)) => {
                let access = token_access.unwrap_or(http::MetricsAccess::Open);
                let routes = http::metrics_routes(self.state.clone(), access);
                let mut stop = stop_tx.subscribe();
                let server = tokio::spawn(http::serve(
                    listener,
                    routes,
                    http::ServeOptions::default(),
                    async move {
                        let _ = stop.changed().await;
                    },
                ));
                (http::MetricsAccess::Elsewhere, Some(server))
            }
        };
        let routes = http::routes(self.state.clone(), self.router.clone(), main_access);
        let options = http::ServeOptions {
            tls: self.tls.clone(),
            ..http::ServeOptions::default()
        };
        http::serve(self.listener, routes, options, shutdown).await;
        let _ = stop_tx.send(true);
        if let Some(server) = metrics_server {
            let _ = server.await;
        }
        let _ = sweeper.await;
        // A pass in flight finishes its sends and settles them before the database closes.
        if let Some(dispatcher) = dispatcher {
            let _ = dispatcher.await;
        }
        self.state.db.close().await;
    }
}

/// Frees the slots of expired holds every few seconds, so that searches and calendars see
/// them free even when nobody tries to book the same slot.
async fn sweep_holds(db: Db, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match booking::expire_holds(&db).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(expired = n, "expired holds released"),
                    Err(err) => tracing::warn!(error = %err, "hold sweep failed"),
                }
                purge_idempotency_keys(&db).await;
            }
            _ = stop.changed() => break,
        }
    }
}

/// Deletes idempotent answers past their lifetime ([`journal::KEY_LIFETIME_HOURS`]) and passkey
/// ceremonies that expired unanswered.
async fn purge_idempotency_keys(db: &Db) {
    let purged = async {
        let mut c = db.acquire().await?;
        let answers = journal::purge_old_answers(c.conn()).await?;
        let ceremonies = crate::notes::passkeys::purge_expired(c.conn()).await?;
        Ok::<_, sqlx::Error>((answers, ceremonies))
    }
    .await;
    match purged {
        Ok((0, 0)) => {}
        Ok((answers, ceremonies)) => {
            tracing::debug!(
                answers,
                ceremonies,
                "old idempotency keys and ceremonies purged"
            )
        }
        Err(err) => tracing::warn!(error = %err, "idempotency key purge failed"),
    }
}

/// Sets the process umask to 077, so files and folders the process creates (the database, its
/// WAL and shared-memory files, keys, certificates, logs a library might write) are readable by
/// the server's own user only. The places that create the data directory and the database file
/// also set their modes themselves, so the library is safe without this too.
pub fn restrict_new_files() {
    #[cfg(unix)]
    {
        use nix::sys::stat::{Mode, umask};
        umask(Mode::S_IRWXG | Mode::S_IRWXO);
    }
}

/// Completes on SIGINT or SIGTERM.
///
/// The handlers are registered when this is called, not when the future is first polled: a
/// signal that arrives between "serving" and the first poll must not kill the process outright.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let terminate = async {
                match term.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let interrupt = async {
                match int.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = terminate => {},
                () = interrupt => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutdown signal received; draining connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_visit_link_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let settings = Settings {
            data_dir: dir.path().join("data"),
            ..Settings::default()
        };
        let first = visit_link_key(&settings).expect("created");
        let second = visit_link_key(&settings).expect("read back");
        assert_eq!(first, second);
        assert_eq!(first.len(), 32);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("data/visit-link.key"))
                .expect("key file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"too short").expect("write");
        let settings = Settings {
            visit_link_key_file: Some(short),
            ..Settings::default()
        };
        assert!(matches!(
            visit_link_key(&settings),
            Err(StartupError::VisitLinkKey { .. })
        ));
    }
}
