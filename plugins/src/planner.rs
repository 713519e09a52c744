//! Part planning and retry timing: pure functions, no I/O.

use std::time::Duration;

pub const MIB: u64 = 1024 * 1024;
/// S3's minimum size of every part but the last.
pub const S3_MIN_PART_SIZE: u64 = 5 * MIB;
pub const S3_MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
pub const S3_MAX_PARTS: u32 = 10_000;
/// Parts per size step: the target doubles every this many parts, so 5 TiB fits in
/// well under 10,000 parts while short recordings keep small parts.
const PARTS_PER_STEP: u32 = 500;

/// Target size of part `number` (1-based).
pub fn target_part_size(min_part_size: u64, number: u32) -> u64 {
    let step = (number.saturating_sub(1) / PARTS_PER_STEP).min(32);
    min_part_size.max(1).saturating_mul(1u64 << step).min(S3_MAX_PART_SIZE.max(min_part_size))
}

/// End of the next part starting at `start`: the first fragment boundary at least a target
/// size away, or the final end of the recording once it is known (the last part may be small).
/// `boundaries` are ascending fragment starts.
pub fn next_part_end(start: u64, target: u64, boundaries: &[u64], final_end: Option<u64>) -> Option<u64> {
    let cut = boundaries.iter().copied().find(|&b| b > start && b - start >= target);
    match (cut, final_end) {
        (Some(b), Some(f)) if b >= f => Some(f),
        (Some(b), _) => Some(b),
        (None, Some(f)) if f > start => Some(f),
        _ => None,
    }
}

/// The next tail object, as (start, end), while the recording runs (once its end is known,
/// parts store the rest): the spool from `covered` (the end of the parts and of the earlier
/// tail objects) to `durable_end` (the end of the last whole fragment journaled), once the
/// spool holds a whole fragment (`first_fragment`: where the first one starts; the header
/// alone plays nothing). Both ends are fragment boundaries. A tail that failed for good up to
/// `skipped_to` is tried again, from the same start, only with more fragments.
pub fn next_tail(
    covered: u64,
    durable_end: u64,
    first_fragment: Option<u64>,
    final_end: Option<u64>,
    skipped_to: u64,
) -> Option<(u64, u64)> {
    if final_end.is_some() {
        return None;
    }
    let first = first_fragment?;
    (durable_end > first && durable_end > covered && durable_end > skipped_to).then_some((covered, durable_end))
}

/// Delay before retry number `attempt` (0-based): exponential from 250 ms, capped at `max`.
pub fn backoff(attempt: u32, max: Duration) -> Duration {
    Duration::from_millis(250u64.saturating_mul(1u64 << attempt.min(20))).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_tib_fits_in_fewer_than_10000_parts() {
        let mut total = 0u64;
        let mut parts = 0u32;
        while total < 5 * 1024 * 1024 * MIB {
            parts += 1;
            let size = target_part_size(S3_MIN_PART_SIZE, parts);
            assert!((S3_MIN_PART_SIZE..=S3_MAX_PART_SIZE).contains(&size));
            total += size;
        }
        assert!(parts < S3_MAX_PARTS, "{parts} parts");
        assert_eq!(target_part_size(S3_MIN_PART_SIZE, 1), S3_MIN_PART_SIZE);
        assert_eq!(target_part_size(S3_MIN_PART_SIZE, 500), S3_MIN_PART_SIZE);
        assert_eq!(target_part_size(S3_MIN_PART_SIZE, 501), 2 * S3_MIN_PART_SIZE);
        assert_eq!(target_part_size(S3_MIN_PART_SIZE, 10_000), S3_MAX_PART_SIZE);
    }

    #[test]
    fn parts_are_cut_at_fragment_starts() {
        let b = [100, 250, 400, 600];
        assert_eq!(next_part_end(0, 200, &b, None), Some(250));
        assert_eq!(next_part_end(250, 200, &b, None), Some(600));
        assert_eq!(next_part_end(600, 200, &b, None), None);
        assert_eq!(next_part_end(600, 200, &b, Some(650)), Some(650));
        assert_eq!(next_part_end(650, 200, &b, Some(650)), None);
        // A boundary past the final end (recovery cuts at the last whole fragment).
        assert_eq!(next_part_end(250, 200, &b, Some(500)), Some(500));
        assert_eq!(next_part_end(0, 1000, &b, None), None);
    }

    #[test]
    fn tails_cover_whole_fragments_not_yet_stored() {
        // Header to 332, fragments start at 332, 1000, 1700.
        let first = Some(332);
        // Nothing before the first whole fragment.
        assert_eq!(next_tail(0, 0, None, None, 0), None);
        assert_eq!(next_tail(0, 332, first, None, 0), None);
        // The first tail holds the header too.
        assert_eq!(next_tail(0, 1000, first, None, 0), Some((0, 1000)));
        // The next starts where the last one ended...
        assert_eq!(next_tail(1000, 1700, first, None, 0), Some((1000, 1700)));
        assert_eq!(next_tail(1700, 1700, first, None, 0), None);
        // ...and an uploader that fell behind covers several fragments at once.
        assert_eq!(next_tail(1000, 2400, first, None, 0), Some((1000, 2400)));
        // After a part that ends past the tail objects: from the part's end.
        assert_eq!(next_tail(1700, 2400, first, None, 0), Some((1700, 2400)));
        // Once the end is known, parts store the rest.
        assert_eq!(next_tail(1000, 1700, first, Some(1700), 0), None);
        // A tail that failed for good is tried again from the same start with more data.
        assert_eq!(next_tail(1000, 1700, first, None, 1700), None);
        assert_eq!(next_tail(1000, 2400, first, None, 1700), Some((1000, 2400)));
    }

    #[test]
    fn backoff_grows_and_caps() {
        let max = Duration::from_secs(10);
        assert_eq!(backoff(0, max), Duration::from_millis(250));
        assert_eq!(backoff(3, max), Duration::from_secs(2));
        assert_eq!(backoff(6, max), max);
        assert_eq!(backoff(u32::MAX, max), max);
    }
}
