mod common;
use common::*;
use tessera_compositor::{OutputSpec, ProgramConfig};

#[test]
fn smoke() {
    let room = Room::new(ProgramConfig::default(), "grid");
    let dir = tmpdir();
    let path = dir.path().join("out.mp4");
    let out = room.program.attach_output(OutputSpec::mp4_file(&path)).unwrap();
    let _a = room.join(spec("alice", RED, 440.0));
    let mut b = spec("bob", GREEN, 880.0);
    b.video = Some(tessera_compositor::Codec::H264);
    let _b = room.join(b);
    sleep(4.0);
    println!("tiles: {:#?}", room.program.tiles());
    println!("stats: {:?}", room.program.stats());
    let st = room.program.detach_output(out).unwrap();
    println!("out stats {st:?}");
    std::fs::copy(&path, "/tmp/smoke.mp4").unwrap();
    let info = analysis::ffprobe(path.to_str().unwrap());
    println!("{info:#?}");
    if std::env::var("SMOKE_STOP").is_ok() { return; }
    let frames = analysis::decode_frames(&path, 320, 180);
    println!("frames {}", frames.len());
    for f in frames.iter().step_by(15) {
        println!("{:.3} L={:?} R={:?}", f.pts, f.color_at(320.0, 360.0, 1280, 720), f.color_at(960.0, 360.0, 1280, 720));
    }
    println!("keyframe requests {:?}", room.keyframe_requests.lock().unwrap());
    std::fs::copy(&path, "/tmp/smoke.mp4").unwrap();
}
