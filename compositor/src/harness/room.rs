//! A room: a [`Program`] with synthetic participants joining, sending and leaving.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::layout::Layout;
use crate::synthetic::{SyntheticPacket, SyntheticParticipant, SyntheticSpec};
use crate::{Program, ProgramConfig, ProgramEvent, TrackId, TrackKind};

/// A synthetic participant sending into a [`Room`].
pub struct Sender {
    pub synth: Arc<SyntheticParticipant>,
    pub tracks: HashMap<TrackKind, TrackId>,
    /// While false, packets are swallowed (a stalled or cut-off sender).
    pub open: Arc<AtomicBool>,
}

/// A room program and its synthetic senders; keyframe requests reach the senders, as the SFU's
/// PLIs reach publishers.
pub struct Room {
    pub program: Arc<Program>,
    senders: Arc<Mutex<HashMap<TrackId, Arc<SyntheticParticipant>>>>,
    /// The tracks the program asked a keyframe of, in order.
    pub keyframe_requests: Arc<Mutex<Vec<TrackId>>>,
    /// What the program reported (a healthy run reports no failure).
    pub events: Arc<Mutex<Vec<ProgramEvent>>>,
}

impl Room {
    /// A program with the built-in layout `layout`.
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
        let events: Arc<Mutex<Vec<ProgramEvent>>> = Default::default();
        let e = events.clone();
        program.set_event_handler(Arc::new(move |ev| {
            eprintln!("program event: {ev:?}");
            e.lock().unwrap().push(ev);
        }));
        Room { program, senders, keyframe_requests, events }
    }

    /// A synthetic participant joins and starts sending.
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
        let (tx, rx) = mpsc::channel::<(Instant, SyntheticPacket)>();
        if !delay.is_zero() {
            let d = deliver.clone();
            std::thread::spawn(move || {
                while let Ok((at, pkt)) = rx.recv() {
                    std::thread::sleep(at.saturating_duration_since(Instant::now()));
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
                    let at = Instant::now() + delay;
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
                ProgramEvent::DestinationChanged { .. } => false,
                ProgramEvent::OutputMessage { message, .. } => {
                    message.get::<&str>("state").is_ok_and(|s| s == "failed")
                }
                _ => true,
            })
            .collect();
        assert!(failures.is_empty(), "the program reported failures: {failures:?}");
    }

    /// The participant leaves: its packets stop, it is removed from the program, and the scene
    /// is updated.
    pub fn leave(&self, sender: &Sender) {
        sender.open.store(false, Ordering::SeqCst);
        self.program.remove_participant(&sender.synth.spec().identity).expect("participant removed");
        sender.synth.stop();
        self.program.sync_scene(Duration::from_secs(2)).expect("scene updated");
    }
}

/// GStreamer's own ERROR-level log on stderr: shown with a failing test's output.
fn log_gstreamer_errors() {
    if std::env::var_os("GST_DEBUG").is_none() {
        // SAFETY: set before GStreamer starts any thread, at the top of each test.
        unsafe { std::env::set_var("GST_DEBUG", "*:1") };
    }
}
