//! WHIP (RFC 9725) from the outside: a publisher whose WebRTC stack we did not write,
//! GStreamer's `webrtcbin` (libnice + OpenSSL) fed by live test sources, non-trickle, ICE on
//! 127.0.0.1 over UDP only; the `POST /whip/{room}` and `DELETE` of a WHIP client over the
//! kit's blocking HTTP client; and reading the candidates of an SDP.
//!
//! The publisher's methods block (its callbacks come on GStreamer's threads): from an async
//! test, call [`Publisher::offer`] in `tokio::task::block_in_place`.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gst::prelude::*;

use crate::http;

/// The state of the publisher's peer connection.
pub use gst_webrtc::WebRTCPeerConnectionState as ConnectionState;

/// Live VP8 (payload type 96), the encoder and payloader chain for [`Publisher::new`].
pub const VP8: &str =
    "vp8enc deadline=1 ! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000";

/// Live H.264 constrained baseline (payload type 102), for [`Publisher::new`].
pub const H264: &str = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 \
     ! video/x-h264,profile=constrained-baseline ! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency \
     ! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000";

/// The size of the publisher's video.
pub const WIDTH: u32 = 320;
pub const HEIGHT: u32 = 240;

/// A GStreamer WHIP publisher: `webrtcbin` sending 320x240 video at 30 fps (the chain given)
/// and a 440 Hz Opus tone (payload type 111, stereo), both `sendonly`; stopped on drop.
pub struct Publisher {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Publisher {
    /// A moving ball; `video` is the encoder and payloader chain between the raw test video
    /// and webrtcbin ([`VP8`], [`H264`]).
    pub fn new(video: &str) -> Publisher {
        Publisher::with_source(video, "videotestsrc is-live=true pattern=ball")
    }

    /// One solid colour (`0xRRGGBB`), to be found again in a program or recording.
    pub fn solid(video: &str, rgb: u32) -> Publisher {
        let argb = 0xff00_0000 | (rgb & 0x00ff_ffff);
        Publisher::with_source(video, &format!("videotestsrc is-live=true pattern=solid-color foreground-color={argb}"))
    }

    fn with_source(video: &str, source: &str) -> Publisher {
        gst::init().expect("gst init");
        for f in ["webrtcbin", "nicesrc", "videotestsrc", "vp8enc", "rtpvp8pay", "opusenc", "rtpopuspay"] {
            assert!(
                gst::ElementFactory::find(f).is_some(),
                "GStreamer element {f} is missing: run scripts/install-deps"
            );
        }
        let desc = format!(
            "webrtcbin name=w bundle-policy=max-bundle \
             {source} ! video/x-raw,width={WIDTH},height={HEIGHT},framerate=30/1 ! {video} ! w. \
             audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay pt=111 ! \
             application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! w."
        );
        let pipeline = gst::parse::launch(&desc).expect("pipeline").downcast::<gst::Pipeline>().expect("a pipeline");
        let webrtc = pipeline.by_name("w").expect("webrtcbin");
        // ICE on 127.0.0.1 only, UDP only, no STUN/TURN (none configured).
        let ice: gst_webrtc::WebRTCICE = webrtc.property("ice-agent");
        ice.emit_by_name_with_values("add-local-ip-address", &["127.0.0.1".to_value()]);
        ice.set_property("ice-tcp", false);
        // WHIP publishers only send.
        let mut n = 0;
        while let Some(t) = webrtc.emit_by_name::<Option<gst_webrtc::WebRTCRTPTransceiver>>("get-transceiver", &[&n]) {
            t.set_property("direction", gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
            n += 1;
        }
        assert_eq!(n, 2, "webrtcbin transceivers");
        Publisher { pipeline, webrtc }
    }

    /// Starts the pipeline and returns the complete offer (all candidates gathered): blocks
    /// for a second or so.
    pub fn offer(&self) -> String {
        complete_offer(&self.pipeline, &self.webrtc, || self.check_bus())
    }

    /// Gives webrtcbin the server's answer; fails the test if it is refused.
    pub fn set_answer(&self, sdp: &str) {
        accept_answer(&self.webrtc, sdp);
    }

    pub fn connection_state(&self) -> ConnectionState {
        self.webrtc.property("connection-state")
    }

    /// Blocks until the peer connection is `connected` (ICE and DTLS done); fails the test
    /// after `timeout` or on a pipeline error. Returns how long it took.
    pub fn wait_connected(&self, timeout: Duration) -> Duration {
        let start = Instant::now();
        while self.connection_state() != ConnectionState::Connected {
            self.check_bus();
            assert!(start.elapsed() < timeout, "webrtcbin did not connect: {:?}", self.connection_state());
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    }

    /// Fails the test on a pipeline error.
    pub fn check_bus(&self) {
        let bus = self.pipeline.bus().expect("bus");
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                panic!(
                    "publisher pipeline error from {:?}: {} ({:?})",
                    e.src().map(|s| s.path_string()),
                    e.error(),
                    e.debug()
                );
            }
        }
    }
}

/// What a server answered a WHIP `POST`.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// The session's URL (`Location`), to `DELETE` it.
    pub location: Option<String>,
    /// The body: the answer SDP on 201, else the error.
    pub sdp: String,
    pub response: http::Response,
}

/// `POST /whip/{room}` on 127.0.0.1:`port` with `Authorization: Bearer {token}` and
/// `Content-Type: application/sdp`.
pub fn post(port: u16, room: &str, token: &str, offer: &str) -> Answer {
    let mut headers = http::auth(Some(token));
    headers.push(("Content-Type".into(), "application/sdp".into()));
    let response = http::send(port, "POST", &format!("/whip/{room}"), &headers, http::Body::Sized(offer.as_bytes()))
        .expect("WHIP POST");
    Answer {
        status: response.status,
        location: response.header("location").map(str::to_owned),
        sdp: String::from_utf8_lossy(&response.body).into_owned(),
        response,
    }
}

/// `DELETE` of a WHIP session (`location`, a path) with `Authorization: Bearer {token}`.
pub fn delete(port: u16, location: &str, token: &str) -> http::Response {
    http::send(port, "DELETE", location, &http::auth(Some(token)), http::Body::None).expect("WHIP DELETE")
}

/// The `a=candidate` lines of an SDP.
pub fn candidates(sdp: &str) -> Vec<&str> {
    sdp.lines().map(str::trim).filter(|l| l.starts_with("a=candidate:")).collect()
}

/// One `a=candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ TYPE …` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    /// `udp` or `tcp`, lower-cased.
    pub transport: String,
    pub addr: &'a str,
    pub port: u16,
    /// `host`, `srflx`, `relay`…
    pub kind: &'a str,
}

/// Parses a candidate line; `None` if it is not one.
pub fn candidate(line: &str) -> Option<Candidate<'_>> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if !fields.first()?.starts_with("a=candidate:") || fields.get(6) != Some(&"typ") {
        return None;
    }
    Some(Candidate {
        transport: fields[2].to_ascii_lowercase(),
        addr: fields[4],
        port: fields[5].parse().ok()?,
        kind: fields.get(7)?,
    })
}

/// The connection address of a candidate line.
pub fn candidate_addr(line: &str) -> &str {
    line.split_whitespace().nth(4).unwrap_or("")
}

/// Starts `pipeline` and returns `webrtc`'s complete offer, non-trickle as WHIP and WHEP send
/// it: all candidates gathered (blocks for a second or so). `check` runs while it waits (a
/// bus check that fails the test on an error).
pub fn complete_offer(pipeline: &gst::Pipeline, webrtc: &gst::Element, check: impl Fn()) -> String {
    let (tx, rx) = mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    webrtc.connect("on-negotiation-needed", false, move |_| {
        let _ = tx.lock().map(|t| t.send(()));
        None
    });
    pipeline.set_state(gst::State::Playing).expect("webrtcbin's pipeline plays");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.try_recv().is_err() {
        check();
        assert!(Instant::now() < deadline, "webrtcbin never asked for negotiation");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (otx, orx) = mpsc::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let offer = match reply {
            Ok(Some(s)) => s.get::<gst_webrtc::WebRTCSessionDescription>("offer").map_err(|e| format!("{e}: {s}")),
            other => Err(format!("create-offer failed: {other:?}")),
        };
        let _ = otx.send(offer);
    });
    webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
    let offer = orx.recv_timeout(Duration::from_secs(10)).expect("offer in time").expect("offer");
    webrtc.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
        != gst_webrtc::WebRTCICEGatheringState::Complete
    {
        check();
        assert!(Instant::now() < deadline, "webrtcbin ICE gathering did not complete");
        std::thread::sleep(Duration::from_millis(20));
    }
    let local = webrtc.property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description");
    local.expect("local description").sdp().as_text().expect("offer as text")
}

/// Gives `webrtc` the server's answer; fails the test if it is refused.
pub fn accept_answer(webrtc: &gst::Element, sdp: &str) {
    let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).expect("the answer parses as SDP");
    let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, msg);
    let (tx, rx) = mpsc::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(match reply {
            Ok(Some(s)) if s.has_field("error") => Err(format!("{s}")),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("{e:?}")),
        });
    });
    webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("set-remote-description replied")
        .expect("webrtcbin accepts the answer");
}

/// A WHEP viewer's `webrtcbin` before its media is handled: in a new pipeline, bundled, ICE on
/// 127.0.0.1 over UDP, with `recvonly` H.264 (High, packetization mode 1, payload type 96) and
/// Opus (stereo, 97) transceivers. Link its source pads (`pad-added`) to what the caller
/// wants, then [`complete_offer`] and [`accept_answer`].
pub fn recvonly_webrtcbin() -> (gst::Pipeline, gst::Element) {
    gst::init().expect("gst init");
    for f in ["webrtcbin", "rtph264depay", "rtpopusdepay"] {
        assert!(gst::ElementFactory::find(f).is_some(), "GStreamer element {f} is missing: run scripts/install-deps");
    }
    let pipeline = gst::Pipeline::new();
    let webrtc = gst::ElementFactory::make("webrtcbin")
        .property_from_str("bundle-policy", "max-bundle")
        .build()
        .expect("webrtcbin");
    pipeline.add(&webrtc).expect("add webrtcbin");
    let ice: gst_webrtc::WebRTCICE = webrtc.property("ice-agent");
    ice.emit_by_name_with_values("add-local-ip-address", &["127.0.0.1".to_value()]);
    ice.set_property("ice-tcp", false);
    let recvonly = gst_webrtc::WebRTCRTPTransceiverDirection::Recvonly;
    let video = gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("encoding-name", "H264")
        .field("payload", 96i32)
        .field("clock-rate", 90_000i32)
        .field("packetization-mode", "1")
        .field("profile-level-id", "640032")
        .build();
    let audio = gst::Caps::builder("application/x-rtp")
        .field("media", "audio")
        .field("encoding-name", "OPUS")
        .field("payload", 97i32)
        .field("clock-rate", 48_000i32)
        .field("encoding-params", "2")
        .build();
    for caps in [video, audio] {
        let _: gst_webrtc::WebRTCRTPTransceiver = webrtc.emit_by_name("add-transceiver", &[&recvonly, &caps]);
    }
    (pipeline, webrtc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_lines_are_read() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=candidate:1 1 UDP 2130706431 127.0.0.1 40001 typ host\r\n\
                   a=candidate:2 1 TCP 1518280447 127.0.0.1 40002 typ host tcptype passive\r\n";
        let lines = candidates(sdp);
        assert_eq!(lines.len(), 2);
        assert_eq!(candidate_addr(lines[0]), "127.0.0.1");
        let udp = candidate(lines[0]).unwrap();
        assert_eq!(udp, Candidate { transport: "udp".into(), addr: "127.0.0.1", port: 40001, kind: "host" });
        assert_eq!(candidate(lines[1]).unwrap().transport, "tcp");
        assert_eq!(candidate(lines[1]).unwrap().port, 40002);
        assert_eq!(candidate("a=mid:0"), None);
    }
}
