//! Participant tokens: signed (HMAC-SHA256), expiring, scoped to one room. The application
//! mints them with its API key (`POST /v1/rooms/{room}/tokens`) and hands them to browsers,
//! bots and WHIP publishers; the SFU checks them on join.
//!
//! Format: `tt1.<base64url(JSON claims)>.<base64url(HMAC-SHA256 of the first two parts)>`.
//! The signing key lives in `DATA_DIR/token.key` (created once), so tokens survive restarts.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const PREFIX: &str = "tt1";
const KEY_FILE: &str = "token.key";
const KEY_LEN: usize = 32;

/// What a token allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub room: String,
    pub identity: String,
    pub name: String,
    pub publish: bool,
    pub subscribe: bool,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The token's own id (16 random bytes, hex), for logs and revocation; empty in tokens
    /// minted before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
}

/// A new token id from the OS's random source.
pub fn new_token_id() -> String {
    crate::ids::random_hex(16)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    Forged,
    #[error("token expired")]
    Expired,
    #[error("token is for another room")]
    WrongRoom,
}

/// Mints and checks tokens with the server's signing key.
#[derive(Clone)]
pub struct TokenSigner {
    key: [u8; KEY_LEN],
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(****)")
    }
}

impl TokenSigner {
    pub fn from_key(key: [u8; KEY_LEN]) -> Self {
        TokenSigner { key }
    }

    /// A key given as 64 hex digits (the cluster keeps its key so in redis).
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.trim();
        if hex.len() != KEY_LEN * 2 || !hex.is_ascii() {
            return None;
        }
        let mut key = [0u8; KEY_LEN];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenSigner { key })
    }

    /// The key from `DATA_DIR/token.key`, created (mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if let Ok(bytes) = std::fs::read(&path)
            && let Ok(key) = <[u8; KEY_LEN]>::try_from(bytes.as_slice())
        {
            return Ok(TokenSigner { key });
        }
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).map_err(std::io::Error::other)?;
        write_private(&path, &key)?;
        Ok(TokenSigner { key })
    }

    pub fn mint(&self, claims: &Claims) -> String {
        let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
        let signed = format!("{PREFIX}.{payload}");
        let sig = B64.encode(hmac_sha256(&self.key, signed.as_bytes()));
        format!("{signed}.{sig}")
    }

    /// The claims of a valid, unexpired token for `room` at `now` (Unix seconds).
    pub fn verify(&self, token: &str, room: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(payload), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let sig = B64.decode(sig).map_err(|_| TokenError::Malformed)?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(format!("{PREFIX}.{payload}").as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig).map_err(|_| TokenError::Forged)?;
        let claims: Claims = serde_json::from_slice(&B64.decode(payload).map_err(|_| TokenError::Malformed)?)
            .map_err(|_| TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.room != room {
            return Err(TokenError::WrongRoom);
        }
        Ok(claims)
    }
}

/// HMAC-SHA256 of `data` (tokens, webhook signatures).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            room: "standup".into(),
            identity: "alice".into(),
            name: "Alice".into(),
            publish: true,
            subscribe: true,
            exp,
            jti: "0123456789abcdef0123456789abcdef".into(),
        }
    }

    #[test]
    fn token_ids_are_random_hex() {
        let (a, b) = (new_token_id(), new_token_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_minted_token_verifies_for_its_room_until_it_expires() {
        let s = TokenSigner::from_key([7; 32]);
        let t = s.mint(&claims(1000));
        assert!(t.starts_with("tt1."));
        assert_eq!(s.verify(&t, "standup", 999).unwrap(), claims(1000));
        assert_eq!(s.verify(&t, "standup", 1000), Err(TokenError::Expired));
        assert_eq!(s.verify(&t, "other", 999), Err(TokenError::WrongRoom));
    }

    #[test]
    fn forged_or_garbled_tokens_are_refused() {
        let s = TokenSigner::from_key([7; 32]);
        let other = TokenSigner::from_key([8; 32]);
        let t = other.mint(&claims(1000));
        assert_eq!(s.verify(&t, "standup", 1), Err(TokenError::Forged));
        // Claims edited after signing.
        let good = s.mint(&claims(1000));
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged_payload = B64.encode(serde_json::to_vec(&claims(9_999_999)).unwrap());
        parts[1] = &forged_payload;
        assert_eq!(s.verify(&parts.join("."), "standup", 1), Err(TokenError::Forged));
        for junk in ["", "tt1", "tt1.a", "tt1.a.b.c", "xx1.a.b", "tt1.!!.??"] {
            assert!(s.verify(junk, "standup", 1).is_err(), "{junk}");
        }
    }

    #[test]
    fn the_key_survives_a_restart_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = TokenSigner::load_or_create(dir.path()).unwrap();
        let b = TokenSigner::load_or_create(dir.path()).unwrap();
        let t = a.mint(&claims(1000));
        assert!(b.verify(&t, "standup", 1).is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{a:?}").contains('7'));
    }
}
