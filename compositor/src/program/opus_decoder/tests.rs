//! The decoder on real Opus packets from GStreamer's `opusenc`, through `gst_check::Harness`.

use super::OpusDecoder;
use gst::prelude::*;
use gst_check::Harness;

const FRAME: u64 = 960; // 20 ms at 48 kHz
const FRAME_NS: u64 = 20_000_000;

fn init() {
    let _ = gst::init();
}

/// `frames` 20 ms packets of a 440 Hz stereo tone, encoded by opusenc.
fn encode_tone(frames: u64) -> Vec<gst::Buffer> {
    encode(frames, |_| 440.0, &[])
}

/// `frames` 20 ms packets of a stereo tone at `hz(frame)`, encoded by opusenc with `settings`.
fn encode(frames: u64, hz: impl Fn(u64) -> f64, settings: &[(&str, &str)]) -> Vec<gst::Buffer> {
    let mut enc = Harness::new("opusenc");
    let element = enc.element().expect("opusenc");
    element.set_property_from_str("frame-size", "20");
    for (k, v) in settings {
        element.set_property_from_str(k, v);
    }
    let mut phase = 0.0f64;
    enc.set_src_caps_str("audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=2,channel-mask=(bitmask)0x3");
    let mut packets = Vec::new();
    for f in 0..frames {
        let mut pcm = Vec::with_capacity(FRAME as usize * 4);
        for _ in 0..FRAME {
            phase += hz(f) * std::f64::consts::TAU / 48_000.0;
            let v = (phase.sin() * 12_000.0) as i16;
            pcm.extend_from_slice(&v.to_le_bytes());
            pcm.extend_from_slice(&v.to_le_bytes());
        }
        let mut b = gst::Buffer::from_mut_slice(pcm);
        {
            let b = b.get_mut().expect("writable");
            b.set_pts(gst::ClockTime::from_nseconds(f * FRAME_NS));
            b.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
        }
        assert!(enc.push(b).is_ok());
        while let Some(p) = enc.try_pull() {
            packets.push(p);
        }
    }
    packets
}

fn decoder_harness(fec: bool) -> Harness {
    let dec = OpusDecoder::new("dec", fec);
    let mut h = Harness::with_element(&dec.upcast_element(), Some("sink"), Some("src"));
    // What rtpopusdepay announces for WebRTC's opus/48000/2.
    h.set_src_caps_str("audio/x-opus,channel-mapping-family=(int)0,channels=(int)2,rate=(int)48000");
    h
}

fn stamped(packet: &gst::Buffer, index: u64) -> gst::Buffer {
    let mut b = packet.copy();
    let m = b.get_mut().expect("writable");
    m.set_pts(gst::ClockTime::from_nseconds(index * FRAME_NS));
    m.set_duration(gst::ClockTime::from_nseconds(FRAME_NS));
    b
}

/// All samples pulled so far (interleaved stereo F32) with each buffer's pts.
fn pull_all(h: &mut Harness) -> (Vec<f32>, Vec<gst::ClockTime>) {
    let mut samples = Vec::new();
    let mut pts = Vec::new();
    while let Some(b) = h.try_pull() {
        pts.extend(b.pts());
        let map = b.map_readable().expect("readable");
        samples.extend(map.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    }
    (samples, pts)
}

/// Decodes `packets` with frame `lost` missing (the gap event rtpopusdepay sends for a packet
/// the jitter buffer gave up on), then EOS; returns what came out.
fn decode_losing(packets: &[gst::Buffer], lost: u64, fec: bool) -> (Vec<f32>, Vec<gst::ClockTime>) {
    let mut h = decoder_harness(fec);
    for (i, p) in packets.iter().enumerate() {
        let i = i as u64;
        if i == lost {
            let gap = gst::event::Gap::builder(gst::ClockTime::from_nseconds(i * FRAME_NS))
                .duration(gst::ClockTime::from_nseconds(FRAME_NS))
                .build();
            assert!(h.push_event(gap));
        } else {
            assert!(h.push(stamped(p, i)).is_ok());
        }
    }
    assert!(h.push_event(gst::event::Eos::new()));
    pull_all(&mut h)
}

fn rms(s: &[f32]) -> f32 {
    (s.iter().map(|v| v * v).sum::<f32>() / s.len().max(1) as f32).sqrt()
}

/// Zero crossings of the left channel per second.
fn frequency(s: &[f32]) -> f64 {
    let left: Vec<f32> = s.iter().step_by(2).copied().collect();
    let crossings = left.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    crossings as f64 / 2.0 / (left.len() as f64 / 48_000.0)
}

#[test]
fn decodes_a_tone_to_48khz_stereo_f32() {
    init();
    let packets = encode_tone(50);
    let mut h = decoder_harness(false);
    for (i, p) in packets.iter().enumerate() {
        assert!(h.push(stamped(p, i as u64)).is_ok());
    }
    let caps = h.sinkpad().and_then(|p| p.current_caps()).expect("output caps");
    let s = caps.structure(0).expect("structure");
    assert_eq!(s.get::<&str>("format").ok(), Some("F32LE"));
    assert_eq!(s.get::<i32>("rate").ok(), Some(48_000));
    assert_eq!(s.get::<i32>("channels").ok(), Some(2));
    let (samples, pts) = pull_all(&mut h);
    assert_eq!(samples.len() as u64, packets.len() as u64 * FRAME * 2);
    assert_eq!(pts.first().copied(), Some(gst::ClockTime::ZERO));
    // Past the codec's start-up: a clean 440 Hz tone at about 12000/32768 = 0.37 peak.
    let steady = &samples[(FRAME * 2 * 5) as usize..];
    let f = frequency(steady);
    assert!((430.0..450.0).contains(&f), "tone at {f} Hz");
    let level = rms(steady);
    assert!((0.2..0.32).contains(&level), "rms {level}");
}

#[test]
fn a_lost_packet_is_concealed_and_time_goes_on() {
    init();
    let packets = encode_tone(30);
    for fec in [false, true] {
        let (samples, pts) = decode_losing(&packets, 15, fec);
        // Every frame is there, the lost one included, at its own time.
        assert_eq!(samples.len() as u64, 30 * FRAME * 2, "fec {fec}");
        assert!(pts.contains(&gst::ClockTime::from_nseconds(15 * FRAME_NS)), "fec {fec}: {pts:?}");
        // The concealed frame continues the tone instead of dropping to silence.
        let lost = &samples[(15 * FRAME * 2) as usize..(16 * FRAME * 2) as usize];
        assert!(rms(lost) > 0.05, "fec {fec}: concealed rms {}", rms(lost));
    }
}

#[test]
fn a_garbage_packet_is_concealed_without_an_error() {
    init();
    let packets = encode_tone(20);
    let mut h = decoder_harness(false);
    for (i, p) in packets.iter().enumerate() {
        // Packet 10: a TOC byte claiming code 3 with a frame count of 0, invalid.
        let garbage = gst::Buffer::from_slice([0x03u8, 0x00, 0xff, 0xff]);
        let b = stamped(if i == 10 { &garbage } else { p }, i as u64);
        assert!(h.push(b).is_ok(), "packet {i}");
    }
    let (samples, _) = pull_all(&mut h);
    assert_eq!(samples.len() as u64, 20 * FRAME * 2);
    let after = &samples[(12 * FRAME * 2) as usize..];
    let f = frequency(after);
    assert!((430.0..450.0).contains(&f), "tone after the bad packet at {f} Hz");
}

#[test]
fn with_fec_a_lost_packet_is_rebuilt_from_the_next_one() {
    init();
    // The tone jumps from 300 to 700 Hz at the frame that gets lost: concealment can only
    // continue the 300 Hz it heard, the next packet's FEC data carries the 700 Hz.
    let settings = [("inband-fec", "true"), ("packet-loss-percentage", "30"), ("bitrate", "32000")];
    let packets = encode(30, |f| if f < 15 { 300.0 } else { 700.0 }, &settings);
    let lost_frame_hz = |fec: bool| {
        let (samples, _) = decode_losing(&packets, 15, fec);
        assert_eq!(samples.len() as u64, 30 * FRAME * 2, "fec {fec}");
        // The second half of the lost frame, past the encoder's transition.
        frequency(&samples[(15 * FRAME * 2 + FRAME) as usize..(16 * FRAME * 2) as usize])
    };
    let concealed = lost_frame_hz(false);
    let recovered = lost_frame_hz(true);
    eprintln!("lost frame: FEC {recovered:.0} Hz, concealment {concealed:.0} Hz");
    assert!((600.0..800.0).contains(&recovered), "FEC gave {recovered} Hz, concealment {concealed} Hz");
    assert!(concealed < 500.0, "concealment gave {concealed} Hz");
}
