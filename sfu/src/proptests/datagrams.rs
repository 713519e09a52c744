//! Whole datagrams into a negotiated peer connection, as the shared transport hands them over
//! once a path or a ufrag routed them: `rtc` demultiplexes them (RFC 7983) and parses STUN,
//! DTLS and SRTP/SRTCP. Whatever a peer sends, the peer connection takes it or refuses it with
//! an error that says something, and goes on.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use proptest::prelude::*;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::config;
use super::mutate::{mutate, mutations};
use crate::peer::{Role, build_sfu_peer};
use crate::stats::TransportCounters;

/// A connection that has answered a browser's offer (`sdp.rs`'s fixture), and its local ufrag.
fn negotiated() -> (RTCPeerConnection, String) {
    let (mut pc, ufrag) =
        build_sfu_peer(Arc::new(TransportCounters::default()), Role::Both).expect("a peer connection builds");
    let offer = RTCSessionDescription::offer(super::sdp::offer()).expect("the fixture parses");
    pc.set_remote_description(Instant::now(), offer).expect("the fixture applies");
    let answer = pc.create_answer(None).expect("an answer");
    pc.set_local_description(Instant::now(), answer).expect("the answer applies");
    (pc, ufrag)
}

thread_local! {
    static NEGOTIATED: RefCell<Option<(RTCPeerConnection, String)>> = const { RefCell::new(None) };
}

/// A connectivity check naming `ufrag` (with a MESSAGE-INTEGRITY that cannot be right), then
/// damaged.
fn check(ufrag: String, extra: Vec<(u16, Vec<u8>)>) -> Vec<u8> {
    let mut attrs =
        vec![(0x0006u16, format!("{ufrag}:Xq3f").into_bytes()), (0x0024, 0x6e7f_00ffu32.to_be_bytes().to_vec())];
    attrs.extend(extra);
    attrs.push((0x0008, vec![0xab; 20]));
    attrs.push((0x8028, vec![0; 4]));
    let mut body = Vec::new();
    for (t, v) in attrs {
        body.extend_from_slice(&t.to_be_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(&v);
        body.resize(body.len().div_ceil(4) * 4, 0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(body.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
    m.extend_from_slice(&[3; 12]);
    m.extend_from_slice(&body);
    m
}

#[derive(Debug, Clone)]
enum Datagram {
    /// Any bytes.
    Bytes(Vec<u8>),
    /// A check with extra attributes, damaged.
    Check(Vec<(u16, Vec<u8>)>, Vec<super::mutate::Mutation>),
    /// First byte in the DTLS range (20–63) or the RTP/RTCP range (128–191), then anything.
    Ranged(u8, Vec<u8>),
}

fn datagram() -> impl Strategy<Value = Datagram> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..400).prop_map(Datagram::Bytes),
        (prop::collection::vec((any::<u16>(), prop::collection::vec(any::<u8>(), 0..12)), 0..3), mutations())
            .prop_map(|(extra, damage)| Datagram::Check(extra, damage)),
        (prop_oneof![20u8..=63, 128u8..=191], prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(first, rest)| Datagram::Ranged(first, rest)),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn any_datagram_is_taken_or_refused(datagrams in prop::collection::vec(datagram(), 1..4), udp in any::<bool>()) {
        let peer: SocketAddr = "192.0.2.10:50000".parse().expect("an address");
        let local: SocketAddr = "127.0.0.1:7882".parse().expect("an address");
        NEGOTIATED.with_borrow_mut(|slot| -> Result<(), TestCaseError> {
            let (pc, ufrag) = slot.get_or_insert_with(negotiated);
            let now = Instant::now();
            for d in datagrams {
                let bytes = match d {
                    Datagram::Bytes(b) => b,
                    Datagram::Check(extra, damage) => mutate(check(ufrag.clone(), extra), &damage),
                    Datagram::Ranged(first, mut rest) => {
                        rest.insert(0, first);
                        rest
                    }
                };
                let msg = TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: local,
                        peer_addr: peer,
                        transport_protocol: if udp { TransportProtocol::UDP } else { TransportProtocol::TCP },
                        ecn: None,
                    },
                    message: BytesMut::from(&bytes[..]),
                };
                if let Err(e) = pc.handle_read(msg) {
                    prop_assert!(!e.to_string().trim().is_empty(), "an error without a message: {e:?}");
                }
                // Act on what it produced, as the transport does.
                while pc.poll_write().is_some() {}
                while pc.poll_event().is_some() {}
                while pc.poll_read().is_some() {}
            }
            let _ = pc.handle_timeout(now + Duration::from_millis(50));
            while pc.poll_write().is_some() {}
            Ok(())
        })?;
    }
}
