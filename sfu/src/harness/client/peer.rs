//! One of a test client's peer connections: an `rtc` peer connection at its own address on
//! the in-memory network, driven by the harness.

use std::net::SocketAddr;
use std::time::Instant;

use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use crate::peer::{Role, engines_with_codecs};

/// One of a client's peer connections.
pub(crate) struct Peer {
    pub pc: RTCPeerConnection,
    /// Its address on the network (its only host candidate).
    pub addr: SocketAddr,
    pub state: RTCPeerConnectionState,
}

impl Peer {
    /// A peer connection with `codecs` and the SFU's extensions and interceptors (those of
    /// `build_client_peer`) at `addr`; with `gathered`, its host candidate is in its SDP,
    /// otherwise the client trickles it (see [`Client::trickle`](super::Client::trickle)).
    pub(super) fn new(addr: SocketAddr, now: Instant, codecs: MediaEngine, gathered: bool) -> Peer {
        let (me, registry) = engines_with_codecs(codecs, None, Role::Both).expect("media engine");
        let se = SettingEngineBuilder::new().with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled);
        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_setting_engine(se.build())
            .with_interceptor_registry(registry)
            .build(now)
            .expect("client peer connection");
        let mut peer = Peer { pc, addr, state: RTCPeerConnectionState::New };
        if gathered {
            peer.gather();
        }
        peer
    }

    /// Adds its host candidate, and the end of candidates; returns the candidate.
    pub(super) fn gather(&mut self) -> RTCIceCandidateInit {
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.addr.ip().to_string(),
                port: self.addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .expect("host candidate");
        let init = RTCIceCandidate::from(&host).to_json().expect("candidate");
        self.pc.add_local_candidate(init.clone()).expect("local candidate");
        self.pc.add_local_candidate(RTCIceCandidateInit::default()).expect("end of candidates");
        init
    }

    pub(crate) fn connected(&self) -> bool {
        self.state == RTCPeerConnectionState::Connected
    }

    /// A datagram from the SFU at `from`.
    pub(crate) fn receive(&mut self, from: SocketAddr, data: bytes::BytesMut, now: Instant) {
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: data,
        };
        if let Err(e) = self.pc.handle_read(msg) {
            tracing::debug!(addr = %self.addr, "client rejected a datagram: {e}");
        }
    }
}
