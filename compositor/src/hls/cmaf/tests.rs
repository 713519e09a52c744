//! The init segment and fragments read back with a minimal box reader: structure, timescales,
//! codec records, and trun data offsets that land on each track's sample bytes.

use super::*;
use crate::hls::testing::*;

fn sample(dts: u64, duration: u32, keyframe: bool, data: &[u8]) -> Sample {
    Sample { dts, cts_offset: 0, duration, keyframe, data: data.to_vec() }
}

#[test]
fn codec_strings_come_from_the_configuration_records() {
    let (mut video, mut audio) = configs();
    assert_eq!(video.codec().unwrap(), "avc1.64001f");
    video.avcc[1..4].copy_from_slice(&[0x4d, 0x40, 0x1e]);
    assert_eq!(video.codec().unwrap(), "avc1.4d401e");
    assert_eq!(audio.codec(), "mp4a.40.2");
    // Object type 42 (USAC) needs the escape: 31, then 6 bits of (42 - 32).
    audio.asc = vec![0xf9, 0x40];
    assert_eq!(audio.codec(), "mp4a.40.42");
}

#[test]
fn unusable_configuration_records_are_errors() {
    let (video, audio) = configs();
    let short = VideoConfig { avcc: vec![1, 0x64, 0, 0x1f], ..video.clone() };
    assert!(matches!(short.codec(), Err(HlsError::InvalidAvcc(_))));
    let version = VideoConfig { avcc: [vec![0], avcc()[1..].to_vec()].concat(), ..video.clone() };
    assert!(matches!(version.codec(), Err(HlsError::InvalidAvcc(_))));
    assert!(matches!(init_segment(&version, &audio), Err(HlsError::InvalidAvcc(_))));
    let no_asc = AudioConfig { asc: vec![0x11], ..audio.clone() };
    assert!(matches!(init_segment(&video, &no_asc), Err(HlsError::InvalidAsc(_))));
    assert_eq!(no_asc.codec(), "mp4a.40.2", "the documented fallback");
    let huge = VideoConfig { width: 70_000, ..video.clone() };
    assert!(matches!(init_segment(&huge, &audio), Err(HlsError::InvalidConfig { .. })));
    let mute = AudioConfig { channels: 0, ..audio };
    assert!(matches!(init_segment(&video, &mute), Err(HlsError::InvalidConfig { .. })));
}

#[test]
fn the_init_segment_describes_both_tracks_and_fragments() {
    let (video, audio) = configs();
    let init = init_segment(&video, &audio).unwrap();
    assert_eq!(types(&init), ["ftyp", "moov"]);
    let ftyp = child(&init, b"ftyp");
    assert_eq!(&ftyp[..4], b"iso6");
    assert!(ftyp[8..].chunks(4).any(|b| b == b"cmfc"));
    let moov = child(&init, b"moov");
    assert_eq!(types(moov), ["mvhd", "trak", "trak", "mvex"]);

    let traks = children(moov, b"trak");
    let (v, a) = (traks[0], traks[1]);
    let tkhd = child(v, b"tkhd");
    assert_eq!(u32_at(tkhd, 12), VIDEO_TRACK_ID);
    assert_eq!((u32_at(tkhd, 76), u32_at(tkhd, 80)), (320 << 16, 180 << 16), "16.16 width and height");
    assert_eq!(u32_at(child(a, b"tkhd"), 12), AUDIO_TRACK_ID);

    let (vmdia, amdia) = (child(v, b"mdia"), child(a, b"mdia"));
    assert_eq!(u32_at(child(vmdia, b"mdhd"), 12), 90_000);
    assert_eq!(u32_at(child(amdia, b"mdhd"), 12), 48_000);
    assert_eq!(&child(vmdia, b"hdlr")[8..12], b"vide");
    assert_eq!(&child(amdia, b"hdlr")[8..12], b"soun");

    let vminf = child(vmdia, b"minf");
    assert_eq!(types(vminf), ["vmhd", "dinf", "stbl"]);
    let stbl = child(vminf, b"stbl");
    assert_eq!(types(stbl), ["stsd", "stts", "stsc", "stsz", "stco"]);
    let stsd = child(stbl, b"stsd");
    let avc1 = child(&stsd[8..], b"avc1");
    assert_eq!((u16::from_be_bytes([avc1[24], avc1[25]]), u16::from_be_bytes([avc1[26], avc1[27]])), (320, 180));
    assert_eq!(child(&avc1[78..], b"avcC"), avcc().as_slice(), "the avcC record as the caps gave it");

    let aminf = child(amdia, b"minf");
    assert_eq!(types(aminf), ["smhd", "dinf", "stbl"]);
    let astsd = child(child(aminf, b"stbl"), b"stsd");
    let mp4a = child(&astsd[8..], b"mp4a");
    assert_eq!(u16::from_be_bytes([mp4a[16], mp4a[17]]), 2, "channels");
    assert_eq!(u32_at(mp4a, 24), 48_000 << 16);
    let esds = child(&mp4a[28..], b"esds");
    // ES_Descriptor(3) { ES_ID, flags, DecoderConfig(4) { 0x40, 0x15, … DecSpecificInfo(5) { ASC } }, SL(6) { 2 } }
    assert_eq!(
        &esds[4..],
        &[3, 25, 0, 2, 0, 4, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 2, 0x11, 0x90, 6, 1, 2]
    );

    let trexes = boxes(child(moov, b"mvex"));
    assert_eq!(trexes.len(), 2);
    assert_eq!((u32_at(trexes[0].1, 4), u32_at(trexes[1].1, 4)), (VIDEO_TRACK_ID, AUDIO_TRACK_ID));
}

#[test]
fn a_fragment_points_each_track_at_its_own_sample_bytes() {
    let mut video = vec![sample(90_000, 3000, true, b"IDR-frame"), sample(93_000, 3000, false, b"P1")];
    video.push(Sample { cts_offset: -3000, ..sample(96_000, 3000, false, b"P2--") });
    let audio = vec![sample(48_000, 1024, true, b"aac-one"), sample(49_024, 1024, true, b"aac-2")];
    let frag = fragment(7, &video, &audio).unwrap();
    let moof = child(&frag, b"moof");
    assert_eq!(types(moof), ["mfhd", "traf", "traf"]);
    let read = read_fragment(&frag);
    assert_eq!(read.sequence, 7);
    assert_eq!(read.video, video, "decode times, durations, sizes, flags, offsets and bytes");
    assert_eq!(read.audio, audio);
    assert_eq!(child(&frag, b"mdat"), b"IDR-frameP1P2--aac-oneaac-2", "video, then audio");
}

#[test]
fn a_track_without_samples_gets_no_traf_and_an_empty_fragment_is_an_error() {
    let audio = vec![sample(0, 1024, true, b"aac")];
    let frag = fragment(1, &[], &audio).unwrap();
    assert_eq!(types(child(&frag, b"moof")), ["mfhd", "traf"]);
    let read = read_fragment(&frag);
    assert!(read.video.is_empty());
    assert_eq!(read.audio, audio);
    assert!(matches!(fragment(2, &[], &[]), Err(HlsError::Fragment(_))));
}
