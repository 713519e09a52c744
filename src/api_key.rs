//! The API key that guards `/v1`. Its `Debug` is redacted so it cannot reach logs by accident.

use std::fmt;

/// A bearer token. Compare with [`ApiKey::matches`], which takes the same time wherever the
/// first difference is.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// `None` for an empty or all-whitespace value, so `TESSERA_API_KEY=` means "not set"
    /// rather than "the empty key".
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into();
        let key = key.trim();
        (!key.is_empty()).then(|| Self(key.to_owned()))
    }

    /// A random development key: 32 bytes from the OS, as 64 hex digits.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Constant-time comparison (for a given candidate length) against a presented token.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    /// The secret itself, for the one place that must show it (the development key banner).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_key() {
        let key = ApiKey::new("s3cret-key").unwrap();
        assert!(key.matches("s3cret-key"));
        assert!(!key.matches("s3cret-kez"));
        assert!(!key.matches("s3cret-key "));
        assert!(!key.matches(""));
    }

    #[test]
    fn empty_is_not_a_key() {
        assert!(ApiKey::new("").is_none());
        assert!(ApiKey::new("  ").is_none());
    }

    #[test]
    fn generated_keys_are_64_hex_digits_and_differ() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_does_not_leak() {
        let key = ApiKey::new("do-not-print").unwrap();
        assert!(!format!("{key:?}").contains("do-not-print"));
    }
}
