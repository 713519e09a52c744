//! Participant tokens: every minted token verifies for its room until it expires; any change
//! to it, and any other text, is refused with a token error, never a panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use proptest::prelude::*;
use proptest::sample::Index;

use super::config;
use crate::tokens::{Claims, TokenError, TokenSigner, hmac_sha256};

fn claims() -> impl Strategy<Value = Claims> {
    (any::<String>(), any::<String>(), any::<String>(), any::<bool>(), any::<bool>(), any::<u64>()).prop_map(
        |(room, identity, name, publish, subscribe, exp)| Claims {
            room,
            identity,
            name,
            publish,
            subscribe,
            exp,
            jti: String::new(),
        },
    )
}

fn signer() -> impl Strategy<Value = TokenSigner> {
    any::<[u8; 32]>().prop_map(TokenSigner::from_key)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_minted_token_verifies_for_its_room_until_it_expires(s in signer(), c in claims(), other in any::<String>()) {
        let t = s.mint(&c);
        if c.exp > 0 {
            prop_assert_eq!(s.verify(&t, &c.room, c.exp - 1), Ok(c.clone()));
        }
        prop_assert_eq!(s.verify(&t, &c.room, c.exp), Err(TokenError::Expired));
        if other != c.room && c.exp > 0 {
            prop_assert_eq!(s.verify(&t, &other, 0), Err(TokenError::WrongRoom));
        }
    }

    /// Any one byte changed (to anything, UTF-8 or not) and the token is refused; so it is
    /// with another server's key.
    #[test]
    fn a_changed_token_is_refused(s in signer(), other in signer(), c in claims(), at in any::<Index>(), byte in any::<u8>()) {
        let c = Claims { exp: u64::MAX, ..c };
        let t = s.mint(&c);
        let mut bytes = t.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != byte);
        bytes[i] = byte;
        let changed = String::from_utf8_lossy(&bytes);
        let r = s.verify(&changed, &c.room, 0);
        prop_assert!(matches!(r, Err(TokenError::Malformed | TokenError::Forged)), "{changed:?}: {r:?}");
        if other.mint(&c) != t {
            prop_assert_eq!(s.verify(&other.mint(&c), &c.room, 0), Err(TokenError::Forged));
        }
    }

    #[test]
    fn arbitrary_text_is_refused(s in signer(), text in prop_oneof![any::<String>(), "tt1\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,50}"]) {
        let r = s.verify(&text, "room", 0);
        prop_assert!(matches!(r, Err(TokenError::Malformed | TokenError::Forged)), "{r:?}");
        prop_assert!(!r.err().map(|e| e.to_string()).unwrap_or_default().is_empty());
    }

    /// A correctly signed token whose claims are not claims (as a bug or a leaked key could
    /// make): refused as malformed, or read, never a panic.
    #[test]
    fn signed_garbage_claims_are_refused(
        key in any::<[u8; 32]>(),
        payload in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            "\\{\"room\":\"r\",\"identity\":\"i\",\"name\":\"n\",\"publish\":(true|1|null),\"subscribe\":true,\"exp\":(-1|1e400|18446744073709551616|99|\"9\")\\}"
                .prop_map(String::into_bytes),
            (1usize..5000).prop_map(|d| format!("{}1{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        ],
    ) {
        let signed = format!("tt1.{}", B64.encode(&payload));
        let token = format!("{signed}.{}", B64.encode(hmac_sha256(&key, signed.as_bytes())));
        match TokenSigner::from_key(key).verify(&token, "r", 0) {
            Ok(c) => prop_assert_eq!(c.room, "r"),
            Err(e) => prop_assert!(matches!(e, TokenError::Malformed | TokenError::WrongRoom), "{e:?}"),
        }
    }
}
