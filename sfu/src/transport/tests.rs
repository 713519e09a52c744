//! The shared sockets on the loopback: candidates, routing.

use super::*;
use crate::stats::TransportCounters;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};

struct Quiet;
impl ConnectionHandler for Quiet {}

fn audio_track() -> MediaStreamTrack {
    MediaStreamTrack::new(
        "s".into(),
        "a".into(),
        "a".into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(1234), ..Default::default() },
            codec: RTCRtpCodec {
                mime_type: "audio/opus".into(),
                clock_rate: 48_000,
                channels: 2,
                ..Default::default()
            },
            ..Default::default()
        }],
    )
}

/// Every connection offers the shared sockets as host candidates, also when they are bound
/// to the unspecified address (a 1:1 NAT: the public address replaces it in the SDP).
#[tokio::test]
async fn connections_share_the_sockets_and_offer_them_as_candidates() {
    for ip in ["127.0.0.1", "0.0.0.0"] {
        let cfg = IceConfig { ips: vec![ip.parse().unwrap()], ..Default::default() };
        let t = Transport::bind(&cfg, None).unwrap();
        let udp = t.udp_addrs()[0];
        let tcp = t.tcp_addrs()[0];
        let mut offers = Vec::new();
        for _ in 0..2 {
            let (pc, ufrag) =
                crate::peer::build_sfu_peer(Arc::new(TransportCounters::default()), crate::peer::Role::Both).unwrap();
            let c = Connection::open(Arc::clone(&t), pc, &ufrag, Box::new(Quiet)).unwrap();
            c.add_track(audio_track()).unwrap();
            let sdp = c.offer().unwrap();
            assert!(sdp.contains(&format!("a=ice-ufrag:{ufrag}")), "{sdp}");
            offers.push(sdp);
            c.close();
        }
        for sdp in offers {
            assert!(sdp.contains(" udp ") && sdp.contains(&format!(" {} {} typ host", udp.ip(), udp.port())), "{sdp}");
            assert!(sdp.contains(&format!(" {} {} typ host tcptype passive", tcp.ip(), tcp.port())), "{sdp}");
        }
        assert!(lock(&t.routes).by_ufrag.is_empty(), "closed connections are forgotten");
    }
}

/// A connectivity check is routed by the ufrag it names, and its path is remembered; a
/// datagram on an unknown path that is not a check reaches no one.
#[tokio::test]
async fn checks_are_routed_by_ufrag_then_by_path() {
    let t = Transport::bind(&IceConfig { tcp: false, ..Default::default() }, None).unwrap();
    let (pc, ufrag) =
        crate::peer::build_sfu_peer(Arc::new(TransportCounters::default()), crate::peer::Role::Both).unwrap();
    let c = Connection::open(Arc::clone(&t), pc, &ufrag, Box::new(Quiet)).unwrap();
    let local = t.udp_addrs()[0];
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut check = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    check.extend_from_slice(&[9; 12]);
    let name = format!("{ufrag}:remote");
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(name.len() as u16).to_be_bytes());
    attr.extend_from_slice(name.as_bytes());
    attr.resize(attr.len().div_ceil(4) * 4, 0);
    check[2..4].copy_from_slice(&(attr.len() as u16).to_be_bytes());
    check.extend_from_slice(&attr);
    assert!(t.route((local, peer, false), &[0x80; 40]).is_none());
    let routed = t.route((local, peer, false), &check).expect("routed by ufrag");
    assert!(Arc::ptr_eq(&routed, &c));
    assert!(t.route((local, peer, false), &[0x80; 40]).is_some_and(|r| Arc::ptr_eq(&r, &c)), "then by path");
    assert!(t.route((local, "127.0.0.1:40001".parse().unwrap(), false), &[0x80; 40]).is_none());
    c.close();
    assert!(t.route((local, peer, false), &[0x80; 40]).is_none(), "closed: unrouted");
}

/// A configured port that is taken is a bind error naming the address, with the OS's error as
/// its source.
#[tokio::test]
async fn a_taken_port_is_a_bind_error_that_keeps_its_cause() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = IceConfig { udp_port_range: Some((port, port)), tcp: false, ..Default::default() };
    let Err(e) = Transport::bind(&cfg, None) else { panic!("bound a taken port") };
    assert!(matches!(e, Error::Bind { range: Some((p, q)), .. } if p == port && q == port), "{e}");
    assert!(e.to_string().starts_with("internal: cannot bind an ICE socket on 127.0.0.1"), "{e}");
    let source = std::error::Error::source(&e).and_then(|s| s.downcast_ref::<std::io::Error>());
    assert_eq!(source.map(std::io::Error::kind), Some(std::io::ErrorKind::AddrInUse));
}

/// Several forwarding threads read one port: each has its own socket on it, so clients see
/// (and firewalls open) one port whatever the thread count; a fixed port works the same.
#[tokio::test]
async fn forwarding_threads_share_one_port() {
    let t = Transport::bind(&IceConfig { threads: 3, tcp: false, ..Default::default() }, None).unwrap();
    let addr = t.udp_addrs()[0];
    assert_eq!((t.udp_addrs().len(), t.shards.len()), (1, 3));
    for s in &t.shards {
        assert_eq!(s.sockets[0].local_addr().unwrap(), addr);
    }
    let port = addr.port();
    drop(t);
    let fixed = IceConfig { threads: 2, tcp: false, udp_port_range: Some((port, port)), ..Default::default() };
    let t = Transport::bind(&fixed, None).unwrap();
    assert_eq!(t.udp_addrs()[0].port(), port);
    assert!(t.shards.iter().all(|s| s.sockets[0].local_addr().unwrap().port() == port));
    // Another server on the same port is refused, as a port anyone holds is, although this
    // one's sockets share it among themselves.
    let Err(e) = Transport::bind(&fixed, None) else { panic!("a second server joined the port") };
    assert!(matches!(e, Error::Bind { .. }), "{e}");
    // Connections are spread: each new one goes to the thread with the fewest.
    let owners: Vec<usize> = (0..4).map(|_| t.place()).collect();
    assert_eq!(owners, vec![0, 1, 0, 1]);
}
