//! The compositor's own test harness: synthetic participants pushing real RTP into a
//! Program, and recordings of it. Reading back what was recorded (frames, colours, tones,
//! ffprobe) and the servers outputs go to are in the test kit (`tessera_testkit::analysis`,
//! `rtmp`, `tls`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_compositor::layout::{Layout, Tile, TileSource};
use tessera_compositor::synthetic::{SyntheticPacket, SyntheticParticipant, SyntheticSpec};
use tessera_compositor::{OutputId, OutputSpec, OutputStats, Program, ProgramConfig, TrackId, TrackKind};

pub struct Sender {
    pub synth: Arc<SyntheticParticipant>,
    pub tracks: HashMap<TrackKind, TrackId>,
    /// While false, packets are swallowed (a stalled or cut-off sender).
    pub open: Arc<AtomicBool>,
}

pub struct Room {
    pub program: Arc<Program>,
    senders: Arc<Mutex<HashMap<TrackId, Arc<SyntheticParticipant>>>>,
    pub keyframe_requests: Arc<Mutex<Vec<TrackId>>>,
    /// Failures the program reported (a healthy run has none).
    pub events: Arc<Mutex<Vec<tessera_compositor::ProgramEvent>>>,
}

impl Room {
    pub fn new(config: ProgramConfig, layout: &str) -> Room {
        log_gstreamer_errors();
        let layout = Layout::builtin(layout).expect("built-in layout");
        let program = Arc::new(Program::new(config, layout).expect("program starts"));
        let senders: Arc<Mutex<HashMap<TrackId, Arc<SyntheticParticipant>>>> = Default::default();
        let keyframe_requests: Arc<Mutex<Vec<TrackId>>> = Default::default();
        let (s, k) = (senders.clone(), keyframe_requests.clone());
        // What the SFU does with a keyframe request: a PLI to the publisher.
        program.set_keyframe_request_handler(Arc::new(move |id| {
            k.lock().unwrap().push(id);
            if let Some(p) = s.lock().unwrap().get(&id) {
                p.request_keyframe();
            }
        }));
        let events: Arc<Mutex<Vec<tessera_compositor::ProgramEvent>>> = Default::default();
        let e = events.clone();
        program.set_event_handler(Arc::new(move |ev| {
            eprintln!("program event: {ev:?}");
            e.lock().unwrap().push(ev);
        }));
        Room { program, senders, keyframe_requests, events }
    }

    pub fn join(&self, spec: SyntheticSpec) -> Sender {
        self.join_with_audio_delay(spec, Duration::ZERO)
    }

    /// Joins with the audio path `delay` slower than the video path (as on a real network).
    pub fn join_with_audio_delay(&self, spec: SyntheticSpec, delay: Duration) -> Sender {
        let synth = Arc::new(SyntheticParticipant::new(spec).expect("synthetic participant"));
        let mut tracks = HashMap::new();
        for params in synth.tracks() {
            let kind = params.kind;
            let id = self.program.add_track(params).expect("track added");
            self.senders.lock().unwrap().insert(id, synth.clone());
            tracks.insert(kind, id);
        }
        let open = Arc::new(AtomicBool::new(true));
        let (program, t, o) = (self.program.clone(), tracks.clone(), open.clone());
        let deliver = move |pkt: SyntheticPacket| {
            if !o.load(Ordering::Relaxed) {
                return;
            }
            match pkt {
                SyntheticPacket::Rtp { kind, data } => {
                    if let Some(id) = t.get(&kind) {
                        let _ = program.push_rtp(*id, &data);
                    }
                }
                SyntheticPacket::SenderReport { kind, report } => {
                    if let Some(id) = t.get(&kind) {
                        let _ = program.push_sender_report(*id, &report);
                    }
                }
            }
        };
        let deliver = Arc::new(deliver);
        let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, SyntheticPacket)>();
        if !delay.is_zero() {
            let d = deliver.clone();
            std::thread::spawn(move || {
                while let Ok((at, pkt)) = rx.recv() {
                    std::thread::sleep(at.saturating_duration_since(std::time::Instant::now()));
                    d(pkt);
                }
            });
        }
        let tx = Mutex::new(tx);
        synth
            .start(Arc::new(move |pkt| {
                let audio = matches!(
                    &pkt,
                    SyntheticPacket::Rtp { kind: TrackKind::Audio, .. }
                        | SyntheticPacket::SenderReport { kind: TrackKind::Audio, .. }
                );
                if audio && !delay.is_zero() {
                    let at = std::time::Instant::now() + delay;
                    let _ = tx.lock().unwrap().send((at, pkt));
                } else {
                    deliver(pkt);
                }
            }))
            .expect("synthetic participant starts");
        Sender { synth, tracks, open }
    }

    /// Asserts the program reported no failure (destination state changes and recording
    /// reports other than `failed` are not failures).
    pub fn assert_no_failures(&self) {
        let events = self.events.lock().unwrap();
        let failures: Vec<_> = events
            .iter()
            .filter(|e| match e {
                tessera_compositor::ProgramEvent::DestinationChanged { .. } => false,
                tessera_compositor::ProgramEvent::OutputMessage { message, .. } => {
                    message.get::<&str>("state").is_ok_and(|s| s == "failed")
                }
                _ => true,
            })
            .collect();
        assert!(failures.is_empty(), "the program reported failures: {failures:?}");
    }

    pub fn leave(&self, sender: &Sender) {
        sender.open.store(false, Ordering::SeqCst);
        self.program.remove_participant(&sender.synth.spec().identity).expect("participant removed");
        sender.synth.stop();
        self.program.sync_scene(Duration::from_secs(2)).expect("scene updated");
    }
}

pub fn spec(identity: &str, color: u32, tone: f64) -> SyntheticSpec {
    SyntheticSpec::new(identity, color, tone)
}

pub fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

/// GStreamer's own ERROR-level log on stderr: shown with a failing test's output.
fn log_gstreamer_errors() {
    if std::env::var_os("GST_DEBUG").is_none() {
        // SAFETY: set before GStreamer starts any thread, at the top of each test.
        unsafe { std::env::set_var("GST_DEBUG", "*:1") };
    }
}

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Centre of a participant's camera tile (or name card) in canvas pixels.
pub fn tile_center(tiles: &[Tile], participant: &str) -> Option<(f64, f64)> {
    tiles
        .iter()
        .find(|t| t.participant == participant && t.source != TileSource::Screen)
        .map(|t| (t.rect.x as f64 + t.rect.width as f64 / 2.0, t.rect.y as f64 + t.rect.height as f64 / 2.0))
}

/// A recording in progress and, once finished, what it contains.
pub struct Recording {
    pub dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
    pub output: OutputId,
}

impl Recording {
    pub fn start(room: &Room) -> Recording {
        let dir = tmpdir();
        let path = dir.path().join("program.mp4");
        let output = room.program.attach_output(OutputSpec::mp4_file(&path)).expect("output attaches");
        Recording { dir, path, output }
    }

    /// Output time (s) of the program's current position.
    pub fn now(&self, room: &Room) -> f64 {
        let stats = room.program.output_stats(self.output).expect("output exists");
        let pos = room.program.stats().position.as_secs_f64();
        stats.started_at.map(|s| pos - s.as_secs_f64()).unwrap_or(0.0)
    }

    pub fn finish(&self, room: &Room) -> OutputStats {
        let stats = room.program.detach_output(self.output).expect("output finishes");
        tessera_testkit::analysis::note_muxed_frames(stats.video_frames);
        room.assert_no_failures();
        assert_eq!(stats.overruns, 0, "the recording's queues overran and dropped buffers: {stats:?}");
        stats
    }
}
