//! CPU accounting from /proc: the process, its threads, the machine.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tessera_compositor::Program;

/// Linux reports times in /proc in USER_HZ ticks, which is 100 on every architecture we run on.
const TICKS_PER_S: f64 = 100.0;

/// utime + stime of a /proc/.../stat line, in seconds, and the thread name.
fn parse_stat(line: &str) -> Option<(String, f64)> {
    // "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / TICKS_PER_S))
}

/// CPU seconds used by this process so far (all threads, live and exited).
fn process_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s)).map(|(_, t)| t).unwrap_or(f64::NAN)
}

/// CPU seconds per live thread: tid -> (name, seconds).
fn thread_cpu() -> BTreeMap<u64, (String, f64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(v) = std::fs::read_to_string(e.path().join("stat")).ok().and_then(|s| parse_stat(&s)) {
            out.insert(tid, v);
        }
    }
    out
}

/// Machine-wide CPU seconds from /proc/stat: (busy, steal). Busy excludes idle, iowait, steal.
fn machine_cpu() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (f64::NAN, f64::NAN);
    };
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0) / TICKS_PER_S;
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

pub struct Sample {
    pub at: Instant,
    /// CPU seconds of the whole process so far.
    pub cpu: f64,
    /// The machine's (busy, steal) CPU seconds so far.
    pub machine: (f64, f64),
    /// CPU seconds per live thread: tid -> (name, seconds).
    pub threads: BTreeMap<u64, (String, f64)>,
    /// How much program has been produced.
    pub position: Option<Duration>,
}

pub fn sample(program: Option<&Program>) -> Sample {
    Sample {
        at: Instant::now(),
        cpu: process_cpu(),
        machine: machine_cpu(),
        threads: thread_cpu(),
        position: program.map(|p| p.stats().position),
    }
}
