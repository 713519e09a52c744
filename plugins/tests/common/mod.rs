//! The plugins' own test support: `tesseras3sink` pointed at the test kit's SeaweedFS
//! (`tessera_testkit::s3::Weed`), live pipelines run for a while, and `record-live` killed
//! (SIGKILL) mid-recording. ffprobe checks and
//! directory listings are in the test kit too.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tessera_plugins::S3Config;
use tessera_testkit::s3::{ACCESS_KEY, SECRET_KEY, Weed};

/// The plugins' S3 settings for the store at `endpoint`, with its test identity.
pub fn s3_config(endpoint: &str) -> S3Config {
    S3Config {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.into()),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(SECRET_KEY.into()),
        ..Default::default()
    }
}

/// Properties for a `tesseras3sink` on this server.
pub fn s3sink_props(w: &Weed, bucket: &str, key: &str, spool: &Path) -> String {
    format!(
        "tesseras3sink bucket={bucket} key={key} endpoint-url={} region=us-east-1 access-key-id={ACCESS_KEY} secret-access-key={SECRET_KEY} spool-dir={}",
        w.endpoint(),
        spool.display()
    )
}

/// Runs a gst-launch style pipeline for `secs` seconds, sends EOS and waits for it.
/// Returns the `tessera-recording` messages and the error, if any.
pub fn run_pipeline(desc: &str, secs: f64, mut during: impl FnMut(f64)) -> (Vec<gst::Structure>, Option<String>) {
    use gst::prelude::*;
    tessera_plugins::register_static().expect("register");
    let pipeline = gst::parse::launch(desc).expect("pipeline");
    pipeline.set_state(gst::State::Playing).expect("playing");
    let bus = pipeline.bus().expect("bus");
    let start = Instant::now();
    let (mut messages, mut error, mut eos_sent) = (Vec::new(), None, false);
    loop {
        let t = start.elapsed().as_secs_f64();
        during(t);
        if t >= secs && !eos_sent {
            pipeline.send_event(gst::event::Eos::new());
            eos_sent = true;
        }
        assert!(t < secs + 180.0, "pipeline did not finish");
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                error = Some(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "tessera-recording") {
                    messages.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).expect("null");
    (messages, error)
}

pub const AUDIO: &str =
    "audiotestsrc is-live=true wave=ticks ! audio/x-raw,rate=48000,channels=2 ! avenc_aac ! aacparse ! mux.";

/// A live H.264 pipeline into mp4mux (fragments of 1 s) and then `sink`.
pub fn live_pipeline(video_caps: &str, bitrate_kbit: u32, pattern: &str, with_audio: bool, sink: &str) -> String {
    format!(
        "videotestsrc is-live=true pattern={pattern} ! {video_caps} ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast bitrate={bitrate_kbit} ! h264parse ! mp4mux name=mux fragment-duration=1000 streamable=true ! {sink} {}",
        if with_audio { AUDIO } else { "" }
    )
}

pub fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()
}

/// A pseudo-random delay in [lo, hi) ms, so the kill lands anywhere in a fragment.
pub fn random_ms(lo: u64, hi: u64) -> u64 {
    lo + (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos() as u64 * 7919) % (hi - lo)
}

/// Starts `record-live` with `sink`, kills it (SIGKILL) a random while after it reports
/// the recording started, and returns the seconds recorded until the kill.
pub fn record_and_kill(sink: &str, env: &[(&str, String)], (lo, hi): (u64, u64)) -> f64 {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_record-live"))
        .env("VIDEO_PATTERN", "snow")
        // Half-second fragments: what survives a kill lags it by at most one fragment plus
        // the pipeline's latency (~0.1 s), so "within 1 s" holds with a margin.
        .env("FRAGMENT_MS", "500")
        .args(["0", sink])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("record-live");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("child output").expect("line");
    let started: u128 =
        first.strip_prefix("recording-started ").and_then(|s| s.parse().ok()).expect("recording-started line");
    std::thread::sleep(Duration::from_millis(random_ms(lo, hi)));
    child.kill().expect("SIGKILL");
    let killed = unix_ms();
    let _ = child.wait();
    (killed - started) as f64 / 1000.0
}
