//! tesseralocalsink driven by gst_check::Harness with a synthetic ISO-BMFF stream.

use std::path::Path;
use std::time::{Duration, Instant};

use gst::prelude::*;

fn mk_box(fourcc: &[u8; 4], payload: usize, fill: u8) -> Vec<u8> {
    let mut v = ((payload + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(fourcc);
    v.extend(std::iter::repeat_n(fill, payload));
    v
}

/// ftyp + moov + `n` fragments; returns the stream and the end of each fragment.
fn stream(n: usize) -> (Vec<u8>, Vec<usize>) {
    let mut s = mk_box(b"ftyp", 16, 0);
    s.extend(mk_box(b"moov", 500, 1));
    let mut ends = Vec::new();
    for i in 0..n {
        s.extend(mk_box(b"moof", 120, 2));
        s.extend(mk_box(b"mdat", 20_000 + i * 333, i as u8));
        ends.push(s.len());
    }
    (s, ends)
}

fn harness(location: &Path, spool: &Path) -> gst_check::Harness {
    tessera_plugins::register_static().unwrap();
    let el = gst::ElementFactory::make("tesseralocalsink")
        .property("location", location.to_str().unwrap())
        .property("spool-dir", spool.to_str().unwrap())
        .property("async", false)
        .build()
        .unwrap();
    let mut h = gst_check::Harness::with_element(&el, Some("sink"), None);
    h.set_src_caps_str("video/quicktime, variant=iso");
    h.play();
    h
}

/// Pushes `data` in uneven buffers that split boxes and headers anywhere.
fn push_split(h: &mut gst_check::Harness, data: &[u8]) {
    let mut off = 0;
    for size in [3usize, 5, 8, 1000, 7, 4096, 13].iter().cycle() {
        if off >= data.len() {
            break;
        }
        let end = (off + size).min(data.len());
        assert_eq!(h.push(gst::Buffer::from_slice(data[off..end].to_vec())), Ok(gst::FlowSuccess::Ok));
        off = end;
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn eos_writes_the_whole_stream_and_cleans_the_spool() {
    let dir = tempfile::tempdir().unwrap();
    let (location, spool) = (dir.path().join("out.mp4"), dir.path().join("spool"));
    let mut h = harness(&location, &spool);
    let (data, _) = stream(400); // > 8 MiB: several parts
    push_split(&mut h, &data);
    assert!(h.push_event(gst::event::Eos::new()));
    // EOS waits for completion (finish-timeout), so the file is there already.
    assert_eq!(std::fs::read(&location).unwrap(), data);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}

#[test]
fn stop_without_eos_keeps_whole_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let (location, spool) = (dir.path().join("out.mp4"), dir.path().join("spool"));
    let mut h = harness(&location, &spool);
    let (data, ends) = stream(5);
    // Four whole fragments and half of the fifth.
    let cut = ends[3] + (ends[4] - ends[3]) / 2;
    push_split(&mut h, &data[..cut]);
    drop(h); // to NULL without EOS
    wait_for(&location);
    assert_eq!(std::fs::read(&location).unwrap(), &data[..ends[3]]);
}

#[test]
fn garbage_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(&dir.path().join("out.mp4"), &dir.path().join("spool"));
    assert_eq!(h.push(gst::Buffer::from_slice(vec![0u8; 64])), Err(gst::FlowError::Error));
}

#[test]
fn secrets_are_write_only() {
    tessera_plugins::register_static().unwrap();
    tessera_plugins::register_static().unwrap(); // many times is fine
    let el = gst::ElementFactory::make("tesseras3sink").property("secret-access-key", "s3cr3t").build().unwrap();
    let pspec = el.find_property("secret-access-key").unwrap();
    assert!(!pspec.flags().contains(gst::glib::ParamFlags::READABLE));
    assert!(!el.find_property("access-key-id").unwrap().flags().contains(gst::glib::ParamFlags::READABLE));
}

#[test]
fn data_after_a_seek_back_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (location, spool) = (dir.path().join("out.mp4"), dir.path().join("spool"));
    let mut h = harness(&location, &spool);
    let (data, _) = stream(3);
    push_split(&mut h, &data);
    // What mp4mux does without streamable=true: seek to 0 and rewrite the header.
    let mut seg = gst::FormattedSegment::<gst::format::Bytes>::new();
    seg.set_start(gst::format::Bytes::ZERO);
    assert!(h.push_event(gst::event::Segment::new(&seg)));
    assert_eq!(h.push(gst::Buffer::from_slice(mk_box(b"moov", 500, 9))), Ok(gst::FlowSuccess::Ok));
    assert!(h.push_event(gst::event::Eos::new()));
    assert_eq!(std::fs::read(&location).unwrap(), data);
}
