//! CPU time and memory of the target and of the generator's processes, from `/proc`.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use telehealth_tests::bench_support::{self, machine_ticks};

use crate::Result;
use crate::wire::new_histogram;

/// How late a thread that asks to sleep 1 ms wakes up, in microseconds, since the probe started:
/// the machine's scheduling delay, which every process of the run (target and generator) suffers
/// too. On a shared machine it explains latency that neither the target nor the generator caused.
static LATENESS: OnceLock<Mutex<Histogram<u64>>> = OnceLock::new();

/// Starts the wake-up probe: one thread of this process sleeping 1 ms at a time.
pub fn start_wakeup_probe() -> Result<()> {
    if LATENESS.set(Mutex::new(new_histogram()?)).is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("wakeup-probe".into())
        .spawn(|| {
            loop {
                let asked = Duration::from_millis(1);
                let t = Instant::now();
                std::thread::sleep(asked);
                let late = t.elapsed().saturating_sub(asked);
                if let Some(h) = LATENESS.get() {
                    let us = u64::try_from(late.as_micros()).unwrap_or(u64::MAX);
                    h.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .saturating_record(us.max(1));
                }
            }
        })?;
    Ok(())
}

fn lateness_snapshot() -> Option<Histogram<u64>> {
    LATENESS.get().map(|h| {
        h.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    })
}

/// utime + stime of a process (all its threads), in clock ticks; 0 once it has gone.
fn process_ticks(pid: &str) -> u64 {
    bench_support::process_ticks(&format!("/proc/{pid}/stat")).map_or(0, |t| t[0] + t[1])
}

#[derive(Clone)]
pub struct CpuSample {
    at: Instant,
    lateness: Option<Histogram<u64>>,
    target: u64,
    generator: u64,
    machine_busy: u64,
    machine_total: u64,
}

/// The target's ticks, and the generator's: this coordinator and its workers.
pub fn sample(target: u32, workers: &[u32]) -> Result<CpuSample> {
    let generator = process_ticks("self")
        + workers
            .iter()
            .map(|p| process_ticks(&p.to_string()))
            .sum::<u64>();
    let (machine_busy, machine_total) = machine_ticks()?;
    Ok(CpuSample {
        at: Instant::now(),
        lateness: lateness_snapshot(),
        target: process_ticks(&target.to_string()),
        generator,
        machine_busy,
        machine_total,
    })
}

/// CPU use between two samples, in percent of one core (200% = both cores of this machine).
#[derive(Clone, Copy, Default)]
pub struct CpuUse {
    pub wall: f64,
    pub target: f64,
    pub generator: f64,
    /// Everything else on the machine: other developers' builds, databases, ...
    pub other: f64,
    pub machine: f64,
    pub cores: f64,
    /// Wake-up lateness of a 1 ms sleep during the interval (see [`start_wakeup_probe`]), µs.
    pub wake_p99_us: u64,
    pub wake_max_us: u64,
}

impl CpuUse {
    pub fn between(a: &CpuSample, b: &CpuSample, tck: f64) -> CpuUse {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let pct = |ticks: u64| ticks as f64 / tck / wall * 100.0;
        let target = pct(b.target.saturating_sub(a.target));
        let generator = pct(b.generator.saturating_sub(a.generator));
        let busy = b.machine_busy.saturating_sub(a.machine_busy) as f64;
        let total = b.machine_total.saturating_sub(a.machine_total) as f64;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get() as f64)
            .unwrap_or(1.0);
        let machine = if total > 0.0 {
            busy / total * cores * 100.0
        } else {
            0.0
        };
        let (wake_p99_us, wake_max_us) = match (&a.lateness, &b.lateness) {
            (Some(ha), Some(hb)) => {
                let mut d = hb.clone();
                if d.subtract(ha).is_ok() && !d.is_empty() {
                    (d.value_at_quantile(0.99), d.max())
                } else {
                    (0, 0)
                }
            }
            _ => (0, 0),
        };
        CpuUse {
            wall,
            target,
            generator,
            other: (machine - target - generator).max(0.0),
            machine,
            cores,
            wake_p99_us,
            wake_max_us,
        }
    }

    /// Which process limited the phase. When the machine's cores were (nearly) all busy, the
    /// largest consumer; when the target kept about one core busy and runs on one thread (Node),
    /// the target; otherwise nobody was short of CPU.
    pub fn bottleneck(&self, target_label: &str, single_threaded_target: bool) -> String {
        let capacity = self.cores * 100.0;
        let mut users = [
            (target_label, self.target),
            ("load generator", self.generator),
            ("other processes", self.other),
        ];
        users.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (top, pct) = users[0];
        if self.machine >= 0.85 * capacity {
            format!("CPU-saturated: {top} used most ({pct:.0}%)")
        } else if single_threaded_target && self.target >= 85.0 {
            format!("{target_label} (one thread, {:.0}%)", self.target)
        } else {
            format!(
                "none CPU-bound (machine {:.0}% of {capacity:.0}%)",
                self.machine
            )
        }
    }
}

pub use telehealth_tests::bench_support::memory_kib;

/// Open file descriptors of a process (sockets included).
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}
