//! Pause points: named places inside the server's transactions where a race test can park the
//! task that reaches them, run something else against the same database, and then let it go. So
//! an interleaving that production meets by bad luck (a confirm whose commit is slow while the
//! hold sweeper runs) is forced in a test, every time, instead of hoped for with sleeps.
//!
//! ```ignore
//! // In the server, inside a transaction:
//! crate::pause::point(db, "booking.confirm.before_commit").await;
//! // In a test, before sending the confirm:
//! let paused = telehealth::pause::arm(app.db(), "booking.confirm.before_commit");
//! paused.reached().await;   // the confirm is parked there, its transaction open
//! // ... run the sweeper ...
//! paused.release();
//! ```
//!
//! A point nobody armed costs one atomic load ([`point`]). Arming is a function call in this
//! process, so only code linked into it (the in-process test server) can arm a point: there is
//! no route, setting or environment variable for it, and a deployed server has nobody to call it.
//!
//! A point is armed for one database ([`arm`] takes the [`Db`], [`point`] the one it runs on):
//! the tests of one test binary share the process, and a point armed by one of them must not
//! park another's request. Each arming parks one task, the first to reach the point; arming the
//! same point twice parks the first two, in the order they arrive. Dropping the handle releases
//! a parked task and disarms the point, so a failing test never leaves a request parked.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use crate::storage::Db;

/// How many armed points exist in the process: the one load a point pays when it is zero.
static ARMED: AtomicUsize = AtomicUsize::new(0);
/// The armed points, with who is parked at them.
static POINTS: Mutex<Vec<Armed>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

struct Armed {
    id: u64,
    database: String,
    name: &'static str,
    /// Set once a task took this arming (it parks at most one).
    taken: bool,
    reached: watch::Sender<bool>,
    release: watch::Receiver<bool>,
}

/// Parks the task here while a test holds this point armed for `db`; otherwise returns at once.
#[inline]
pub async fn point(db: &Db, name: &'static str) {
    if ARMED.load(Ordering::Acquire) == 0 {
        return;
    }
    park(db, name).await;
}

async fn park(db: &Db, name: &'static str) {
    let database = database_of(db);
    let taken = {
        let mut points = points();
        points
            .iter_mut()
            .find(|p| !p.taken && p.name == name && p.database == database)
            .map(|p| {
                p.taken = true;
                (p.reached.clone(), p.release.clone())
            })
    };
    let Some((reached, mut release)) = taken else {
        return;
    };
    let _ = reached.send(true);
    // An error means the handle is gone, which releases too.
    let _ = release.wait_for(|go| *go).await;
}

/// Arms `name` for `db`: the next task that reaches it on that database parks until
/// [`Pause::release`] (or the handle's drop).
pub fn arm(db: &Db, name: &'static str) -> Pause {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (reached_tx, reached_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(false);
    points().push(Armed {
        id,
        database: database_of(db),
        name,
        taken: false,
        reached: reached_tx,
        release: release_rx,
    });
    ARMED.fetch_add(1, Ordering::AcqRel);
    Pause {
        id,
        name,
        reached: reached_rx,
        release: release_tx,
    }
}

/// An armed pause point, held by a test.
pub struct Pause {
    id: u64,
    name: &'static str,
    reached: watch::Receiver<bool>,
    release: watch::Sender<bool>,
}

impl Pause {
    /// Waits until a task is parked at the point (returns at once if one already is).
    pub async fn reached(&self) {
        let mut reached = self.reached.clone();
        let _ = reached.wait_for(|r| *r).await;
    }

    /// True once a task has parked at the point.
    pub fn is_reached(&self) -> bool {
        *self.reached.borrow()
    }

    /// Lets the parked task (or the one still to come) go on.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        self.release();
        let mut points = points();
        if let Some(i) = points.iter().position(|p| p.id == self.id) {
            points.remove(i);
            ARMED.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The registry, also after a test panicked while holding its lock (the list stays valid: every
/// change to it is one push or one remove).
fn points() -> MutexGuard<'static, Vec<Armed>> {
    POINTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Which database a handle talks to: each test has its own (a file, or a PostgreSQL database).
fn database_of(db: &Db) -> String {
    match db {
        Db::Sqlite(pool) => format!("sqlite:{}", pool.connect_options().get_filename().display()),
        Db::Postgres(pool) => {
            let o = pool.connect_options();
            format!(
                "postgres://{}:{}/{}",
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default()
            )
        }
    }
}
