//! Publishing: the room hears of the tracks, and a subscriber receives the publisher's packets
//! decrypted, in its own SSRC and payload type, with continuous sequence numbers.

use std::time::Duration;

use crate::harness::{Media, Net, is_keyframe, layer_of};
use crate::signal::ServerMessage;

#[tokio::test]
async fn published_tracks_reach_the_others_rewritten_for_each_subscriber() {
    let mut net = Net::new();
    let alice = net.join("alice").await;
    let bob = net.join("bob").await;
    net.publish(alice, vec![Media::audio("mic"), Media::camera("cam")]).await;
    net.until_published(alice, &["mic", "cam"]).await;
    let (mic, cam) = (net.track_id(alice, "mic"), net.track_id(alice, "cam"));

    // Everyone hears of both tracks, the publisher too (their server ids are what `mute` takes).
    for c in [alice, bob] {
        let mut heard: Vec<(String, String)> = net[c].messages_of(|m| match m {
            ServerMessage::TrackPublished { track } => Some((track.track_id.clone(), track.mime_type.clone())),
            _ => None,
        });
        heard.sort();
        let mut want = vec![(mic.clone(), "audio/opus".to_owned()), (cam.clone(), "video/VP8".to_owned())];
        want.sort();
        assert_eq!(heard, want, "{}", net[c].name);
    }

    // From bob's subscribe connection being up, he gets every packet the SFU forwards him
    // (before, the SFU's writes into his connection go nowhere).
    net.run_until("bob's subscribe connection", Duration::from_secs(2), |n| n[bob].connected()).await;
    let downs = net[bob].participant.down_tracks();
    let down = |id: &str| downs.iter().find(|(t, _)| t == id).map(|(_, d)| d.clone()).expect("bob's down track");
    let before: Vec<(usize, u64)> =
        [&mic, &cam].iter().map(|t| (net[bob].received_on(t).len(), down(t).forwarded())).collect();
    net.run_for(Duration::from_secs(1)).await;
    let offer = super::last_offer(&net[bob]);
    assert!(super::offers_track(&offer, &mic) && super::offers_track(&offer, &cam), "{offer}");
    for (i, (track, media, codec, publisher_pt)) in
        [(&mic, "mic", "opus/48000", 109), (&cam, "cam", "VP8/90000", 120)].into_iter().enumerate()
    {
        let got = net[bob].received_on(track);
        let d = down(track);
        assert!(got.len() - before[i].0 >= 25, "{media}: {} packets in a second", got.len() - before[i].0);
        assert_eq!(
            (got.len() - before[i].0) as u64,
            d.forwarded() - before[i].1,
            "{media}: bob got every packet the SFU forwarded"
        );
        let sent_ssrc = net[alice].ssrc_of(media, 0).expect("alice's SSRC");
        let bob_pt = super::payload_type(&offer, codec).expect("payload type in bob's offer");
        assert_ne!(bob_pt, publisher_pt, "the test publishes on payload types of its own");
        for p in &got {
            assert_eq!(p.header.ssrc, d.ssrc, "{media}: the subscriber's SSRC");
            assert_ne!(p.header.ssrc, sent_ssrc);
            assert_eq!(p.header.payload_type, bob_pt, "{media}: the subscriber's payload type");
        }
        for w in got.windows(2) {
            assert_eq!(w[1].header.sequence_number, w[0].header.sequence_number.wrapping_add(1), "{media}: no gap");
        }
    }
    // The SFU starts bob's video at a keyframe; the one it asked for when he subscribed left
    // before his connection was up, so bob asked for another (as a browser does), which came.
    let video = net[bob].received_on(&cam);
    assert!(video.iter().any(|p| is_keyframe(&p.payload)), "bob got a keyframe");
    assert!(net[bob].plis_sent >= 1 && !net[alice].keyframe_requests.is_empty());
    assert!(video.iter().all(|p| p.payload.len() == 500 && layer_of(&p.payload) == Some(0)));
    assert!(net[alice].received.is_empty(), "nobody receives their own tracks");
}
