//! Property tests of the STUN username reader: it sees every datagram on the shared sockets
//! before any integrity check, so it must take anything without a panic, and read exactly
//! the recipient's ufrag out of a well-formed Binding request.

use proptest::prelude::*;

use super::*;
use crate::proptests::config;
use crate::proptests::mutate::{mutate, mutations};

/// A STUN message of `kind` with `attrs`, each padded to four bytes.
fn message(kind: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (t, value) in attrs {
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&(value.len() as u16).to_be_bytes());
        body.extend_from_slice(value);
        body.resize(body.len().div_ceil(4) * 4, 0);
    }
    let mut m = kind.to_be_bytes().to_vec();
    m.extend_from_slice(&(body.len() as u16).to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(&[7; 12]);
    m.extend_from_slice(&body);
    m
}

/// Attributes a check carries before USERNAME (PRIORITY, ICE-CONTROLLING, unknown ones).
fn other_attribute() -> impl Strategy<Value = (u16, Vec<u8>)> {
    (any::<u16>().prop_filter("not USERNAME", |t| *t != ATTR_USERNAME), prop::collection::vec(any::<u8>(), 0..24))
}

/// ICE ufrags (RFC 8839 ice-chars), sometimes empty.
fn ufrag() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/]{0,32}"
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_datagrams_never_panic(mut datagram in prop::collection::vec(any::<u8>(), 0..128), stun_like in any::<bool>()) {
        if stun_like && datagram.len() >= HEADER_LEN {
            // Past the first test, so the attribute walk runs on garbage.
            datagram[0] &= 0x03;
            datagram[4..8].copy_from_slice(&MAGIC_COOKIE);
        }
        if let Some(u) = local_ufrag(&datagram) {
            prop_assert!(is_stun(&datagram));
            prop_assert!(!u.is_empty() && !u.contains(':'));
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn a_check_names_its_recipient(
        before in prop::collection::vec(other_attribute(), 0..4),
        local in ufrag(),
        remote in ufrag(),
        after in prop::collection::vec(other_attribute(), 0..3),
    ) {
        let mut attrs = before;
        attrs.push((ATTR_USERNAME, format!("{local}:{remote}").into_bytes()));
        attrs.extend(after);
        let m = message(0x0001, &attrs);
        prop_assert!(is_stun(&m));
        let expected = (!local.is_empty()).then_some(local.as_str());
        prop_assert_eq!(local_ufrag(&m), expected);
    }

    /// A damaged check yields no ufrag or one that was in the message, and never a panic.
    #[test]
    fn a_damaged_check_fails_cleanly(
        before in prop::collection::vec(other_attribute(), 0..3),
        local in "[A-Za-z0-9+/]{4,16}",
        damage in mutations(),
    ) {
        let mut attrs = before;
        attrs.push((ATTR_USERNAME, format!("{local}:remote").into_bytes()));
        let m = mutate(message(0x0001, &attrs), &damage);
        if let Some(u) = local_ufrag(&m) {
            prop_assert!(!u.is_empty() && !u.contains(':'));
            let found = m.windows(u.len()).any(|w| w == u.as_bytes());
            prop_assert!(found, "{u:?} is not in the message");
        }
    }

    /// A USERNAME that is not UTF-8 names no one.
    #[test]
    fn a_username_that_is_not_utf8_names_no_one(local in "[a-z]{1,8}", bad in 0x80u8..=0xff) {
        let mut name = local.into_bytes();
        name.push(bad);
        name.extend_from_slice(b":remote");
        let m = message(0x0001, &[(ATTR_USERNAME, name)]);
        prop_assert_eq!(local_ufrag(&m), None);
    }
}
