//! `bench`: load benchmark of the scheduling service, run against the real `telehealth` release
//! binary as a separate process, once per database engine.
//!
//! ```text
//! cargo build --release -p telehealth-server -p telehealth-tests
//! target/release/bench [--engine sqlite|postgres|both] [--clients 64] [--searches 3000] \
//!     [--bookings 10000] [--postgres-url postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable]
//! ```
//!
//! For each engine it:
//!
//! 1. creates a fresh database: a SQLite file in a temporary folder, or a new PostgreSQL database
//!    `th_bench_<uuid>` on the server at `--postgres-url` (dropped again at the end);
//! 2. seeds the demo network with `telehealth demo --seed-only` (1,000 care centres, 8 hubs,
//!    ~48 specialists with weekly clinic sessions, today's teleconsultations) and times it;
//! 3. starts `telehealth serve` on a free local port (log in the temporary folder) and waits for
//!    `/readyz`;
//! 4. measures free-slot search latency (`GET /api/v1/slots`, a mix of specialty, clinician,
//!    hub and province searches), first with one client, then with `--clients` concurrent ones;
//! 5. books up to `--bookings` teleconsultations into the free slots of the next 31 days with
//!    `--clients` concurrent workers, 5% of them aimed at a slot another attempt also wants, and
//!    counts created (201), conflicts (409 `slot_taken`) and any other answer;
//! 6. checks in the database itself that no clinician has two live consultations overlapping and
//!    that exactly one row was written per 201;
//! 7. samples CPU time of the server, of this load generator and of the whole machine around
//!    every phase (both share the machine's cores, so the report says which was the
//!    bottleneck), and the server's memory at the end.
//!
//! With `--outbox` the server runs with the outbox in place (issue 14): an SMS gateway (a
//! receiver on loopback inside this process), every patient's consent to SMS recorded, so each
//! booking enqueues its confirmation, its reminders and "join now" in its transaction and the
//! server's dispatcher sends the confirmations while the booking phase runs. After the bookings,
//! `--reminders` of the queued reminders are made due in the same minute and the report gives
//! the time until every one is handed to the gateway. Run it with and without `--outbox` in one
//! session and compare the committed bookings per second.
//!
//! It prints a markdown report per engine and one summary line per engine, and exits non-zero if
//! an engine could not be measured, a double booking was found, or the row count disagrees with
//! the 201s.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use sqlx::Connection;
use telehealth_tests::SplitMix;
use telehealth_tests::bench_support::{
    clock_ticks, free_port, log_tail, machine_ticks, memory_kib, ms, new_histogram, process_ticks,
};
use telehealth_tests::receivers::HttpReceiver;

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Benchmark of the scheduling service (slot search and booking) on SQLite and PostgreSQL.
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Args {
    /// Engine(s) to measure.
    #[arg(long, value_enum, default_value_t = EngineChoice::Both)]
    engine: EngineChoice,
    /// Concurrent clients for the concurrent search and booking phases.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    clients: u16,
    /// Slot searches per search phase.
    #[arg(long, default_value_t = 3000)]
    searches: usize,
    /// Most booking attempts (fewer when there are fewer free slots).
    #[arg(long, default_value_t = 10_000)]
    bookings: usize,
    /// Administrative PostgreSQL URL: bench databases are created and dropped through it.
    /// PostgreSQL on this machine, without TLS: on loopback TLS protects nothing and costs both
    /// processes CPU (sqlx's default `sslmode=prefer` would negotiate it). Across a network,
    /// deployments keep `sslmode=verify-full`.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    postgres_url: String,
    /// Run with the outbox in place: SMS to a local gateway, every patient consenting; then
    /// the reminder burst.
    #[arg(long)]
    outbox: bool,
    /// With `--outbox`: reminders made due in the same minute after the bookings.
    #[arg(long, default_value_t = 10_000)]
    reminders: usize,
    /// With `--outbox`: no dispatcher on the server (and no reminder burst), to tell the cost of
    /// writing the messages from the cost of sending them.
    #[arg(long)]
    no_dispatch: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum EngineChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        }
    }
}

/// Vietnam has no daylight saving: its local date is UTC+7, which is the zone of every demo
/// facility and the server's default.
fn vietnam_today() -> NaiveDate {
    (Utc::now() + chrono::Duration::hours(7)).date_naive()
}

fn progress(msg: &str) {
    eprintln!("[bench {}] {msg}", Utc::now().format("%H:%M:%S"));
}

// ---- CPU and memory from /proc ----------------------------------------------------------------

#[derive(Clone, Copy)]
struct CpuSample {
    at: Instant,
    /// utime + stime of the server (0 when there is none).
    server: u64,
    /// utime + stime of this process (all its threads).
    bench: u64,
    /// cutime + cstime of this process: children it has waited for (the seeding run).
    children: u64,
    machine_busy: u64,
    machine_total: u64,
}

fn sample_cpu(server_pid: Option<u32>) -> Result<CpuSample> {
    let server = match server_pid {
        Some(pid) => {
            let t = process_ticks(&format!("/proc/{pid}/stat"))?;
            t[0] + t[1]
        }
        None => 0,
    };
    let me = process_ticks("/proc/self/stat")?;
    let (machine_busy, machine_total) = machine_ticks()?;
    Ok(CpuSample {
        at: Instant::now(),
        server,
        bench: me[0] + me[1],
        children: me[2] + me[3],
        machine_busy,
        machine_total,
    })
}

/// CPU use between two samples, in percent of one core (so 200% = two cores busy).
#[derive(Clone, Copy)]
struct CpuUse {
    wall: f64,
    server: f64,
    bench: f64,
    children: f64,
    /// Everything else on the machine: PostgreSQL backends, and anything unrelated that ran.
    other: f64,
    machine: f64,
    cores: f64,
}

impl CpuUse {
    fn between(a: &CpuSample, b: &CpuSample, tck: f64) -> CpuUse {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let pct = |ticks: u64| ticks as f64 / tck / wall * 100.0;
        let server = pct(b.server.saturating_sub(a.server));
        let bench = pct(b.bench.saturating_sub(a.bench));
        let children = pct(b.children.saturating_sub(a.children));
        let busy = b.machine_busy.saturating_sub(a.machine_busy) as f64;
        let total = b.machine_total.saturating_sub(a.machine_total) as f64;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0);
        // Busy share of the machine, in percent of one core, from /proc/stat's own totals (its
        // ticks are per core, so total/wall is cores × tck).
        let machine = if total > 0.0 {
            busy / total * cores * 100.0
        } else {
            0.0
        };
        let other = (machine - server - bench - children).max(0.0);
        CpuUse {
            wall,
            server,
            bench,
            children,
            other,
            machine,
            cores,
        }
    }

    /// Which process limited the phase. When the machine's cores were (nearly) all busy, the
    /// largest consumer; when one process kept about one core busy, that one (a single request
    /// stream, or a serialised writer, cannot use more); otherwise nobody was short of CPU and
    /// the phase waited on something else.
    fn bottleneck(&self, other_label: &str) -> String {
        let capacity = self.cores * 100.0;
        let mut users = [
            ("server", self.server),
            ("load generator", self.bench),
            (other_label, self.other),
            ("seeding process", self.children),
        ];
        users.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (top, pct) = users[0];
        if self.machine >= 0.8 * capacity {
            format!(
                "CPU-saturated ({:.0}% of {capacity:.0}%): {top} used most ({pct:.0}%)",
                self.machine
            )
        } else if pct >= 75.0 {
            format!(
                "{top} ({pct:.0}%, about one core); machine {:.0}% of {capacity:.0}%",
                self.machine
            )
        } else if self.machine >= 85.0 {
            // About one core busy in all, shared: one request at a time passing through the
            // server and the database in turn.
            format!(
                "serial chain using about one core in all (machine {:.0}% of {capacity:.0}%): \
                 {top} most ({pct:.0}%)",
                self.machine
            )
        } else {
            format!(
                "none CPU-bound (machine {:.0}% of {capacity:.0}%): waiting dominates",
                self.machine
            )
        }
    }
}

// ---- databases --------------------------------------------------------------------------------

/// A fresh database and how to remove it.
struct BenchDb {
    url: String,
    /// The PostgreSQL database name, to drop at the end.
    pg_name: Option<String>,
}

fn url_with_database(admin: &str, name: &str) -> Result<String> {
    let mut url = reqwest::Url::parse(admin)?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

async fn create_database(engine: Engine, dir: &Path, admin: &str) -> Result<BenchDb> {
    match engine {
        Engine::Sqlite => Ok(BenchDb {
            url: format!("sqlite://{}", dir.join("bench.db").display()),
            pg_name: None,
        }),
        Engine::Postgres => {
            let name = format!("th_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(admin)
                .await
                .map_err(|e| format!("PostgreSQL is not reachable at {admin}: {e}"))?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            conn.close().await.ok();
            Ok(BenchDb {
                url: url_with_database(admin, &name)?,
                pg_name: Some(name),
            })
        }
    }
}

async fn drop_database(db: &BenchDb, admin: &str) -> Result<()> {
    if let Some(name) = &db.pg_name {
        let mut conn = sqlx::PgConnection::connect(admin).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await?;
        conn.close().await.ok();
    }
    Ok(())
}

/// A direct connection to the bench database, independent of the server, for the checks.
enum Probe {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Probe {
    async fn connect(engine: Engine, url: &str) -> Result<Probe> {
        Ok(match engine {
            Engine::Sqlite => Probe::Sqlite(sqlx::SqliteConnection::connect(url).await?),
            Engine::Postgres => Probe::Postgres(sqlx::PgConnection::connect(url).await?),
        })
    }

    async fn count(&mut self, sql: &'static str) -> Result<i64> {
        Ok(match self {
            Probe::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
            Probe::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await?,
        })
    }

    /// Runs `sql` with `at` bound as `$1`; the rows it changed.
    async fn execute_at(&mut self, sql: &'static str, at: DateTime<Utc>) -> Result<u64> {
        Ok(match self {
            Probe::Sqlite(c) => sqlx::query(sql).bind(at).execute(c).await?.rows_affected(),
            Probe::Postgres(c) => sqlx::query(sql).bind(at).execute(c).await?.rows_affected(),
        })
    }

    async fn close(self) {
        match self {
            Probe::Sqlite(c) => c.close().await.ok(),
            Probe::Postgres(c) => c.close().await.ok(),
        };
    }
}

const COUNT_CONSULTATIONS: &str = "SELECT COUNT(*) FROM consultations";
/// Every patient consents to SMS in Vietnamese (recorded by the bench account).
const CONSENT_ALL: &str = "INSERT INTO patient_contacts
     (patient_id, consent, channel, language, updated_at, updated_by)
     SELECT id, TRUE, 'sms', 'vi', $1, (SELECT id FROM accounts WHERE username = 'bench')
     FROM patients";
const QUEUED_CONFIRMATIONS: &str = "SELECT COUNT(*) FROM outbox_messages
     WHERE event_kind = 'consultation.booked' AND status IN ('queued', 'sending')";
const QUEUED_REMINDERS: &str = "SELECT COUNT(*) FROM outbox_messages
     WHERE event_kind = 'consultation.reminder' AND status = 'queued'";
const DEAD_MESSAGES: &str = "SELECT COUNT(*) FROM outbox_messages WHERE status = 'dead'";
const COUNT_OVERLAPS: &str = "SELECT COUNT(*) FROM consultations a JOIN consultations b \
     ON a.clinician_id = b.clinician_id AND a.id < b.id \
     AND a.start_at < b.end_at AND b.start_at < a.end_at \
     WHERE a.status IN ('held','booked','in_progress') AND b.status IN ('held','booked','in_progress')";

// ---- the server process -----------------------------------------------------------------------

struct Server {
    child: tokio::process::Child,
    pid: u32,
    base: String,
    log: PathBuf,
    ready_after: Duration,
}

async fn start_server(
    bin: &Path,
    url: &str,
    dir: &Path,
    client: &reqwest::Client,
    env: &[(String, String)],
) -> Result<Server> {
    let port = free_port()?;
    let log = dir.join("server.log");
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let started = Instant::now();
    let mut child = tokio::process::Command::new(bin)
        .args([
            "--database-url",
            url,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "serve",
        ])
        .env("RUST_LOG", "warn")
        // The bench books as one account, thousands of times a second: it measures the booking
        // path, not the per-account request rate (booking::limits), which is turned off here.
        .env("TELEHEALTH_BOOKING_PER_ACCOUNT_PER_MINUTE", "0")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // An early return (an error in a phase) must not leave a server running.
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("server exited at once")?;
    let base = format!("http://127.0.0.1:{port}");
    let deadline = started + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!(
                "server exited during start-up ({status}); log tail:\n{}",
                log_tail(&log, 30)
            )
            .into());
        }
        let ready = client
            .get(format!("{base}/readyz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .map(|r| r.status().as_u16() == 200)
            .unwrap_or(false);
        if ready {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "server not ready after 30 s; log tail:\n{}",
                log_tail(&log, 30)
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(Server {
        child,
        pid,
        base,
        log,
        ready_after: started.elapsed(),
    })
}

impl Server {
    /// SIGTERM for a graceful shutdown; SIGKILL if it has not exited 15 s later.
    async fn stop(mut self) -> Result<String> {
        let started = Instant::now();
        let signalled = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await?;
        if signalled.success()
            && let Ok(status) =
                tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await
        {
            return Ok(format!(
                "stopped by SIGTERM in {:.2} s ({})",
                started.elapsed().as_secs_f64(),
                status?
            ));
        }
        self.child.kill().await?;
        Ok("did not stop within 15 s of SIGTERM; killed".to_string())
    }
}

// ---- HTTP -------------------------------------------------------------------------------------

async fn get_json<T: DeserializeOwned>(client: &reqwest::Client, url: &str) -> Result<T> {
    let resp = client.get(url).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    if status.as_u16() != 200 {
        return Err(format!("GET {url}: {status}: {text}").into());
    }
    serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}: {text:.300}").into())
}

#[derive(Deserialize)]
struct SpecialtyRow {
    code: String,
}

#[derive(Deserialize)]
struct ClinicianRow {
    id: i64,
    facility_id: i64,
    facility_kind: String,
}

#[derive(Deserialize)]
struct FacilityRow {
    id: i64,
    province: String,
}

#[derive(Deserialize)]
struct PatientRow {
    id: i64,
    home_facility_id: Option<i64>,
}

#[derive(Deserialize)]
struct SlotRow {
    clinician_id: i64,
    start: DateTime<Utc>,
}

#[derive(Deserialize)]
struct SlotsReply {
    slots: Vec<SlotRow>,
    truncated: bool,
}

/// Every page of a list endpoint that takes `limit` and `offset` (500 at most per page).
async fn all_pages<T: DeserializeOwned>(client: &reqwest::Client, url: &str) -> Result<Vec<T>> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    loop {
        let page: Vec<T> =
            get_json(client, &format!("{url}{sep}limit=500&offset={}", out.len())).await?;
        let n = page.len();
        out.extend(page);
        if n < 500 {
            return Ok(out);
        }
    }
}

/// The benchmark's account, created with `telehealth account create` before the server starts.
const BENCH_USER: &str = "bench";
const BENCH_PASSWORD: &str = "bench-password-2026";

/// Signs in and returns a client that sends the session token on every request.
async fn signed_in_client(
    client: &reqwest::Client,
    base: &str,
    clients: usize,
) -> Result<reqwest::Client> {
    let reply: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&serde_json::json!({"username": BENCH_USER, "password": BENCH_PASSWORD}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let token = reply["token"]
        .as_str()
        .ok_or("no token in the login reply")?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?,
    );
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .default_headers(headers)
        .build()?)
}

fn http_client(clients: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        // Every worker keeps its connection: no reconnects inside a measurement.
        .pool_max_idle_per_host(clients * 2)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

// ---- load runner ------------------------------------------------------------------------------

/// What one request came to: a class (`"200"`, `"409 slot_taken"`, `"HTTP 500"`, …) and, for an
/// unexpected answer, its body as evidence.
struct Outcome {
    class: String,
    unexpected: Option<String>,
}

struct LoadResult {
    wall: Duration,
    all: Histogram<u64>,
    by_class: BTreeMap<String, Histogram<u64>>,
    /// First few unexpected answers, for the report.
    samples: Vec<String>,
}

impl LoadResult {
    fn count(&self, class: &str) -> u64 {
        self.by_class.get(class).map_or(0, |h| h.len())
    }

    fn others(&self, expected: &[&str]) -> BTreeMap<String, u64> {
        self.by_class
            .iter()
            .filter(|(c, _)| !expected.contains(&c.as_str()))
            .map(|(c, h)| (c.clone(), h.len()))
            .collect()
    }
}

/// Runs `jobs` requests with `workers` concurrent workers pulling the next index from a shared
/// counter (a queue without a queue: every job is described by its index).
async fn run_load<F, Fut>(workers: usize, jobs: usize, job: F) -> Result<LoadResult>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..workers {
        let job = job.clone();
        let next = next.clone();
        handles.push(tokio::spawn(async move {
            let mut all = new_histogram()?;
            let mut by_class: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    break;
                }
                let t = Instant::now();
                let outcome = job(i).await;
                let us = t.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                all.saturating_record(us.max(1));
                match by_class.get_mut(&outcome.class) {
                    Some(h) => h.saturating_record(us.max(1)),
                    None => {
                        let mut h = new_histogram()?;
                        h.saturating_record(us.max(1));
                        by_class.insert(outcome.class.clone(), h);
                    }
                }
                if let Some(body) = outcome.unexpected
                    && samples.len() < 5
                {
                    samples.push(format!("{}: {body:.400}", outcome.class));
                }
            }
            Ok::<_, BoxError>((all, by_class, samples))
        }));
    }
    let mut all = new_histogram()?;
    let mut by_class: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut samples = Vec::new();
    for h in handles {
        let (a, b, s) = h.await??;
        all.add(&a)?;
        for (class, hist) in b {
            match by_class.get_mut(&class) {
                Some(mine) => mine.add(&hist)?,
                None => {
                    by_class.insert(class, hist);
                }
            }
        }
        for s in s {
            if samples.len() < 5 {
                samples.push(s);
            }
        }
    }
    Ok(LoadResult {
        wall: started.elapsed(),
        all,
        by_class,
        samples,
    })
}

// ---- one engine -------------------------------------------------------------------------------

struct EngineOutcome {
    report: String,
    summary: String,
    /// A correctness check failed.
    failed: bool,
}

struct Phase {
    name: String,
    cpu: CpuUse,
}

async fn run_engine(engine: Engine, args: &Args, bin: &Path, tck: f64) -> Result<EngineOutcome> {
    let dir = tempfile::Builder::new().prefix("th-bench-").tempdir()?;
    progress(&format!("{}: creating the database", engine.name()));
    let db = create_database(engine, dir.path(), &args.postgres_url).await?;
    let result = run_on_database(engine, args, bin, tck, &db, dir.path()).await;
    if let Err(e) = drop_database(&db, &args.postgres_url).await {
        progress(&format!("could not drop the bench database: {e}"));
    }
    // After a failure the server log (and a SQLite database) are evidence: keep the folder.
    match result {
        Ok(outcome) if !outcome.failed => Ok(outcome),
        Ok(mut outcome) => {
            let kept = dir.keep();
            let _ = writeln!(
                outcome.report,
                "\nServer log and files kept in {}.",
                kept.display()
            );
            Ok(outcome)
        }
        Err(e) => {
            let kept = dir.keep();
            Err(format!("{e}\n(server log and files kept in {})", kept.display()).into())
        }
    }
}

async fn run_on_database(
    engine: Engine,
    args: &Args,
    bin: &Path,
    tck: f64,
    db: &BenchDb,
    dir: &Path,
) -> Result<EngineOutcome> {
    let clients = usize::from(args.clients);
    let mut r = String::new();
    let mut phases: Vec<Phase> = Vec::new();
    writeln!(r, "\n## {}\n", engine.name())?;

    // Seeding.
    progress(&format!("{}: seeding the demo network", engine.name()));
    let before = sample_cpu(None)?;
    let seeded = tokio::process::Command::new(bin)
        .args(["--database-url", &db.url, "demo", "--seed-only"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await?;
    let after = sample_cpu(None)?;
    if !seeded.status.success() {
        return Err(format!(
            "seeding failed ({}):\n{}\n{}",
            seeded.status,
            String::from_utf8_lossy(&seeded.stdout),
            String::from_utf8_lossy(&seeded.stderr)
        )
        .into());
    }
    // The API needs a session: a network-wide scheduler (who may book at every hub) and
    // administrator, created the way an operator creates the first account.
    let account = tokio::process::Command::new(bin)
        .args([
            "--database-url",
            &db.url,
            "account",
            "create",
            "--username",
            BENCH_USER,
            "--display-name",
            "Benchmark",
            "--role",
            "scheduler",
            "--role",
            "administrator",
        ])
        .env("TELEHEALTH_NEW_PASSWORD", BENCH_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .await?;
    if !account.status.success() {
        return Err(format!(
            "creating the benchmark account failed: {}",
            String::from_utf8_lossy(&account.stderr)
        )
        .into());
    }
    let seed_cpu = CpuUse::between(&before, &after, tck);
    phases.push(Phase {
        name: "seed (telehealth demo --seed-only)".into(),
        cpu: seed_cpu,
    });
    let seed_text = String::from_utf8_lossy(&seeded.stdout);
    let seed_line = seed_text
        .lines()
        .map(str::trim)
        .find(|l| l.contains("facilities"))
        .unwrap_or("(no summary printed)")
        .to_string();
    writeln!(
        r,
        "Seeding: **{:.2} s** wall ({:.0}% CPU of the seeding process): {seed_line}\n",
        seed_cpu.wall, seed_cpu.children
    )?;

    // The outbox: a gateway on loopback, and every patient consenting to SMS.
    let mut env = Vec::new();
    let gateway = if args.outbox {
        let gateway =
            HttpReceiver::start((200, json!({"CodeResult": "100", "SMSID": "bench"}))).await;
        let mut probe = Probe::connect(engine, &db.url).await?;
        let consented = probe.execute_at(CONSENT_ALL, Utc::now()).await?;
        probe.close().await;
        env.push((
            "TELEHEALTH_SMS".to_owned(),
            format!(
                "{{url=\"{}\",api_key=\"bench\",secret_key=\"bench\",brandname=\"BENCH\"}}",
                gateway.url("/sms")
            ),
        ));
        env.push((
            "TELEHEALTH_PUBLIC_URL".to_owned(),
            "https://bench.example.vn".to_owned(),
        ));
        env.push(("TELEHEALTH_OUTBOX_POLL_MS".to_owned(), "100".to_owned()));
        if args.no_dispatch {
            env.push((
                "TELEHEALTH_OUTBOX_DISPATCHER".to_owned(),
                "false".to_owned(),
            ));
        }
        writeln!(
            r,
            "Outbox in place: SMS to a gateway on loopback, {consented} patients consenting; each \
             booking enqueues its confirmation, reminders 24 h and 1 h before and \"join now\".\n"
        )?;
        Some(gateway)
    } else {
        None
    };

    // Server.
    let client = http_client(clients)?;
    progress(&format!("{}: starting the server", engine.name()));
    let server = start_server(bin, &db.url, dir, &client, &env).await?;
    let pid = server.pid;
    let client = signed_in_client(&client, &server.base, clients).await?;
    writeln!(
        r,
        "Server: pid {pid}, {}, ready after {} ms.\n",
        server.base,
        server.ready_after.as_millis()
    )?;
    let base = server.base.clone();
    let log = server.log.clone();

    let measured = measure(
        engine,
        args,
        tck,
        db,
        &client,
        &base,
        pid,
        &mut r,
        &mut phases,
        gateway.as_ref(),
    )
    .await;
    let (rss, hwm) = memory_kib(pid).unwrap_or((0, 0));
    let stopped = server.stop().await;
    let (summary_tail, failed) = measured?;
    writeln!(
        r,
        "Server memory at the end: VmRSS {:.1} MiB (peak {:.1} MiB). Shutdown: {}.\n",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        stopped.unwrap_or_else(|e| format!("error {e}"))
    )?;

    // With PostgreSQL the database's own CPU is spent in its backend processes, outside the
    // server: that is most of "other" then.
    let other_label = match engine {
        Engine::Sqlite => "other processes",
        Engine::Postgres => "PostgreSQL (other processes)",
    };
    writeln!(r, "### CPU per phase\n")?;
    writeln!(
        r,
        "Percent of one core; the machine has {:.0} cores ({:.0}% = all busy). \"other\" is the rest \
         of the machine: PostgreSQL backends, and anything unrelated that ran meanwhile.\n",
        phases.first().map_or(1.0, |p| p.cpu.cores),
        phases.first().map_or(100.0, |p| p.cpu.cores * 100.0)
    )?;
    writeln!(
        r,
        "| phase | wall s | server % | load generator % | seeding process % | other % | machine % | bottleneck |"
    )?;
    writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    for p in &phases {
        let c = &p.cpu;
        writeln!(
            r,
            "| {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            p.name,
            c.wall,
            c.server,
            c.bench,
            c.children,
            c.other,
            c.machine,
            c.bottleneck(other_label)
        )?;
    }
    let warnings = std::fs::read_to_string(&log)
        .map(|t| t.lines().count())
        .unwrap_or(0);
    writeln!(r, "\nServer log: {warnings} lines at warn level or above.")?;
    if warnings > 0 {
        writeln!(r, "\n```text\n{}\n```", log_tail(&log, 20))?;
    }
    let summary = format!(
        "{}: seed {:.1} s; {summary_tail}; server RSS {:.0} MiB",
        engine.name(),
        seed_cpu.wall,
        rss as f64 / 1024.0
    );
    Ok(EngineOutcome {
        report: r,
        summary,
        failed,
    })
}

/// Search and booking phases and the checks; returns the summary text and whether a check failed.
#[allow(clippy::too_many_arguments)]
async fn measure(
    engine: Engine,
    args: &Args,
    tck: f64,
    db: &BenchDb,
    client: &reqwest::Client,
    base: &str,
    pid: u32,
    r: &mut String,
    phases: &mut Vec<Phase>,
    gateway: Option<&HttpReceiver>,
) -> Result<(String, bool)> {
    let clients = usize::from(args.clients);
    let today = vietnam_today();
    let day = |n: i64| today + chrono::Duration::days(n);

    // The directory the searches and bookings are drawn from.
    progress(&format!("{}: reading the directory", engine.name()));
    let specialties: Vec<SpecialtyRow> =
        get_json(client, &format!("{base}/api/v1/specialties")).await?;
    let clinicians: Vec<ClinicianRow> =
        all_pages(client, &format!("{base}/api/v1/clinicians")).await?;
    let hubs: Vec<FacilityRow> = get_json(
        client,
        &format!("{base}/api/v1/facilities?kind=hub_hospital&limit=500"),
    )
    .await?;
    let centres: Vec<FacilityRow> = all_pages(
        client,
        &format!("{base}/api/v1/facilities?kind=care_centre"),
    )
    .await?;
    let patients: Vec<PatientRow> =
        get_json(client, &format!("{base}/api/v1/patients?limit=500")).await?;
    let specialists: Vec<&ClinicianRow> = clinicians
        .iter()
        .filter(|c| c.facility_kind == "hub_hospital")
        .collect();
    if specialties.is_empty() || specialists.is_empty() || hubs.is_empty() {
        return Err("the demo network has no specialties, hubs or hub specialists".into());
    }
    let mut provinces: Vec<String> = hubs.iter().map(|h| h.province.clone()).collect();
    provinces.sort();
    provinces.dedup();
    writeln!(
        r,
        "Directory: {} specialties, {} clinicians ({} hub specialists), {} hubs in {} provinces, \
         {} care centres, {} patients read.\n",
        specialties.len(),
        clinicians.len(),
        specialists.len(),
        hubs.len(),
        provinces.len(),
        centres.len(),
        patients.len()
    )?;

    // Search mix: four kinds in turn, each cycling through its own list.
    let mut searches = Vec::with_capacity(args.searches);
    for i in 0..args.searches {
        let k = i / 4;
        let path = match i % 4 {
            0 => format!(
                "/api/v1/slots?specialty={}&from={}&to={}&limit=100",
                specialties[k % specialties.len()].code,
                today,
                day(29)
            ),
            1 => format!(
                "/api/v1/slots?clinician_id={}&from={}&to={}&limit=100",
                specialists[k % specialists.len()].id,
                today,
                day(6)
            ),
            2 => format!(
                "/api/v1/slots?facility_id={}&from={}&to={}&limit=100",
                hubs[k % hubs.len()].id,
                today,
                day(13)
            ),
            _ => format!(
                "/api/v1/slots?province={}&from={}&to={}&limit=100",
                encode(&provinces[k % provinces.len()]),
                today,
                day(29)
            ),
        };
        searches.push(format!("{base}{path}"));
    }
    // One untimed pass over the first request of each kind: proves the searches find slots (an
    // empty answer would be fast and meaningless) and warms the server up.
    let kinds = [
        "specialty, 30 days",
        "one clinician, 7 days",
        "one hub, 14 days",
        "province, 30 days",
    ];
    let mut found = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        if let Some(url) = searches.get(i) {
            let reply: SlotsReply = get_json(client, url).await?;
            found.push(format!(
                "{kind}: {}{}",
                reply.slots.len(),
                if reply.truncated { " (truncated)" } else { "" }
            ));
        }
    }
    let searches = Arc::new(searches);

    let mut search_rows = Vec::new();
    for (label, workers) in [("sequential", 1usize), ("concurrent", clients)] {
        progress(&format!(
            "{}: {} slot searches, {label} ({workers} client(s))",
            engine.name(),
            searches.len()
        ));
        let before = sample_cpu(Some(pid))?;
        let urls = searches.clone();
        let http = client.clone();
        let result = run_load(workers, urls.len(), move |i| {
            let http = http.clone();
            let url = urls[i].clone();
            async move { search_once(&http, &url).await }
        })
        .await?;
        let after = sample_cpu(Some(pid))?;
        phases.push(Phase {
            name: format!("search, {label} ({workers} client(s))"),
            cpu: CpuUse::between(&before, &after, tck),
        });
        search_rows.push((label, workers, result));
    }
    writeln!(
        r,
        "### Free-slot search ({} requests per run)\n\nMix, in turn: specialty over 30 days, one \
         specialist over 7 days, one hub over 14 days, a hub's province over 30 days; limit 100. \
         Slots found by the first of each: {}.\n",
        searches.len(),
        found.join("; ")
    )?;
    writeln!(
        r,
        "| run | clients | requests | non-200 | req/s | p50 ms | p90 ms | p99 ms | max ms |"
    )?;
    writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut search_summary = Vec::new();
    let mut search_errors = 0;
    for (label, workers, res) in &search_rows {
        let h = &res.all;
        let bad: u64 = res.others(&["200"]).values().sum();
        search_errors += bad;
        let rps = h.len() as f64 / res.wall.as_secs_f64();
        writeln!(
            r,
            "| {label} | {workers} | {} | {bad} | {rps:.0} | {} | {} | {} | {} |",
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.9)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        )?;
        search_summary.push(format!(
            "search {label} p50 {} ms p99 {} ms {rps:.0} req/s",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99))
        ));
    }
    for (label, _, res) in &search_rows {
        for (class, n) in res.others(&["200"]) {
            writeln!(r, "\n**{label} search: {n} × {class}**")?;
        }
        for s in &res.samples {
            writeln!(r, "\n- `{s}`")?;
        }
    }
    writeln!(r)?;

    // Booking: the free slots of every hub specialist over the next 31 days.
    progress(&format!("{}: collecting free slots", engine.name()));
    let mut slots: Vec<(i64, DateTime<Utc>)> = Vec::new();
    let mut truncated = 0;
    // Slots starting within the run could pass while it lasts and be refused as "in the past":
    // leave the next 15 minutes out.
    let earliest = Utc::now() + chrono::Duration::minutes(15);
    for s in &specialists {
        let reply: SlotsReply = get_json(
            client,
            &format!(
                "{base}/api/v1/slots?clinician_id={}&from={today}&to={}&limit=1000",
                s.id,
                day(30)
            ),
        )
        .await?;
        truncated += usize::from(reply.truncated);
        slots.extend(
            reply
                .slots
                .into_iter()
                .filter(|x| x.start > earliest && x.clinician_id == s.id)
                .map(|x| (x.clinician_id, x.start)),
        );
    }
    // Who asks: a patient, their home care centre and its rural clinician, so every booking is
    // a valid teleconsultation.
    let centre_ids: HashSet<i64> = centres.iter().map(|c| c.id).collect();
    let mut rural: HashMap<i64, i64> = HashMap::new();
    for c in &clinicians {
        if centre_ids.contains(&c.facility_id) {
            rural.entry(c.facility_id).or_insert(c.id);
        }
    }
    let askers: Vec<(i64, i64, i64)> = patients
        .iter()
        .filter_map(|p| {
            let centre = p.home_facility_id?;
            rural.get(&centre).map(|&doc| (p.id, centre, doc))
        })
        .collect();
    if askers.is_empty() || slots.is_empty() {
        return Err(format!(
            "nothing to book: {} free slots, {} patients with a care centre and rural clinician",
            slots.len(),
            askers.len()
        )
        .into());
    }

    let mut rng = SplitMix(0x7E1E_4EA1_7B0C_0001);
    rng.shuffle(&mut slots);
    let n = args.bookings.min(slots.len());
    // 5% of the attempts aim at a slot another attempt also wants: exactly one of each pair may
    // win, the other must get 409 slot_taken.
    let duplicates = n / 20;
    let distinct = n - duplicates;
    let mut targets: Vec<(i64, DateTime<Utc>)> = slots[..distinct].to_vec();
    for _ in 0..duplicates {
        let again = targets[rng.below(distinct)];
        targets.push(again);
    }
    rng.shuffle(&mut targets);
    let bodies: Vec<serde_json::Value> = targets
        .iter()
        .enumerate()
        .map(|(i, (clinician, start))| {
            let (patient, centre, doc) = askers[i % askers.len()];
            json!({
                "kind": "teleconsultation",
                "clinician_id": clinician,
                "patient_id": patient,
                "requesting_facility_id": centre,
                "referring_clinician_id": doc,
                "reason": "bench",
                "urgency": "routine",
                "start": start.to_rfc3339(),
            })
        })
        .collect();
    let bodies = Arc::new(bodies);

    let mut probe = Probe::connect(engine, &db.url).await?;
    let rows_before = probe.count(COUNT_CONSULTATIONS).await?;
    progress(&format!(
        "{}: {} booking attempts ({duplicates} deliberate duplicates), {clients} workers",
        engine.name(),
        bodies.len()
    ));
    let before = sample_cpu(Some(pid))?;
    let http = client.clone();
    let url = format!("{base}/api/v1/consultations");
    let booked = run_load(clients, bodies.len(), move |i| {
        let http = http.clone();
        let url = url.clone();
        let body = bodies[i].clone();
        async move { book_once(&http, &url, &body).await }
    })
    .await?;
    let after = sample_cpu(Some(pid))?;
    let book_cpu = CpuUse::between(&before, &after, tck);
    phases.push(Phase {
        name: format!("booking ({clients} clients)"),
        cpu: book_cpu,
    });

    progress(&format!("{}: checking the database", engine.name()));
    let rows_after = probe.count(COUNT_CONSULTATIONS).await?;
    let overlaps = probe.count(COUNT_OVERLAPS).await?;
    probe.close().await;

    let created = booked.count("201");
    let conflicts = booked.count("409 slot_taken");
    let others = booked.others(&["201", "409 slot_taken"]);
    let other_total: u64 = others.values().sum();
    let wall = booked.wall.as_secs_f64();
    let new_rows = rows_after - rows_before;
    let rows_ok = u64::try_from(new_rows).ok() == Some(created);
    let failed = overlaps != 0 || !rows_ok;

    writeln!(
        r,
        "### Booking (teleconsultations, {clients} concurrent workers)\n\n{} free slots of {} hub \
         specialists over {today}..{} ({truncated} clinician searches truncated at 1000); {} \
         attempts on {distinct} distinct slots, {duplicates} of them deliberate duplicates; {} \
         patient/care-centre/rural-clinician triples.\n",
        slots.len(),
        specialists.len(),
        day(30),
        n,
        askers.len()
    )?;
    writeln!(
        r,
        "| attempts | created (201) | conflicts (409 slot_taken) | other | wall s | committed bookings/s | attempts/s | p50 ms | p90 ms | p99 ms | max ms |"
    )?;
    writeln!(
        r,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )?;
    let h = &booked.all;
    writeln!(
        r,
        "| {} | {created} | {conflicts} | {other_total} | {wall:.2} | {:.0} | {:.0} | {} | {} | {} | {} |\n",
        h.len(),
        created as f64 / wall,
        h.len() as f64 / wall,
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )?;
    writeln!(
        r,
        "| answer | count | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|"
    )?;
    for (class, hist) in &booked.by_class {
        writeln!(
            r,
            "| {class} | {} | {} | {} | {} |",
            hist.len(),
            ms(hist.value_at_quantile(0.5)),
            ms(hist.value_at_quantile(0.99)),
            ms(hist.max())
        )?;
    }
    if !booked.samples.is_empty() {
        writeln!(
            r,
            "\nUnexpected answers (first {}):\n",
            booked.samples.len()
        )?;
        for s in &booked.samples {
            writeln!(r, "- `{s}`")?;
        }
    }
    writeln!(r, "\n### Checks (straight in the database)\n")?;
    writeln!(r, "| check | result |\n|---|---|")?;
    writeln!(
        r,
        "| overlapping live consultations of one clinician | {overlaps} {} |",
        if overlaps == 0 {
            "✓"
        } else {
            "✗ DOUBLE BOOKING"
        }
    )?;
    writeln!(
        r,
        "| new consultation rows vs 201 answers | {new_rows} vs {created} {} |",
        if rows_ok { "✓" } else { "✗ MISMATCH" }
    )?;
    writeln!(
        r,
        "| created vs distinct slots attempted | {created} of {distinct}{} |",
        if created as usize == distinct {
            " ✓"
        } else {
            " (short: see other answers)"
        }
    )?;
    writeln!(
        r,
        "| conflicts vs deliberate duplicates | {conflicts} vs {duplicates}{} |\n",
        if conflicts as usize == duplicates {
            " ✓"
        } else {
            ""
        }
    )?;

    let burst = match gateway.filter(|_| !args.no_dispatch) {
        Some(g) => reminder_burst(engine, args, db, g, pid, tck, r, phases).await?,
        None => String::new(),
    };
    let tail = format!(
        "{}; booking {:.0}/s committed ({created} created, {conflicts} conflicts, {other_total} other{}), p50 {} ms p99 {} ms; double bookings {overlaps}; rows {}; search errors {search_errors}",
        search_summary.join(", "),
        created as f64 / wall,
        if others.is_empty() {
            String::new()
        } else {
            format!(" {others:?}")
        },
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        if rows_ok { "OK" } else { "MISMATCH" }
    ) + &burst;
    Ok((tail, failed))
}

/// The reminder burst: once the confirmations are out, `--reminders` queued reminders are made
/// due at one instant, and the time until the gateway has every one is measured.
#[allow(clippy::too_many_arguments)]
async fn reminder_burst(
    engine: Engine,
    args: &Args,
    db: &BenchDb,
    gateway: &HttpReceiver,
    pid: u32,
    tck: f64,
    r: &mut String,
    phases: &mut Vec<Phase>,
) -> Result<String> {
    let mut probe = Probe::connect(engine, &db.url).await?;
    progress(&format!(
        "{}: waiting for the confirmations to go out",
        engine.name()
    ));
    let drained = Instant::now();
    while probe.count(QUEUED_CONFIRMATIONS).await? > 0 {
        if drained.elapsed() > Duration::from_secs(600) {
            return Err("the confirmations were not all sent within 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let confirmations = gateway.requests().len();
    let queued = probe.count(QUEUED_REMINDERS).await?;
    let n = args.reminders.min(usize::try_from(queued).unwrap_or(0));
    if n == 0 {
        return Err("no queued reminders to make due".into());
    }
    // One instant for all, a little ahead so the whole UPDATE commits before it comes.
    let due = (Utc::now() + chrono::Duration::seconds(2))
        .with_nanosecond(0)
        .ok_or("a whole second")?;
    let made_due = match &mut probe {
        Probe::Sqlite(c) => sqlx::query(MAKE_DUE)
            .bind(due)
            .bind(n as i64)
            .execute(c)
            .await?
            .rows_affected(),
        Probe::Postgres(c) => sqlx::query(MAKE_DUE)
            .bind(due)
            .bind(n as i64)
            .execute(c)
            .await?
            .rows_affected(),
    };
    progress(&format!(
        "{}: {made_due} reminders due at {due}",
        engine.name()
    ));
    let wait = (due - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let before = sample_cpu(Some(pid))?;
    let started = Instant::now();
    let target = confirmations + made_due as usize;
    let mut half = None;
    loop {
        let got = gateway.requests().len();
        if half.is_none() && got >= confirmations + made_due as usize / 2 {
            half = Some(started.elapsed());
        }
        if got >= target {
            break;
        }
        if started.elapsed() > Duration::from_secs(900) {
            return Err(format!(
                "only {} of {made_due} reminders in 15 minutes",
                got - confirmations
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let all = started.elapsed();
    let after = sample_cpu(Some(pid))?;
    phases.push(Phase {
        name: format!("reminder burst ({made_due} due at once)"),
        cpu: CpuUse::between(&before, &after, tck),
    });
    let dead = probe.count(DEAD_MESSAGES).await?;
    probe.close().await;
    writeln!(
        r,
        "### Reminder burst (outbox)\n\n{confirmations} confirmations sent during and after the \
         booking phase. {made_due} reminders made due at one instant: half handed to the gateway \
         after **{:.2} s**, all after **{:.2} s** ({:.0} messages/s); {dead} dead.\n",
        half.unwrap_or(all).as_secs_f64(),
        all.as_secs_f64(),
        made_due as f64 / all.as_secs_f64()
    )?;
    Ok(format!(
        "; {made_due} reminders due at once all sent in {:.2} s ({:.0}/s), {dead} dead",
        all.as_secs_f64(),
        made_due as f64 / all.as_secs_f64()
    ))
}

/// Makes the first `$2` queued reminders due at `$1`.
const MAKE_DUE: &str = "UPDATE outbox_messages SET due_at = $1
     WHERE id IN (SELECT id FROM outbox_messages
                  WHERE event_kind = 'consultation.reminder' AND status = 'queued'
                  ORDER BY id LIMIT $2)";

/// Percent-encodes a query value (province names are Vietnamese, with spaces).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

async fn search_once(http: &reqwest::Client, url: &str) -> Outcome {
    match http.get(url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // The body is read whole (the latency includes the transfer) but not parsed: parsing
            // would spend the load generator's CPU, which the server shares.
            match resp.bytes().await {
                Ok(_) if status == 200 => Outcome {
                    class: "200".into(),
                    unexpected: None,
                },
                Ok(body) => Outcome {
                    class: format!("HTTP {status}"),
                    unexpected: Some(String::from_utf8_lossy(&body).into_owned()),
                },
                Err(e) => transport(e),
            }
        }
        Err(e) => transport(e),
    }
}

async fn book_once(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> Outcome {
    match http.post(url).json(body).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.text().await {
                Ok(_) if status == 201 => Outcome {
                    class: "201".into(),
                    unexpected: None,
                },
                Ok(text) if status == 409 => {
                    let code = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                        .unwrap_or_else(|| "?".into());
                    let unexpected = (code != "slot_taken").then_some(text);
                    Outcome {
                        class: format!("409 {code}"),
                        unexpected,
                    }
                }
                Ok(text) => Outcome {
                    class: format!("HTTP {status}"),
                    unexpected: Some(text),
                },
                Err(e) => transport(e),
            }
        }
        Err(e) => transport(e),
    }
}

fn transport(e: reqwest::Error) -> Outcome {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "transport error"
    };
    Outcome {
        class: kind.into(),
        unexpected: Some(e.to_string()),
    }
}

// ---- main -------------------------------------------------------------------------------------

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let bin = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("telehealth"),
        Err(e) => {
            eprintln!("error: cannot locate this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !bin.is_file() {
        eprintln!(
            "error: {} not found; build it first: cargo build --release -p telehealth-server -p telehealth-tests",
            bin.display()
        );
        return ExitCode::FAILURE;
    }
    let engines: &[Engine] = match args.engine {
        EngineChoice::Sqlite => &[Engine::Sqlite],
        EngineChoice::Postgres => &[Engine::Postgres],
        EngineChoice::Both => &[Engine::Sqlite, Engine::Postgres],
    };
    let tck = clock_ticks();
    println!(
        "# Scheduling benchmark\n\n{} cores, {} clients, {} searches per run, up to {} bookings; \
         outbox {}; server {}; started {}.",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.clients,
        args.searches,
        args.bookings,
        match (args.outbox, args.no_dispatch) {
            (true, false) => "in place (SMS to every consenting patient)",
            (true, true) => "written but not sent (no dispatcher)",
            (false, _) => "off",
        },
        bin.display(),
        Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    let mut ok = true;
    let mut summaries = Vec::new();
    for &engine in engines {
        match run_engine(engine, &args, &bin, tck).await {
            Ok(outcome) => {
                println!("{}", outcome.report);
                ok &= !outcome.failed;
                summaries.push(format!(
                    "{} {}",
                    if outcome.failed { "FAIL" } else { "OK" },
                    outcome.summary
                ));
            }
            Err(e) => {
                ok = false;
                println!("\n## {}\n\n**Benchmark failed:** {e}\n", engine.name());
                summaries.push(format!("FAIL {}: {e}", engine.name()));
            }
        }
    }
    println!("## Summary\n");
    for s in &summaries {
        println!("- {s}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
