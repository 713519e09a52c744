//! The bot's peer connections (built like the SFU's own, by `tessera_sfu::build_peer`) and its
//! local tracks.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::Arc;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::bot::{BotError, GATHER_TIMEOUT};
use crate::cli::BotCodec;

struct PeerEvents {
    gathered: watch::Sender<bool>,
    state: watch::Sender<RTCPeerConnectionState>,
    tracks: mpsc::UnboundedSender<Arc<dyn TrackRemote>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerEvents {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.send(track);
    }
}

/// The STUN/TURN servers the server gave with `joined`, and whether to use relays only.
#[derive(Debug, Clone, Default)]
pub struct ClientIce {
    pub servers: Vec<tessera_sfu::IceServer>,
    pub relay_only: bool,
}

/// One peer connection with its events.
pub struct ClientPeer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: watch::Receiver<bool>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
    pub tracks: mpsc::UnboundedReceiver<Arc<dyn TrackRemote>>,
}

impl ClientPeer {
    /// A peer connection with host candidates on the local address that routes to the server,
    /// and relay candidates from the join answer's TURN servers (only those with `relay_only`).
    pub async fn new(host: &str, port: u16, ice: &ClientIce) -> Result<Self, BotError> {
        let mut config = tessera_sfu::SfuConfig::default();
        config.ice.ips = vec![local_ip_towards(host, port)];
        // A client offers no passive ICE-TCP listeners.
        config.ice.tcp = false;
        let (gathered_tx, gathered) = watch::channel(false);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let (tracks_tx, tracks) = mpsc::unbounded_channel();
        let events = Arc::new(PeerEvents { gathered: gathered_tx, state: state_tx, tracks: tracks_tx });
        let pc = tessera_sfu::build_client_peer(&config, &ice.servers, ice.relay_only, events).await?;
        Ok(ClientPeer { pc, gathered, state, tracks })
    }

    /// Our SDP once ICE gathering has finished (or after [`GATHER_TIMEOUT`]): the server does
    /// not need trickled candidates then.
    pub async fn local_sdp(&mut self) -> Result<String, BotError> {
        let _ = tokio::time::timeout(GATHER_TIMEOUT, self.gathered.wait_for(|done| *done)).await;
        self.pc.local_description().await.map(|d| d.sdp).ok_or_else(|| BotError::WebRtc("no local description".into()))
    }
}

/// The local address the OS would use to reach the server (loopback for a local server).
fn local_ip_towards(host: &str, port: u16) -> IpAddr {
    let probe = || -> std::io::Result<IpAddr> {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        socket.connect((host, port))?;
        Ok(socket.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A track we publish.
pub struct LocalTrack {
    pub track: Arc<TrackLocalStaticRTP>,
    pub sender: Arc<dyn RtpSender>,
    pub ssrc: u32,
    pub id: String,
    mime_type: &'static str,
    fmtp: &'static str,
}

/// H.264 constrained baseline, packetization mode 1: what `x264enc … profile=constrained-baseline`
/// makes and every browser decodes.
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";

fn random_u32() -> u32 {
    getrandom::u32().unwrap_or(0x5eed_1234)
}

impl LocalTrack {
    /// Adds a video (`Some(codec)`) or audio (`None`) track to `pc`.
    pub async fn add(pc: &Arc<dyn PeerConnection>, stream_id: &str, video: Option<BotCodec>) -> Result<Self, BotError> {
        let (kind, mime_type, clock_rate, channels, fmtp) = match video {
            Some(BotCodec::Vp8) => (RtpCodecKind::Video, MIME_TYPE_VP8, 90_000, 0, ""),
            Some(BotCodec::H264) => (RtpCodecKind::Video, MIME_TYPE_H264, 90_000, 0, H264_FMTP),
            None => (RtpCodecKind::Audio, MIME_TYPE_OPUS, 48_000, 2, "minptime=10;useinbandfec=1"),
        };
        let ssrc = random_u32();
        let id = format!("{}-{:08x}", if video.is_some() { "camera" } else { "audio" }, random_u32());
        let codec = RTCRtpCodec {
            mime_type: mime_type.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        };
        let coding = RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec,
            ..Default::default()
        };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            stream_id.to_owned(),
            id.clone(),
            id.clone(),
            kind,
            vec![coding],
        )));
        let sender = pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>).await?;
        Ok(LocalTrack { track, sender, ssrc, id, mime_type, fmtp })
    }

    /// The payload type negotiated for our codec (our exact H.264 profile first).
    pub async fn payload_type(&self) -> Result<u8, BotError> {
        let params = self.sender.get_parameters().await?;
        let codecs = &params.rtp_parameters.codecs;
        let same = |c: &&rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters| {
            c.rtp_codec.mime_type.eq_ignore_ascii_case(self.mime_type)
        };
        codecs
            .iter()
            .filter(same)
            .find(|c| self.fmtp.is_empty() || c.rtp_codec.sdp_fmtp_line == self.fmtp)
            .or_else(|| codecs.iter().find(same))
            .map(|c| c.payload_type)
            .ok_or_else(|| BotError::WebRtc(format!("the server did not accept {}", self.mime_type)))
    }
}
