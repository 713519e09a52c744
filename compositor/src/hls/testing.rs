//! For the HLS unit tests: codec configurations, a minimal ISO-BMFF reader, and a fragment
//! read back into the samples it holds, so tests compare samples rather than bytes.

use super::cmaf::{AUDIO_TRACK_ID, AudioConfig, Sample, VIDEO_TRACK_ID, VideoConfig};

/// A minimal but well-formed avcC: High profile, level 3.1, one SPS, one PPS.
pub fn avcc() -> Vec<u8> {
    vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x64, 0x00, 0x1f, 1, 0, 2, 0x68, 0xee]
}

pub fn configs() -> (VideoConfig, AudioConfig) {
    let video = VideoConfig { width: 320, height: 180, avcc: avcc() };
    // AAC-LC (2), 48 kHz (index 3), 2 channels.
    let audio = AudioConfig { sample_rate: 48_000, channels: 2, asc: vec![0x11, 0x90] };
    (video, audio)
}

/// The boxes in `buf`, each as (type, body). Panics on a malformed box: it is a test.
pub fn boxes(mut buf: &[u8]) -> Vec<([u8; 4], &[u8])> {
    let mut found = Vec::new();
    while !buf.is_empty() {
        let size = u32_at(buf, 0) as usize;
        let kind: [u8; 4] = buf[4..8].try_into().unwrap();
        assert!(size >= 8 && size <= buf.len(), "box {} of size {size} in {} bytes", fourcc(&kind), buf.len());
        found.push((kind, &buf[8..size]));
        buf = &buf[size..];
    }
    found
}

pub fn fourcc(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// The types of the boxes in `buf`, in order.
pub fn types(buf: &[u8]) -> Vec<String> {
    boxes(buf).iter().map(|(k, _)| fourcc(k)).collect()
}

/// The body of the first child box of type `kind`.
pub fn child<'a>(buf: &'a [u8], kind: &[u8; 4]) -> &'a [u8] {
    boxes(buf).into_iter().find(|(k, _)| k == kind).unwrap_or_else(|| panic!("no {}", fourcc(kind))).1
}

/// The bodies of all child boxes of type `kind`.
pub fn children<'a>(buf: &'a [u8], kind: &[u8; 4]) -> Vec<&'a [u8]> {
    boxes(buf).into_iter().filter(|(k, _)| k == kind).map(|(_, b)| b).collect()
}

pub fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().unwrap())
}

pub fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(buf[at..at + 8].try_into().unwrap())
}

/// A fragment read back: its `mfhd` sequence number and each track's samples, their decode
/// times rebuilt from `tfdt` and the durations, their bytes found through the data offsets.
#[derive(Debug)]
pub struct ReadFragment {
    pub sequence: u32,
    pub video: Vec<Sample>,
    pub audio: Vec<Sample>,
}

pub fn read_fragment(frag: &[u8]) -> ReadFragment {
    assert_eq!(types(frag), ["moof", "mdat"]);
    let moof = child(frag, b"moof");
    let mut read = ReadFragment { sequence: u32_at(child(moof, b"mfhd"), 4), video: Vec::new(), audio: Vec::new() };
    for traf in children(moof, b"traf") {
        let tfhd = child(traf, b"tfhd");
        assert_eq!(u32_at(tfhd, 0) & 0x00ff_ffff, 0x020000, "default-base-is-moof");
        let tfdt = child(traf, b"tfdt");
        assert_eq!(tfdt[0], 1, "64-bit tfdt");
        let trun = child(traf, b"trun");
        assert_eq!(u32_at(trun, 0), 0x0100_0f01, "version 1, data offset and all four per-sample fields");
        let count = u32_at(trun, 4) as usize;
        assert_eq!(trun.len(), 12 + 16 * count);
        // The data offset counts from the moof's first byte, which is the fragment's first.
        let mut at = u32_at(trun, 8) as usize;
        let mut dts = u64_at(tfdt, 4);
        let mut samples = Vec::with_capacity(count);
        for i in 0..count {
            let field = |n: usize| u32_at(trun, 12 + 16 * i + 4 * n);
            let (duration, size, flags) = (field(0), field(1) as usize, field(2));
            assert!(flags == 0x0200_0000 || flags == 0x0101_0000, "sample flags {flags:#x}");
            let data = frag[at..at + size].to_vec();
            samples.push(Sample { dts, cts_offset: field(3) as i32, duration, keyframe: flags == 0x0200_0000, data });
            at += size;
            dts += u64::from(duration);
        }
        match u32_at(tfhd, 4) {
            VIDEO_TRACK_ID => read.video = samples,
            AUDIO_TRACK_ID => read.audio = samples,
            other => panic!("track {other}"),
        }
    }
    read
}
