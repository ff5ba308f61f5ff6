//! Readiness: whether this node can write to its database now, for `/readyz`.
//!
//! A read (`SELECT 1`) says little: it succeeds on a full disk and on a read-only PostgreSQL.
//! So the probe writes. In one write transaction it inserts a row carrying [`PROBE_BYTES`] of
//! filler into `readiness_probe`, deletes it again and commits, and fails where a write would:
//! SQLite must find room for the filler (on a full disk, or at its quota, it cannot), PostgreSQL
//! must take a write (a standby or a read-only database refuses it), and either must answer
//! within the server's waits ([`super::Limits`]). Nothing stays behind: the table is empty
//! between probes. A probe that fails because the database is short of room a little before an
//! ordinary write would is the intended side to err on: the node stops taking traffic before
//! writes start failing.
//!
//! The answer is kept for [`KEEP_FOR`], and checks that arrive while a probe runs wait for its
//! answer, so a load balancer asking many times a second costs one small transaction a second.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Db, Outage, outage};
use crate::on_conn;

/// How much room a probe needs: a few pages more than a typical write.
pub const PROBE_BYTES: usize = 16 * 1024;
/// How long a probe's answer is reused.
pub const KEEP_FOR: Duration = Duration::from_secs(1);

/// Why a node is not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// A database fault, as requests meet it.
    Outage(Outage),
    /// The probe failed some other way (the log has it): not a fault the server recovers from
    /// by waiting, such as a missing table.
    Failed,
}

impl NotReady {
    pub fn reason(self) -> &'static str {
        match self {
            NotReady::Outage(o) => o.as_str(),
            NotReady::Failed => "probe_failed",
        }
    }
}

/// One node's readiness: its database, the name its probe rows carry, and the last answer.
pub struct Readiness {
    db: Db,
    node: String,
    cache: Cache,
}

impl Readiness {
    pub fn new(db: Db) -> Readiness {
        Readiness {
            db,
            node: format!("node-{}", uuid::Uuid::new_v4().simple()),
            cache: Cache::new(KEEP_FOR),
        }
    }

    /// The engine of the database probed.
    pub fn engine(&self) -> super::Engine {
        self.db.engine()
    }

    /// Ready, or why not; at most one probe per [`KEEP_FOR`].
    pub async fn check(&self) -> Result<(), NotReady> {
        self.cache
            .get_or_probe(|| async {
                probe(&self.db, &self.node).await.map_err(|e| match outage(&e) {
                    Some(o) => {
                        tracing::warn!(error = %e, reason = o.as_str(), "not ready: the write probe failed");
                        NotReady::Outage(o)
                    }
                    None => {
                        tracing::error!(error = %e, "not ready: the write probe failed unexpectedly");
                        NotReady::Failed
                    }
                })
            })
            .await
    }
}

/// Writes and removes one probe row in a write transaction of its own.
async fn probe(db: &Db, node: &str) -> Result<(), sqlx::Error> {
    let filler = vec![0u8; PROBE_BYTES];
    let mut tx = db.begin().await?;
    on_conn!(tx.conn(), c => sqlx::query(
        "INSERT INTO readiness_probe (node, filler) VALUES ($1, $2)",
    )
    .bind(node)
    .bind(&filler[..])
    .execute(&mut *c)
    .await
    .map(|_| ()))?;
    on_conn!(tx.conn(), c => sqlx::query("DELETE FROM readiness_probe WHERE node = $1")
        .bind(node)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    tx.commit().await
}

/// The last answer and when it was had; the lock is held while a probe runs, so concurrent
/// checks share it.
struct Cache {
    keep_for: Duration,
    last: Mutex<Option<(Instant, Result<(), NotReady>)>>,
}

impl Cache {
    fn new(keep_for: Duration) -> Cache {
        Cache {
            keep_for,
            last: Mutex::new(None),
        }
    }

    async fn get_or_probe<F, Fut>(&self, probe: F) -> Result<(), NotReady>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), NotReady>>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, answer)) = *last
            && at.elapsed() < self.keep_for
        {
            return answer;
        }
        let answer = probe().await;
        *last = Some((Instant::now(), answer));
        answer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A probe that takes 50 ms and counts its runs, answering `answer`.
    fn counted(
        runs: &Arc<AtomicUsize>,
        answer: Result<(), NotReady>,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<(), NotReady>> + Send>> + use<>
    {
        let runs = runs.clone();
        move || {
            Box::pin(async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                answer
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checks_at_once_share_one_probe_and_its_answer_is_kept_briefly() {
        let cache = Arc::new(Cache::new(KEEP_FOR));
        let runs = Arc::new(AtomicUsize::new(0));
        let checks: Vec<_> = (0..50)
            .map(|_| {
                let (cache, probe) = (cache.clone(), counted(&runs, Ok(())));
                tokio::spawn(async move { cache.get_or_probe(probe).await })
            })
            .collect();
        for check in checks {
            assert_eq!(check.await.expect("the check ran"), Ok(()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // Within the second, a failing database is not asked again...
        let down = Err(NotReady::Outage(Outage::Unreachable));
        assert_eq!(cache.get_or_probe(counted(&runs, down)).await, Ok(()));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        // ...after it, it is, and the failure is kept the same way.
        tokio::time::advance(KEEP_FOR).await;
        assert_eq!(cache.get_or_probe(counted(&runs, down)).await, down);
        assert_eq!(cache.get_or_probe(counted(&runs, Ok(()))).await, down);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }
}
