//! What the benchmark binaries (`bench`, `signal_bench`) share: readings from `/proc`, the
//! handling of the processes they start, and latency histograms.

use std::path::Path;
use std::str::FromStr;

use hdrhistogram::Histogram;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// CPU ticks of a process from its `stat` file (`/proc/PID/stat`, `/proc/self/stat`): utime and
/// stime of all its threads, then cutime and cstime of the children it has waited for.
pub fn process_ticks(stat_path: &str) -> Result<[u64; 4], BoxError> {
    let text = std::fs::read_to_string(stat_path)?;
    // The command name (field 2) may contain spaces and parentheses: fields after it are counted
    // from the last ')'. utime is field 14, so index 11 of what follows.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| format!("unexpected {stat_path}"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let mut out = [0u64; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = fields
            .get(11 + i)
            .ok_or_else(|| format!("short {stat_path}"))?
            .parse()?;
    }
    Ok(out)
}

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
pub fn memory_kib(pid: u32) -> Result<(u64, u64), BoxError> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64, BoxError> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))?;
        Ok(line
            .split_whitespace()
            .nth(1)
            .ok_or("malformed status line")?
            .parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Busy and total ticks of the whole machine, from the first line of `/proc/stat`.
pub fn machine_ticks() -> Result<(u64, u64), BoxError> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let line = text.lines().next().ok_or("empty /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(u64::from_str)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already inside user).
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    let idle = get(3) + get(4);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Ok((busy, busy + idle))
}

/// Clock ticks per second of `/proc` times; `getconf` avoids a libc dependency for one number.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// A free loopback port. Bound and released at once; the process started next binds it a moment
/// later. A race with another process taking the port shows up as a start-up failure, not as
/// wrong numbers.
pub fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The last `lines` lines of a log file, for a failure message.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// A latency histogram in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// Microseconds as milliseconds with two decimals, for reports.
pub fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}
