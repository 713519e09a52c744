//! Test harness: synthetic participants pushing real RTP into a RoomPipeline, and decoding of
//! what the program recorded (pixels, audio tones, stream metadata via ffprobe).
#![allow(dead_code)]

pub mod analysis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_compositor::layout::Layout;
use tessera_compositor::synthetic::{SyntheticPacket, SyntheticParticipant, SyntheticSpec};
use tessera_compositor::{ProgramConfig, RoomPipeline, TrackId, TrackKind};

pub const RED: u32 = 0xff0000;
pub const GREEN: u32 = 0x00ff00;
pub const BLUE: u32 = 0x0000ff;
pub const YELLOW: u32 = 0xffff00;

pub struct Sender {
    pub synth: Arc<SyntheticParticipant>,
    pub tracks: HashMap<TrackKind, TrackId>,
    /// While false, packets are swallowed (a stalled or cut-off sender).
    pub open: Arc<AtomicBool>,
}

pub struct Room {
    pub program: Arc<RoomPipeline>,
    senders: Arc<Mutex<HashMap<TrackId, Arc<SyntheticParticipant>>>>,
    pub keyframe_requests: Arc<Mutex<Vec<TrackId>>>,
}

impl Room {
    pub fn new(config: ProgramConfig, layout: &str) -> Room {
        let _ = tracing_subscriber_init();
        let layout = Layout::builtin(layout).expect("built-in layout");
        let program = Arc::new(RoomPipeline::new(config, layout).expect("program starts"));
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
        Room { program, senders, keyframe_requests }
    }

    pub fn join(&self, spec: SyntheticSpec) -> Sender {
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
        synth
            .start(Arc::new(move |pkt| {
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
            }))
            .expect("synthetic participant starts");
        Sender { synth, tracks, open }
    }

    pub fn leave(&self, sender: &Sender) {
        sender.open.store(false, Ordering::SeqCst);
        self.program.remove_participant(&sender.synth.spec().identity).expect("participant removed");
        sender.synth.stop();
    }
}

pub fn spec(identity: &str, color: u32, tone: f64) -> SyntheticSpec {
    SyntheticSpec::new(identity, color, tone)
}

pub fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}

fn tracing_subscriber_init() -> Option<()> {
    None
}

pub fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
