//! The WHIP publisher: GStreamer's `webrtcbin` (libnice + OpenSSL, a WebRTC stack we did not
//! write) fed by live test sources; and decoding what the SFU handed over, with GStreamer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use gst::prelude::*;
use tessera_sfu::TrackInfo;

/// A GStreamer WHIP publisher: `webrtcbin` fed by live test sources; stopped on drop.
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
    /// `video` is the encoder and payloader chain between the raw test video and webrtcbin.
    pub fn new(video: &str) -> Publisher {
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
    pub async fn offer(&self) -> String {
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

    pub fn set_answer(&self, sdp: &str) {
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

    pub fn connection_state(&self) -> gst_webrtc::WebRTCPeerConnectionState {
        self.webrtc.property("connection-state")
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

/// Decodes a handed-over video track with GStreamer (appsrc ! depayloader ! decoder ! appsink)
/// and returns the number of frames and the size of the last one.
pub fn decode(track: &TrackInfo, packets: &[Vec<u8>], chain: &str) -> (usize, Option<(i32, i32)>) {
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
