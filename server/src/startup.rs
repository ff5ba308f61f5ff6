//! Building and running the application: what `telehealth serve` runs and what tests start.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::{Router, RouterError, route_table};
use crate::config::Settings;
use crate::scheduling::booking;
use crate::state::AppState;
use crate::storage::{Db, PoolSettings, StorageError};
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
}

/// A bound, migrated server that has not started serving yet.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    router: Arc<Router>,
}

/// Connects to the configured database and applies migrations.
pub async fn open_database(settings: &Settings) -> Result<Db, StorageError> {
    let db = Db::connect(
        settings.database_url().expose(),
        PoolSettings {
            max_connections: settings.database_max_connections,
            ..PoolSettings::default()
        },
    )
    .await?;
    db.migrate().await?;
    Ok(db)
}

impl Application {
    /// Opens the database, migrates it, and binds the listener (port 0 picks a free port).
    pub async fn build(settings: &Settings) -> Result<Application, StartupError> {
        let db = open_database(settings).await?;
        Self::with_db(settings, db).await
    }

    /// Like [`Application::build`] with an already open, migrated database.
    pub async fn with_db(settings: &Settings, db: Db) -> Result<Application, StartupError> {
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
        let state = AppState {
            db,
            hold_ttl: chrono::Duration::seconds(i64::from(settings.hold_seconds.max(1))),
            max_body_bytes: settings.max_body_bytes,
            metrics: telemetry::metrics_handle(),
        };
        let router = Arc::new(Router::new(route_table())?);
        Ok(Application {
            listener,
            addr,
            state,
            router,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn db(&self) -> &Db {
        &self.state.db
    }

    /// Serves until `shutdown` completes, then drains connections and closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let sweeper = tokio::spawn(sweep_holds(self.state.db.clone(), stop_rx));
        let routes = http::routes(self.state.clone(), self.router.clone());
        http::serve(self.listener, routes, shutdown, Duration::from_secs(10)).await;
        let _ = stop_tx.send(true);
        let _ = sweeper.await;
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
            }
            _ = stop.changed() => break,
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received; draining connections");
}
