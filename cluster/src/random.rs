//! Randomness from the OS for ids, lock tokens and placement picks.

/// `n` random bytes as 2n lowercase hex digits.
pub fn hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random index below `n` (`n` > 0).
pub fn below(n: usize) -> usize {
    let mut bytes = [0u8; 8];
    fill(&mut bytes);
    (u64::from_le_bytes(bytes) % n.max(1) as u64) as usize
}

fn fill(bytes: &mut [u8]) {
    // A failing OS random source is not something to run on with weaker ids.
    getrandom::fill(bytes).expect("the OS random source failed");
}
