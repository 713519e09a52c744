//! The SRTP keys of one direction of a relay link: AEAD_AES_128_GCM (RFC 7714), made from the
//! OS's random source by the sending node and handed to the receiving node through the
//! cluster's shared state (the binary keeps them in Redis; this crate never sees Redis).

use rtc::srtp::protection_profile::ProtectionProfile;

use crate::error::{Error, Result};

/// The profile every relay link uses: authenticated encryption, one pass, fast with AES-NI.
pub(crate) const PROFILE: ProtectionProfile = ProtectionProfile::AeadAes128Gcm;

const KEY_LEN: usize = 16;
const SALT_LEN: usize = 12;

/// A master key and salt. `Debug` never shows them; [`LinkKeys::to_hex`] is for the shared
/// state only.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKeys {
    pub(crate) key: [u8; KEY_LEN],
    pub(crate) salt: [u8; SALT_LEN],
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKeys(<redacted>)")
    }
}

impl LinkKeys {
    /// New keys from the OS's random source.
    pub fn random() -> Self {
        let mut key = [0u8; KEY_LEN];
        let mut salt = [0u8; SALT_LEN];
        crate::random::fill(&mut key);
        crate::random::fill(&mut salt);
        Self { key, salt }
    }

    /// Key then salt, as 56 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        self.key.iter().chain(self.salt.iter()).map(|b| format!("{b:02x}")).collect()
    }

    /// Reads [`LinkKeys::to_hex`]'s form.
    pub fn from_hex(text: &str) -> Result<Self> {
        let text = text.trim();
        let bad = || Error::BadRequest(format!("relay keys: expected {} hex digits", 2 * (KEY_LEN + SALT_LEN)));
        if text.len() != 2 * (KEY_LEN + SALT_LEN) || !text.is_ascii() {
            return Err(bad());
        }
        let mut bytes = [0u8; KEY_LEN + SALT_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        let mut keys = Self { key: [0; KEY_LEN], salt: [0; SALT_LEN] };
        keys.key.copy_from_slice(&bytes[..KEY_LEN]);
        keys.salt.copy_from_slice(&bytes[KEY_LEN..]);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_hex_and_never_show_in_debug() {
        let k = LinkKeys::random();
        assert_ne!(k, LinkKeys::random());
        let hex = k.to_hex();
        assert_eq!(hex.len(), 56);
        assert_eq!(LinkKeys::from_hex(&hex).unwrap(), k);
        assert!(!format!("{k:?}").contains(&hex[..8]));
        for bad in ["", "zz", &hex[..54], &format!("{hex}00"), &hex.replace(&hex[..2], "g1")] {
            assert!(LinkKeys::from_hex(bad).is_err(), "{bad}");
        }
    }
}
