//! Randomness for what must not be guessed (ICE credentials, participant and track ids, SSRCs):
//! always the OS's random source, never a generator seeded from the clock.

/// Fills `buf` from the OS's random source.
///
/// # Panics
/// If the OS has no random source to give (`getrandom` fails only on a broken system; the
/// standard library's `HashMap` gives up the same way). Nothing weaker is ever used instead.
pub(crate) fn fill(buf: &mut [u8]) {
    if let Err(e) = getrandom::fill(buf) {
        panic!("the OS's random source failed: {e}");
    }
}

/// RFC 8839's `ice-char`s (ALPHA / DIGIT / "+" / "/"): 64 of them, so each character takes
/// exactly 6 random bits and none is likelier than another.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `n` random `ice-char`s (6 bits of entropy each).
pub(crate) fn ice_chars(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fill(&mut bytes);
    bytes.iter().map(|b| ICE_CHARS[usize::from(b & 63)] as char).collect()
}

/// `n` random letters and digits, for ids that appear in URLs (about 5.95 bits each; drawn by
/// rejection so that every character is equally likely).
pub(crate) fn token(n: usize) -> String {
    const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut bytes = [0u8; 32];
    while out.len() < n {
        fill(&mut bytes);
        // 248 = 4 * 62: bytes above it would favour the first characters.
        for b in bytes.iter().filter(|b| **b < 248) {
            if out.len() == n {
                break;
            }
            out.push(ALNUM[usize::from(*b % 62)] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ice_credentials_are_ice_chars_of_the_asked_length() {
        let pwd = ice_chars(32);
        assert_eq!(pwd.len(), 32);
        assert!(pwd.bytes().all(|c| ICE_CHARS.contains(&c)), "{pwd}");
        assert_ne!(pwd, ice_chars(32));
    }

    #[test]
    fn tokens_are_alphanumeric_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| token(12)).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|t| t.len() == 12 && t.bytes().all(|c| c.is_ascii_alphanumeric())));
    }

    #[test]
    fn every_ice_char_turns_up() {
        // 64 equally likely characters over 6,400 draws: a missing one would mean a bias.
        let seen: std::collections::HashSet<char> = ice_chars(6400).chars().collect();
        assert_eq!(seen.len(), 64);
    }
}
