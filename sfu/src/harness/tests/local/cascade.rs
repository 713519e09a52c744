//! The program on another node of the room: its node tells the others it is made in process,
//! and there too it is handed to no program and subscribed to only on request. (Each SFU binds
//! a relay socket on loopback, as the cascade needs one; no media crosses it here.)

use std::sync::Arc;

use super::{AUDIO_SSRC, H264_PT, OPUS_PT, Recorder, VIDEO_SSRC, joined};
use crate::config::SfuConfig;
use crate::handoff::MediaHandoff;
use crate::harness::tests::{last_offer, offers_track};
use crate::harness::{Media, Net};
use crate::local_publisher::LocalTrackSpec;

#[tokio::test]
async fn on_another_node_the_program_is_no_program_either() {
    let loopback = "127.0.0.1:0".parse().expect("an address");
    let mut home = Net::new();
    home.sfu.enable_cascade(loopback).expect("home's relay socket");
    let _bob = home.join("bob").await;
    let tracks = vec![
        LocalTrackSpec::h264("packetization-mode=1;profile-level-id=42c01f", H264_PT, VIDEO_SSRC),
        LocalTrackSpec::opus(OPUS_PT, AUDIO_SSRC),
    ];
    let program = home.sfu.publish_local(&home.room, "program", "Program", tracks).expect("the program publishes");
    let id = program.participant_id().to_owned();

    // Home's part of the room: bob, and the program marked as made in process, its video
    // in the registered codec the other nodes' subscribers negotiate.
    let state = home.sfu.local_room_state(&home.room);
    assert_eq!(state.participants.len(), 2);
    let p = state.participants.iter().find(|p| p.id == id).expect("the program in home's part");
    assert!(p.in_process && p.identity.as_deref() == Some("program"));
    let mut fmtps: Vec<&str> = p.tracks.iter().map(|t| t.fmtp.as_str()).collect();
    fmtps.sort_unstable();
    assert_eq!(
        fmtps,
        ["level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", "minptime=10;useinbandfec=1"]
    );
    let json = serde_json::to_string(&state).expect("JSON");
    assert_eq!(json.matches("\"in_process\":true").count(), 1, "a client's participant says nothing: {json}");

    // Another node applies it: carol there hears of the program, not offered it unasked,
    // and that node's hand-off never hears of it.
    let handoff = Arc::new(Recorder::default());
    let mut other = Net::with_handoff(SfuConfig::default(), Some(Arc::clone(&handoff) as Arc<dyn MediaHandoff>));
    other.sfu.enable_cascade(loopback).expect("the other node's relay socket");
    let carol = other.join("carol").await;
    other.sfu.apply_remote_room_state(&other.room, "home", state);
    other.settle().await;
    let heard = joined(&other, carol);
    let program_there = heard.iter().find(|p| p.id == id).expect("carol heard the program join");
    assert_eq!(program_there.identity.as_deref(), Some("program"));
    let room = other.sfu.room(&other.room);
    let remote = room.participants().into_iter().find(|p| p.id == id).expect("the program there");
    assert!(remote.is_in_process() && remote.node() == Some("home"));
    let video = program.track_ids()[0].clone();

    other.publish(carol, vec![Media::camera("cam")]).await;
    other.until_published(carol, &["cam"]).await;
    let cam = other.track_id(carol, "cam");
    handoff.wait_for("published", &cam);
    assert_eq!(handoff.about(&id, &program.track_ids()), [], "the other node's hand-off never heard of it");
    assert!(other[carol].subscribe_offers() == 0 || !offers_track(&last_offer(&other[carol]), &video));

    // Named, it is offered there too.
    let c = Arc::clone(&other[carol].participant);
    c.set_subscriptions(Some(vec![id.clone()])).await.expect("subscribe");
    other.settle().await;
    assert!(offers_track(&last_offer(&other[carol]), &video));
}
