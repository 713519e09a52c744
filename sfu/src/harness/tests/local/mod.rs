//! A local publisher (the room's program published into the room, `local_publisher.rs`): the
//! room hears of it as of anyone, a subscriber who names it receives its H.264 and Opus intact,
//! its PLIs reach the keyframe callback (rate limited), leaving is announced, and neither the
//! hand-off nor the room observer ever hears of it. `cascade.rs`: on another node too.

mod cascade;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp;
use rtc::shared::marshal::Marshal;

use super::{last_offer, offers_track};
use crate::config::SfuConfig;
use crate::events::{ParticipantEvent, RoomObserver};
use crate::handoff::{KeyframeRequester, MediaHandoff, SenderReportInfo, TrackInfo};
use crate::harness::{Media, Net};
use crate::local_publisher::{LocalPublisher, LocalTrackSpec};
use crate::signal::{ParticipantInfo, ServerMessage};
use crate::sync::lock;

const VIDEO_SSRC: u32 = 0x5000_0001;
const AUDIO_SSRC: u32 = 0x5000_0002;
/// The compositor's payload types.
const H264_PT: u8 = 102;
const OPUS_PT: u8 = 111;

/// What a hand-off was given: (event, participant or track id).
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(&'static str, String, String)>>,
}

impl MediaHandoff for Recorder {
    fn track_published(&self, t: &TrackInfo, _: KeyframeRequester) {
        lock(&self.seen).push(("published", t.participant_id.clone(), t.track_id.clone()));
    }
    fn track_unpublished(&self, t: &TrackInfo) {
        lock(&self.seen).push(("unpublished", t.participant_id.clone(), t.track_id.clone()));
    }
    fn rtp(&self, track_id: &str, _: &[u8]) {
        lock(&self.seen).push(("rtp", String::new(), track_id.to_owned()));
    }
    fn sender_report(&self, track_id: &str, _: &SenderReportInfo) {
        lock(&self.seen).push(("sr", String::new(), track_id.to_owned()));
    }
}

impl Recorder {
    /// Waits (on the wall clock: the hand-off has its own thread) for `event` of `track`.
    fn wait_for(&self, event: &str, track: &str) {
        let until = Instant::now() + Duration::from_secs(5);
        while !lock(&self.seen).iter().any(|(e, _, t)| *e == event && t == track) {
            assert!(Instant::now() < until, "the hand-off never got {event} of {track}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Whatever it got about `participant` or any of `tracks`.
    fn about(&self, participant: &str, tracks: &[String]) -> Vec<(&'static str, String, String)> {
        lock(&self.seen).iter().filter(|(_, p, t)| p == participant || tracks.contains(t)).cloned().collect()
    }
}

/// Names of who joined and left, as the room observer (the webhooks) heard.
#[derive(Default)]
struct Joins(Mutex<(Vec<String>, Vec<String>)>);

impl RoomObserver for Joins {
    fn participant_joined(&self, p: &ParticipantEvent) {
        lock(&self.0).0.push(p.name.clone());
    }
    fn participant_left(&self, p: &ParticipantEvent) {
        lock(&self.0).1.push(p.name.clone());
    }
}

/// A serialized RTP packet of the program's.
fn packet(ssrc: u32, pt: u8, seq: u16, ts: u32, payload: Vec<u8>) -> (Vec<u8>, Bytes) {
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.payload_type = pt;
    p.header.ssrc = ssrc;
    p.header.sequence_number = seq;
    p.header.timestamp = ts;
    p.header.marker = true;
    p.payload = Bytes::from(payload);
    (p.marshal().expect("an RTP packet").to_vec(), p.payload)
}

/// Frame `n` of the program's video, one single-NAL-unit packet: an IDR slice (NAL type 5)
/// or a non-IDR one (type 1), numbered.
fn h264_frame(n: u16, idr: bool) -> (Vec<u8>, Bytes) {
    let mut nal = vec![if idr { 0x65 } else { 0x41 }, 0x9a];
    nal.extend_from_slice(&n.to_be_bytes());
    nal.resize(400, 0xab);
    packet(VIDEO_SSRC, H264_PT, 1000u16.wrapping_add(n), u32::from(n) * 3000, nal)
}

/// Packet `n` of the program's Opus audio (20 ms), numbered, as loud as can be by its RFC 6464
/// level (extension id 1, as browsers number it): the program is no speaker all the same.
fn opus_packet(n: u16) -> (Vec<u8>, Bytes) {
    let mut payload = vec![0xfc];
    payload.extend_from_slice(&n.to_be_bytes());
    payload.resize(80, 0x11);
    let mut p = rtp::Packet::default();
    p.header.version = 2;
    p.header.payload_type = OPUS_PT;
    p.header.ssrc = AUDIO_SSRC;
    p.header.sequence_number = 7000u16.wrapping_add(n);
    p.header.timestamp = u32::from(n) * 960;
    p.header.extension = true;
    p.header.extension_profile = 0xbede;
    p.header.set_extension(1, Bytes::from_static(&[0x80])).expect("an audio level");
    p.payload = Bytes::from(payload);
    (p.marshal().expect("an RTP packet").to_vec(), p.payload)
}

/// The program (high-profile H.264 as x264 makes it, and Opus), its keyframe requests counted.
fn program(net: &Net, fmtp: &str) -> (LocalPublisher, Arc<AtomicUsize>) {
    let tracks = vec![LocalTrackSpec::h264(fmtp, H264_PT, VIDEO_SSRC), LocalTrackSpec::opus(OPUS_PT, AUDIO_SSRC)];
    let program = net.sfu.publish_local(&net.room, "program", "Program", tracks).expect("the program publishes");
    let keyframes = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&keyframes);
    program.on_keyframe_request(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    (program, keyframes)
}

/// The participants a client heard join.
fn joined(net: &Net, c: crate::harness::ClientId) -> Vec<ParticipantInfo> {
    net[c].messages_of(|m| match m {
        ServerMessage::ParticipantJoined { participant } => Some(participant.clone()),
        _ => None,
    })
}

#[tokio::test]
async fn the_program_reaches_who_subscribes_to_it_and_never_the_handoff_or_the_webhooks() {
    let handoff = Arc::new(Recorder::default());
    let mut net = Net::with_handoff(SfuConfig::default(), Some(Arc::clone(&handoff) as Arc<dyn MediaHandoff>));
    let joins = Arc::new(Joins::default());
    net.sfu.set_room_observer(Arc::clone(&joins) as Arc<dyn RoomObserver>);
    let bob = net.join("bob").await;
    let alice = net.join("alice").await;
    net.publish(alice, vec![Media::camera("cam")]).await;
    net.until_published(alice, &["cam"]).await;
    let cam = net.track_id(alice, "cam");
    handoff.wait_for("published", &cam);

    let (program, keyframes) = program(&net, "packetization-mode=1;profile-level-id=640028;level-asymmetry-allowed=1");
    net.settle().await;
    let id = program.participant_id().to_owned();
    let (video, audio) = (program.track_ids()[0].clone(), program.track_ids()[1].clone());

    // Bob hears of it as of anyone: it joins, with its identity, and publishes two tracks.
    let heard: Vec<ParticipantInfo> = joined(&net, bob).into_iter().filter(|p| p.id == id).collect();
    assert_eq!(heard.len(), 1);
    assert_eq!((heard[0].identity.as_deref(), heard[0].name.as_str()), (Some("program"), "Program"));
    assert!(joined(&net, bob).iter().filter(|p| p.id != id).all(|p| p.identity.is_none()), "clients' stay private");
    let published: Vec<(String, String)> = net[bob].messages_of(|m| match m {
        ServerMessage::TrackPublished { track } if track.participant_id == id => {
            Some((track.track_id.clone(), track.mime_type.clone()))
        }
        _ => None,
    });
    assert_eq!(published, [(video.clone(), "video/H264".to_owned()), (audio.clone(), "audio/opus".to_owned())]);
    // Unasked, nobody gets it (it carries everyone's voices, theirs too); nor do webhooks.
    assert!(!offers_track(&last_offer(&net[bob]), &video));
    assert_eq!(*lock(&joins.0), (vec!["bob".to_owned(), "alice".to_owned()], vec![]));

    // Bob subscribes to it (MCU mode: the program, and alice's camera still). His connection
    // negotiated video with alice's VP8: the program's H.264 is offered all the same.
    let p = Arc::clone(&net[bob].participant);
    p.set_subscriptions(Some(vec![id.clone(), net[alice].participant.id.clone()])).await.expect("subscribe");
    // (Before his connection is up, what the SFU writes into it goes nowhere.)
    net.run_until("bob's subscribe connection", Duration::from_secs(2), |n| n[bob].connected()).await;
    let offer = last_offer(&net[bob]);
    assert!(offers_track(&offer, &video) && offers_track(&offer, &audio), "{offer}");
    let asked = keyframes.load(Ordering::SeqCst);
    assert!(asked >= 1, "a new subscriber's video starts at a keyframe: one was asked for");

    // The encoder's frames before its keyframe are not forwarded; from it, every packet is.
    let (mut sent_video, mut sent_audio) = (Vec::new(), Vec::new());
    for n in 0..60u16 {
        let (a, payload) = opus_packet(n);
        program.push_rtp(1, &a);
        sent_audio.push(payload);
        if n % 2 == 0 {
            let frame = n / 2;
            let (v, payload) = h264_frame(frame, frame == 3);
            program.push_rtp(0, &v);
            if frame >= 3 {
                sent_video.push(payload);
            }
        }
        net.run_for(Duration::from_millis(20)).await;
    }
    let got_video: Vec<Bytes> = net[bob].received_on(&video).iter().map(|p| p.payload.clone()).collect();
    let got_audio: Vec<Bytes> = net[bob].received_on(&audio).iter().map(|p| p.payload.clone()).collect();
    // Compared by number first (a failure prints which), then whole.
    let numbers =
        |ps: &[Bytes], at: usize| ps.iter().map(|p| u16::from_be_bytes([p[at], p[at + 1]])).collect::<Vec<_>>();
    assert_eq!(numbers(&got_video, 2), numbers(&sent_video, 2), "the H.264 frames from the keyframe on, in order");
    assert_eq!(numbers(&got_audio, 1), numbers(&sent_audio, 1), "every Opus packet, in order");
    assert!(got_video == sent_video && got_audio == sent_audio, "payloads intact");
    let downs = p.down_tracks();
    for (track, pt) in [(&video, 123), (&audio, 111)] {
        let packets = net[bob].received_on(track);
        let d = downs.iter().find(|(t, _)| t == track).map(|(_, d)| Arc::clone(d)).expect("bob's down track");
        // High at level 4.0 goes out as the registered high profile (payload type 123).
        assert!(packets.iter().all(|r| r.header.payload_type == pt && r.header.ssrc == d.ssrc), "{track}");
        assert!(packets.windows(2).all(|w| w[1].header.sequence_number == w[0].header.sequence_number.wrapping_add(1)));
    }

    assert_eq!(net.sfu.room(&net.room).active_speaker(), None, "everyone's voices are nobody's");

    // Bob's PLI reaches the encoder; a second within 500 ms does not (rate limited).
    net.run_for(Duration::from_millis(600)).await;
    let before = keyframes.load(Ordering::SeqCst);
    net.send_pli(bob, &video).await;
    assert_eq!(keyframes.load(Ordering::SeqCst), before + 1, "the PLI reached the callback");
    net.send_pli(bob, &video).await;
    assert_eq!(keyframes.load(Ordering::SeqCst), before + 1, "one request per 500 ms");
    net.run_for(Duration::from_millis(600)).await;
    net.send_pli(bob, &video).await;
    assert_eq!(keyframes.load(Ordering::SeqCst), before + 2);

    // Packets that are not the track's are refused.
    program.push_rtp(2, &opus_packet(99).0);
    program.push_rtp(0, &opus_packet(99).0);
    program.push_rtp(1, &[0x80]);
    assert_eq!(program.refused(), 3);

    // The program leaves as it is dropped: announced like anyone's leaving.
    drop(program);
    net.run_for(Duration::from_millis(100)).await;
    let mut unpublished = net[bob].messages_of(|m| match m {
        ServerMessage::TrackUnpublished { track_id, participant_id } if *participant_id == id => Some(track_id.clone()),
        _ => None,
    });
    unpublished.sort();
    let mut tracks = vec![video.clone(), audio.clone()];
    tracks.sort();
    assert_eq!(unpublished, tracks);
    assert!(net[bob].messages.contains(&ServerMessage::ParticipantLeft { participant_id: id.clone() }));
    assert!(!offers_track(&last_offer(&net[bob]), &video), "renegotiated away");
    assert_eq!(net.sfu.room(&net.room).participants().len(), 2);

    // The hand-off never heard of it: alice's leaving comes after everything the program did,
    // in the hand-off's one queue.
    net.leave(alice).await;
    handoff.wait_for("unpublished", &cam);
    assert_eq!(handoff.about(&id, &tracks), [], "nothing of the program reached the hand-off");
    assert_eq!(*lock(&joins.0), (vec!["bob".to_owned(), "alice".to_owned()], vec!["alice".to_owned()]));
}

#[tokio::test]
async fn constrained_baseline_goes_out_as_such_and_the_program_takes_no_clients_place() {
    let mut net = Net::with_config(SfuConfig { max_participants: 1, ..SfuConfig::default() });
    let bob = net.join("bob").await;
    // x264's constrained baseline (`42c0..`) is offered as the browsers' (`42e01f`, type 125).
    let (program, _) = program(&net, "packetization-mode=1;profile-level-id=42c01f");
    let video = program.track_ids()[0].clone();
    let p = Arc::clone(&net[bob].participant);
    p.set_subscriptions(Some(vec![program.participant_id().to_owned()])).await.expect("subscribe");
    net.run_until("bob's subscribe connection", Duration::from_secs(2), |n| n[bob].connected()).await;
    for frame in 0..10u16 {
        program.push_rtp(0, &h264_frame(frame, frame == 0).0);
        net.run_for(Duration::from_millis(33)).await;
    }
    let got = net[bob].received_on(&video);
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|r| r.header.payload_type == 125));

    // The room holds one client: the program is not counted against it, nor refused by it.
    let room = net.sfu.room(&net.room);
    assert!(room.join_as("carol".into(), None, None).is_err(), "one client is the limit");
    assert_eq!(room.participants().len(), 2);
    program.leave().await;
    assert_eq!(room.participants().len(), 1);
}

#[tokio::test]
async fn what_the_sfu_cannot_forward_is_refused_before_joining() {
    let net = Net::new();
    let publish = |tracks: Vec<LocalTrackSpec>| net.sfu.publish_local(&net.room, "program", "Program", tracks);
    let h264 = |fmtp: &str| LocalTrackSpec::h264(fmtp, H264_PT, VIDEO_SSRC);
    let vp9 = LocalTrackSpec { mime_type: "video/VP9".into(), ..h264("") };
    let opus_as_camera = LocalTrackSpec { source: crate::TrackSource::Camera, ..LocalTrackSpec::opus(OPUS_PT, 1) };
    let high10 = h264("packetization-mode=1;profile-level-id=6e0028");
    for (what, tracks) in [
        ("no track", vec![]),
        ("VP9", vec![vp9]),
        ("audio as a camera", vec![opus_as_camera]),
        ("high 10", vec![LocalTrackSpec::opus(OPUS_PT, 1), high10]),
    ] {
        let e = publish(tracks).expect_err(what);
        assert_eq!(e.code(), "bad_request", "{what}: {e}");
    }
    assert!(net.sfu.get_room(&net.room).is_none(), "nobody joined");
}

#[test]
fn a_local_publisher_is_pushed_to_from_any_thread() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<LocalPublisher>();
}

#[test]
fn a_local_publisher_needs_the_runtime() {
    let sfu = crate::Sfu::new(SfuConfig::default(), None);
    let e = sfu
        .publish_local("room", "program", "Program", vec![LocalTrackSpec::opus(OPUS_PT, 1)])
        .expect_err("no runtime");
    assert_eq!(e.code(), "internal");
}
