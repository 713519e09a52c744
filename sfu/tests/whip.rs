//! WHIP ingest from a publisher whose WebRTC stack we did not write: GStreamer's `webrtcbin`
//! (libnice + OpenSSL) sends live VP8 (or H.264) video and Opus audio to `POST /whip/{room}`,
//! non-trickle, ICE restricted to 127.0.0.1. The recording hand-off consumer sees both tracks,
//! a plausible number of packets with few sequence gaps and RTCP sender reports; the video
//! depayloads and decodes; `DELETE` on the Location ends the session. The publisher is the
//! test kit's (`tessera_testkit::whip`); the consumer, decoding and the HTTP requests are in
//! `whip_support/`.

mod common;
mod whip_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tessera_sfu::{MediaHandoff, SenderReportInfo, TrackInfo};
use tessera_testkit::poll::wait_until;
use tessera_testkit::whip::{self, ConnectionState, Publisher, candidate_addr, candidates};
use whip_support::decode::decode;
use whip_support::handoff::{Recorder, rtp_header, sequence_gaps};
use whip_support::http::{header, http};

struct Expect {
    video_mime: &'static str,
    decoder: &'static str,
}

/// Publishes over WHIP for 5 s and checks what the hand-off consumer got.
async fn publish_over_whip(room: &str, video_chain: &str, expect: Expect) {
    let started = Instant::now();
    let rec = Arc::new(Recorder::default());
    let server = start(Some(rec.clone() as Arc<dyn MediaHandoff>)).await;
    let publisher = Publisher::new(video_chain);
    // webrtcbin gathers on its own threads: the offer blocks for a moment.
    let offer = tokio::task::block_in_place(|| publisher.offer());
    let ours = candidates(&offer);
    assert!(!ours.is_empty(), "the offer carries no candidates:\n{offer}");
    assert!(ours.iter().all(|c| candidate_addr(c) == "127.0.0.1"), "offer candidates beyond 127.0.0.1: {ours:#?}");

    // A wrong token is refused and leaves nothing behind.
    let (status, _, body) = http(
        server.addr,
        "POST",
        &format!("/whip/{room}"),
        &[("Authorization", "Bearer nope"), ("Content-Type", "application/sdp")],
        &offer,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(participants(&server.sfu, room).is_empty());

    let (status, headers, answer) = http(
        server.addr,
        "POST",
        &format!("/whip/{room}"),
        &[("Authorization", &format!("Bearer {TOKEN}")), ("Content-Type", "application/sdp")],
        &offer,
    )
    .await;
    assert_eq!(status, 201, "WHIP POST: {answer}");
    assert!(header(&headers, "content-type").is_some_and(|c| c.starts_with("application/sdp")), "{headers:?}");
    let location = header(&headers, "location").expect("Location header").to_owned();
    assert!(location.starts_with(&format!("/whip/{room}/")), "{location}");
    let theirs = candidates(&answer);
    assert!(!theirs.is_empty(), "the answer carries no candidates (non-trickle WHIP):\n{answer}");
    assert!(theirs.iter().all(|c| candidate_addr(c) == "127.0.0.1"), "answer candidates beyond 127.0.0.1: {theirs:#?}");
    assert_eq!(participants(&server.sfu, room).len(), 1);
    publisher.set_answer(&answer);

    let deadline = Instant::now() + Duration::from_secs(15);
    while publisher.connection_state() != ConnectionState::Connected {
        publisher.check_bus();
        assert!(Instant::now() < deadline, "webrtcbin did not connect: {:?}", publisher.connection_state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connected = Instant::now();
    eprintln!("connected {:?} after start", connected - started);

    // Both tracks published, then ~5 s of media.
    assert!(
        wait_until(Duration::from_secs(10), || rec.published.lock().unwrap().len() == 2).await,
        "tracks published: {:?}",
        rec.published.lock().unwrap()
    );
    let video = rec
        .track(expect.video_mime)
        .unwrap_or_else(|| panic!("no {} track: {:?}", expect.video_mime, rec.published.lock().unwrap()));
    let audio =
        rec.track("audio/opus").unwrap_or_else(|| panic!("no audio/opus track: {:?}", rec.published.lock().unwrap()));
    eprintln!("published: {video:?}\n           {audio:?}");
    while connected.elapsed() < Duration::from_secs(5) {
        publisher.check_bus();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(publisher.connection_state(), ConnectionState::Connected);
    let vp = rec.packets_of(&video.track_id);
    let ap = rec.packets_of(&audio.track_id);
    let (vgaps, vspan) = sequence_gaps(&vp);
    let (agaps, aspan) = sequence_gaps(&ap);
    let vsr = rec.reports_of(&video.track_id);
    let asr = rec.reports_of(&audio.track_id);
    eprintln!(
        "after 5 s: video {} {} packets ({vgaps} of {vspan} sequence numbers missing), {} SRs; \
         audio {} {} packets ({agaps} of {aspan} missing), {} SRs; hand-off dropped {}",
        video.mime_type,
        vp.len(),
        vsr.len(),
        audio.mime_type,
        ap.len(),
        asr.len(),
        server.sfu.handoff_dropped()
    );

    // What a consumer sees: the announced parameters, on every packet.
    assert_eq!((video.room.as_str(), audio.room.as_str()), (room, room));
    assert_eq!(video.participant_id, audio.participant_id);
    assert!(location.ends_with(&format!("/{}", video.participant_id)), "{location} vs {}", video.participant_id);
    assert_eq!(video.source, tessera_sfu::TrackSource::Camera);
    assert_eq!(audio.source, tessera_sfu::TrackSource::Audio);
    assert_eq!((video.clock_rate, video.channels), (90_000, 0));
    assert_eq!((audio.clock_rate, audio.channels), (48_000, 2));
    assert_ne!(video.ssrc, audio.ssrc);
    for (t, pkts) in [(&video, &vp), (&audio, &ap)] {
        for p in pkts {
            let (pt, _, _, ssrc) = rtp_header(p);
            assert_eq!((pt, ssrc), (t.payload_type, t.ssrc), "{}: packet header vs TrackInfo", t.mime_type);
        }
    }
    assert!(vp.len() >= 100, "only {} video packets in 5 s", vp.len());
    assert!(ap.len() >= 150, "only {} audio packets in 5 s", ap.len());
    assert!(vgaps * 100 <= vspan, "video: {vgaps} of {vspan} sequence numbers missing");
    assert!(agaps * 100 <= aspan, "audio: {agaps} of {aspan} sequence numbers missing");
    // Audio timestamps advance by 20 ms (960 at 48 kHz) per packet.
    let ats: Vec<u32> = ap.iter().map(|p| rtp_header(p).2).collect();
    let steady = ats.windows(2).filter(|w| w[1].wrapping_sub(w[0]) == 960).count();
    assert!(steady * 10 >= ats.len() * 9, "audio timestamps: only {steady} of {} steps are 960", ats.len());
    // Lip sync: sender reports of both tracks, in the handed-over SSRC/timestamp space.
    // (GStreamer 1.22's SR RTP times run ahead of its packets by a growing amount, the same
    // for both tracks: compare the tracks with each other, not with the packets.)
    assert!(
        !vsr.is_empty() && !asr.is_empty(),
        "sender reports reached the hand-off: video {}, audio {}",
        vsr.len(),
        asr.len()
    );
    let ahead = |t: &TrackInfo, pkts: &[Vec<u8>], sr: &SenderReportInfo, before: usize| {
        let last = rtp_header(&pkts[before.saturating_sub(1)]).2;
        sr.rtp_time.wrapping_sub(last) as i32 as f64 / t.clock_rate as f64
    };
    for (t, srs, pkts) in [(&video, &vsr, &vp), (&audio, &asr, &ap)] {
        for (sr, before) in srs {
            assert_eq!(sr.ssrc, t.ssrc, "{}: SR SSRC", t.mime_type);
            assert!(sr.packet_count > 0 && sr.ntp_time > 0, "{}: {sr:?}", t.mime_type);
            let a = ahead(t, pkts, sr, *before);
            eprintln!("{} SR after {before} packets: RTP time {a:+.3} s from the last packet; {sr:?}", t.mime_type);
            assert!(a.abs() < 10.0, "{}: SR RTP time {a} s away from the packets: {sr:?}", t.mime_type);
        }
        assert!(
            srs.windows(2).all(|w| w[1].0.packet_count >= w[0].0.packet_count),
            "{}: SR packet counts go back",
            t.mime_type
        );
    }
    // Reports sent together (same NTP time) place both tracks at the same instant.
    let mut paired = 0;
    for (v, vb) in &vsr {
        for (a, ab) in asr.iter().filter(|(a, _)| a.ntp_time == v.ntp_time) {
            let skew = ahead(&video, &vp, v, *vb) - ahead(&audio, &ap, a, *ab);
            assert!(skew.abs() < 0.1, "audio/video SRs at the same NTP time disagree by {skew:.3} s");
            paired += 1;
        }
    }
    eprintln!("{paired} audio/video SR pairs at the same NTP time");

    // The video depayloads and decodes to frames of the size sent.
    let (frames, size) = decode(&video, &vp, expect.decoder);
    eprintln!("decoded {frames} frames of {size:?}");
    assert!(frames >= 100, "only {frames} frames decoded from {} packets", vp.len());
    assert_eq!(size, Some((whip::WIDTH as i32, whip::HEIGHT as i32)));

    // DELETE with a wrong token is refused; with the right one it ends the session.
    let (status, _, _) = http(server.addr, "DELETE", &location, &[("Authorization", "Bearer nope")], "").await;
    assert_eq!(status, 401);
    assert_eq!(participants(&server.sfu, room).len(), 1);
    let (status, _, body) =
        http(server.addr, "DELETE", &location, &[("Authorization", &format!("Bearer {TOKEN}"))], "").await;
    assert_eq!(status, 200, "DELETE: {body}");
    assert!(
        wait_until(Duration::from_secs(10), || rec.unpublished.lock().unwrap().len() == 2).await,
        "tracks unpublished: {:?}",
        rec.unpublished.lock().unwrap()
    );
    let mut gone: Vec<String> = rec.unpublished.lock().unwrap().iter().map(|t| t.track_id.clone()).collect();
    gone.sort();
    let mut want = vec![video.track_id.clone(), audio.track_id.clone()];
    want.sort();
    assert_eq!(gone, want);
    assert!(participants(&server.sfu, room).is_empty(), "the WHIP participant is still in the room");
    assert!(server.sfu.get_room(room).is_none(), "the empty room was not removed");
    // Nothing more is handed over for the ended session.
    let (nv, na) = (rec.count(&video.track_id), rec.count(&audio.track_id));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((rec.count(&video.track_id), rec.count(&audio.track_id)), (nv, na), "media after DELETE");
    // A second DELETE finds no session.
    let (status, _, _) =
        http(server.addr, "DELETE", &location, &[("Authorization", &format!("Bearer {TOKEN}"))], "").await;
    assert_eq!(status, 404);
    drop(publisher);
    eprintln!("done in {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_publishes_vp8_and_opus_over_whip() {
    publish_over_whip("whip-vp8", whip::VP8, Expect { video_mime: "video/VP8", decoder: "rtpvp8depay ! vp8dec" }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_webrtcbin_publishes_h264_and_opus_over_whip() {
    publish_over_whip(
        "whip-h264",
        whip::H264,
        Expect { video_mime: "video/H264", decoder: "rtph264depay ! avdec_h264" },
    )
    .await;
}
