//! WHEP playback to a viewer whose WebRTC stack we did not write: GStreamer's `webrtcbin`
//! offers `recvonly` H.264 (high) and Opus to `POST /whep/{room}`, non-trickle, ICE on
//! 127.0.0.1. The source is an in-process [`LocalPublisher`] (the room's program in the
//! binary) fed by a small GStreamer encoder of a solid green picture and a tone; the test's
//! [`WhepSource`] names it and counts acquires and releases. The viewer decodes green frames
//! and Opus audio, its start asked the publisher for a keyframe, it is in no one's participant
//! list, `DELETE` ends it (one release), and the publisher leaving ends the others.

mod common;
#[path = "whip_support/http.rs"]
mod http;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use http::{header, http};
use tessera_sfu::signal::ServerMessage;
use tessera_sfu::{LocalPublisher, LocalTrackSpec, WhepSource};
use tessera_testkit::poll::wait_until;
use tessera_testkit::whip::{self, ConnectionState, candidate_addr, candidates};

const VIDEO_SSRC: u32 = 0x1111_2222;
const AUDIO_SSRC: u32 = 0x3333_4444;

/// The test's source: the publisher's participant id, and what it was asked.
struct Source {
    participant: Mutex<Option<String>>,
    acquired: AtomicUsize,
    released: AtomicUsize,
}

impl WhepSource for Source {
    fn acquire(&self, _room: &str) -> Result<String, String> {
        self.acquired.fetch_add(1, Ordering::SeqCst);
        self.participant.lock().unwrap().clone().ok_or_else(|| "no program".to_owned())
    }
    fn release(&self, _room: &str) {
        self.released.fetch_add(1, Ordering::SeqCst);
    }
}

/// The program: H.264 high of a solid green picture and an Opus tone, encoded by GStreamer
/// and pushed into the publisher packet by packet; a keyframe request forces a key unit.
struct Program {
    pipeline: gst::Pipeline,
    keyframes: Arc<AtomicUsize>,
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn start_program(publisher: Arc<LocalPublisher>) -> Program {
    let desc = format!(
        "videotestsrc is-live=true pattern=solid-color foreground-color=0xff00ff00 \
         ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 ! video/x-h264,profile=high \
         ! rtph264pay config-interval=-1 pt=102 mtu=1200 ssrc={VIDEO_SSRC} ! appsink name=v sync=false \
         audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=48000,channels=2 ! opusenc \
         ! rtpopuspay pt=111 ssrc={AUDIO_SSRC} ! appsink name=a sync=false"
    );
    let pipeline = gst::parse::launch(&desc).expect("program pipeline").downcast::<gst::Pipeline>().unwrap();
    for (name, index) in [("v", 0usize), ("a", 1)] {
        let sink = pipeline.by_name(name).unwrap().downcast::<gst_app::AppSink>().unwrap();
        // Weak: the publisher's keyframe callback holds the pipeline's sink.
        let publisher = Arc::downgrade(&publisher);
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buffer) = sample.buffer()
                        && let Ok(map) = buffer.map_readable()
                        && let Some(publisher) = publisher.upgrade()
                    {
                        publisher.push_rtp(index, map.as_slice());
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let keyframes = Arc::new(AtomicUsize::new(0));
    let video_sink = pipeline.by_name("v").unwrap();
    let count = Arc::clone(&keyframes);
    publisher.on_keyframe_request(move || {
        count.fetch_add(1, Ordering::SeqCst);
        let force = gst::Structure::builder("GstForceKeyUnit").field("all-headers", true).build();
        video_sink.send_event(gst::event::CustomUpstream::new(force));
    });
    pipeline.set_state(gst::State::Playing).expect("program plays");
    Program { pipeline, keyframes }
}

/// What the viewer decoded.
#[derive(Default)]
struct Decoded {
    frames: AtomicUsize,
    /// The centre pixel of the last frame (RGB).
    centre: Mutex<Option<[u8; 3]>>,
    audio: AtomicUsize,
}

/// A WHEP viewer: webrtcbin with `recvonly` H.264 (high) and Opus transceivers; what it
/// receives is depayloaded, decoded and counted.
struct Viewer {
    pipeline: gst::Pipeline,
    webrtc: gst::Element,
    decoded: Arc<Decoded>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Viewer {
    fn new() -> Viewer {
        let (pipeline, webrtc) = whip::recvonly_webrtcbin();
        let decoded = Arc::new(Decoded::default());
        let pipe = pipeline.downgrade();
        let d = Arc::clone(&decoded);
        webrtc.connect_pad_added(move |_, pad| {
            if pad.direction() != gst::PadDirection::Src {
                return;
            }
            let Some(pipeline) = pipe.upgrade() else { return };
            let caps = pad.current_caps().expect("caps on webrtcbin's source pad");
            let media = caps.structure(0).and_then(|s| s.get::<String>("media").ok()).unwrap_or_default();
            let chain = if media == "video" {
                "rtph264depay ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false"
            } else {
                "rtpopusdepay ! opusdec ! appsink name=sink sync=false"
            };
            let bin = gst::parse::bin_from_description(chain, true).expect("decoder bin");
            let sink = bin.by_name("sink").unwrap().downcast::<gst_app::AppSink>().unwrap();
            let d = Arc::clone(&d);
            let video = media == "video";
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if !video {
                            d.audio.fetch_add(1, Ordering::SeqCst);
                            return Ok(gst::FlowSuccess::Ok);
                        }
                        let s = sample.caps().and_then(|c| c.structure(0).map(|s| s.to_owned()));
                        let (w, h) = s
                            .map(|s| (s.get::<i32>("width").unwrap_or(0), s.get::<i32>("height").unwrap_or(0)))
                            .unwrap_or((0, 0));
                        if let Some(buffer) = sample.buffer()
                            && let Ok(map) = buffer.map_readable()
                        {
                            // RGB rows are padded to 4 bytes.
                            let stride = ((w as usize * 3) + 3) & !3;
                            let at = (h as usize / 2) * stride + (w as usize / 2) * 3;
                            if let Some(p) = map.as_slice().get(at..at + 3) {
                                *d.centre.lock().unwrap() = Some([p[0], p[1], p[2]]);
                            }
                        }
                        d.frames.fetch_add(1, Ordering::SeqCst);
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            pipeline.add(&bin).unwrap();
            bin.sync_state_with_parent().unwrap();
            pad.link(&bin.static_pad("sink").unwrap()).expect("link the decoder");
        });
        Viewer { pipeline, webrtc, decoded }
    }

    /// Starts the pipeline and returns the complete offer (all candidates): blocks a moment.
    fn offer(&self) -> String {
        whip::complete_offer(&self.pipeline, &self.webrtc, || self.check_bus())
    }

    fn set_answer(&self, sdp: &str) {
        whip::accept_answer(&self.webrtc, sdp);
    }

    fn connection_state(&self) -> ConnectionState {
        self.webrtc.property("connection-state")
    }

    fn check_bus(&self) {
        let bus = self.pipeline.bus().expect("bus");
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                panic!(
                    "viewer pipeline error from {:?}: {} ({:?})",
                    e.src().map(|s| s.path_string()),
                    e.error(),
                    e.debug()
                );
            }
        }
    }
}

async fn post(
    server: &Server,
    room: &str,
    token: Option<&str>,
    content_type: &str,
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", content_type)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    http(server.addr, "POST", &format!("/whep/{room}"), &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_plays_the_program_over_whep() {
    let room = "whep-program";
    let started = Instant::now();
    let server = start(None).await;
    gst::init().expect("gst init");
    let viewer = Viewer::new();
    let offer = tokio::task::block_in_place(|| viewer.offer());
    assert!(offer.contains("a=recvonly"), "{offer}");

    // No source yet: 503, in the crate's JSON error shape.
    let (status, _, body) = post(&server, room, Some(TOKEN), "application/sdp", &offer).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("\"error\""), "{body}");

    let source = Arc::new(Source {
        participant: Mutex::new(None),
        acquired: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
    });
    server.sfu.set_whep_source(source.clone());
    // The source refuses: 503, and nothing to release.
    let (status, _, body) = post(&server, room, Some(TOKEN), "application/sdp", &offer).await;
    assert_eq!((status, source.acquired.load(Ordering::SeqCst)), (503, 1), "{body}");

    // The program, and someone in the room who would hear of any participant.
    let publisher = Arc::new(
        server
            .sfu
            .publish_local(
                room,
                "program",
                "Program",
                vec![
                    LocalTrackSpec::h264("packetization-mode=1;profile-level-id=640028", 102, VIDEO_SSRC),
                    LocalTrackSpec::opus(111, AUDIO_SSRC),
                ],
            )
            .expect("the program publishes"),
    );
    *source.participant.lock().unwrap() = Some(publisher.participant_id().to_owned());
    let program = start_program(Arc::clone(&publisher));
    let (tx, mut told) = tokio::sync::mpsc::unbounded_channel();
    let watcher = server.sfu.room(room).join("watcher".into(), Some(tx)).expect("a watcher joins");

    // Bad requests: no token, a bad one, not SDP, not an offer.
    let (status, _, body) = post(&server, room, None, "application/sdp", &offer).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = post(&server, room, Some("nope"), "application/sdp", &offer).await;
    assert_eq!(status, 401);
    let (status, _, body) = post(&server, room, Some(TOKEN), "text/plain", &offer).await;
    assert_eq!(status, 415, "{body}");
    let (status, _, body) = post(&server, room, Some(TOKEN), "application/sdp", "hello").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    assert_eq!(source.acquired.load(Ordering::SeqCst), 1, "bad requests acquire nothing");
    let (status, _, _) = http(server.addr, "PATCH", &format!("/whep/{room}/x"), &[], "").await;
    assert_eq!(status, 405);

    let keyframes_before = program.keyframes.load(Ordering::SeqCst);
    let (status, headers, answer) = post(&server, room, Some(TOKEN), "application/sdp", &offer).await;
    assert_eq!(status, 201, "WHEP POST: {answer}");
    assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with("application/sdp")), "{headers:?}");
    let location = header(&headers, "location").expect("Location").to_owned();
    assert!(location.starts_with(&format!("/whep/{room}/")), "{location}");
    let theirs = candidates(&answer);
    assert!(!theirs.is_empty(), "the answer carries no candidates:\n{answer}");
    assert!(theirs.iter().all(|c| candidate_addr(c) == "127.0.0.1"), "{theirs:#?}");
    assert!(answer.contains("a=sendonly"), "{answer}");
    assert_eq!(source.acquired.load(Ordering::SeqCst), 2);
    eprintln!("answer:\n{answer}");
    viewer.set_answer(&answer);

    let deadline = Instant::now() + Duration::from_secs(15);
    while viewer.connection_state() != ConnectionState::Connected {
        viewer.check_bus();
        assert!(Instant::now() < deadline, "webrtcbin did not connect: {:?}", viewer.connection_state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = Instant::now();
    eprintln!("connected {:?} after start", connected - started);
    let d = Arc::clone(&viewer.decoded);
    assert!(
        wait_until(Duration::from_secs(5), || d.frames.load(Ordering::SeqCst) >= 10).await,
        "frames decoded: {}",
        d.frames.load(Ordering::SeqCst)
    );
    eprintln!("10 frames {:?} after connecting", connected.elapsed());
    let centre = d.centre.lock().unwrap().expect("a frame's centre");
    assert!(centre[1] > 200 && centre[0] < 60 && centre[2] < 60, "not green: {centre:?}");
    assert!(
        wait_until(Duration::from_secs(5), || d.audio.load(Ordering::SeqCst) >= 10).await,
        "audio buffers decoded: {}",
        d.audio.load(Ordering::SeqCst)
    );
    assert!(program.keyframes.load(Ordering::SeqCst) > keyframes_before, "the viewer's start asked for a keyframe");
    viewer.check_bus();

    // An audience: not a participant, and nobody was told of it.
    let ids: Vec<String> = participants(&server.sfu, room).iter().map(|p| p.id.clone()).collect();
    let mut want = vec![publisher.participant_id().to_owned(), watcher.id.clone()];
    want.sort();
    let mut ids_sorted = ids.clone();
    ids_sorted.sort();
    assert_eq!(ids_sorted, want);
    assert_eq!(server.sfu.whep_viewers(room).len(), 1);
    while let Ok(m) = told.try_recv() {
        assert!(!matches!(m, ServerMessage::ParticipantJoined { .. }), "the watcher was told of a join: {m:?}");
    }

    // DELETE: wrong token refused; then it ends, with one release; then it is gone.
    let (status, _, _) = http(server.addr, "DELETE", &location, &[("Authorization", "Bearer nope")], "").await;
    assert_eq!(status, 401);
    let (status, _, body) =
        http(server.addr, "DELETE", &location, &[("Authorization", &format!("Bearer {TOKEN}"))], "").await;
    assert_eq!(status, 200, "{body}");
    assert!(wait_until(Duration::from_secs(5), || source.released.load(Ordering::SeqCst) == 1).await);
    assert!(server.sfu.whep_viewers(room).is_empty());
    let (status, _, body) =
        http(server.addr, "DELETE", &location, &[("Authorization", &format!("Bearer {TOKEN}"))], "").await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    drop(viewer);

    // A second viewer; the program leaving ends it.
    let second = Viewer::new();
    let offer = tokio::task::block_in_place(|| second.offer());
    let (status, _, body) = post(&server, room, Some(TOKEN), "application/sdp", &offer).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(server.sfu.whep_viewers(room).len(), 1);
    drop(program);
    drop(publisher);
    assert!(
        wait_until(Duration::from_secs(5), || source.released.load(Ordering::SeqCst) == 2).await,
        "the program left: its viewer released ({} releases)",
        source.released.load(Ordering::SeqCst)
    );
    assert!(server.sfu.whep_viewers(room).is_empty());
    assert_eq!(source.acquired.load(Ordering::SeqCst), 3);
    eprintln!("done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_a_codec_the_program_is_in_is_refused_and_released() {
    let room = "whep-baseline";
    let server = start(None).await;
    let publisher = server
        .sfu
        .publish_local(
            room,
            "program",
            "Program",
            vec![LocalTrackSpec::h264("packetization-mode=1;profile-level-id=640028", 102, VIDEO_SSRC)],
        )
        .expect("the program publishes");
    let source = Arc::new(Source {
        participant: Mutex::new(Some(publisher.participant_id().to_owned())),
        acquired: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
    });
    server.sfu.set_whep_source(source.clone());
    // A viewer that takes constrained baseline only.
    let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n";
    let (status, _, body) = post(&server, room, Some(TOKEN), "application/sdp", offer).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("H264") && body.contains("unsupported_codec"), "{body}");
    assert!(wait_until(Duration::from_secs(5), || source.released.load(Ordering::SeqCst) == 1).await);
    assert_eq!(source.acquired.load(Ordering::SeqCst), 1);
    assert!(server.sfu.whep_viewers(room).is_empty());
}
