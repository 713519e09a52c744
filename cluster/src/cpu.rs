//! The machine's CPU use between two heartbeats, from `/proc/stat` (Linux).

/// Cumulative CPU time counters (in clock ticks) of the whole machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    busy: u64,
    total: u64,
}

impl CpuTimes {
    /// Parses the aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq
    /// softirq steal ...; idle and iowait are idle time.
    pub fn parse(stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
        if fields.len() < 4 {
            return None;
        }
        // guest and guest_nice (fields 9, 10) are already counted in user and nice.
        let total: u64 = fields.iter().take(8).sum();
        let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
        Some(CpuTimes { busy: total.saturating_sub(idle), total })
    }

    pub fn read() -> Option<CpuTimes> {
        std::fs::read_to_string("/proc/stat").ok().as_deref().and_then(CpuTimes::parse)
    }

    /// The busy share of the time between `earlier` and `self`, 0.0 to 1.0.
    pub fn usage_since(&self, earlier: &CpuTimes) -> f32 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        (self.busy.saturating_sub(earlier.busy) as f32 / total as f32).clamp(0.0, 1.0)
    }
}

/// Keeps the previous sample: each call gives the usage since the one before.
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: Option<CpuTimes>,
}

impl CpuMeter {
    pub fn sample(&mut self) -> f32 {
        let Some(now) = CpuTimes::read() else { return 0.0 };
        let usage = self.last.map(|last| now.usage_since(&last)).unwrap_or(0.0);
        self.last = Some(now);
        usage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_busy_over_total_between_samples() {
        let a = CpuTimes::parse("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        let b = CpuTimes::parse("cpu  250 0 150 900 100 0 0 0 0 0\n").unwrap();
        // busy +200, total +400 (idle +100, iowait +100).
        assert!((b.usage_since(&a) - 0.5).abs() < 1e-6);
        assert_eq!(a.usage_since(&a), 0.0);
    }

    #[test]
    fn garbage_is_no_sample() {
        assert_eq!(CpuTimes::parse(""), None);
        assert_eq!(CpuTimes::parse("cpu  1 2\n"), None);
        assert_eq!(CpuTimes::parse("intr 1 2 3 4 5\n"), None);
    }

    #[test]
    fn this_machine_has_a_reading() {
        let mut meter = CpuMeter::default();
        meter.sample();
        let usage = meter.sample();
        assert!((0.0..=1.0).contains(&usage));
    }
}
