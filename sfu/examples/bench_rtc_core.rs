//! What one forwarded copy costs inside `rtc`'s sans-IO peer connection, the core under
//! `webrtc` 0.21 (not a test). Two `rtc` peer connections are connected in memory (ICE and
//! DTLS by handing each one's datagrams to the other), then the sending one writes VP8 packets
//! as the SFU forwards them to a subscriber: through the same default interceptors (NACK
//! responder buffer, sender reports, ...), SRTP and marshalling, with no driver task, channel,
//! timer or socket. A second pass also sends each datagram from a UDP socket to a loopback
//! socket drained by another thread, one `send_to` per datagram as `webrtc`'s driver does,
//! and a third with one `sendmmsg` per 20 datagrams (one packet's copies for 20 subscribers).
//! The gap between these figures and the end-to-end benchmark (`scripts/bench-sfu --e2e`)
//! is what `webrtc`'s per-connection driver costs.
//!
//! Usage: cargo run --release -p tessera-sfu --example bench_rtc_core -- [PACKETS]

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_VP8, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

type Error = Box<dyn std::error::Error>;

fn vp8() -> RTCRtpCodecParameters {
    let feedback = ["nack", "nack pli", "ccm fir", "goog-remb"]
        .iter()
        .map(|f| {
            let (typ, parameter) = f.split_once(' ').unwrap_or((f, ""));
            RTCPFeedback { typ: typ.to_owned(), parameter: parameter.to_owned() }
        })
        .collect();
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: feedback,
        },
        payload_type: 96,
    }
}

/// A peer connection with VP8 and the default interceptors, its host candidate at `addr`.
fn peer(addr: SocketAddr) -> Result<RTCPeerConnection, Error> {
    let mut me = MediaEngine::default();
    me.register_codec(vp8(), RtpCodecKind::Video)?;
    let registry = register_default_interceptors(Registry::new(), &mut me)?;
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(SettingEngineBuilder::new().with_answering_dtls_role(RTCDtlsRole::Server).build())
        .with_media_engine(me)
        .with_interceptor_registry(registry)
        .build(Instant::now())?;
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
    Ok(pc)
}

/// Hands every datagram `from` has to send to `to`, as if it arrived at `to_addr`.
fn shuttle(
    from: &mut RTCPeerConnection,
    from_addr: SocketAddr,
    to: &mut RTCPeerConnection,
    to_addr: SocketAddr,
) -> Result<(), Error> {
    while let Some(msg) = from.poll_write() {
        to.handle_read(TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: to_addr,
                peer_addr: from_addr,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: msg.message,
        })?;
    }
    Ok(())
}

fn connected(pc: &mut RTCPeerConnection, state: &mut bool) {
    while let Some(e) = pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = e {
            *state = s == RTCPeerConnectionState::Connected;
        }
    }
}

/// Datagrams per `sendmmsg`: one packet's copies for 20 subscribers.
const BATCH: usize = 20;

#[derive(Clone, Copy)]
enum Pass {
    CoreAlone,
    SendTo,
    SendMmsg,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::CoreAlone => "rtc core alone:",
            Pass::SendTo => "rtc core + one send_to per datagram:",
            Pass::SendMmsg => "rtc core + sendmmsg of 20 datagrams:",
        }
    }
}

/// Sends `batch` with one `sendmmsg` and empties it.
fn send_batch(socket: &UdpSocket, to: SocketAddr, batch: &mut Vec<BytesMut>) {
    use std::os::fd::AsRawFd;
    let SocketAddr::V4(v4) = to else { return };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
        sin_zero: [0; 8],
    };
    let mut iovs: Vec<libc::iovec> =
        batch.iter_mut().map(|b| libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() }).collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = (&addr as *const libc::sockaddr_in).cast_mut().cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            libc::mmsghdr { msg_hdr: h, msg_len: 0 }
        })
        .collect();
    // SAFETY: `msgs` points at live iovecs, buffers and `addr` for the duration of the call.
    unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as u32, 0) };
    batch.clear();
}

/// CPU time of the calling thread (Linux schedstat, nanoseconds on the CPU).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0))
}

fn main() -> Result<(), Error> {
    let packets: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let (sfu_addr, sub_addr): (SocketAddr, SocketAddr) = ("127.0.0.1:41000".parse()?, "127.0.0.1:41001".parse()?);
    let mut sfu = peer(sfu_addr)?;
    let mut sub = peer(sub_addr)?;
    let ssrc = 0x1234_5678;
    let track = MediaStreamTrack::new(
        "bench".to_owned(),
        "video".to_owned(),
        "video".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
            codec: vp8().rtp_codec,
            ..Default::default()
        }],
    );
    let sender = sfu.add_track(track)?;
    let offer = sfu.create_offer(None)?;
    sfu.set_local_description(Instant::now(), offer.clone())?;
    sub.set_remote_description(Instant::now(), offer)?;
    let answer = sub.create_answer(None)?;
    sub.set_local_description(Instant::now(), answer.clone())?;
    sfu.set_remote_description(Instant::now(), answer)?;

    let (mut up_sfu, mut up_sub) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(up_sfu && up_sub) {
        if Instant::now() > deadline {
            return Err("the two peer connections did not connect in 10 s".into());
        }
        shuttle(&mut sfu, sfu_addr, &mut sub, sub_addr)?;
        shuttle(&mut sub, sub_addr, &mut sfu, sfu_addr)?;
        connected(&mut sfu, &mut up_sfu);
        connected(&mut sub, &mut up_sub);
        let now = Instant::now();
        for pc in [&mut sfu, &mut sub] {
            if pc.poll_timeout().is_some_and(|t| t <= now) {
                pc.handle_timeout(now)?;
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let pt = sfu.rtp_sender(sender).ok_or("no sender")?.get_parameters().rtp_parameters.codecs[0].payload_type;

    let payload = Bytes::from(vec![0x10u8; 1100]);
    // BENCH_SINK=unread: the loopback socket is never read, so once its buffer is full the
    // kernel drops each datagram at the socket: the send path and loopback delivery without
    // waking and copying into a receiver (closer to what a NIC costs the sender).
    let unread = std::env::var("BENCH_SINK").is_ok_and(|v| v == "unread");
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let sink_addr = sink.local_addr()?;
    if !unread {
        let reader = sink.try_clone()?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while reader.recv(&mut buf).is_ok() {}
        });
    }
    let mut seq: u16 = 0;
    let mut batch: Vec<BytesMut> = Vec::with_capacity(BATCH);
    for pass in [Pass::CoreAlone, Pass::SendTo, Pass::SendMmsg] {
        let (t0, c0) = (Instant::now(), thread_cpu());
        let (mut datagrams, mut bytes) = (0u64, 0u64);
        for i in 0..packets {
            let now = Instant::now();
            let mut p = rtp::Packet::default();
            p.header.version = 2;
            p.header.ssrc = ssrc;
            p.header.payload_type = pt;
            p.header.sequence_number = seq;
            p.header.timestamp = u32::from(seq / 4) * 3000;
            p.header.marker = seq % 4 == 3;
            p.payload = payload.clone();
            seq = seq.wrapping_add(1);
            sfu.rtp_sender(sender).ok_or("no sender")?.write_rtp(now, p)?;
            while let Some(msg) = sfu.poll_write() {
                datagrams += 1;
                bytes += msg.message.len() as u64;
                match pass {
                    Pass::CoreAlone => {}
                    Pass::SendTo => {
                        let _ = socket.send_to(&msg.message, sink_addr);
                    }
                    Pass::SendMmsg => {
                        batch.push(msg.message);
                        if batch.len() == BATCH {
                            send_batch(&socket, sink_addr, &mut batch);
                        }
                    }
                }
            }
            // Timers (reports, NACK buffer upkeep) as a driver would run them.
            if i % 256 == 0 && sfu.poll_timeout().is_some_and(|t| t <= now) {
                sfu.handle_timeout(now)?;
            }
            // The subscriber is not fed (its decode side is not what is measured); its own
            // output is dropped so that it does not pile up.
            if i % 1024 == 0 {
                while sub.poll_write().is_some() {}
            }
        }
        send_batch(&socket, sink_addr, &mut batch);
        let (wall, cpu) = (t0.elapsed(), thread_cpu() - c0);
        let per = cpu.as_secs_f64() / f64::from(packets);
        println!(
            "{:<44} {packets} packets, {datagrams} datagrams of {} bytes: {:.2} us CPU per copy, {:.0} copies per CPU-second (wall {:.2} s)",
            pass.name(),
            bytes / datagrams.max(1),
            per * 1e6,
            1.0 / per,
            wall.as_secs_f64()
        );
    }
    Ok(())
}
