//! Times as the HLS code needs them: track ticks to and from `Duration`, comparing ticks of
//! two timescales exactly (audio at 48 kHz against video at 90 kHz: no rounding may put an
//! audio frame in the wrong part), and the two text forms the playlist prints.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS: u128 = 1_000_000_000;

/// `ticks` of `timescale` as a `Duration` (rounded down to the nanosecond).
pub fn ticks_to_duration(ticks: u64, timescale: u32) -> Duration {
    let nanos = u128::from(ticks) * NANOS / u128::from(timescale.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A `Duration` in ticks of `timescale` (rounded to the nearest tick).
pub fn duration_to_ticks(d: Duration, timescale: u32) -> u64 {
    let ticks = (d.as_nanos() * u128::from(timescale) + NANOS / 2) / NANOS;
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

/// Whether `a` ticks of `scale_a` is strictly earlier than `b` ticks of `scale_b`, exactly.
pub fn is_before(a: u64, scale_a: u32, b: u64, scale_b: u32) -> bool {
    u128::from(a) * u128::from(scale_b) < u128::from(b) * u128::from(scale_a)
}

/// Seconds with three decimals (`2.000`, `0.500`), as `EXTINF` and the part durations are
/// written; rounded to the nearest millisecond with integers, so `0.5` never prints `0.499`.
pub fn seconds_3(d: Duration) -> String {
    let millis = (d.as_nanos() + 500_000) / 1_000_000;
    format!("{}.{:03}", millis / 1000, millis % 1000)
}

/// RFC 3339 in UTC with milliseconds (`2024-05-01T12:00:00.250Z`), as `EXT-X-PROGRAM-DATE-TIME`
/// wants. Times before 1970 (a broken clock) print as the epoch.
pub fn rfc3339_millis(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`, for
/// non-negative days): no date crate for one line of the playlist.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_durations_convert_both_ways() {
        assert_eq!(ticks_to_duration(45_000, 90_000), Duration::from_millis(500));
        assert_eq!(ticks_to_duration(1024, 48_000), Duration::from_nanos(21_333_333));
        assert_eq!(duration_to_ticks(Duration::from_nanos(33_333_333), 90_000), 3000);
        assert_eq!(duration_to_ticks(Duration::from_secs(2), 48_000), 96_000);
    }

    #[test]
    fn comparisons_across_timescales_are_exact() {
        // 0.5 s is 24000 audio ticks and 45000 video ticks.
        assert!(!is_before(24_000, 48_000, 45_000, 90_000));
        assert!(is_before(23_999, 48_000, 45_000, 90_000));
        assert!(is_before(44_999, 90_000, 24_000, 48_000));
    }

    #[test]
    fn seconds_print_with_three_rounded_decimals() {
        assert_eq!(seconds_3(Duration::from_millis(500)), "0.500");
        assert_eq!(seconds_3(Duration::from_nanos(499_999_999)), "0.500");
        assert_eq!(seconds_3(Duration::from_nanos(2_000_111_111)), "2.000");
        assert_eq!(seconds_3(Duration::from_secs(61)), "61.000");
    }

    #[test]
    fn wall_clock_prints_as_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (a leap day) 23:59:59.250 UTC.
        let t = UNIX_EPOCH + Duration::from_millis(1_709_251_199_250);
        assert_eq!(rfc3339_millis(t), "2024-02-29T23:59:59.250Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(t), "2000-02-29T00:00:00.000Z");
    }
}
