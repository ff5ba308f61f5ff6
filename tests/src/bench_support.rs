//! What the benchmark binaries (`bench`, `signal_bench`) share: readings from `/proc` and the
//! handling of the processes they start.

use std::path::Path;
use std::str::FromStr;

/// Busy and total ticks of the whole machine, from the first line of `/proc/stat`.
pub fn machine_ticks() -> Result<(u64, u64), Box<dyn std::error::Error + Send + Sync>> {
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
