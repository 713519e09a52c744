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
//! `--experiment` emulates a proposed change to the compositor crate on the running program, to
//! measure it before anyone writes it (see `EXPERIMENTS`).
//!
//! The last stdout line is machine-readable: `RESULT key=value ...`.

use gst::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tessera_compositor::layout::Layout;
use tessera_compositor::rtp::{nanos_to_ntp, parse_rtp_header};
use tessera_compositor::{Codec, OutputSpec, Program, ProgramConfig, SenderReport, TrackId, TrackKind, TrackParams};

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;
/// Linux reports times in /proc in USER_HZ ticks, which is 100 on every architecture we run on.
const TICKS_PER_S: f64 = 100.0;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u128 = 2_208_988_800;

struct Args {
    seconds: f64,
    warmup: f64,
    out: PathBuf,
    layout: String,
    reader_only: bool,
    /// Also print CPU per thread and the tiles of the composed frame.
    details: bool,
    experiments: Vec<String>,
    inputs: Vec<PathBuf>,
}

fn usage() -> String {
    "usage: bench_compose [--seconds S] [--warmup S] [--out FILE.mp4] [--layout NAME|FILE.json] \
     [--reader-only] [--details] [--experiment NAME]... INPUT.webm...\nexperiments: "
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
        inputs: Vec::new(),
    };
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

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc

/// utime + stime of a /proc/.../stat line, in seconds, and the thread name.
fn parse_stat(line: &str) -> Option<(String, f64)> {
    // "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line[open + 1..close].to_string();
    let rest: Vec<&str> = line[close + 1..].split_whitespace().collect();
    // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / TICKS_PER_S))
}

/// CPU seconds used by this process so far (all threads, live and exited).
fn process_cpu() -> f64 {
    std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| parse_stat(&s)).map(|(_, t)| t).unwrap_or(f64::NAN)
}

/// CPU seconds per live thread: tid -> (name, seconds).
fn thread_cpu() -> BTreeMap<u64, (String, f64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(v) = std::fs::read_to_string(e.path().join("stat")).ok().and_then(|s| parse_stat(&s)) {
            out.insert(tid, v);
        }
    }
    out
}

/// Machine-wide CPU seconds from /proc/stat: (busy, steal). Busy excludes idle, iowait, steal.
fn machine_cpu() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return (f64::NAN, f64::NAN);
    };
    let v: Vec<f64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0.0) / TICKS_PER_S;
    // user nice system idle iowait irq softirq steal
    (at(0) + at(1) + at(2) + at(5) + at(6), at(7))
}

struct Sample {
    at: Instant,
    cpu: f64,
    machine: (f64, f64),
    threads: BTreeMap<u64, (String, f64)>,
    position: Option<Duration>,
}

fn sample(program: Option<&Program>) -> Sample {
    Sample {
        at: Instant::now(),
        cpu: process_cpu(),
        machine: machine_cpu(),
        threads: thread_cpu(),
        position: program.map(|p| p.stats().position),
    }
}

// ---------------------------------------------------------------------------------------------
// Reader: files -> RTP in real time

/// One RTP packet from the reader; `pts` is the buffer's position in its file.
struct Packet<'a> {
    input: usize,
    video: bool,
    data: &'a [u8],
    pts: Option<gst::ClockTime>,
}

type Consumer = Arc<dyn Fn(Packet) + Send + Sync>;

fn ssrc(input: usize, video: bool) -> u32 {
    0x7e55_0000 + 2 * input as u32 + u32::from(!video)
}

/// A packet of the replay, owned.
struct Recorded {
    input: usize,
    video: bool,
    data: Vec<u8>,
    pts: gst::ClockTime,
}

/// Demuxes and payloads the files as fast as possible, before anything is measured, so that the
/// replay costs what an SFU's hand-off costs (one thread calling `push_rtp`), not a demuxer and
/// eight queues paced by the clock.
fn record_packets(inputs: &[PathBuf]) -> Result<Vec<Recorded>, String> {
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
fn replay(packets: Arc<Vec<Recorded>>, consumer: Consumer, stop: Arc<AtomicBool>, ended: Arc<AtomicBool>) {
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
fn run_for(ended: &AtomicBool, d: Duration) -> Result<(), String> {
    std::thread::sleep(d);
    if ended.load(Ordering::Relaxed) {
        return Err("the inputs ended before the measurement did: make them longer \
                    than warm-up + seconds"
            .into());
    }
    Ok(())
}

/// Sends one RTCP sender report per track and second, as a browser would.
#[derive(Default)]
struct SrState {
    last: Option<gst::ClockTime>,
    packets: u32,
    octets: u32,
}

fn sender_report(state: &mut SrState, data: &[u8], pts: gst::ClockTime, wall_at_zero: u128) -> Option<SenderReport> {
    let h = parse_rtp_header(data).ok()?;
    state.packets = state.packets.wrapping_add(1);
    state.octets = state.octets.wrapping_add(data.len().saturating_sub(12) as u32);
    if state.last.is_some_and(|l| pts.saturating_sub(l) < gst::ClockTime::SECOND) {
        return None;
    }
    state.last = Some(pts);
    Some(SenderReport {
        ssrc: h.ssrc,
        ntp_time: nanos_to_ntp(wall_at_zero + pts.nseconds() as u128),
        rtp_time: h.timestamp,
        packet_count: state.packets,
        octet_count: state.octets,
    })
}

/// Adds each input's camera and audio track; returns the track ids indexed like `ssrc()`.
fn add_tracks(program: &Program, inputs: usize) -> Result<Vec<TrackId>, String> {
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
fn make_consumer(program: Option<Arc<Program>>, ids: Vec<TrackId>, errors: Arc<AtomicU64>) -> Consumer {
    let wall_at_zero =
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() + NTP_UNIX_OFFSET_S * 1_000_000_000;
    let states: Vec<Mutex<SrState>> = (0..ids.len().max(1)).map(|_| Mutex::default()).collect();
    Arc::new(move |p: Packet| {
        let slot = 2 * p.input + usize::from(!p.video);
        let report = p.pts.and_then(|pts| {
            let mut st = states.get(slot)?.lock().unwrap_or_else(|e| e.into_inner());
            sender_report(&mut st, p.data, pts, wall_at_zero)
        });
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

// ---------------------------------------------------------------------------------------------

fn run(args: Args) -> Result<(), String> {
    gst::init().map_err(|e| format!("GStreamer init: {e}"))?;
    let n = args.inputs.len();
    eprintln!("reading the inputs...");
    let packets = Arc::new(record_packets(&args.inputs)?);
    let errors = Arc::new(AtomicU64::new(0));

    let (program, ids) = if args.reader_only {
        (None, Vec::new())
    } else {
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
        (Some(program), ids)
    };
    let output = match &program {
        Some(p) => {
            if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            Some(p.attach_output(OutputSpec::mp4_file(&args.out)).map_err(|e| format!("output: {e}"))?)
        }
        None => None,
    };
    let consumer = make_consumer(program.clone(), ids, errors.clone());
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
        let s0 = sample(program.as_deref());
        run_for(&ended, Duration::from_secs_f64(args.seconds))?;
        let s1 = sample(program.as_deref());
        Ok::<_, String>((s0, s1))
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = replayer.join();
    let out_stats = match (&program, output) {
        (Some(p), Some(o)) => Some(p.detach_output(o).map_err(|e| format!("finishing the output: {e}"))?),
        _ => None,
    };
    if let Some(p) = &program {
        p.stop().map_err(|e| format!("stopping the program: {e}"))?;
    }
    let (s0, s1) = result?;

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
    if let Some(st) = out_stats {
        println!("output: {} ({} frames, {:.1} s)", args.out.display(), st.video_frames, st.duration.as_secs_f64());
    }
    println!(
        "{}: {cpu:.2} CPU-s over {program_s:.2} s of program ({wall:.2} s wall) = {cores:.3} cores; \
         rest of machine {others:.2} cores, steal {steal:.2}",
        if args.reader_only { "reader only" } else { "tessera (reader + program)" }
    );
    let variant = [args.layout.as_str()].into_iter().chain(args.experiments.iter().map(String::as_str));
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

/// The default program, with `BENCH_X264_THREADS` for experiments.
fn bench_config() -> ProgramConfig {
    let mut config = ProgramConfig::default();
    if let Some(t) = std::env::var("BENCH_X264_THREADS").ok().and_then(|v| v.parse().ok()) {
        config.x264_threads = t;
    }
    config
}
