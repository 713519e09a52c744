//! Byte-level mutations of a valid message: what a broken or hostile peer sends instead.

use proptest::prelude::*;
use proptest::sample::Index;

#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    /// Cut the message short.
    Truncate(Index),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Overwrite a big-endian 16-bit field (a length or a count) with a telling value.
    Field16(Index, u16),
    /// Insert bytes.
    Insert(Index, Vec<u8>),
    /// Remove a run of bytes.
    Remove(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let extreme = prop_oneof![Just(0u16), Just(1), Just(0x7fff), Just(0x8000), Just(u16::MAX), any::<u16>()];
    prop_oneof![
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), extreme).prop_map(|(i, v)| Mutation::Field16(i, v)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

/// One to three mutations.
pub(crate) fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..4)
}

/// `bytes` with `mutations` applied in turn (positions are taken modulo the current length).
pub(crate) fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if let Mutation::Insert(i, b) = m {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
            continue;
        }
        if bytes.is_empty() {
            continue;
        }
        match m {
            Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
            Mutation::Set(i, b) => {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            Mutation::Field16(i, v) => {
                let at = i.index(bytes.len());
                for (slot, b) in bytes[at..].iter_mut().zip(v.to_be_bytes()) {
                    *slot = b;
                }
            }
            Mutation::Remove(i, n) => {
                let at = i.index(bytes.len());
                let end = (at + n).min(bytes.len());
                bytes.drain(at..end);
            }
            Mutation::Insert(..) => unreachable!("handled above"),
        }
    }
    bytes
}

/// A text message with `mutations` applied to its bytes; bytes that are no longer UTF-8 become
/// U+FFFD, as a `&str` parser would receive them.
pub(crate) fn mutate_text(text: &str, mutations: &[Mutation]) -> String {
    String::from_utf8_lossy(&mutate(text.as_bytes().to_vec(), mutations)).into_owned()
}
