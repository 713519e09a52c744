//! Ids that must not be guessed (recordings, streams, tokens): always from the OS's random
//! source, never from a generator seeded by the clock.

/// `N` random bytes from the OS.
///
/// # Panics
/// If the OS has no random source to give (`getrandom` fails only on a broken system; the
/// standard library's `HashMap` gives up the same way). Nothing weaker is ever used instead.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if let Err(e) = getrandom::fill(&mut b) {
        panic!("the OS's random source failed: {e}");
    }
    b
}

/// `n` random bytes from the OS, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut out = String::with_capacity(2 * n);
    while out.len() < 2 * n {
        for x in random_bytes::<16>().iter().take(n - out.len() / 2) {
            out.push_str(&format!("{x:02x}"));
        }
    }
    out
}

/// A resource id: `prefix` and 8 random bytes (`rec_0123456789abcdef`).
pub fn resource_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_hex(8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_hex_and_distinct() {
        let a = resource_id("rec");
        assert!(a.starts_with("rec_") && a.len() == 20, "{a}");
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, resource_id("rec"));
        assert_eq!(random_hex(16).len(), 32);
    }
}
