//! Joining: the newcomer hears who is here, the others hear of the newcomer.

use crate::config::SfuConfig;
use crate::harness::{Media, Net};
use crate::signal::ServerMessage;

#[tokio::test]
async fn a_newcomer_is_told_who_is_here_and_the_others_of_the_newcomer() {
    let mut net = Net::new();
    let alice = net.join("alice").await;
    net.publish(alice, vec![Media::audio("mic")]).await;
    net.until_published(alice, &["mic"]).await;
    let mic = net.track_id(alice, "mic");
    let bob = net.join("bob").await;

    let ServerMessage::Joined { participant_id, room, participants, .. } = &net[bob].messages[0] else {
        panic!("bob's first message is not joined: {:?}", net[bob].messages[0]);
    };
    assert_eq!((participant_id, room.as_str()), (&net[bob].participant.id, "room"));
    assert_eq!(participants.len(), 1, "{participants:?}");
    assert_eq!(
        (participants[0].id.as_str(), participants[0].name.as_str()),
        (net[alice].participant.id.as_str(), "alice")
    );
    let tracks: Vec<&str> = participants[0].tracks.iter().map(|t| t.track_id.as_str()).collect();
    assert_eq!(tracks, [mic.as_str()], "the joined message lists what alice publishes");

    let joined: Vec<_> = net[alice].messages_of(|m| match m {
        ServerMessage::ParticipantJoined { participant } => Some((participant.id.clone(), participant.name.clone())),
        _ => None,
    });
    assert_eq!(joined, [(net[bob].participant.id.clone(), "bob".to_owned())]);
    assert!(
        !net[bob].messages.iter().any(|m| matches!(m, ServerMessage::ParticipantJoined { .. })),
        "nobody is announced to themselves"
    );
    // Bob, joining a room with a track, is offered it at once.
    assert_eq!(net[bob].subscribe_offers(), 1);
    assert!(super::offers_track(&super::last_offer(&net[bob]), &mic));
}

#[tokio::test]
async fn a_full_room_refuses_the_next_participant() {
    let mut net = Net::with_config(SfuConfig { max_participants: 2, ..Default::default() });
    net.join("alice").await;
    net.join("bob").await;
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let third = net.sfu.room(&net.room).join_as("carol".into(), None, Some(tx));
    assert!(matches!(third, Err(crate::Error::Conflict(_))), "room is full");
    assert_eq!(net.sfu.room(&net.room).participants().len(), 2);
}
