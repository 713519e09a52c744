//! CPU benchmark of a room program: N pre-encoded inputs (WebM, VP8 + Opus) composited by a
//! `Program` into the default program (1280x720@30, x264 veryfast 3 Mbit/s, AAC) and
//! recorded to a fragmented MP4.
//!
//! Before the program starts, a *reader* pipeline (filesrc ! matroskademux ! rtpvp8pay/rtpopuspay
//! ! appsink) turns the files into RTP packets in memory; one thread then replays them in real
//! time into the program, as the SFU would hand them over, with an RTCP sender report per track
//! each second. Nothing is encoded in this process except the program.
//!
//! The figure is the whole process's CPU time (utime + stime from /proc/self/stat, reader
//! included) over a steady-state window after a warm-up, divided by the program time produced in
//! that window. `--reader-only` runs the same replay into a no-op consumer, so its share can be
//! subtracted. Used by `scripts/bench-compositor`; see `bench/compositor.md`.
//!
//!     cargo run --release -p tessera-compositor --example bench_compose -- \
//!         [--seconds 20] [--warmup 3] [--out FILE.mp4] [--layout grid|FILE.json] \
//!         [--reader-only] [--details] [--experiment NAME]... IN1.webm ... IN4.webm
//!
//! `--rendition WxH` also records a second rendition of the room at that size (layout
//! `--rendition-layout`, default `portrait-grid`; same frame rate and bitrate) beside the first,
//! from the same decoded inputs: the difference to a run without it is what a second rendition
//! costs.
//!
//! `--programs N` runs N such programs at once in this process (the rooms of one machine), each
//! fed the same replayed packets and recording its own MP4, and reports whether each kept its
//! frame rate (frames composed in the window against the time) and the memory they take
//! (the process's resident memory with them, less before the first was built, per program).
//!
//! `--experiment` emulates a proposed change to the compositor crate on the running program, to
//! measure it before anyone writes it (see `EXPERIMENTS`).
//!
//! The last stdout line is machine-readable: `RESULT key=value ...`.

use gst::prelude::*;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tessera_compositor::layout::Layout;
use tessera_compositor::{OutputId, OutputSpec, Program, ProgramConfig, RenditionRequest, TrackId, VideoFormat};

// Beside this file, in `bench_compose/` (not `examples/`, where Cargo would take them for examples).
#[path = "bench_compose/cpu.rs"]
mod cpu;
#[path = "bench_compose/replay.rs"]
mod replay;

use cpu::sample;
use replay::{add_tracks, make_consumer, record_packets, replay, run_for};

struct Args {
    seconds: f64,
    warmup: f64,
    out: PathBuf,
    layout: String,
    reader_only: bool,
    /// Also print CPU per thread and the tiles of the composed frame.
    details: bool,
    experiments: Vec<String>,
    /// A second rendition: its size and layout.
    rendition: Option<((u32, u32), String)>,
    /// Programs running at once.
    programs: usize,
    inputs: Vec<PathBuf>,
}

fn usage() -> String {
    "usage: bench_compose [--seconds S] [--warmup S] [--out FILE.mp4] [--layout NAME|FILE.json] \
     [--reader-only] [--details] [--rendition WxH [--rendition-layout NAME]] [--programs N] \
     [--experiment NAME]... \
     INPUT.webm...\nexperiments: "
        .to_string()
        + &EXPERIMENTS.map(|(n, d)| format!("\n  {n}: {d}")).concat()
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        seconds: 20.0,
        warmup: 3.0,
        out: PathBuf::from("bench-out/tessera.mp4"),
        layout: "grid".into(),
        reader_only: false,
        details: false,
        experiments: Vec::new(),
        rendition: None,
        programs: 1,
        inputs: Vec::new(),
    };
    let mut rendition_layout = "portrait-grid".to_string();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value\n{}", usage()));
        let number = |s: String, name: &str| {
            s.parse::<f64>().ok().filter(|v| *v > 0.0).ok_or(format!("{name}: not a positive number: {s}"))
        };
        match arg.as_str() {
            "--seconds" => a.seconds = number(value("--seconds")?, "--seconds")?,
            "--warmup" => a.warmup = number(value("--warmup")?, "--warmup")?,
            "--out" => a.out = value("--out")?.into(),
            "--layout" => a.layout = value("--layout")?,
            "--reader-only" => a.reader_only = true,
            "--details" => a.details = true,
            "--rendition" => {
                let v = value("--rendition")?;
                let size = v
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
                    .filter(|(w, h)| *w > 0 && *h > 0)
                    .ok_or(format!("--rendition: not WIDTHxHEIGHT: {v}"))?;
                a.rendition = Some((size, String::new()));
            }
            "--rendition-layout" => rendition_layout = value("--rendition-layout")?,
            "--programs" => {
                let v = value("--programs")?;
                a.programs =
                    v.parse().ok().filter(|n| (1..=16).contains(n)).ok_or(format!("--programs: 1 to 16: {v}"))?;
            }
            "--experiment" => {
                let name = value("--experiment")?;
                if !EXPERIMENTS.iter().any(|(n, _)| *n == name) {
                    return Err(format!("unknown experiment {name}\n{}", usage()));
                }
                a.experiments.push(name);
            }
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", usage())),
            _ => a.inputs.push(arg.into()),
        }
    }
    if let Some((_, layout)) = &mut a.rendition {
        *layout = rendition_layout;
    }
    if a.inputs.is_empty() {
        return Err(format!("no input files\n{}", usage()));
    }
    if let Some(missing) = a.inputs.iter().find(|p| !p.is_file()) {
        return Err(format!("input not found: {}", missing.display()));
    }
    Ok(a)
}

fn load_layout(spec: &str) -> Result<Layout, String> {
    if let Some(l) = Layout::builtin(spec) {
        return Ok(l);
    }
    let text = std::fs::read_to_string(spec)
        .map_err(|e| format!("layout {spec}: not a built-in layout and not readable: {e}"))?;
    Layout::from_json_str(&text).map_err(|e| format!("layout {spec}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Experiments: proposed changes to the compositor crate, emulated on the running program

const EXPERIMENTS: [(&str, &str); 2] = [
    ("pin-bt601", "program and background caps fixed to bt601/jpeg (what VP8 input caps default to)"),
    ("pin-bt709", "program and background caps fixed to bt709/mpeg2 (what 720p caps default to)"),
];

/// `pin-*`: the caps around the compositor (background and program) with a fixed colorimetry, as
/// `raw_video_caps()` in compositor/src/program/backbone.rs would set them. Without it the compositor
/// picks the program's colorimetry from its inputs, and changes it when they join.
fn pin_colorimetry(program: &Program, colorimetry: &str, chroma_site: &str) -> Result<(), String> {
    let compositor = program.pipeline().by_name("compositor").ok_or("the program has no compositor")?;
    for pad in ["src", "sink_0"] {
        let filter = compositor
            .static_pad(pad)
            .and_then(|p| p.peer())
            .and_then(|p| p.parent_element())
            .filter(|e| e.factory().is_some_and(|f| f.name() == "capsfilter"))
            .ok_or(format!("compositor pad {pad} is not linked to a capsfilter"))?;
        let mut caps = filter.property::<gst::Caps>("caps");
        caps.make_mut().set("colorimetry", colorimetry);
        caps.make_mut().set("chroma-site", chroma_site);
        filter.set_property("caps", caps);
    }
    Ok(())
}

fn run(args: Args) -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer init: {e}"))?;
    let n = args.inputs.len();
    eprintln!("reading the inputs...");
    let packets = Arc::new(record_packets(&args.inputs)?);
    let errors = Arc::new(AtomicU64::new(0));

    let rss_before = resident_mb();
    // The first program is the one measured as before; `--programs` adds more beside it.
    let mut rooms: Vec<(Arc<Program>, Vec<TrackId>, OutputId)> = Vec::new();
    if !args.reader_only {
        if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        for k in 0..args.programs {
            let layout = load_layout(&args.layout)?;
            let program = Arc::new(Program::new(bench_config(), layout).map_err(|e| format!("program: {e}"))?);
            for e in &args.experiments {
                match e.as_str() {
                    "pin-bt601" => pin_colorimetry(&program, "bt601", "jpeg")?,
                    "pin-bt709" => pin_colorimetry(&program, "bt709", "mpeg2")?,
                    _ => {}
                }
            }
            let ids = add_tracks(&program, n)?;
            let out = if k == 0 { args.out.clone() } else { args.out.with_extension(format!("{k}.mp4")) };
            let output = program.attach_output(OutputSpec::mp4_file(&out)).map_err(|e| format!("output: {e}"))?;
            rooms.push((program, ids, output));
        }
    }
    let program = rooms.first().map(|(p, _, _)| p.clone());
    let output = rooms.first().map(|(_, _, o)| *o);
    let second = match (&program, &args.rendition) {
        (Some(p), Some(((width, height), layout))) => {
            let c = p.config();
            let format = VideoFormat { width: *width, height: *height, fps: c.fps, bitrate_kbps: c.video_bitrate_kbps };
            let request = RenditionRequest { format, layout: load_layout(layout)? };
            let path = args.out.with_extension("rendition.mp4");
            let output =
                p.attach_output_in(&request, OutputSpec::mp4_file(&path)).map_err(|e| format!("rendition: {e}"))?;
            Some((output, path))
        }
        _ => None,
    };
    let consumer = if rooms.is_empty() {
        make_consumer(None, Vec::new(), errors.clone())
    } else {
        let each: Vec<_> =
            rooms.iter().map(|(p, ids, _)| make_consumer(Some(p.clone()), ids.clone(), errors.clone())).collect();
        // One replay feeds every program, as one SFU hands each room its packets.
        let all: replay::Consumer = Arc::new(move |packet: replay::Packet| each.iter().for_each(|c| c(packet)));
        all
    };
    let (stop, ended) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let replayer = {
        let (stop, ended) = (stop.clone(), ended.clone());
        std::thread::Builder::new()
            .name("replay".into())
            .spawn(move || replay(packets, consumer, stop, ended))
            .map_err(|e| format!("replay thread: {e}"))?
    };

    let result = (|| {
        run_for(&ended, Duration::from_secs_f64(args.warmup))?;
        if args.details
            && let Some(p) = &program
        {
            // Written only when GST_DEBUG_DUMP_DOT_DIR is set.
            p.pipeline().debug_to_dot_file(gst::DebugGraphDetails::all(), "bench-compose-program");
            for t in p.tiles() {
                let r = t.rect;
                println!("tile {}: {}x{} at ({}, {}), crop {:?}", t.participant, r.width, r.height, r.x, r.y, t.crop);
            }
        }
        let f0: Vec<u64> = rooms.iter().map(|(p, _, _)| p.stats().frames).collect();
        let s0 = sample(program.as_deref());
        run_for(&ended, Duration::from_secs_f64(args.seconds))?;
        let s1 = sample(program.as_deref());
        let f1: Vec<u64> = rooms.iter().map(|(p, _, _)| p.stats().frames).collect();
        let rss = resident_mb();
        let frames: Vec<u64> = f1.iter().zip(&f0).map(|(b, a)| b - a).collect();
        Ok::<_, String>((s0, s1, frames, rss))
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = replayer.join();
    let out_stats = match (&program, output) {
        (Some(p), Some(o)) => Some(p.detach_output(o).map_err(|e| format!("finishing the output: {e}"))?),
        _ => None,
    };
    for (p, _, o) in rooms.iter().skip(1) {
        p.detach_output(*o).map_err(|e| format!("finishing an output: {e}"))?;
        p.stop().map_err(|e| format!("stopping a program: {e}"))?;
    }
    if let (Some(p), Some((o, path))) = (&program, &second) {
        let st = p.detach_output(*o).map_err(|e| format!("finishing the rendition's output: {e}"))?;
        println!(
            "rendition output: {} ({} frames, {:.1} s)",
            path.display(),
            st.video_frames,
            st.duration.as_secs_f64()
        );
    }
    if let Some(p) = &program {
        p.stop().map_err(|e| format!("stopping the program: {e}"))?;
    }
    let (s0, s1, frames, rss) = result?;

    let wall = (s1.at - s0.at).as_secs_f64();
    let cpu = s1.cpu - s0.cpu;
    // Per second of program produced; the reader alone has no program, so per wall second.
    let program_s = match (s0.position, s1.position) {
        (Some(a), Some(b)) => b.saturating_sub(a).as_secs_f64(),
        _ => wall,
    };
    if program_s < 0.5 * wall {
        return Err(format!("the program fell behind: {program_s:.1} s produced in {wall:.1} s"));
    }
    let cores = cpu / program_s;
    let others = ((s1.machine.0 - s0.machine.0) - cpu).max(0.0) / wall;
    let steal = (s1.machine.1 - s0.machine.1) / wall;

    if args.details {
        println!(
            "CPU per thread over the window (cores; x264 worker threads inherit the name of the thread that opened the encoder):"
        );
        let mut rows: Vec<(String, u64, f64)> = s1
            .threads
            .iter()
            .map(|(tid, (name, t))| {
                let before = s0.threads.get(tid).map(|(_, b)| *b).unwrap_or(0.0);
                (name.clone(), *tid, (t - before) / program_s)
            })
            .filter(|r| r.2 > 0.0)
            .collect();
        rows.sort_by(|a, b| b.2.total_cmp(&a.2));
        for (name, tid, c) in &rows {
            println!("  {c:6.3}  {name} [{tid}]");
        }
        let listed: f64 = rows.iter().map(|r| r.2).sum();
        println!("  {:6.3}  (threads that exited during the window)", (cores - listed).max(0.0));
    }
    if args.programs > 1 {
        let fps = bench_config().fps as f64;
        let rates: Vec<String> = frames.iter().map(|f| format!("{:.1}", *f as f64 / wall)).collect();
        let slowest = frames.iter().copied().min().unwrap_or(0) as f64 / wall;
        println!(
            "{} programs: frames per second of wall time each {} (program rate {fps}); resident memory \
             {rss:.0} MB, {:.0} MB before the programs = {:.1} MB per program",
            args.programs,
            rates.join(", "),
            rss_before,
            (rss - rss_before) / args.programs as f64
        );
        println!(
            "RESULT_PROGRAMS programs={} slowest_fps={slowest:.2} rss_mb={rss:.0} mb_per_program={:.1}",
            args.programs,
            (rss - rss_before) / args.programs as f64
        );
    }
    if let Some(st) = out_stats {
        println!("output: {} ({} frames, {:.1} s)", args.out.display(), st.video_frames, st.duration.as_secs_f64());
    }
    println!(
        "{}: {cpu:.2} CPU-s over {program_s:.2} s of program ({wall:.2} s wall) = {cores:.3} cores; \
         rest of machine {others:.2} cores, steal {steal:.2}",
        if args.reader_only { "reader only" } else { "tessera (reader + program)" }
    );
    let second = args.rendition.as_ref().map(|((w, h), l)| format!("+rendition-{w}x{h}-{l}"));
    let variant = [format!("{}{}", args.layout, second.unwrap_or_default())];
    let variant = variant.iter().map(String::as_str).chain(args.experiments.iter().map(String::as_str));
    let variant = variant.collect::<Vec<_>>().join("+");
    println!(
        "RESULT mode={} variant={} cpu_s={cpu:.3} program_s={program_s:.3} wall_s={wall:.3} cores={cores:.4} \
         others={others:.3} steal={steal:.3} push_errors={}",
        if args.reader_only { "reader" } else { "tessera" },
        if args.reader_only { "-".into() } else { variant.replace(' ', "_") },
        errors.load(Ordering::Relaxed)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_compose: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The process's resident memory (VmRSS), in MB.
fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok()))
        .map(|kb: f64| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The default program, with `BENCH_X264_THREADS` for experiments.
fn bench_config() -> ProgramConfig {
    let mut config = ProgramConfig::default();
    if let Some(t) = std::env::var("BENCH_X264_THREADS").ok().and_then(|v| v.parse().ok()) {
        config.x264_threads = t;
    }
    config
}
