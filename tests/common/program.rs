//! A room program fed by synthetic participants (real RTP from GStreamer encoders), for the
//! binary's tests of what it builds on a program (its recording store). The compositor's own
//! tests have the full harness (`compositor/tests/common`); the test kit cannot hold it, as it
//! depends on none of Tessera's crates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tessera_compositor::layout::Layout;
use tessera_compositor::synthetic::{SyntheticPacket, SyntheticParticipant, SyntheticSpec};
use tessera_compositor::{Program, ProgramConfig, ProgramEvent, TrackId};

pub struct Room {
    pub program: Arc<Program>,
    senders: Arc<Mutex<HashMap<TrackId, Arc<SyntheticParticipant>>>>,
    /// What the program reported.
    pub events: Arc<Mutex<Vec<ProgramEvent>>>,
}

impl Room {
    /// A program with a built-in layout; keyframe requests reach the synthetic senders.
    pub fn new(config: ProgramConfig, layout: &str) -> Room {
        if std::env::var_os("GST_DEBUG").is_none() {
            // SAFETY: set before GStreamer starts any thread, at the top of each test.
            unsafe { std::env::set_var("GST_DEBUG", "*:1") };
        }
        let layout = Layout::builtin(layout).expect("built-in layout");
        let program = Arc::new(Program::new(config, layout).expect("program starts"));
        let senders: Arc<Mutex<HashMap<TrackId, Arc<SyntheticParticipant>>>> = Default::default();
        let s = senders.clone();
        program.set_keyframe_request_handler(Arc::new(move |id| {
            if let Some(p) = s.lock().unwrap().get(&id) {
                p.request_keyframe();
            }
        }));
        let events: Arc<Mutex<Vec<ProgramEvent>>> = Default::default();
        let e = events.clone();
        program.set_event_handler(Arc::new(move |ev| {
            eprintln!("program event: {ev:?}");
            e.lock().unwrap().push(ev);
        }));
        Room { program, senders, events }
    }

    /// A synthetic participant (`identity` in `color`, a `tone` in Hz) joins and sends.
    pub fn join(&self, identity: &str, color: u32, tone: f64) -> Arc<SyntheticParticipant> {
        let synth = Arc::new(SyntheticParticipant::new(SyntheticSpec::new(identity, color, tone)).expect("synthetic"));
        let mut tracks = HashMap::new();
        for params in synth.tracks() {
            let kind = params.kind;
            let id = self.program.add_track(params).expect("track added");
            self.senders.lock().unwrap().insert(id, synth.clone());
            tracks.insert(kind, id);
        }
        let program = self.program.clone();
        synth
            .start(Arc::new(move |pkt| match pkt {
                SyntheticPacket::Rtp { kind, data } => {
                    if let Some(id) = tracks.get(&kind) {
                        let _ = program.push_rtp(*id, &data);
                    }
                }
                SyntheticPacket::SenderReport { kind, report } => {
                    if let Some(id) = tracks.get(&kind) {
                        let _ = program.push_sender_report(*id, &report);
                    }
                }
            }))
            .expect("synthetic participant starts");
        synth
    }

    /// Asserts the program reported no failure (destination changes and output messages
    /// other than `failed` are not failures).
    pub fn assert_no_failures(&self) {
        let events = self.events.lock().unwrap();
        let failures: Vec<_> = events
            .iter()
            .filter(|e| match e {
                ProgramEvent::DestinationChanged { .. } => false,
                ProgramEvent::OutputMessage { message, .. } => {
                    message.get::<&str>("state").is_ok_and(|s| s == "failed")
                }
                _ => true,
            })
            .collect();
        assert!(failures.is_empty(), "the program reported failures: {failures:?}");
    }
}

pub fn sleep(s: f64) {
    std::thread::sleep(Duration::from_secs_f64(s));
}
