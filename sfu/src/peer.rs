//! What every peer connection is made of, how each kind is built, and the SDP text the SFU
//! reads or rewrites.
//!
//! - `engines`: the codecs (`codecs.rs`), header extensions and interceptors of every peer
//!   connection, the SFU's own among them: `RtcpToApp` (here), `ResendLimiter`
//!   (`resend_limiter.rs`), `RtxRepairs` (`rtx.rs`) and the counters (`stats.rs`).
//! - `build_sfu_peer`: the SFU's side of a call, a sans-IO `rtc` 0.21 peer connection that
//!   the shared transport drives (`transport/`).
//! - [`build_peer`], [`build_client_peer`]: a `webrtc` 0.21 peer connection with its own
//!   sockets and event loop, for `tessera bot`'s client side.
//! - SDP text: `advertise_public_ips` (the `--rtc-ips` public addresses in our candidates),
//!   `extmap_id`, `simulcast_rids`.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rtc::interceptor::{Attribute, NackResponderBuilder, Packet, SenderReportBuilder, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceServer, RTCIceTransportPolicy, Registry, SettingEngineBuilder, register_default_interceptors,
};

use crate::config::SfuConfig;
use crate::error::{Error, Result};
use crate::resend_limiter::ResendLimiter;
use crate::rtx::RtxRepairs;
use crate::stats::{CountingInterceptor, TransportCounters};
use crate::tap::{PacketTap, Tapped};

/// RFC 6464 audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Hands keyframe requests (PLI/FIR), sender reports, receiver reports and REMB bandwidth
/// estimates to the application; every other inbound RTCP packet stays with the interceptors.
///
/// The peer connection routes an RTCP message to a track by the first SSRC its first packet
/// names, and drops it when that SSRC is not a track's. Chromium's compounds often start with
/// a report block about a retransmission (RTX) SSRC, which would take the whole compound (its
/// REMB and PLI too) nowhere; so each packet goes on as its own message, a receiver report is
/// split into one report per block, and a REMB names the media SSRCs first.
struct RtcpToApp {
    /// Media SSRCs of the tracks this connection sends.
    sent_ssrcs: HashSet<u32>,
}

impl RtcpToApp {
    fn new() -> Tapped<Self> {
        Tapped::new(RtcpToApp { sent_ssrcs: HashSet::new() })
    }

    /// The packets of an inbound compound the application wants, each routable on its own.
    fn for_application(&self, packets: &[Box<dyn rtc::rtcp::Packet>]) -> Vec<Box<dyn rtc::rtcp::Packet>> {
        let mut out: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::new();
        for p in packets {
            let a = p.as_any();
            if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                for block in &rr.reports {
                    out.push(Box::new(ReceiverReport {
                        ssrc: rr.ssrc,
                        reports: vec![block.clone()],
                        ..Default::default()
                    }));
                }
            } else if let Some(remb) = a.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                let mut remb = remb.clone();
                remb.ssrcs.sort_by_key(|s| !self.sent_ssrcs.contains(s));
                out.push(Box::new(remb));
            } else if a.is::<PictureLossIndication>() || a.is::<FullIntraRequest>() || a.is::<SenderReport>() {
                out.push(p.clone());
            }
        }
        out
    }
}

impl PacketTap for RtcpToApp {
    fn inbound(&mut self, mut msg: TaggedPacket, out: &mut VecDeque<TaggedPacket>) {
        let Packet::Rtcp(packets) = &msg.message.packet else {
            out.push_back(msg);
            return;
        };
        let wanted = self.for_application(packets);
        msg.message.packet = Packet::Rtcp(Vec::new());
        msg.message.add(Attribute::DeliverToApplication);
        for p in wanted {
            let mut message = msg.message.clone();
            message.packet = Packet::Rtcp(vec![p]);
            out.push_back(TaggedPacket { now: msg.now, transport: msg.transport, message });
        }
    }

    fn bind_local(&mut self, info: &StreamInfo) {
        self.sent_ssrcs.insert(info.ssrc);
    }

    fn unbind_local(&mut self, info: &StreamInfo) {
        self.sent_ssrcs.remove(&info.ssrc);
    }
}

static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

/// Picks a free port in `range` by probing (sockets are bound per peer connection).
fn port_in(range: Option<(u16, u16)>, ip: std::net::IpAddr, tcp: bool) -> u16 {
    let Some((lo, hi)) = range else { return 0 };
    let span = u32::from(hi.saturating_sub(lo)) + 1;
    for _ in 0..span {
        let p = lo + (NEXT_PORT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        let addr = SocketAddr::new(ip, p);
        let free =
            if tcp { std::net::TcpListener::bind(addr).is_ok() } else { std::net::UdpSocket::bind(addr).is_ok() };
        if free {
            return p;
        }
    }
    0
}

/// The codecs (Opus/VP8/H.264, see [`crate::codecs`]), header extensions (simulcast, RFC 6464
/// audio levels) and interceptors (NACK, RTCP reports, TWCC feedback, ours) of every peer
/// connection: the SFU's, and `tessera bot`'s client side. With `counters`, the RTCP traffic
/// (NACKs, retransmissions, reports, feedback) is counted.
pub(crate) fn engines(counters: Option<Arc<TransportCounters>>, role: Role) -> Result<(MediaEngine, Registry)> {
    let mut me = MediaEngine::default();
    crate::codecs::register_codecs(&mut me)?;
    engines_with_codecs(me, counters, role)
}

/// [`engines`] on a media engine whose codecs are registered already (a test client's, with
/// payload types of its own).
pub(crate) fn engines_with_codecs(
    mut me: MediaEngine,
    counters: Option<Arc<TransportCounters>>,
    role: Role,
) -> Result<(MediaEngine, Registry)> {
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
        RtpCodecKind::Audio,
        None,
    )
    .map_err(Error::rtc("cannot register the audio level header extension"))?;
    // The defaults register the feedback (NACK, PLI, transport-cc) every role negotiates.
    let defaults = register_default_interceptors(Registry::new(), &mut me)
        .map_err(Error::rtc("cannot register the default interceptors"))?;
    let registry = match role {
        Role::Both => defaults,
        // Every interceptor is a step each forwarded copy takes; a connection that only sends
        // media keeps those that act on sending: the NACK responder's buffer and sender reports
        // (no NACK generator, TWCC feedback or receiver reports: nothing is received to report).
        Role::SendOnly => Registry::new()
            .with(Slot::NackResponder, NackResponderBuilder::new().build())
            .with(Slot::SenderReport, SenderReportBuilder::new().build()),
    };
    let mut registry = registry.with(Slot::from(14_000), RtcpToApp::new());
    if role == Role::Both {
        // Below the NACK generator (7 000), above the FEC decoder (6 000): see `rtx.rs`.
        registry = registry.with(Slot::from(6_500), RtxRepairs::new(counters.clone()));
    }
    // Below the NACK responder (4 000): holds its resends to a share of the receiver's REMB.
    registry = registry.with(Slot::from(3_750), ResendLimiter::new(counters.clone()));
    if let Some(c) = counters {
        // Between the pacer (3 000) and the NACK responder (4 000): sees the responder's
        // retransmissions leave and every inbound RTCP packet arrive.
        registry = registry.with(Slot::from(3_500), CountingInterceptor::new(c));
    }
    Ok((me, registry))
}

/// Builds a client-side `webrtc` peer connection (`tessera bot`) with the SFU's codecs and
/// interceptors, on the configured addresses.
pub async fn build_peer(
    cfg: &SfuConfig,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>> {
    build_client_peer(cfg, &[], false, handler).await
}

/// [`build_peer`] with the STUN/TURN servers a client was given (`joined`'s `ice_servers`) and,
/// with `relay_only`, the ICE transport policy `relay`: only TURN relay candidates are gathered
/// and used, as a browser behind a UDP-blocking firewall or symmetric NAT would.
pub async fn build_client_peer(
    cfg: &SfuConfig,
    ice_servers: &[crate::signal::IceServer],
    relay_only: bool,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>> {
    let servers = ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    let policy = if relay_only { RTCIceTransportPolicy::Relay } else { RTCIceTransportPolicy::All };
    let configuration =
        RTCConfigurationBuilder::new().with_ice_servers(servers).with_ice_transport_policy(policy).build();
    let (me, registry) = engines(None, Role::Both)?;
    let se = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(true);
    let udp: Vec<SocketAddr> =
        cfg.ice.ips.iter().map(|&ip| SocketAddr::new(ip, port_in(cfg.ice.udp_port_range, ip, false))).collect();
    let tcp: Vec<SocketAddr> = if cfg.ice.tcp {
        cfg.ice.ips.iter().map(|&ip| SocketAddr::new(ip, port_in(cfg.ice.tcp_port_range, ip, true))).collect()
    } else {
        Vec::new()
    };
    let pc = PeerConnectionBuilder::new()
        .with_configuration(configuration)
        .with_media_engine(me)
        .with_setting_engine(se.build())
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(udp)
        .with_tcp_addrs(tcp)
        .build()
        .await
        .map_err(Error::rtc("cannot build the client peer connection"))?;
    Ok(Arc::new(pc))
}

/// A random ICE credential of `n` characters (RFC 8839 ice-chars; 6 random bits each, so the
/// 32-character password carries 192 bits, over RFC 8445's 128).
fn ice_credential(n: usize) -> String {
    crate::random::ice_chars(n)
}

/// What a connection carries, for the interceptors it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Media both ways (a publisher's connection, a client).
    Both,
    /// Media to the peer only, RTCP both ways (a subscriber's connection).
    SendOnly,
}

/// Builds the SFU's side of a peer connection, a sans-IO `rtc` peer connection for the shared
/// transport (see `transport/`), and returns it with its local ICE username fragment.
pub(crate) fn build_sfu_peer(counters: Arc<TransportCounters>, role: Role) -> Result<(RTCPeerConnection, String)> {
    let (me, registry) = engines(Some(counters), role)?;
    let ufrag = ice_credential(16);
    let se = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_ice_credentials(ufrag.clone(), ice_credential(32));
    let pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_setting_engine(se.build())
        .with_interceptor_registry(registry)
        .build(std::time::Instant::now())
        .map_err(Error::rtc("cannot build the SFU's peer connection"))?;
    Ok((pc, ufrag))
}

/// Rewrites the addresses of our `a=candidate` lines for `public_ips` (1:1 NAT): the i-th
/// configured local address is advertised as the i-th public one (one public address: all of
/// them). `webrtc` 0.21 takes `nat_1to1_ips` in its setting engine but never applies them, so
/// the SFU does it on the SDP it hands out.
pub(crate) fn advertise_public_ips(sdp: &str, cfg: &SfuConfig) -> String {
    let public = &cfg.ice.public_ips;
    if public.is_empty() {
        return sdp.to_owned();
    }
    let map = |addr: &str| -> Option<&str> {
        let ip: std::net::IpAddr = addr.parse().ok()?;
        let i = cfg.ice.ips.iter().position(|&l| l == ip)?;
        public.get(i).or_else(|| (public.len() == 1).then(|| &public[0])).map(String::as_str)
    };
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        // a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ …
        let fields: Vec<&str> = line.split(' ').collect();
        match (line.starts_with("a=candidate:"), fields.get(4).and_then(|a| map(a))) {
            (true, Some(p)) => {
                let mut f = fields.clone();
                f[4] = p;
                out.push_str(&f.join(" "));
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The `a=extmap` id of `uri` in an SDP, if any.
pub(crate) fn extmap_id(sdp: &str, uri: &str) -> Option<u8> {
    sdp.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("a=extmap:")?;
        let (id, tail) = rest.split_once(' ')?;
        if tail.split_whitespace().next()? != uri {
            return None;
        }
        id.split('/').next()?.parse().ok()
    })
}

/// The simulcast RIDs of the m-section whose msid names `track_id`, ordered low→high by the
/// usual names (`q`/`h`/`f`, `l`/`m`/`h`, `0`/`1`/`2`).
pub(crate) fn simulcast_rids(sdp: &str, track_id: &str) -> Vec<String> {
    let mut sections: Vec<Vec<&str>> = Vec::new();
    for l in sdp.lines().map(str::trim) {
        if l.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(s) = sections.last_mut() {
            s.push(l);
        }
    }
    let order = |r: &str| match r {
        "q" | "l" | "0" => 0,
        "h" | "m" | "1" => 1,
        _ => 2,
    };
    for s in sections {
        let ours =
            s.iter().any(|l| l.strip_prefix("a=msid:").and_then(|m| m.split_whitespace().nth(1)) == Some(track_id));
        if !ours {
            continue;
        }
        let mut rids: Vec<String> = s
            .iter()
            .filter_map(|l| l.strip_prefix("a=rid:"))
            .filter_map(|r| r.split_once(' '))
            .filter(|(_, dir)| dir.starts_with("send"))
            .map(|(rid, _)| rid.to_owned())
            .collect();
        rids.sort_by_key(|r| order(r));
        return rids;
    }
    Vec::new()
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\na=msid:s a1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=extmap:4/sendonly urn:x\r\na=msid:s v1\r\na=rid:f send\r\na=rid:h send\r\na=rid:q send\r\na=simulcast:send f;h;q\r\n";

    #[test]
    fn sdp_helpers() {
        assert_eq!(extmap_id(SDP, AUDIO_LEVEL_URI), Some(1));
        assert_eq!(extmap_id(SDP, "urn:x"), Some(4));
        assert_eq!(extmap_id(SDP, "urn:y"), None);
        assert_eq!(simulcast_rids(SDP, "v1"), vec!["q", "h", "f"]);
        assert!(simulcast_rids(SDP, "a1").is_empty());
        assert!(simulcast_rids(SDP, "zz").is_empty());
    }

    #[test]
    fn public_ips_replace_candidate_addresses() {
        let mut cfg = SfuConfig::default();
        let sdp = "v=0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\na=candidate:2 1 tcp 1 127.0.0.1 9 typ host tcptype passive\r\na=ice-ufrag:x\r\n";
        assert_eq!(advertise_public_ips(sdp, &cfg), sdp);
        cfg.ice.public_ips = vec!["203.0.113.7".into()];
        let out = advertise_public_ips(sdp, &cfg);
        assert!(out.contains("udp 2130706431 203.0.113.7 40000 typ host\r\n"), "{out}");
        assert!(out.contains("tcp 1 203.0.113.7 9 typ host tcptype passive\r\n"), "{out}");
        assert!(!out.contains("127.0.0.1"));
        assert!(out.ends_with("a=ice-ufrag:x\r\n"));
    }
}
