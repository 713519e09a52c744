//! WHIP ingest from a publisher whose WebRTC stack we did not write: GStreamer's `webrtcbin`
//! (libnice + OpenSSL) sends live VP8 (or H.264) video and Opus audio to `POST /whip/{room}`,
//! non-trickle, ICE restricted to 127.0.0.1. The recording hand-off consumer sees both tracks,
//! a plausible number of packets with few sequence gaps and RTCP sender reports; the video
//! depayloads and decodes; `DELETE` on the Location ends the session.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use tessera_sfu::{KeyframeRequester, MediaHandoff, SenderReportInfo, TrackInfo};

/// The hand-off consumer: remembers everything it is given.
#[derive(Default)]
struct Recorder {
    published: Mutex<Vec<TrackInfo>>,
    unpublished: Mutex<Vec<TrackInfo>>,
    /// Every RTP packet, by track id.
    packets: Mutex<BTreeMap<String, Vec<Vec<u8>>>>,
    /// Every sender report with the number of packets of its track handed over before it.
    reports: Mutex<BTreeMap<String, Vec<(SenderReportInfo, usize)>>>,
    keyframes: Mutex<Vec<KeyframeRequester>>,
}

impl MediaHandoff for Recorder {
    fn track_published(&self, track: &TrackInfo, keyframes: KeyframeRequester) {
        self.published.lock().unwrap().push(track.clone());
        self.keyframes.lock().unwrap().push(keyframes);
    }
    fn track_unpublished(&self, track: &TrackInfo) {
        self.unpublished.lock().unwrap().push(track.clone());
    }
    fn rtp(&self, track_id: &str, packet: &[u8]) {
        self.packets.lock().unwrap().entry(track_id.to_owned()).or_default().push(packet.to_vec());
    }
    fn sender_report(&self, track_id: &str, report: &SenderReportInfo) {
        let before = self.count(track_id);
        self.reports.lock().unwrap().entry(track_id.to_owned()).or_default().push((*report, before));
    }
}

impl Recorder {
    fn track(&self, mime: &str) -> Option<TrackInfo> {
        self.published.lock().unwrap().iter().find(|t| t.mime_type.eq_ignore_ascii_case(mime)).cloned()
    }
    fn packets_of(&self, track_id: &str) -> Vec<Vec<u8>> {
        self.packets.lock().unwrap().get(track_id).cloned().unwrap_or_default()
    }
    fn count(&self, track_id: &str) -> usize {
        self.packets.lock().unwrap().get(track_id).map_or(0, Vec::len)
    }
    fn reports_of(&self, track_id: &str) -> Vec<(SenderReportInfo, usize)> {
        self.reports.lock().unwrap().get(track_id).cloned().unwrap_or_default()
    }
}

/// RTP header fields of a serialized packet: (payload type, sequence number, timestamp, SSRC).
fn rtp_header(p: &[u8]) -> (u8, u16, u32, u32) {
    assert!(p.len() >= 12 && p[0] >> 6 == 2, "not an RTP packet: {p:02x?}");
    (
        p[1] & 0x7f,
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

/// Sequence numbers missing between the first and the highest one received (retransmissions
/// may arrive out of order), and that span.
fn sequence_gaps(packets: &[Vec<u8>]) -> (usize, usize) {
    let seqs: Vec<u16> = packets.iter().map(|p| rtp_header(p).1).collect();
    let Some(&first) = seqs.first() else { return (0, 0) };
    let span = seqs.iter().map(|s| s.wrapping_sub(first)).filter(|d| *d < 0x8000).max().unwrap_or(0) as usize + 1;
    let distinct: HashSet<u16> = seqs.iter().copied().collect();
    (span.saturating_sub(distinct.len()), span)
}

/// One HTTP/1.1 request on a fresh connection: (status, headers lower-cased, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("HTTP response in time")
        .expect("read");
    let text = String::from_utf8(out).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `a=candidate` lines of an SDP.
fn candidates(sdp: &str) -> Vec<&str> {
    sdp.lines().map(str::trim).filter(|l| l.starts_with("a=candidate:")).collect()
}

/// The connection address of a candidate line (`a=candidate:F C proto prio ADDR port typ …`).
fn candidate_addr(line: &str) -> &str {
    line.split_whitespace().nth(4).unwrap_or("")
}

/// A GStreamer WHIP publisher: `webrtcbin` fed by live test sources; stopped on drop.
struct Publisher {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Publisher {
    /// `video` is the encoder and payloader chain between the raw test video and webrtcbin.
    fn new(video: &str) -> Publisher {
        gst::init().expect("gst init");
        for f in ["webrtcbin", "nicesrc", "vp8enc", "rtpvp8pay", "opusenc", "rtpopuspay"] {
            assert!(
                gst::ElementFactory::find(f).is_some(),
                "GStreamer element {f} is missing: run scripts/install-deps"
            );
        }
        let desc = format!(
            "webrtcbin name=w bundle-policy=max-bundle \
             videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! {video} ! w. \
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

    /// Starts the pipeline and returns the complete offer (all candidates gathered).
    async fn offer(&self) -> String {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let tx = Mutex::new(tx);
        self.webrtc.connect("on-negotiation-needed", false, move |_| {
            let _ = tx.lock().unwrap().send(());
            None
        });
        self.pipeline.set_state(gst::State::Playing).expect("publisher pipeline plays");
        let deadline = Instant::now() + Duration::from_secs(10);
        while rx.try_recv().is_err() {
            self.check_bus();
            assert!(Instant::now() < deadline, "webrtcbin never asked for negotiation");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (otx, orx) = tokio::sync::oneshot::channel();
        let otx = Mutex::new(Some(otx));
        let promise = gst::Promise::with_change_func(move |reply| {
            let offer = match reply {
                Ok(Some(s)) => s.get::<gst_webrtc::WebRTCSessionDescription>("offer").map_err(|e| format!("{e}: {s}")),
                other => Err(format!("create-offer failed: {other:?}")),
            };
            if let Some(tx) = otx.lock().unwrap().take() {
                let _ = tx.send(offer);
            }
        });
        self.webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        let offer = tokio::time::timeout(Duration::from_secs(10), orx)
            .await
            .expect("offer in time")
            .expect("promise")
            .expect("offer");
        self.webrtc.emit_by_name::<()>("set-local-description", &[&offer, &None::<gst::Promise>]);
        // Non-trickle (WHIP): wait until gathering completes, then send the whole description.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.webrtc.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state")
            != gst_webrtc::WebRTCICEGatheringState::Complete
        {
            self.check_bus();
            assert!(Instant::now() < deadline, "webrtcbin ICE gathering did not complete");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let local = self
            .webrtc
            .property::<Option<gst_webrtc::WebRTCSessionDescription>>("local-description")
            .expect("local description");
        local.sdp().as_text().expect("offer as text")
    }

    fn set_answer(&self, sdp: &str) {
        let msg = gst_sdp::SDPMessage::parse_buffer(sdp.as_bytes()).expect("the answer parses as SDP");
        let answer = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Answer, msg);
        let (tx, rx) = std::sync::mpsc::channel();
        let promise = gst::Promise::with_change_func(move |reply| {
            let _ = tx.send(match reply {
                Ok(Some(s)) if s.has_field("error") => Err(format!("{s}")),
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{e:?}")),
            });
        });
        self.webrtc.emit_by_name::<()>("set-remote-description", &[&answer, &promise]);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("set-remote-description replied")
            .expect("webrtcbin accepts the answer");
    }

    fn connection_state(&self) -> gst_webrtc::WebRTCPeerConnectionState {
        self.webrtc.property("connection-state")
    }

    /// Fails the test on a pipeline error.
    fn check_bus(&self) {
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

/// Decodes a handed-over video track with GStreamer (appsrc ! depayloader ! decoder ! appsink)
/// and returns the number of frames and the size of the last one.
fn decode(track: &TrackInfo, packets: &[Vec<u8>], chain: &str) -> (usize, Option<(i32, i32)>) {
    let encoding = track.mime_type.split('/').nth(1).unwrap_or("").to_ascii_uppercase();
    let desc = format!(
        "appsrc name=src is-live=false format=time caps=application/x-rtp,media=video,clock-rate={},encoding-name={encoding},payload={} \
         ! {chain} ! videoconvert ! video/x-raw,format=I420 ! appsink name=sink sync=false",
        track.clock_rate, track.payload_type
    );
    let pipeline = gst::parse::launch(&desc).expect("decoder pipeline").downcast::<gst::Pipeline>().unwrap();
    let src = pipeline.by_name("src").unwrap().downcast::<gst_app::AppSrc>().unwrap();
    let sink = pipeline.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).expect("decoder plays");
    for p in packets {
        src.push_buffer(gst::Buffer::from_slice(p.clone())).expect("push");
    }
    src.end_of_stream().expect("eos");
    let mut frames = 0;
    let mut size = None;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        frames += 1;
        let caps = sample.caps().expect("caps");
        let s = caps.structure(0).unwrap();
        size = Some((s.get::<i32>("width").unwrap(), s.get::<i32>("height").unwrap()));
    }
    let bus = pipeline.bus().unwrap();
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("decoder error: {msg:?}");
    }
    let _ = pipeline.set_state(gst::State::Null);
    (frames, size)
}

struct Expect {
    video_mime: &'static str,
    decoder: &'static str,
}

/// Publishes over WHIP for 5 s and checks what the hand-off consumer got.
async fn publish_over_whip(room: &str, video_chain: &str, expect: Expect) {
    let started = Instant::now();
    let rec = Arc::new(Recorder::default());
    let server = start(Some(rec.clone() as Arc<dyn MediaHandoff>)).await;
    let publisher = Publisher::new(video_chain);
    let offer = publisher.offer().await;
    let ours = candidates(&offer);
    assert!(!ours.is_empty(), "the offer carries no candidates:\n{offer}");
    assert!(ours.iter().all(|c| candidate_addr(c) == "127.0.0.1"), "offer candidates beyond 127.0.0.1: {ours:#?}");

    // A wrong token is refused and leaves nothing behind.
    let (status, _, body) = http(
        server.addr,
        "POST",
        &format!("/whip/{room}"),
        &[("Authorization", "Bearer nope"), ("Content-Type", "application/sdp")],
        &offer,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(participants(&server.sfu, room).is_empty());

    let (status, headers, answer) = http(
        server.addr,
        "POST",
        &format!("/whip/{room}"),
        &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Type", "application/sdp")],
        &offer,
    )
    .await;
    assert_eq!(status, 201, "WHIP POST: {answer}");
    assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with("application/sdp")), "{headers:?}");
    let location = header(&headers, "location").expect("Location header").to_owned();
    assert!(location.starts_with(&format!("/whip/{room}/")), "{location}");
    let theirs = candidates(&answer);
    assert!(!theirs.is_empty(), "the answer carries no candidates (non-trickle WHIP):\n{answer}");
    assert!(theirs.iter().all(|c| candidate_addr(c) == "127.0.0.1"), "answer candidates beyond 127.0.0.1: {theirs:#?}");
    assert_eq!(participants(&server.sfu, room).len(), 1);
    publisher.set_answer(&answer);

    let deadline = Instant::now() + Duration::from_secs(15);
    while publisher.connection_state() != gst_webrtc::WebRTCPeerConnectionState::Connected {
        publisher.check_bus();
        assert!(Instant::now() < deadline, "webrtcbin did not connect: {:?}", publisher.connection_state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = Instant::now();
    eprintln!("connected {:?} after start", connected - started);

    // Both tracks published, then ~5 s of media.
    assert!(
        wait_until(Duration::from_secs(10), || rec.published.lock().unwrap().len() == 2).await,
        "tracks published: {:?}",
        rec.published.lock().unwrap()
    );
    let video = rec
        .track(expect.video_mime)
        .unwrap_or_else(|| panic!("no {} track: {:?}", expect.video_mime, rec.published.lock().unwrap()));
    let audio =
        rec.track("audio/opus").unwrap_or_else(|| panic!("no audio/opus track: {:?}", rec.published.lock().unwrap()));
    eprintln!("published: {video:?}\n           {audio:?}");
    while connected.elapsed() < Duration::from_secs(5) {
        publisher.check_bus();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(publisher.connection_state(), gst_webrtc::WebRTCPeerConnectionState::Connected);
    let vp = rec.packets_of(&video.track_id);
    let ap = rec.packets_of(&audio.track_id);
    let (vgaps, vspan) = sequence_gaps(&vp);
    let (agaps, aspan) = sequence_gaps(&ap);
    let vsr = rec.reports_of(&video.track_id);
    let asr = rec.reports_of(&audio.track_id);
    eprintln!(
        "after 5 s: video {} {} packets ({vgaps} of {vspan} sequence numbers missing), {} SRs; \
         audio {} {} packets ({agaps} of {aspan} missing), {} SRs; hand-off dropped {}",
        video.mime_type,
        vp.len(),
        vsr.len(),
        audio.mime_type,
        ap.len(),
        asr.len(),
        server.sfu.handoff_dropped()
    );

    // What a consumer sees: the announced parameters, on every packet.
    assert_eq!((video.room.as_str(), audio.room.as_str()), (room, room));
    assert_eq!(video.participant_id, audio.participant_id);
    assert!(location.ends_with(&format!("/{}", video.participant_id)), "{location} vs {}", video.participant_id);
    assert_eq!(video.source, tessera_sfu::TrackSource::Camera);
    assert_eq!(audio.source, tessera_sfu::TrackSource::Audio);
    assert_eq!((video.clock_rate, video.channels), (90_000, 0));
    assert_eq!((audio.clock_rate, audio.channels), (48_000, 2));
    assert_ne!(video.ssrc, audio.ssrc);
    for (t, pkts) in [(&video, &vp), (&audio, &ap)] {
        for p in pkts {
            let (pt, _, _, ssrc) = rtp_header(p);
            assert_eq!((pt, ssrc), (t.payload_type, t.ssrc), "{}: packet header vs TrackInfo", t.mime_type);
        }
    }
    assert!(vp.len() >= 100, "only {} video packets in 5 s", vp.len());
    assert!(ap.len() >= 150, "only {} audio packets in 5 s", ap.len());
    assert!(vgaps * 100 <= vspan, "video: {vgaps} of {vspan} sequence numbers missing");
    assert!(agaps * 100 <= aspan, "audio: {agaps} of {aspan} sequence numbers missing");
    // Audio timestamps advance by 20 ms (960 at 48 kHz) per packet.
    let ats: Vec<u32> = ap.iter().map(|p| rtp_header(p).2).collect();
    let steady = ats.windows(2).filter(|w| w[1].wrapping_sub(w[0]) == 960).count();
    assert!(steady * 10 >= ats.len() * 9, "audio timestamps: only {steady} of {} steps are 960", ats.len());
    // Lip sync: sender reports of both tracks, in the handed-over SSRC/timestamp space.
    // (GStreamer 1.22's SR RTP times run ahead of its packets by a growing amount, the same
    // for both tracks: compare the tracks with each other, not with the packets.)
    assert!(
        !vsr.is_empty() && !asr.is_empty(),
        "sender reports reached the hand-off: video {}, audio {}",
        vsr.len(),
        asr.len()
    );
    let ahead = |t: &TrackInfo, pkts: &[Vec<u8>], sr: &SenderReportInfo, before: usize| {
        let last = rtp_header(&pkts[before.saturating_sub(1)]).2;
        sr.rtp_time.wrapping_sub(last) as i32 as f64 / t.clock_rate as f64
    };
    for (t, srs, pkts) in [(&video, &vsr, &vp), (&audio, &asr, &ap)] {
        for (sr, before) in srs {
            assert_eq!(sr.ssrc, t.ssrc, "{}: SR SSRC", t.mime_type);
            assert!(sr.packet_count > 0 && sr.ntp_time > 0, "{}: {sr:?}", t.mime_type);
            let a = ahead(t, pkts, sr, *before);
            eprintln!("{} SR after {before} packets: RTP time {a:+.3} s from the last packet; {sr:?}", t.mime_type);
            assert!(a.abs() < 10.0, "{}: SR RTP time {a} s away from the packets: {sr:?}", t.mime_type);
        }
        assert!(
            srs.windows(2).all(|w| w[1].0.packet_count >= w[0].0.packet_count),
            "{}: SR packet counts go back",
            t.mime_type
        );
    }
    // Reports sent together (same NTP time) place both tracks at the same instant.
    let mut paired = 0;
    for (v, vb) in &vsr {
        for (a, ab) in asr.iter().filter(|(a, _)| a.ntp_time == v.ntp_time) {
            let skew = ahead(&video, &vp, v, *vb) - ahead(&audio, &ap, a, *ab);
            assert!(skew.abs() < 0.1, "audio/video SRs at the same NTP time disagree by {skew:.3} s");
            paired += 1;
        }
    }
    eprintln!("{paired} audio/video SR pairs at the same NTP time");

    // The video depayloads and decodes to frames of the size sent.
    let (frames, size) = decode(&video, &vp, expect.decoder);
    eprintln!("decoded {frames} frames of {size:?}");
    assert!(frames >= 100, "only {frames} frames decoded from {} packets", vp.len());
    assert_eq!(size, Some((320, 240)));

    // DELETE with a wrong token is refused; with the right one it ends the session.
    let (status, _, _) = http(server.addr, "DELETE", &location, &[("Authorization", "Bearer nope")], "").await;
    assert_eq!(status, 401);
    assert_eq!(participants(&server.sfu, room).len(), 1);
    let (status, _, body) =
        http(server.addr, "DELETE", &location, &[("Authorization", &format!("Bearer {TOKEN}"))], "").await;
    assert_eq!(status, 200, "DELETE: {body}");
    assert!(
        wait_until(Duration::from_secs(10), || rec.unpublished.lock().unwrap().len() == 2).await,
        "tracks unpublished: {:?}",
        rec.unpublished.lock().unwrap()
    );
    let mut gone: Vec<String> = rec.unpublished.lock().unwrap().iter().map(|t| t.track_id.clone()).collect();
    gone.sort();
    let mut want = vec![video.track_id.clone(), audio.track_id.clone()];
    want.sort();
    assert_eq!(gone, want);
    assert!(participants(&server.sfu, room).is_empty(), "the WHIP participant is still in the room");
    assert!(server.sfu.get_room(room).is_none(), "the empty room was not removed");
    // Nothing more is handed over for the ended session.
    let (nv, na) = (rec.count(&video.track_id), rec.count(&audio.track_id));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((rec.count(&video.track_id), rec.count(&audio.track_id)), (nv, na), "media after DELETE");
    // A second DELETE finds no session.
    let (status, _, _) =
        http(server.addr, "DELETE", &location, &[("Authorization", &format!("Bearer {TOKEN}"))], "").await;
    assert_eq!(status, 404);
    drop(publisher);
    eprintln!("done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_publishes_vp8_and_opus_over_whip() {
    publish_over_whip(
        "whip-vp8",
        "vp8enc deadline=1 ! rtpvp8pay pt=96 ! application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000",
        Expect { video_mime: "video/VP8", decoder: "rtpvp8depay ! vp8dec" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_publishes_h264_and_opus_over_whip() {
    publish_over_whip(
        "whip-h264",
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! video/x-h264,profile=constrained-baseline \
         ! rtph264pay pt=102 config-interval=-1 aggregate-mode=zero-latency \
         ! application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000",
        Expect { video_mime: "video/H264", decoder: "rtph264depay ! avdec_h264" },
    )
    .await;
}
