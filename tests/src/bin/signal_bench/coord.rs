//! The coordinator: starts each target and the worker processes, runs the phases in step, and
//! writes the report.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::ValueEnum;
use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use telehealth_tests::bench_support::{clock_ticks, free_port, log_tail, ms};

use crate::procfs::{self, CpuUse};
use crate::wire::{Command, Event, JoinReport, Mode, RelayReport, new_histogram};
use crate::{Result, instant_at, unix_us};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// The `telehealth` server's `GET /signaling`.
    Telehealth,
    /// The baseline: `node tests/bench/ws-relay/relay.js`.
    Node,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Telehealth => "telehealth",
            Target::Node => "Node ws relay",
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Targets to measure, one after the other, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Target::Telehealth, Target::Node])]
    targets: Vec<Target>,
    /// Rooms held at once (two participants each).
    #[arg(long, default_value_t = 9500, value_parser = clap::value_parser!(u32).range(1..))]
    rooms: u32,
    /// Rooms of the join storm (the first rooms).
    #[arg(long, default_value_t = 1000)]
    storm_rooms: u32,
    /// The storm's rooms start evenly spread over this many seconds.
    #[arg(long, default_value_t = 1.0)]
    storm_secs: f64,
    /// Participants per second joining after the storm, up to --rooms.
    #[arg(long, default_value_t = 1000.0)]
    fill_rate: f64,
    /// Seconds every participant stays idle before the memory is read.
    #[arg(long, default_value_t = 10.0)]
    idle_secs: f64,
    /// Relay messages per second in all during the steady relay phase.
    #[arg(long, default_value_t = 10_000.0)]
    relay_rate: f64,
    /// Seconds of the steady relay phase.
    #[arg(long, default_value_t = 10.0)]
    relay_secs: f64,
    /// Higher rates tried after the steady phase, in order, until the target falls behind
    /// (delivers less than 90% of what was sent in the step).
    #[arg(long, value_delimiter = ',', default_values_t = [20_000.0, 40_000.0, 80_000.0])]
    max_rates: Vec<f64>,
    /// Seconds of the warm-up before the relay phases, in which every participant sends one
    /// message (0: none).
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Seconds of each --max-rates step.
    #[arg(long, default_value_t = 5.0)]
    max_secs: f64,
    /// Worker processes [default: one per 5,000 participants].
    #[arg(long)]
    workers: Option<u32>,
    /// The server binary [default: `telehealth` beside this executable].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The baseline relay's folder (relay.js, package.json) [default: tests/bench/ws-relay].
    #[arg(long)]
    relay_dir: Option<PathBuf>,
    /// The Node.js executable.
    #[arg(long, default_value = "node")]
    node: String,
}

fn progress(msg: &str) {
    eprintln!("[signal_bench {}] {msg}", Utc::now().format("%H:%M:%S"));
}

// ---- targets ----------------------------------------------------------------------------------

struct Running {
    child: Child,
    pid: u32,
    url: String,
    mode: Mode,
    key: Option<Vec<u8>>,
    log: PathBuf,
    /// Holds the data directory (and logs) until the run ends.
    _dir: tempfile::TempDir,
}

async fn start_telehealth(bin: &Path, rooms: u32) -> Result<Running> {
    let dir = tempfile::Builder::new()
        .prefix("th-signal-bench-")
        .tempdir()?;
    let port = free_port()?;
    let log = dir.path().join("server.log");
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let mut child = tokio::process::Command::new(bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "serve"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // An early return must not leave a server running.
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("server exited at once")?;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return Err(format!(
                "server exited during start-up ({status}); log tail:\n{}",
                log_tail(&log, 30)
            )
            .into());
        }
        let ready = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() == 200);
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
    seed_consultations(&dir.path().join("telehealth.db"), rooms).await?;
    // The bench owns this data directory, so it may mint join tokens with its key, as the API
    // does for booked consultations.
    let master = std::fs::read(dir.path().join("visit-link.key"))
        .map_err(|e| format!("reading the server's visit-link key: {e}"))?;
    Ok(Running {
        child,
        pid,
        url: format!("ws://127.0.0.1:{port}/signaling"),
        mode: Mode::Signaling,
        key: Some(telehealth_signaling::token::key_from_master(&master)),
        log,
        _dir: dir,
    })
}

/// Every join asks the database whether its consultation still admits the token, so the rooms'
/// consultations must exist: consultation 10,000,000 + n, booked from now for three hours, with
/// clinician n and patient n (9,500 simultaneous consultations cannot be booked through the API
/// with the demo's 48 specialists). Written straight into the server's SQLite file, which the
/// bench created.
async fn seed_consultations(db_file: &Path, rooms: u32) -> Result<()> {
    use sqlx::Connection;
    let mut db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", db_file.display())).await?;
    let now = Utc::now();
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO facilities (id, code, name, kind, level, province, address, time_zone, created_at)
         VALUES (1, 'BENCH-HUB', 'Bench hub', 'hub_hospital', 'central', 'Hà Nội', '-',
                 'Asia/Ho_Chi_Minh', $1)",
    )
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let rows = [
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1)
         INSERT INTO clinicians (id, facility_id, full_name, title, created_at)
         SELECT i, 1, 'Bench clinician ' || i, 'BS', $2 FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1)
         INSERT INTO patients (id, full_name, date_of_birth, sex, created_at)
         SELECT i, 'Bench patient ' || i, '1980-01-01', 'unknown', $2 FROM n",
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $1)
         INSERT INTO consultations (id, kind, status, clinician_id, patient_id, reason, urgency,
                                    start_at, end_at, created_at, updated_at)
         SELECT 10000000 + i, 'video_visit', 'booked', i, i, 'bench', 'routine', $2, $3, $2, $2
         FROM n",
    ];
    for sql in rows {
        sqlx::query(sql)
            .bind(i64::from(rooms))
            .bind(now)
            .bind(now + chrono::Duration::hours(3))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    db.close().await?;
    Ok(())
}

async fn start_node(node: &str, relay_dir: &Path) -> Result<Running> {
    let script = relay_dir.join("relay.js");
    if !script.is_file() {
        return Err(format!("{} not found", script.display()).into());
    }
    if !relay_dir.join("node_modules/ws/package.json").is_file() {
        progress(&format!(
            "installing the relay's `ws` (npm ci in {})",
            relay_dir.display()
        ));
        let status = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(relay_dir)
            .stdin(Stdio::null())
            .status()
            .await
            .map_err(|e| format!("npm: {e} (install Node.js and npm)"))?;
        if !status.success() {
            return Err(format!("npm ci in {} failed ({status})", relay_dir.display()).into());
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("th-signal-bench-node-")
        .tempdir()?;
    let port = free_port()?;
    let log = dir.path().join("relay.log");
    let err = std::fs::File::create(&log)?;
    let mut child = tokio::process::Command::new(node)
        .arg(&script)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{node}: {e} (install Node.js)"))?;
    let pid = child.id().ok_or("relay exited at once")?;
    let stdout = child.stdout.take().ok_or("no relay stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // The first line that says so; anything before it (runtime warnings) is passed over.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match lines.next_line().await? {
                Some(line) if line.starts_with("listening") => return Ok(()),
                Some(_) => {}
                None => {
                    return Err::<(), crate::BoxError>(
                        format!("the relay exited; log:\n{}", log_tail(&log, 20)).into(),
                    );
                }
            }
        }
    })
    .await
    .map_err(|_| "the relay did not say it listens within 10 s")??;
    // Anything the relay prints later (NODE_OPTIONS=--trace-gc, warnings) goes to its log: a
    // full pipe would block it, as Node writes to pipes synchronously.
    let mut rest = lines.into_inner();
    let mut sink = tokio::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .await?;
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut rest, &mut sink).await;
    });
    Ok(Running {
        child,
        pid,
        url: format!("ws://127.0.0.1:{port}/"),
        mode: Mode::Plain,
        key: None,
        log,
        _dir: dir,
    })
}

impl Running {
    /// SIGTERM; SIGKILL if it has not exited 15 s later.
    async fn stop(mut self) -> String {
        let signalled = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .is_ok_and(|s| s.success());
        if signalled
            && let Ok(Ok(status)) =
                tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await
        {
            return format!("stopped by SIGTERM ({status})");
        }
        let _ = self.child.kill().await;
        "did not stop within 15 s of SIGTERM; killed".to_string()
    }
}

// ---- workers ----------------------------------------------------------------------------------

struct Worker {
    child: Child,
    pid: u32,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn spawn(exe: &Path) -> Result<Worker> {
        let mut child = tokio::process::Command::new(exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("worker exited at once")?;
        let stdin = child.stdin.take().ok_or("no worker stdin")?;
        let stdout = child.stdout.take().ok_or("no worker stdout")?;
        Ok(Worker {
            child,
            pid,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    async fn send(&mut self, cmd: &Command) -> Result<()> {
        let mut line = serde_json::to_string(cmd)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn recv(&mut self, within: Duration) -> Result<Event> {
        let line = tokio::time::timeout(within, self.lines.next_line())
            .await
            .map_err(|_| format!("worker {} did not answer within {within:?}", self.pid))??
            .ok_or_else(|| format!("worker {} exited", self.pid))?;
        match serde_json::from_str(&line)? {
            Event::Failed { message } => Err(format!("worker {}: {message}", self.pid).into()),
            event => Ok(event),
        }
    }
}

/// Sends each worker its command, then gathers every answer.
async fn all(workers: &mut [Worker], cmds: Vec<Command>, within: Duration) -> Result<Vec<Event>> {
    for (w, cmd) in workers.iter_mut().zip(&cmds) {
        w.send(cmd).await?;
    }
    let mut out = Vec::new();
    for w in workers.iter_mut() {
        out.push(w.recv(within).await?);
    }
    Ok(out)
}

// ---- results ----------------------------------------------------------------------------------

struct JoinSummary {
    rooms: u64,
    ok: u64,
    failed: u64,
    rooms_ready: u64,
    failures: BTreeMap<String, u64>,
    samples: Vec<String>,
    join: Histogram<u64>,
    connect: Histogram<u64>,
    join_frame: Histogram<u64>,
    admit: Histogram<u64>,
    room_ready: Histogram<u64>,
    start_lag: Histogram<u64>,
    /// First to last room start, seconds.
    start_span: f64,
    /// Scheduled first start → last participant in, seconds.
    all_in_after: f64,
    cpu: CpuUse,
}

impl JoinSummary {
    fn merge(rooms: u64, t0: u64, reports: Vec<JoinReport>, cpu: CpuUse) -> Result<JoinSummary> {
        let mut s = JoinSummary {
            rooms,
            ok: 0,
            failed: 0,
            rooms_ready: 0,
            failures: BTreeMap::new(),
            samples: Vec::new(),
            join: new_histogram()?,
            connect: new_histogram()?,
            join_frame: new_histogram()?,
            admit: new_histogram()?,
            room_ready: new_histogram()?,
            start_lag: new_histogram()?,
            start_span: 0.0,
            all_in_after: 0.0,
            cpu,
        };
        let (mut first, mut last, mut ready) = (u64::MAX, 0, 0);
        for r in reports {
            s.ok += r.participants_ok;
            s.failed += r.participants_failed;
            s.rooms_ready += r.rooms_ready;
            for (k, v) in r.failures {
                *s.failures.entry(k).or_default() += v;
            }
            for x in r.failure_samples {
                if s.samples.len() < 5 {
                    s.samples.push(x);
                }
            }
            r.join.add_to(&mut s.join);
            r.connect.add_to(&mut s.connect);
            r.join_frame.add_to(&mut s.join_frame);
            r.admit.add_to(&mut s.admit);
            r.room_ready.add_to(&mut s.room_ready);
            r.start_lag.add_to(&mut s.start_lag);
            if r.first_start_us > 0 {
                first = first.min(r.first_start_us);
            }
            last = last.max(r.last_start_us);
            ready = ready.max(r.last_ready_us);
        }
        if first != u64::MAX {
            s.start_span = last.saturating_sub(first) as f64 / 1e6;
        }
        s.all_in_after = ready.saturating_sub(t0) as f64 / 1e6;
        Ok(s)
    }
}

struct RelayStep {
    /// Every participant's first relay message, before the measured steps: the first frame on
    /// a socket that has been idle costs buffers and page faults on every process.
    warmup: bool,
    offered: f64,
    secs: f64,
    scheduled: u64,
    sent: u64,
    received: u64,
    latency: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    samples: Vec<String>,
    dropped: u64,
    /// Start → the last message received, seconds (longer than `secs` when queues built up).
    span: f64,
    cpu: CpuUse,
}

impl RelayStep {
    /// Messages received per second, over the phase or until the last one arrived if later:
    /// a target that queues does not get credit for the drain.
    fn delivered_rate(&self) -> f64 {
        self.received as f64 / self.secs.max(self.span)
    }

    /// Sent at least 90% of what was offered, delivered 99% of it, p99 under a second: worth
    /// trying a higher rate.
    fn kept_up(&self) -> bool {
        self.sent as f64 >= 0.9 * self.offered * self.secs
            && self.received as f64 >= 0.99 * self.sent as f64
            && self.latency.value_at_quantile(0.99) < 1_000_000
    }
}

struct TargetResult {
    target: Target,
    participants: u64,
    workers: usize,
    storm: JoinSummary,
    fill: JoinSummary,
    held: u64,
    dropped_idle: u64,
    held_errors: BTreeMap<String, u64>,
    idle_cpu: CpuUse,
    rss_empty: u64,
    rss_full: u64,
    /// Lowest and highest RSS read during the idle period.
    rss_idle_range: (u64, u64),
    rss_after: u64,
    hwm: u64,
    fds_full: usize,
    relay: Vec<RelayStep>,
    stopped: String,
    log_lines: usize,
    log_tail: String,
}

impl TargetResult {
    /// Bytes of the target's memory per idle participant.
    fn per_participant(&self) -> f64 {
        if self.held == 0 {
            return 0.0;
        }
        self.rss_full.saturating_sub(self.rss_empty) as f64 * 1024.0 / self.held as f64
    }

    fn steady(&self) -> Option<&RelayStep> {
        self.relay.iter().find(|s| !s.warmup)
    }

    fn max_delivered(&self) -> Option<&RelayStep> {
        self.relay
            .iter()
            .filter(|s| !s.warmup)
            .max_by(|a, b| a.delivered_rate().total_cmp(&b.delivered_rate()))
    }
}

// ---- one target -------------------------------------------------------------------------------

async fn run_target(
    index: usize,
    target: Target,
    args: &Args,
    exe: &Path,
    server_bin: &Path,
    relay_dir: &Path,
    tck: f64,
) -> Result<TargetResult> {
    let label = target.label();
    let participants = u64::from(args.rooms) * 2;
    let n_workers = args
        .workers
        .map_or_else(
            || participants.div_ceil(5000).max(1) as usize,
            |w| w as usize,
        )
        .max(1);
    progress(&format!("{label}: starting"));
    let running = match target {
        Target::Telehealth => start_telehealth(server_bin, args.rooms).await?,
        Target::Node => start_node(&args.node, relay_dir).await?,
    };
    let pid = running.pid;
    // Let start-up allocations settle before the empty reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_empty, _) = procfs::memory_kib(pid)?;

    let mut workers = Vec::new();
    for _ in 0..n_workers {
        workers.push(Worker::spawn(exe).await?);
    }
    let worker_pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
    let setups = (0..n_workers)
        .map(|w| Command::Setup {
            url: running.url.clone(),
            mode: running.mode,
            key_hex: running
                .key
                .as_ref()
                .map(|k| k.iter().map(|b| format!("{b:02x}")).collect()),
            // Its own loopback address per worker and per target (127.0.<target>.<worker>).
            source_ip: format!("127.0.{}.{}", index + 1, w + 1),
        })
        .collect();
    for e in all(&mut workers, setups, Duration::from_secs(10)).await? {
        if !matches!(e, Event::Ready { .. }) {
            return Err(format!("unexpected answer to setup: {e:?}").into());
        }
    }

    let measured = measure(target, args, &mut workers, &worker_pids, pid, tck).await;
    let (rss_after, hwm) = procfs::memory_kib(pid).unwrap_or((0, 0));
    progress(&format!("{label}: closing"));
    let closing = all(
        &mut workers,
        (0..n_workers).map(|_| Command::Close).collect(),
        Duration::from_secs(30),
    )
    .await;
    for w in &mut workers {
        let _ = tokio::time::timeout(Duration::from_secs(10), w.child.wait()).await;
    }
    let log = running.log.clone();
    let stopped = running.stop().await;
    let (
        storm,
        fill,
        held,
        dropped_idle,
        held_errors,
        idle_cpu,
        rss_full,
        rss_idle_range,
        fds_full,
        relay,
    ) = measured?;
    closing?;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    Ok(TargetResult {
        target,
        participants,
        workers: n_workers,
        storm,
        fill,
        held,
        dropped_idle,
        held_errors,
        idle_cpu,
        rss_empty,
        rss_full,
        rss_idle_range,
        rss_after,
        hwm,
        fds_full,
        relay,
        stopped,
        log_lines: log_text.lines().count(),
        log_tail: log_tail(&log, 15),
    })
}

type Measured = (
    JoinSummary,
    JoinSummary,
    u64,
    u64,
    BTreeMap<String, u64>,
    CpuUse,
    u64,
    (u64, u64),
    usize,
    Vec<RelayStep>,
);

async fn join_phase(
    workers: &mut [Worker],
    worker_pids: &[u32],
    pid: u32,
    tck: f64,
    rooms: std::ops::Range<u32>,
    spacing_us: f64,
) -> Result<JoinSummary> {
    let t0 = unix_us() + 1_000_000;
    let n = workers.len();
    let mut per_worker: Vec<Vec<(u32, u64)>> = vec![Vec::new(); n];
    for (i, room) in rooms.clone().enumerate() {
        per_worker[room as usize % n].push((room, t0 + (i as f64 * spacing_us) as u64));
    }
    let cmds: Vec<Command> = per_worker
        .into_iter()
        .map(|rooms| Command::Join { rooms })
        .collect();
    for (w, cmd) in workers.iter_mut().zip(&cmds) {
        w.send(cmd).await?;
    }
    tokio::time::sleep_until(instant_at(t0).into()).await;
    let before = procfs::sample(pid, worker_pids)?;
    let span = rooms.len() as f64 * spacing_us / 1e6;
    let within = Duration::from_secs_f64(span + 60.0);
    let mut reports = Vec::new();
    for w in workers.iter_mut() {
        match w.recv(within).await? {
            Event::Joined(r) => reports.push(r),
            e => return Err(format!("unexpected answer to join: {e:?}").into()),
        }
    }
    let after = procfs::sample(pid, worker_pids)?;
    JoinSummary::merge(
        rooms.len() as u64,
        t0,
        reports,
        CpuUse::between(&before, &after, tck),
    )
}

async fn relay_phase(
    workers: &mut [Worker],
    worker_pids: &[u32],
    pid: u32,
    tck: f64,
    held: &[u64],
    rate: f64,
    secs: f64,
) -> Result<RelayStep> {
    let total: u64 = held.iter().sum();
    let start = unix_us() + 500_000;
    let cmds: Vec<Command> = held
        .iter()
        .map(|&h| Command::Relay {
            rate: if total == 0 {
                0.0
            } else {
                rate * h as f64 / total as f64
            },
            secs,
            start_unix_us: start,
        })
        .collect();
    for (w, cmd) in workers.iter_mut().zip(&cmds) {
        w.send(cmd).await?;
    }
    tokio::time::sleep_until(instant_at(start).into()).await;
    let before = procfs::sample(pid, worker_pids)?;
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let after = procfs::sample(pid, worker_pids)?;
    let mut step = RelayStep {
        warmup: false,
        offered: rate,
        secs,
        scheduled: 0,
        sent: 0,
        received: 0,
        latency: new_histogram()?,
        errors: BTreeMap::new(),
        samples: Vec::new(),
        dropped: 0,
        span: 0.0,
        cpu: CpuUse::between(&before, &after, tck),
    };
    for w in workers.iter_mut() {
        let r: RelayReport = match w.recv(Duration::from_secs_f64(secs + 60.0)).await? {
            Event::Relayed(r) => r,
            e => return Err(format!("unexpected answer to relay: {e:?}").into()),
        };
        step.scheduled += r.scheduled;
        step.sent += r.sent;
        step.received += r.received;
        step.dropped += r.dropped;
        step.span = step.span.max(r.span_us as f64 / 1e6);
        r.latency.add_to(&mut step.latency);
        for (k, v) in r.errors {
            *step.errors.entry(k).or_default() += v;
        }
        for s in r.error_samples {
            if step.samples.len() < 5 {
                step.samples.push(s);
            }
        }
    }
    Ok(step)
}

async fn measure(
    target: Target,
    args: &Args,
    workers: &mut [Worker],
    worker_pids: &[u32],
    pid: u32,
    tck: f64,
) -> Result<Measured> {
    let label = target.label();
    let storm_rooms = args.storm_rooms.min(args.rooms);
    progress(&format!(
        "{label}: join storm, {storm_rooms} rooms in {} s",
        args.storm_secs
    ));
    let storm = join_phase(
        workers,
        worker_pids,
        pid,
        tck,
        0..storm_rooms,
        args.storm_secs * 1e6 / f64::from(storm_rooms.max(1)),
    )
    .await?;
    progress(&format!(
        "{label}: storm: {} joined, {} failed; join p99 {} ms",
        storm.ok,
        storm.failed,
        ms(storm.join.value_at_quantile(0.99))
    ));
    progress(&format!(
        "{label}: filling to {} rooms at {} participants/s",
        args.rooms, args.fill_rate
    ));
    let fill = join_phase(
        workers,
        worker_pids,
        pid,
        tck,
        storm_rooms..args.rooms,
        2e6 / args.fill_rate.max(1.0),
    )
    .await?;
    progress(&format!(
        "{label}: fill: {} joined, {} failed; idle for {} s",
        fill.ok, fill.failed, args.idle_secs
    ));
    let before = procfs::sample(pid, worker_pids)?;
    // RSS once a second while idle: the reading is the last one, the range shows whether the
    // target was still settling (a garbage collector, an allocator returning memory).
    let idle_until = Instant::now() + Duration::from_secs_f64(args.idle_secs);
    let mut rss_range = (u64::MAX, 0);
    loop {
        let (rss, _) = procfs::memory_kib(pid)?;
        rss_range = (rss_range.0.min(rss), rss_range.1.max(rss));
        let left = idle_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_secs(1))).await;
    }
    let after = procfs::sample(pid, worker_pids)?;
    let idle_cpu = CpuUse::between(&before, &after, tck);
    let (rss_full, _) = procfs::memory_kib(pid)?;
    rss_range = (rss_range.0.min(rss_full), rss_range.1.max(rss_full));
    let fds_full = procfs::open_files(pid);
    let counts = all(
        workers,
        workers.iter().map(|_| Command::Count).collect(),
        Duration::from_secs(10),
    )
    .await?;
    let mut held_per_worker = Vec::new();
    let (mut dropped, mut errors) = (0, BTreeMap::new());
    for e in counts {
        match e {
            Event::Held {
                connected,
                dropped: d,
                errors: errs,
            } => {
                held_per_worker.push(connected);
                dropped += d;
                for (k, v) in errs {
                    *errors.entry(k).or_insert(0) += v;
                }
            }
            e => return Err(format!("unexpected answer to count: {e:?}").into()),
        }
    }
    let held: u64 = held_per_worker.iter().sum();
    progress(&format!(
        "{label}: {held} participants held; RSS {:.1} MiB",
        rss_full as f64 / 1024.0
    ));
    let mut relay = Vec::new();
    if args.warmup_secs > 0.0 {
        progress(&format!(
            "{label}: warm-up, every participant sends one relay message"
        ));
        let mut step = relay_phase(
            workers,
            worker_pids,
            pid,
            tck,
            &held_per_worker,
            held as f64 / args.warmup_secs,
            args.warmup_secs,
        )
        .await?;
        step.warmup = true;
        relay.push(step);
    }
    let rates = std::iter::once((args.relay_rate, args.relay_secs))
        .chain(args.max_rates.iter().map(|&r| (r, args.max_secs)));
    for (rate, secs) in rates {
        progress(&format!("{label}: relay at {rate} messages/s for {secs} s"));
        let step =
            relay_phase(workers, worker_pids, pid, tck, &held_per_worker, rate, secs).await?;
        progress(&format!(
            "{label}: delivered {:.0}/s, p50 {} ms, p99 {} ms",
            step.delivered_rate(),
            ms(step.latency.value_at_quantile(0.5)),
            ms(step.latency.value_at_quantile(0.99))
        ));
        let kept_up = step.kept_up();
        let first = relay.iter().all(|s| s.warmup);
        relay.push(step);
        if !kept_up && !first {
            break;
        }
    }
    Ok((
        storm, fill, held, dropped, errors, idle_cpu, rss_full, rss_range, fds_full, relay,
    ))
}

// ---- report -----------------------------------------------------------------------------------

fn write_join(r: &mut String, title: &str, s: &JoinSummary, label: &str, node: bool) -> Result<()> {
    let q = |h: &Histogram<u64>, p: f64| ms(h.value_at_quantile(p));
    writeln!(
        r,
        "**{title}**: {} rooms; rooms started over {:.2} s (generator start lag p99 {} ms); \
         {} participants in, {} failed; {} rooms with both in the call, the last {:.2} s after \
         the first start.\n",
        s.rooms,
        s.start_span,
        q(&s.start_lag, 0.99),
        s.ok,
        s.failed,
        s.rooms_ready,
        s.all_in_after
    )?;
    writeln!(r, "| ms | p50 | p90 | p99 | max |")?;
    writeln!(r, "|---|---:|---:|---:|---:|")?;
    let mut rows: Vec<(&str, &Histogram<u64>)> = vec![
        ("join (connect → answer to `join`)", &s.join),
        ("  TCP + WebSocket handshake", &s.connect),
        ("  `join` → answer", &s.join_frame),
    ];
    if !node {
        rows.push(("admission (`admit` → patient's `joined`)", &s.admit));
    }
    rows.push((
        "room ready (scheduled start → both in the call)",
        &s.room_ready,
    ));
    for (name, h) in rows {
        if h.is_empty() {
            continue;
        }
        writeln!(
            r,
            "| {name} | {} | {} | {} | {} |",
            q(h, 0.5),
            q(h, 0.9),
            q(h, 0.99),
            ms(h.max())
        )?;
    }
    writeln!(
        r,
        "\nCPU: {label} {:.0}%, load generator {:.0}%, other {:.0}% (machine {:.0}%): {}. \
         Wake-up lateness of a 1 ms sleep: p99 {} ms, max {} ms.\n",
        s.cpu.target,
        s.cpu.generator,
        s.cpu.other,
        s.cpu.machine,
        s.cpu.bottleneck(label, node),
        ms(s.cpu.wake_p99_us),
        ms(s.cpu.wake_max_us)
    )?;
    if !s.failures.is_empty() {
        writeln!(r, "Failures: {:?}\n", s.failures)?;
        for x in &s.samples {
            writeln!(r, "- `{x}`")?;
        }
        writeln!(r)?;
    }
    Ok(())
}

fn target_report(t: &TargetResult) -> Result<String> {
    let label = t.target.label();
    let node = t.target == Target::Node;
    let mut r = String::new();
    writeln!(r, "\n## {label}\n")?;
    writeln!(
        r,
        "{} participants in {} rooms, {} worker processes.\n",
        t.participants,
        t.participants / 2,
        t.workers
    )?;
    write_join(&mut r, "Join storm", &t.storm, label, node)?;
    write_join(&mut r, "Fill", &t.fill, label, node)?;
    writeln!(
        r,
        "**Held**: {} of {} participants connected after {:.0} s idle ({} dropped{}); the target \
         had {} open files. RSS {:.1} MiB before any connection, {:.1} MiB with all idle \
         ({:.1}–{:.1} MiB over the idle period): **{:.2} KiB per idle participant**. Idle CPU: \
         {label} {:.1}%, generator {:.1}%.\n",
        t.held,
        t.participants,
        t.idle_cpu.wall,
        t.dropped_idle,
        if t.held_errors.is_empty() {
            String::new()
        } else {
            format!(", {:?}", t.held_errors)
        },
        t.fds_full,
        t.rss_empty as f64 / 1024.0,
        t.rss_full as f64 / 1024.0,
        t.rss_idle_range.0 as f64 / 1024.0,
        t.rss_idle_range.1 as f64 / 1024.0,
        t.per_participant() / 1024.0,
        t.idle_cpu.target,
        t.idle_cpu.generator
    )?;
    writeln!(
        r,
        "**Relay** (ICE candidates to the peer, every participant in turn; delivered = received ÷ \
         the longer of the phase and the time to the last arrival):\n"
    )?;
    writeln!(
        r,
        "| offered msg/s | s | sent | received | delivered msg/s | p50 ms | p99 ms | p99.9 ms | max ms | {label} CPU % | generator CPU % | other CPU % | bottleneck |"
    )?;
    writeln!(
        r,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    for s in &t.relay {
        let h = &s.latency;
        writeln!(
            r,
            "| {}{:.0} | {:.0} | {} | {} | {:.0} | {} | {} | {} | {} | {:.0} | {:.0} | {:.0} | {} / {} | {} |",
            if s.warmup { "warm-up " } else { "" },
            s.offered,
            s.secs,
            s.sent,
            s.received,
            s.delivered_rate(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            s.cpu.target,
            s.cpu.generator,
            s.cpu.other,
            ms(s.cpu.wake_p99_us),
            ms(s.cpu.wake_max_us),
            s.cpu.bottleneck(label, node)
        )?;
    }
    for s in &t.relay {
        if !s.errors.is_empty() || s.dropped > 0 || s.scheduled != s.sent {
            writeln!(
                r,
                "\nAt {:.0}/s: {} scheduled, {} sent, {} received, {} sockets dropped, errors {:?}",
                s.offered, s.scheduled, s.sent, s.received, s.dropped, s.errors
            )?;
            for x in &s.samples {
                writeln!(r, "- `{x}`")?;
            }
        }
    }
    writeln!(
        r,
        "\nRSS after the relay phases {:.1} MiB (peak {:.1} MiB). {}. Log: {} lines.",
        t.rss_after as f64 / 1024.0,
        t.hwm as f64 / 1024.0,
        t.stopped,
        t.log_lines
    )?;
    if t.log_lines > 0 {
        writeln!(r, "\n```text\n{}\n```", t.log_tail)?;
    }
    Ok(r)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

fn comparison(a: &TargetResult, b: &TargetResult) -> Result<String> {
    let mut r = String::new();
    writeln!(
        r,
        "\n## Comparison\n\nRatio = {} ÷ {} (for latency and memory lower is better, for \
         throughput higher).\n",
        a.target.label(),
        b.target.label()
    )?;
    writeln!(
        r,
        "| | {} | {} | ratio |",
        a.target.label(),
        b.target.label()
    )?;
    writeln!(r, "|---|---:|---:|---:|")?;
    let mut row = |name: &str, x: f64, y: f64, fmt: &dyn Fn(f64) -> String| {
        let _ = writeln!(r, "| {name} | {} | {} | {} |", fmt(x), fmt(y), ratio(x, y));
    };
    let int = |v: f64| format!("{v:.0}");
    let two = |v: f64| format!("{v:.2}");
    let msf = |v: f64| format!("{:.2}", v / 1000.0);
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    row("participants held", a.held as f64, b.held as f64, &int);
    row(
        "storm: join p50 ms",
        q(&a.storm.join, 0.5),
        q(&b.storm.join, 0.5),
        &msf,
    );
    row(
        "storm: join p99 ms",
        q(&a.storm.join, 0.99),
        q(&b.storm.join, 0.99),
        &msf,
    );
    row(
        "storm: room ready p99 ms",
        q(&a.storm.room_ready, 0.99),
        q(&b.storm.room_ready, 0.99),
        &msf,
    );
    row(
        "fill: join p99 ms",
        q(&a.fill.join, 0.99),
        q(&b.fill.join, 0.99),
        &msf,
    );
    if let (Some(x), Some(y)) = (a.steady(), b.steady()) {
        let name = format!("relay at {:.0}/s: delivered msg/s", x.offered);
        row(&name, x.delivered_rate(), y.delivered_rate(), &int);
        row(
            "relay: p50 ms",
            q(&x.latency, 0.5),
            q(&y.latency, 0.5),
            &msf,
        );
        row(
            "relay: p99 ms",
            q(&x.latency, 0.99),
            q(&y.latency, 0.99),
            &msf,
        );
        row("relay: target CPU %", x.cpu.target, y.cpu.target, &int);
        row(
            "relay: machine's wake-up lateness p99 ms",
            x.cpu.wake_p99_us as f64,
            y.cpu.wake_p99_us as f64,
            &msf,
        );
    }
    if let (Some(x), Some(y)) = (a.max_delivered(), b.max_delivered()) {
        row(
            "most delivered msg/s (any step, drain included)",
            x.delivered_rate(),
            y.delivered_rate(),
            &int,
        );
        row(
            "  p99 ms at that step",
            q(&x.latency, 0.99),
            q(&y.latency, 0.99),
            &msf,
        );
    }
    row(
        "RSS before connections MiB",
        a.rss_empty as f64 / 1024.0,
        b.rss_empty as f64 / 1024.0,
        &two,
    );
    row(
        "RSS all idle MiB",
        a.rss_full as f64 / 1024.0,
        b.rss_full as f64 / 1024.0,
        &two,
    );
    row(
        "memory per idle participant KiB",
        a.per_participant() / 1024.0,
        b.per_participant() / 1024.0,
        &two,
    );
    Ok(r)
}

/// The issue's targets, for the telehealth server, against the baseline of the same run.
fn targets_check(args: &Args, t: &TargetResult, baseline: Option<&TargetResult>) -> Result<String> {
    let mut r = String::new();
    writeln!(r, "\n## Targets ({})\n", t.target.label())?;
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let want = u64::from(args.rooms) * 2;
    writeln!(
        r,
        "- {} participants held by one server process: {} ({} held)",
        want,
        mark(t.held >= want),
        t.held
    )?;
    let p99 = t.storm.join.value_at_quantile(0.99);
    writeln!(
        r,
        "- join storm of {} rooms in {} s with join p99 under 100 ms: {} (started over {:.2} s, \
         {} of {} participants in, p99 {} ms)",
        t.storm.rooms,
        args.storm_secs,
        mark(p99 < 100_000 && t.storm.failed == 0 && t.storm.start_span <= args.storm_secs * 1.1),
        t.storm.start_span,
        t.storm.ok,
        t.storm.rooms * 2,
        ms(p99)
    )?;
    if let Some(s) = t.steady() {
        let p99 = s.latency.value_at_quantile(0.99);
        writeln!(
            r,
            "- relay p99 under 5 ms at {:.0} messages/s: {} ({:.0} delivered/s, p99 {} ms)",
            s.offered,
            mark(p99 < 5_000 && s.delivered_rate() >= 0.99 * s.offered),
            s.delivered_rate(),
            ms(p99)
        )?;
    }
    if let Some(b) = baseline {
        writeln!(
            r,
            "- less memory per idle participant than the Node `ws` relay: {} ({:.2} KiB vs {:.2} KiB)",
            mark(t.per_participant() < b.per_participant()),
            t.per_participant() / 1024.0,
            b.per_participant() / 1024.0
        )?;
    }
    Ok(r)
}

// ---- entry ------------------------------------------------------------------------------------

pub async fn run(args: Args, nofile: Result<u64, String>) -> ExitCode {
    match run_all(args, nofile).await {
        Ok(code) => code,
        Err(e) => {
            println!("\n**Benchmark failed:** {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_all(args: Args, nofile: Result<u64, String>) -> Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let server_bin = args
        .server_bin
        .clone()
        .unwrap_or_else(|| exe.with_file_name("telehealth"));
    if args.targets.contains(&Target::Telehealth) && !server_bin.is_file() {
        return Err(format!(
            "{} not found; build it first: cargo build --release -p telehealth-server -p telehealth-tests",
            server_bin.display()
        )
        .into());
    }
    let relay_dir = args
        .relay_dir
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/ws-relay"));
    let tck = clock_ticks();
    procfs::start_wakeup_probe()?;
    println!(
        "# Signaling benchmark\n\n{} cores; open-file limit per process {}; {} rooms ({} \
         participants); storm {} rooms in {} s; fill at {}/s; relay {}/s for {} s, then {:?}/s \
         for {} s each; started {}.",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        nofile.map_or_else(|e| format!("unknown ({e})"), |n| n.to_string()),
        args.rooms,
        u64::from(args.rooms) * 2,
        args.storm_rooms.min(args.rooms),
        args.storm_secs,
        args.fill_rate,
        args.relay_rate,
        args.relay_secs,
        args.max_rates,
        args.max_secs,
        Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
    );
    let mut results = Vec::new();
    let mut ok = true;
    for (i, &target) in args.targets.iter().enumerate() {
        match run_target(i, target, &args, &exe, &server_bin, &relay_dir, tck).await {
            Ok(t) => {
                println!("{}", target_report(&t)?);
                ok &= t.storm.failed == 0 && t.fill.failed == 0 && t.held == t.participants;
                results.push(t);
            }
            Err(e) => {
                ok = false;
                println!(
                    "\n## {}\n\n**Could not be measured:** {e}\n",
                    target.label()
                );
            }
        }
    }
    let server = results.iter().find(|t| t.target == Target::Telehealth);
    let baseline = results.iter().find(|t| t.target == Target::Node);
    if let (Some(a), Some(b)) = (server, baseline) {
        println!("{}", comparison(a, b)?);
    }
    if let Some(t) = server {
        println!("{}", targets_check(&args, t, baseline)?);
    }
    println!("## Summary\n");
    for t in &results {
        let steady = t.steady();
        println!(
            "- {}: held {}/{}; storm join p99 {} ms; relay {} p99 {} ms; most {:.0} msg/s; {:.2} KiB per idle participant",
            t.target.label(),
            t.held,
            t.participants,
            ms(t.storm.join.value_at_quantile(0.99)),
            steady.map_or("–".into(), |s| format!("{:.0}/s", s.delivered_rate())),
            steady.map_or("–".into(), |s| ms(s.latency.value_at_quantile(0.99))),
            t.max_delivered().map_or(0.0, RelayStep::delivered_rate),
            t.per_participant() / 1024.0
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
