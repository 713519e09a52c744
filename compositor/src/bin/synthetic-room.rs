//! Runs a room program with synthetic participants and records it to a fragmented MP4.
//!
//! `synthetic-room OUT.mp4 [SECONDS] [PARTICIPANTS]` — SECONDS 0 (default) runs until killed.
//! A quick way to see the compositor work without an SFU, and what the crash test kills.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_compositor::layout::Layout;
use tessera_compositor::synthetic::{SyntheticPacket, SyntheticParticipant, SyntheticSpec};
use tessera_compositor::{Codec, OutputSpec, Program, ProgramConfig};

const COLORS: [(u32, f64, &str); 4] =
    [(0xff0000, 440.0, "red"), (0x00ff00, 660.0, "green"), (0x0000ff, 880.0, "blue"), (0xffff00, 1100.0, "yellow")];

fn main() {
    if let Err(e) = run() {
        eprintln!("synthetic-room: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        return Err("usage: synthetic-room OUT.mp4 [SECONDS] [PARTICIPANTS]".into());
    };
    let seconds: f64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0.0);
    let count: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2).clamp(1, 4);
    let layout = Layout::builtin("grid").ok_or("no grid layout")?;
    let program = Arc::new(Program::new(ProgramConfig::default(), layout)?);
    // Without a log subscriber here, failures inside the program would go unseen.
    program.set_event_handler(Arc::new(|event| eprintln!("synthetic-room: {event:?}")));
    let output = program.attach_output(OutputSpec::mp4_file(out))?;
    let mut senders = Vec::new();
    for (i, (color, tone, name)) in COLORS.iter().take(count).enumerate() {
        let mut spec = SyntheticSpec::new(name, *color, *tone);
        if i % 2 == 1 {
            spec.video = Some(Codec::H264);
        }
        let synth = Arc::new(SyntheticParticipant::new(spec)?);
        let mut ids = Vec::new();
        for t in synth.tracks() {
            ids.push((t.kind, program.add_track(t)?));
        }
        let p = program.clone();
        synth.start(Arc::new(move |pkt| {
            let (kind, rtp, sr) = match &pkt {
                SyntheticPacket::Rtp { kind, data } => (*kind, Some(data), None),
                SyntheticPacket::SenderReport { kind, report } => (*kind, None, Some(report)),
            };
            let Some((_, id)) = ids.iter().find(|(k, _)| *k == kind) else { return };
            if let Some(data) = rtp {
                let _ = p.push_rtp(*id, data);
            }
            if let Some(sr) = sr {
                let _ = p.push_sender_report(*id, sr);
            }
        }))?;
        senders.push(synth);
    }
    println!("recording {count} participants to {out}");
    let started = Instant::now();
    while seconds <= 0.0 || started.elapsed().as_secs_f64() < seconds {
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = program.detach_output(output)?;
    println!("recorded {} frames, {:.2} s", stats.video_frames, stats.duration.as_secs_f64());
    program.stop()?;
    Ok(())
}
