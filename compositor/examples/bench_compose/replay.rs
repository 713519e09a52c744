//! The reader: the input files turned into RTP packets in memory, then replayed in real time
//! into the program (or a no-op consumer) with a sender report per track and second.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use tessera_compositor::synthetic::{SenderReports, ntp_now_ns};
use tessera_compositor::{Codec, Program, TrackId, TrackKind, TrackParams};

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;

/// One RTP packet from the reader; `pts` is the buffer's position in its file.
#[derive(Clone, Copy)]
pub struct Packet<'a> {
    input: usize,
    video: bool,
    data: &'a [u8],
    pts: Option<gst::ClockTime>,
}

pub type Consumer = Arc<dyn Fn(Packet) + Send + Sync>;

fn ssrc(input: usize, video: bool) -> u32 {
    0x7e55_0000 + 2 * input as u32 + u32::from(!video)
}

/// A packet of the replay, owned.
pub struct Recorded {
    input: usize,
    video: bool,
    data: Vec<u8>,
    pts: gst::ClockTime,
}

/// Demuxes and payloads the files as fast as possible, before anything is measured, so that the
/// replay costs what an SFU's hand-off costs (one thread calling `push_rtp`), not a demuxer and
/// eight queues paced by the clock.
pub fn record_packets(inputs: &[PathBuf]) -> Result<Vec<Recorded>, String> {
    let mut desc = String::new();
    for (i, path) in inputs.iter().enumerate() {
        let loc = path.to_string_lossy().replace('"', "\\\"");
        desc += &format!(
            "filesrc location=\"{loc}\" ! matroskademux name=demux{i} \
             demux{i}.video_0 ! queue ! rtpvp8pay pt={VIDEO_PT} ssrc={vs} mtu=1200 picture-id-mode=15-bit ! \
               appsink name=video{i} sync=false \
             demux{i}.audio_0 ! queue ! rtpopuspay pt={AUDIO_PT} ssrc={as_} ! \
               appsink name=audio{i} sync=false ",
            vs = ssrc(i, true),
            as_ = ssrc(i, false),
        );
    }
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| format!("reader pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "reader pipeline is not a pipeline".to_string())?;
    let recorded = Arc::new(Mutex::new(Vec::new()));
    for i in 0..inputs.len() {
        for video in [true, false] {
            let name = format!("{}{i}", if video { "video" } else { "audio" });
            let sink = pipeline
                .by_name(&name)
                .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                .ok_or(format!("reader has no appsink {name}"))?;
            let recorded = recorded.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |s| {
                        let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(buffer) = sample.buffer()
                            && let (Ok(map), Some(pts)) = (buffer.map_readable(), buffer.pts())
                        {
                            let r = Recorded { input: i, video, data: map.to_vec(), pts };
                            recorded.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
    }
    pipeline.set_state(gst::State::Playing).map_err(|e| format!("reader does not start: {e}"))?;
    let bus = pipeline.bus().ok_or("reader has no bus")?;
    let result = match bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(120), &[gst::MessageType::Eos, gst::MessageType::Error])
    {
        Some(msg) => match msg.view() {
            gst::MessageView::Error(e) => Err(format!("reader: {} ({:?})", e.error(), e.debug())),
            _ => Ok(()),
        },
        None => Err("reading the inputs took over 2 minutes".into()),
    };
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let mut packets = std::mem::take(&mut *recorded.lock().unwrap_or_else(|e| e.into_inner()));
    // Stable: each track's packets keep their order within one timestamp.
    packets.sort_by_key(|p| p.pts);
    Ok(packets)
}

/// Replays the packets in real time from one thread, each at its position after the start;
/// packets due together go out in one wake-up. Returns when all are sent or `stop` is set.
pub fn replay(packets: Arc<Vec<Recorded>>, consumer: Consumer, stop: Arc<AtomicBool>, ended: Arc<AtomicBool>) {
    let start = Instant::now();
    let zero = packets.first().map(|p| p.pts).unwrap_or_default();
    for p in packets.iter() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let due = Duration::from_nanos((p.pts - zero).nseconds());
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        consumer(Packet { input: p.input, video: p.video, data: &p.data, pts: Some(p.pts) });
    }
    ended.store(true, Ordering::Relaxed);
}

/// Sleeps `d`; fails if the replay ran out of packets.
pub fn run_for(ended: &AtomicBool, d: Duration) -> Result<(), String> {
    std::thread::sleep(d);
    if ended.load(Ordering::Relaxed) {
        return Err("the inputs ended before the measurement did: make them longer \
                    than warm-up + seconds"
            .into());
    }
    Ok(())
}

/// Adds each input's camera and audio track; returns the track ids indexed like `ssrc()`.
pub fn add_tracks(program: &Program, inputs: usize) -> Result<Vec<TrackId>, String> {
    let mut ids = Vec::new();
    for i in 0..inputs {
        for video in [true, false] {
            let params = TrackParams {
                participant: format!("p{}", i + 1),
                name: format!("Participant {}", i + 1),
                kind: if video { TrackKind::Camera } else { TrackKind::Audio },
                codec: if video { Codec::Vp8 } else { Codec::Opus },
                payload_type: if video { VIDEO_PT } else { AUDIO_PT },
                clock_rate: if video { 90_000 } else { 48_000 },
                ssrc: ssrc(i, video),
            };
            ids.push(program.add_track(params).map_err(|e| format!("add_track: {e}"))?);
        }
    }
    Ok(ids)
}

/// The consumer that hands every packet to the program (or, for `--reader-only`, drops it
/// after the same header parsing).
pub fn make_consumer(program: Option<Arc<Program>>, ids: Vec<TrackId>, errors: Arc<AtomicU64>) -> Consumer {
    let wall_at_zero = ntp_now_ns();
    let reports: Vec<Mutex<SenderReports>> =
        (0..ids.len().max(1)).map(|_| Mutex::new(SenderReports::new(wall_at_zero))).collect();
    Arc::new(move |p: Packet| {
        let slot = 2 * p.input + usize::from(!p.video);
        let report =
            p.pts.and_then(|pts| reports.get(slot)?.lock().unwrap_or_else(|e| e.into_inner()).on_packet(p.data, pts));
        let (Some(program), Some(&id)) = (&program, ids.get(slot)) else {
            return;
        };
        if program.push_rtp(id, p.data).is_err() {
            errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(sr) = report
            && program.push_sender_report(id, &sr).is_err()
        {
            errors.fetch_add(1, Ordering::Relaxed);
        }
    })
}
