//! Leaving: the others are told, the leaver's tracks are unpublished and renegotiated away,
//! its subscriptions end, and the last one out takes the room with them.

use std::time::Duration;

use super::{last_offer, offers_track};
use crate::harness::{Media, Net};
use crate::signal::ServerMessage;

#[tokio::test]
async fn a_leaver_is_announced_unpublished_and_unsubscribed() {
    let mut net = Net::new();
    let alice = net.join("alice").await;
    let bob = net.join("bob").await;
    net.publish(alice, vec![Media::audio("mic"), Media::camera("cam")]).await;
    net.publish(bob, vec![Media::audio("mic"), Media::camera("cam")]).await;
    net.until_published(alice, &["mic", "cam"]).await;
    net.until_published(bob, &["mic", "cam"]).await;
    net.run_for(Duration::from_secs(1)).await;
    let bobs: Vec<String> = ["mic", "cam"].iter().map(|m| net.track_id(bob, m)).collect();
    let alices: Vec<String> = ["mic", "cam"].iter().map(|m| net.track_id(alice, m)).collect();
    assert!(bobs.iter().all(|t| !net[alice].received_on(t).is_empty()));
    assert!(alices.iter().all(|t| !net[bob].received_on(t).is_empty()));
    let offers = net[alice].subscribe_offers();
    let bob_id = net[bob].participant.id.clone();

    net.leave(bob).await;
    let heard_by_bob: Vec<usize> = alices.iter().map(|t| net[bob].received_on(t).len()).collect();
    net.run_for(Duration::from_secs(1)).await;

    let left = net[alice].messages_of(|m| match m {
        ServerMessage::ParticipantLeft { participant_id } => Some(participant_id.clone()),
        _ => None,
    });
    assert_eq!(left, [bob_id.as_str()]);
    let mut unpublished = net[alice].messages_of(|m| match m {
        ServerMessage::TrackUnpublished { track_id, participant_id } if *participant_id == bob_id => {
            Some(track_id.clone())
        }
        _ => None,
    });
    unpublished.sort();
    let mut want = bobs.clone();
    want.sort();
    assert_eq!(unpublished, want);
    // Alice's subscribe connection is renegotiated without them.
    // (One offer per track unpublished: the second waits for the answer to the first.)
    assert_eq!(net[alice].subscribe_offers(), offers + 2);
    let offer = last_offer(&net[alice]);
    assert!(bobs.iter().all(|t| !offers_track(&offer, t)), "{offer}");
    assert!(net[alice].participant.down_tracks().is_empty());
    // Bob's subscriptions are gone: alice's tracks forward to nobody, and nothing more reached him.
    for m in ["mic", "cam"] {
        assert!(net.track(alice, m).expect("alice's track").forwarder.downs().is_empty(), "{m}");
    }
    let now_heard: Vec<usize> = alices.iter().map(|t| net[bob].received_on(t).len()).collect();
    assert_eq!(now_heard, heard_by_bob);
    let room = net.sfu.room(&net.room);
    assert_eq!(room.participants().len(), 1);
    assert!(net[bob].participant.is_closed() && net[bob].participant.tracks().is_empty());

    // The last one out: the room is gone.
    net.leave(alice).await;
    assert!(net.sfu.get_room(&net.room).is_none());
}
