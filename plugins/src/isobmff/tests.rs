//! The scanner on any buffer split, and the fragment times read from whole boxes.

use super::*;

pub(crate) fn mk_box(fourcc: &[u8; 4], payload_len: usize) -> Vec<u8> {
    let mut v = ((payload_len + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend(std::iter::repeat_n(0xab, payload_len));
    v
}

/// ftyp, moov, then `n` moof+mdat fragments.
pub(crate) fn sample_stream(n: usize) -> Vec<u8> {
    let mut s = mk_box(b"ftyp", 16);
    s.extend(mk_box(b"moov", 300));
    for i in 0..n {
        s.extend(mk_box(b"moof", 100));
        s.extend(mk_box(b"mdat", 1000 + i * 7));
    }
    s
}

fn scan_chunked(data: &[u8], chunk: usize) -> Vec<BoxEvent> {
    let mut sc = BoxScanner::new();
    let mut ev = Vec::new();
    for c in data.chunks(chunk) {
        sc.push(c, &mut ev).unwrap();
    }
    ev
}

#[test]
fn same_events_whatever_the_buffer_split() {
    let data = sample_stream(3);
    let whole = scan_chunked(&data, data.len());
    assert_eq!(whole.len(), 16);
    for chunk in [1, 2, 3, 5, 7, 8, 9, 13, 100, 1001] {
        assert_eq!(scan_chunked(&data, chunk), whole, "chunk {chunk}");
    }
}

#[test]
fn fragment_starts_and_playable_end() {
    let data = sample_stream(2);
    let mut tr = FragmentTracker::default();
    let mut starts = Vec::new();
    let mut playable = Vec::new();
    for e in scan_chunked(&data, 3) {
        starts.extend(tr.on_event(&e));
        playable.push(tr.playable_end);
    }
    let moov_end = 24 + 308;
    assert_eq!(starts, vec![moov_end, moov_end + 108 + 1008]);
    assert_eq!(tr.playable_end, data.len() as u64);
    // Never playable in the middle of a fragment (after moof, before its mdat ends).
    assert!(playable.contains(&moov_end) && !playable.contains(&(moov_end + 108)));
}

fn full_box(fourcc: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut payload = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
    payload.extend_from_slice(body);
    container(fourcc, &[payload])
}

fn container(fourcc: &[u8; 4], children: &[Vec<u8>]) -> Vec<u8> {
    let payload = children.concat();
    let mut v = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend(payload);
    v
}

fn words(w: &[u32]) -> Vec<u8> {
    w.iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// A track: `tkhd` (version 0 or 1), `mdhd` with `timescale`, `hdlr`.
fn trak(id: u32, handler: &[u8; 4], timescale: u32, v1: bool) -> Vec<u8> {
    let (tkhd, mdhd) = if v1 {
        (
            full_box(b"tkhd", 1, 7, &[vec![0; 16], words(&[id, 0]), vec![0; 8]].concat()),
            full_box(b"mdhd", 1, 0, &[vec![0; 16], words(&[timescale]), vec![0; 8 + 4]].concat()),
        )
    } else {
        (full_box(b"tkhd", 0, 7, &words(&[0, 0, id, 0, 0])), full_box(b"mdhd", 0, 0, &words(&[0, 0, timescale, 0, 0])))
    };
    let hdlr = full_box(b"hdlr", 0, 0, &[words(&[0]), handler.to_vec(), vec![0; 13]].concat());
    container(b"trak", &[tkhd, container(b"mdia", &[mdhd, hdlr])])
}

/// ftyp + moov: audio track 1 (48 kHz), video track 2 (90 kHz, trex default 3000).
fn init_segment() -> Vec<u8> {
    let trex = |id: u32, dur: u32| full_box(b"trex", 0, 0, &words(&[id, 1, dur, 0, 0]));
    let moov = container(
        b"moov",
        &[
            full_box(b"mvhd", 0, 0, &[0u8; 96]),
            trak(1, b"soun", 48_000, false),
            trak(2, b"vide", 90_000, true),
            container(b"mvex", &[trex(1, 1024), trex(2, 3000)]),
        ],
    );
    [mk_box(b"ftyp", 16), moov].concat()
}

/// A fragment: video with explicit sample durations (or the trex default), audio with a
/// tfhd default; then its mdat.
fn fragment(video_start: u64, durations: &[u32], audio_start: u32, audio_samples: u32) -> Vec<u8> {
    let video = if durations.is_empty() {
        vec![
            full_box(b"tfhd", 0, 0x02_0000, &words(&[2])),
            full_box(b"tfdt", 1, 0, &video_start.to_be_bytes()),
            full_box(b"trun", 0, 0x01, &words(&[30, 0])),
        ]
    } else {
        // data offset, first sample flags, then duration + size per sample.
        let mut body = words(&[durations.len() as u32, 0, 0]);
        for d in durations {
            body.extend(words(&[*d, 1000]));
        }
        vec![
            full_box(b"tfhd", 0, 0x02_0000, &words(&[2])),
            full_box(b"tfdt", 1, 0, &video_start.to_be_bytes()),
            full_box(b"trun", 0, 0x01 | 0x04 | 0x100 | 0x200, &body),
        ]
    };
    let audio = vec![
        // sample-description-index, then default-sample-duration 1024.
        full_box(b"tfhd", 0, 0x02 | 0x08, &words(&[1, 1, 1024])),
        full_box(b"tfdt", 0, 0, &words(&[audio_start])),
        full_box(b"trun", 0, 0, &words(&[audio_samples])),
    ];
    let moof = container(
        b"moof",
        &[full_box(b"mfhd", 0, 0, &words(&[1])), container(b"traf", &audio), container(b"traf", &video)],
    );
    [moof, mk_box(b"mdat", 5000)].concat()
}

#[test]
fn tracks_and_fragment_times() {
    let init = init_segment();
    let tracks = parse_moov(&init[24 + 8..]);
    assert_eq!(
        tracks,
        vec![
            Track { id: 1, handler: *b"soun", timescale: 48_000, default_sample_duration: 1024 },
            Track { id: 2, handler: *b"vide", timescale: 90_000, default_sample_duration: 3000 },
        ]
    );
    let f = fragment(45_000, &[3000, 3000, 3003], 24_000, 24);
    let runs = parse_moof(&f[8..boxes(&f).next().unwrap().end], &tracks);
    assert_eq!(
        runs,
        vec![
            TrackRun { track_id: 1, start: 24_000, end: 24_000 + 24 * 1024 },
            TrackRun { track_id: 2, start: 45_000, end: 54_003 },
        ]
    );
    // Without per-sample durations: the trex default.
    let f = fragment(0, &[], 0, 0);
    let runs = parse_moof(&f[8..boxes(&f).next().unwrap().end], &tracks);
    assert_eq!(runs[1], TrackRun { track_id: 2, start: 0, end: 90_000 });
}

#[test]
fn duration_from_the_header_and_the_last_fragment() {
    let init = init_segment();
    let video = Track { id: 2, handler: *b"vide", timescale: 90_000, default_sample_duration: 3000 };
    let frags: Vec<Vec<u8>> = (0..4u64).map(|i| fragment(9000 + i * 45_000, &[3000; 15], 0, 10)).collect();
    let file = [init.clone(), frags.concat()].concat();

    // The video track and the first fragment's start, whatever else follows.
    for head in [&file[..], &file[..init.len() + frags[0].len()]] {
        assert_eq!(scan_init(head), InitScan::Found { track: video.clone(), first_start: Some(9000) });
    }
    // The header alone: no first fragment (counted from 0).
    assert_eq!(scan_init(&init), InitScan::Found { track: video.clone(), first_start: None });
    // A moov cut short: read up to its end.
    assert_eq!(scan_init(&init[..100]), InitScan::NeedBytes(init.len() as u64));
    assert_eq!(scan_init(&[0u8; 64]), InitScan::Invalid);

    // The last fragment's end, from a tail that starts at a fragment...
    let end = 9000 + 3 * 45_000 + 45_000;
    assert_eq!(last_fragment_end(&frags[1..].concat(), &video), Some(end));
    // ...or from the whole file (the header is skipped), not from one cut short.
    assert_eq!(last_fragment_end(&file, &video), Some(end));
    assert_eq!(last_fragment_end(&file[..file.len() - 1], &video), Some(end - 45_000));
    assert_eq!(last_fragment_end(&init, &video), None);

    // From the last bytes of the file, starting anywhere inside a fragment.
    for cut in [1, 100, 2500, frags[3].len() + 7] {
        let window = &file[file.len() - frags[3].len() - cut..];
        let start = find_fragment_chain(window).expect("a fragment");
        assert_eq!(last_fragment_end(&window[start..], &video), Some(end), "cut {cut}");
    }
    assert_eq!(find_fragment_chain(&file[file.len() - 100..]), None);
}

#[test]
fn large_size_and_errors() {
    let mut b = vec![0, 0, 0, 1];
    b.extend_from_slice(b"mdat");
    b.extend_from_slice(&20u64.to_be_bytes());
    b.extend_from_slice(&[1, 2, 3, 4]);
    let ev = scan_chunked(&b, 5);
    assert_eq!(ev[0], BoxEvent::Start { offset: 0, fourcc: *b"mdat", size: 20 });
    assert_eq!(ev[1], BoxEvent::End { end: 20, fourcc: *b"mdat" });

    let mut sc = BoxScanner::new();
    let mut out = Vec::new();
    assert!(sc.push(&[0, 0, 0, 4, b'f', b'r', b'e', b'e'], &mut out).is_err());
    let mut sc = BoxScanner::new();
    assert!(sc.push(b"\x00\x00\x00\x10\x01\x02\x03\x04", &mut out).is_err());
}
