//! `signal_bench`: load benchmark of the signaling server (`GET /signaling`, protocol v1), run
//! against the real `telehealth` release binary and, in the same run, against a minimal Node
//! `ws` relay (`tests/bench/ws-relay/relay.js`), the baseline a team would otherwise write.
//!
//! ```text
//! cargo build --release -p telehealth-server -p telehealth-tests
//! target/release/signal_bench [--targets telehealth,node] [--rooms 9500] [--storm-rooms 1000] \
//!     [--relay-rate 10000] [--max-rates 20000,40000,80000] [--workers N]
//! # on a machine shared with other sessions: the whole run ahead of their work (root; with
//! # Linux autogroups a plain `nice` does not act across sessions)
//! setsid sh -c 'echo -10 > /proc/self/autogroup && exec target/release/signal_bench'
//! ```
//!
//! One coordinator (this process) starts each target in turn (the server with a fresh data
//! directory, then the relay) and `--workers` worker processes (this binary's hidden `worker`
//! subcommand; a process may hold at most 20,000 open files, so each holds a few thousand
//! sockets). It drives them phase by phase over their stdin/stdout (one JSON line a message):
//!
//! 1. join storm: `--storm-rooms` rooms (two participants each) start within `--storm-secs`;
//! 2. fill: the rest of `--rooms` rooms join at `--fill-rate` participants per second, then all
//!    stay idle for `--idle-secs`; the target's RSS is read before any connection and now;
//! 3. relay: every participant sends ICE candidates to its peer. A warm-up first
//!    (`--warmup-secs`: every participant sends one, reported apart), then `--relay-rate`
//!    messages per second in all for `--relay-secs`, then the `--max-rates` steps for
//!    `--max-secs` each until the target no longer keeps up.
//!
//! Against the server the generator speaks the protocol: join tokens minted with the key of the
//! data directory the bench created (synthetic consultations 10,000,000 + room, seeded into its
//! database because every join looks its consultation up, participants `c<room>` as clinician
//! and `p<room>` as patient), the patient waits and the clinician admits them. Against the relay ("plain" mode): `{"type":"join","room":..}` and the same candidates.
//! CPU time of the target and of the generator is sampled per phase (both share 2 cores), and
//! the report says which was the bottleneck. It prints a markdown report and exits non-zero if a
//! target could not be measured.

mod coord;
mod procfs;
mod wire;
mod worker;

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};

type BoxError = Box<dyn Error + Send + Sync>;
type Result<T, E = BoxError> = std::result::Result<T, E>;

/// Signaling load benchmark: the telehealth server against a minimal Node `ws` relay.
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    args: coord::Args,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// One of the coordinator's worker processes (commands on stdin, events on stdout).
    #[command(hide = true)]
    Worker,
}

/// Now, in microseconds since the Unix epoch: the clock the coordinator and its workers share
/// for start times.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The monotonic instant of a Unix time given in microseconds.
pub fn instant_at(unix: u64) -> Instant {
    let now_u = unix_us();
    let now_i = Instant::now();
    if unix >= now_u {
        now_i + Duration::from_micros(unix - now_u)
    } else {
        now_i
            .checked_sub(Duration::from_micros(now_u - unix))
            .unwrap_or(now_i)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Thousands of sockets per process: lift the soft open-file limit to the hard one (20,000 on
    // this project's machines; it cannot go higher).
    let nofile = rlimit::increase_nofile_limit(u64::MAX);
    let worker = matches!(cli.cmd, Some(Cmd::Worker));
    let runtime = if worker {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if worker {
        match runtime.block_on(worker::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // The coordinator reads events on stdout; this one it shows to the person.
                eprintln!("signal_bench worker {}: {e}", std::process::id());
                ExitCode::FAILURE
            }
        }
    } else {
        let nofile = nofile.map_err(|e| e.to_string());
        runtime.block_on(coord::run(cli.args, nofile))
    }
}
