//! Records a live test pipeline into a Tessera sink; for crash tests and manual checks.
//!
//! `record-live SECONDS 'SINK'` runs `videotestsrc is-live=true ! x264enc ! h264parse !
//! mp4mux fragment-duration=1000 streamable=true ! SINK` (SINK in gst-launch syntax), prints
//! `recording-started UNIX_MS` once playing, sends EOS after SECONDS (0: run until killed)
//! and prints every `tessera-recording` message. `VIDEO` in the environment replaces the
//! caps/encoder part (default: 320x240 at 30 fps, 1 Mbit/s), `VIDEO_PATTERN` the
//! videotestsrc pattern (default: ball), `FRAGMENT_MS` the fragment duration (default: 1000).
//! `TAIL_OBJECTS=1` turns `tail-objects` on in every `tesseras3sink` of SINK (as the server
//! does in cluster mode).

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gst::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(secs), Some(sink)) = (args.get(1).and_then(|s| s.parse::<u64>().ok()), args.get(2)) else {
        eprintln!("usage: record-live SECONDS 'SINK'");
        std::process::exit(2);
    };
    if let Err(e) = tessera_plugins::register_static() {
        eprintln!("cannot register elements: {e}");
        std::process::exit(1);
    }
    let video = std::env::var("VIDEO").unwrap_or_else(|_| {
        "video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast bitrate=1000".into()
    });
    let pattern = std::env::var("VIDEO_PATTERN").unwrap_or_else(|_| "ball".into());
    let fragment_ms = std::env::var("FRAGMENT_MS").unwrap_or_else(|_| "1000".into());
    let desc = format!(
        "videotestsrc is-live=true pattern={pattern} ! {video} ! h264parse ! mp4mux fragment-duration={fragment_ms} streamable=true ! {sink}"
    );
    let pipeline = match gst::parse::launch(&desc) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bad pipeline: {e}");
            std::process::exit(2);
        }
    };
    if std::env::var("TAIL_OBJECTS").is_ok_and(|v| v == "1" || v == "true")
        && let Some(bin) = pipeline.downcast_ref::<gst::Bin>()
    {
        for e in bin.iterate_recurse().into_iter().flatten() {
            if e.factory().is_some_and(|f| f.name() == "tesseras3sink") {
                e.set_property("tail-objects", true);
            }
        }
    }
    if pipeline.set_state(gst::State::Playing).is_err() {
        eprintln!("cannot start the pipeline");
        std::process::exit(1);
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
    println!("recording-started {now_ms}");
    let _ = std::io::stdout().flush();

    let bus = pipeline.bus().expect("pipeline bus");
    let started = Instant::now();
    let mut eos_sent = false;
    let code = loop {
        if secs > 0 && !eos_sent && started.elapsed() >= Duration::from_secs(secs) {
            pipeline.send_event(gst::event::Eos::new());
            eos_sent = true;
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else { continue };
        match msg.view() {
            gst::MessageView::Eos(_) => break 0,
            gst::MessageView::Error(e) => {
                eprintln!("error: {} ({:?})", e.error(), e.debug());
                break 1;
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == tessera_plugins::sink::MESSAGE_NAME) {
                    println!("{s}");
                    let _ = std::io::stdout().flush();
                }
            }
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    std::process::exit(code);
}
