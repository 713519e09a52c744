//! SDP from clients (signalling offers and answers, WHIP bodies): the SFU's structural checks,
//! the helpers that read SDP text (extmap ids, simulcast RIDs, public addresses), and `rtc`'s
//! parser and negotiation behind them, fed a browser's offer with damage.

use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;

use super::config;
use super::mutate::{mutate_text, mutations};
use crate::config::SfuConfig;
use crate::error::Error;
use crate::participant::validate_sdp;
use crate::peer::{AUDIO_LEVEL_URI, Role, advertise_public_ips, build_sfu_peer, extmap_id, simulcast_rids};
use crate::stats::TransportCounters;

/// A Chromium publish offer: Opus with audio levels, VP8 simulcast with RTX.
const OFFER: &[&str] = &[
    "v=0",
    "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0 1",
    "a=extmap-allow-mixed",
    "a=msid-semantic: WMS stream",
    "m=audio 9 UDP/TLS/RTP/SAVPF 111",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Xq3f",
    "a=ice-pwd:f1Yb3kqfZ0NB5xTQvGZ2pXbM",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 5E:0B:32:7A:3D:4E:92:BB:11:8C:53:2F:6D:4A:90:12:AB:CD:EF:01:23:45:67:89:9A:BC:DE:F0:11:22:33:44",
    "a=setup:actpass",
    "a=mid:0",
    "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=sendonly",
    "a=msid:stream mic",
    "a=rtcp-mux",
    "a=rtpmap:111 opus/48000/2",
    "a=rtcp-fb:111 transport-cc",
    "a=fmtp:111 minptime=10;useinbandfec=1",
    "a=ssrc:1001 cname:tessera",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
    "c=IN IP4 0.0.0.0",
    "a=rtcp:9 IN IP4 0.0.0.0",
    "a=ice-ufrag:Xq3f",
    "a=ice-pwd:f1Yb3kqfZ0NB5xTQvGZ2pXbM",
    "a=ice-options:trickle",
    "a=fingerprint:sha-256 5E:0B:32:7A:3D:4E:92:BB:11:8C:53:2F:6D:4A:90:12:AB:CD:EF:01:23:45:67:89:9A:BC:DE:F0:11:22:33:44",
    "a=setup:actpass",
    "a=mid:1",
    "a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid",
    "a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "a=sendonly",
    "a=msid:stream cam",
    "a=rtcp-mux",
    "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000",
    "a=rtcp-fb:96 goog-remb",
    "a=rtcp-fb:96 transport-cc",
    "a=rtcp-fb:96 ccm fir",
    "a=rtcp-fb:96 nack",
    "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000",
    "a=fmtp:97 apt=96",
    "a=rid:q send",
    "a=rid:h send",
    "a=rid:f send",
    "a=simulcast:send q;h;f",
];

pub(super) fn offer() -> String {
    OFFER.iter().map(|l| format!("{l}\r\n")).collect()
}

/// An SFU-side peer connection, as a publisher's connection has.
fn sfu_peer() -> rtc::peer_connection::RTCPeerConnection {
    build_sfu_peer(Arc::new(TransportCounters::default()), Role::Both).expect("a peer connection builds").0
}

/// What `Connection::answer` does with an offer, on a peer connection of its own; errors must
/// say what was wrong.
fn negotiate(sdp: String) -> Result<rtc::peer_connection::RTCPeerConnection, String> {
    let offer = RTCSessionDescription::offer(sdp).map_err(|e| e.to_string())?;
    let mut pc = sfu_peer();
    pc.set_remote_description(Instant::now(), offer).map_err(|e| e.to_string())?;
    let answer = pc.create_answer(None).map_err(|e| e.to_string())?;
    pc.set_local_description(Instant::now(), answer).map_err(|e| e.to_string())?;
    Ok(pc)
}

/// Damaged SDP: line-level damage (dropped, duplicated, cut lines; huge numbers) and bytes.
fn damaged_offer() -> impl Strategy<Value = String> {
    let lines = prop::collection::vec(any::<prop::sample::Index>(), 1..4);
    let numbers =
        prop_oneof![Just("0"), Just("65536"), Just("4294967296"), Just("-1"), Just("99999999999999999999"), Just("")];
    prop_oneof![
        mutations().prop_map(|m| mutate_text(&offer(), &m)),
        (lines, 0u8..3, numbers).prop_map(|(picks, how, number)| {
            let mut lines: Vec<String> = OFFER.iter().map(|l| l.to_string()).collect();
            for i in picks {
                let at = i.index(lines.len());
                match how {
                    0 => drop(lines.remove(at)),
                    1 => lines.insert(at, lines[at].clone()),
                    _ => {
                        // Every number on the line becomes `number`.
                        let words: Vec<&str> = lines[at]
                            .split(' ')
                            .map(|w| if w.bytes().all(|b| b.is_ascii_digit()) { number } else { w })
                            .collect();
                        let line = words.join(" ");
                        lines[at] = line;
                    }
                }
                if lines.is_empty() {
                    break;
                }
            }
            lines.iter().map(|l| format!("{l}\r\n")).collect()
        }),
    ]
}

#[test]
fn the_fixture_offer_negotiates() {
    let sdp = offer();
    validate_sdp(&sdp).expect("the fixture passes the checks");
    if let Err(e) = negotiate(sdp) {
        panic!("the fixture offer is refused: {e}");
    }
}

proptest! {
    #![proptest_config(config(1024))]

    /// The checks accept exactly what their rules say, and say why they refuse.
    #[test]
    fn checks_refuse_with_a_reason(
        text in prop_oneof![
            any::<String>(),
            "(v=0\r?\n)?([a-z]=[ -~]{0,20}\r?\n){0,6}",
            // Around the size limit.
            (0usize..3).prop_map(|k| format!("v=0\r\nm=audio 9 RTP/AVP 0\r\na={}\r\n", "x".repeat(32 * 1024 * k))),
        ]
    ) {
        let fits = text.len() <= 64 * 1024 && text.trim_start().starts_with("v=0") && text.lines().any(|l| l.starts_with("m="));
        match validate_sdp(&text) {
            Ok(()) => prop_assert!(fits),
            Err(Error::BadRequest(m)) => prop_assert!(!fits && !m.is_empty()),
            Err(e) => prop_assert!(false, "not a bad request: {e}"),
        }
    }

    /// The helpers that read SDP text take anything.
    #[test]
    fn text_helpers_take_any_sdp(sdp in prop_oneof![any::<String>(), damaged_offer()], track in "[a-z]{0,4}") {
        let _ = extmap_id(&sdp, AUDIO_LEVEL_URI);
        let rids = simulcast_rids(&sdp, &track);
        prop_assert!(rids.len() <= sdp.lines().count());
        let mut cfg = SfuConfig::default();
        cfg.ice.public_ips = vec!["203.0.113.7".into()];
        let out = advertise_public_ips(&sdp, &cfg);
        // Only candidate lines change.
        prop_assert_eq!(out.split_inclusive('\n').count(), sdp.split_inclusive('\n').count());
        for (a, b) in out.split_inclusive('\n').zip(sdp.split_inclusive('\n')) {
            prop_assert!(a == b || b.starts_with("a=candidate:"), "{b:?} became {a:?}");
        }
    }
}

proptest! {
    #![proptest_config(config(96))]

    /// A damaged offer is refused with a message or negotiated; never a panic.
    #[test]
    fn damaged_offers_are_refused_or_negotiated(sdp in damaged_offer()) {
        if validate_sdp(&sdp).is_err() {
            return Ok(());
        }
        if let Err(e) = negotiate(sdp) {
            prop_assert!(!e.trim().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Trickled candidates (the `candidate` message) of any shape, after a good offer.
    #[test]
    fn any_trickled_candidate_is_taken_or_refused(
        candidate in prop_oneof![
            any::<String>(),
            "candidate:[0-9]{1,3} [0-9] (udp|tcp|UDP|x) [0-9]{1,12} ([0-9]{1,3}\\.){3}[0-9]{1,3} [0-9]{1,6} typ (host|srflx|relay|prflx)( raddr [0-9.]{0,15} rport [0-9]{0,6})?( tcptype (passive|active|so))?",
            "candidate:1 1 udp 2130706431 ([0-9a-f:]{2,39}|[a-z0-9-]{1,20}\\.local) [0-9]{1,5} typ host",
        ],
        sdp_mid in prop::option::of(prop_oneof![Just("0".to_string()), Just("1".to_string()), "[a-z0-9]{0,3}"]),
        sdp_mline_index in prop::option::of(any::<u16>()),
    ) {
        thread_local! {
            static NEGOTIATED: std::cell::RefCell<Option<rtc::peer_connection::RTCPeerConnection>> = const { std::cell::RefCell::new(None) };
        }
        // One negotiated peer connection takes every case's candidate, as a connection takes a
        // stream of them.
        let refused = NEGOTIATED.with_borrow_mut(|slot| {
            let pc = slot.get_or_insert_with(|| negotiate(offer()).expect("the fixture negotiates"));
            let init = RTCIceCandidateInit { candidate, sdp_mid, sdp_mline_index, username_fragment: None, url: None };
            pc.add_remote_candidate(init).err().map(|e| e.to_string())
        });
        if let Some(e) = refused {
            prop_assert!(!e.trim().is_empty());
        }
    }
}
