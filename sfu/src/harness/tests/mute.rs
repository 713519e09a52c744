//! Muting: the others are told, a later joiner sees the track muted, and the SFU keeps
//! forwarding what arrives (stopping or silencing the media is the client's part) but counts a
//! muted microphone as silence for the active speaker.

use std::time::Duration;

use crate::harness::{ClientId, Media, Net};
use crate::signal::ServerMessage;

#[tokio::test]
async fn a_muted_track_is_announced_forwarded_and_never_the_active_speaker() {
    let mut net = Net::new();
    let alice = net.join("alice").await;
    let bob = net.join("bob").await;
    net[alice].audio_level = 127;
    net.publish(alice, vec![Media::audio("mic")]).await;
    net.until_published(alice, &["mic"]).await;
    let mic = net.track_id(alice, "mic");
    net.connect().await;

    net[alice].participant.set_muted(&mic, true).expect("mute");
    // Alice talks loudly into her muted microphone.
    net[alice].audio_level = 10;
    let before = net[bob].received_on(&mic).len();
    net.run_for(Duration::from_secs(2)).await;

    assert_eq!(mutes(&net, bob), [(mic.clone(), net[alice].participant.id.clone(), true)]);
    assert!(mutes(&net, alice).is_empty(), "the publisher is not told of its own mute");
    assert!(net.track(alice, "mic").expect("mic").is_muted());
    assert!(net[bob].received_on(&mic).len() >= before + 95, "what arrives is still forwarded");
    assert!(speaker(&net, bob).is_empty(), "muted, alice is silence to the speaker detector");

    // A participant joining now sees the track muted.
    let carol = net.join("carol").await;
    let ServerMessage::Joined { participants, .. } = &net[carol].messages[0] else { panic!("joined first") };
    let listed = participants.iter().flat_map(|p| &p.tracks).find(|t| t.track_id == mic).expect("alice's mic listed");
    assert!(listed.muted);

    // Unmuted, her voice counts.
    net[alice].participant.set_muted(&mic, false).expect("unmute");
    net.run_for(Duration::from_secs(1)).await;
    assert_eq!(mutes(&net, bob).last(), Some(&(mic.clone(), net[alice].participant.id.clone(), false)));
    assert_eq!(speaker(&net, bob), [Some(net[alice].participant.id.clone())]);
    assert_eq!(net.sfu.room(&net.room).active_speaker(), Some(net[alice].participant.id.clone()));
}

/// The mute messages a client got: (track, owner, muted).
fn mutes(net: &Net, c: ClientId) -> Vec<(String, String, bool)> {
    net[c].messages_of(|m| match m {
        ServerMessage::Mute { track_id, participant_id, muted } => {
            Some((track_id.clone(), participant_id.clone(), *muted))
        }
        _ => None,
    })
}

/// The active speaker changes a client was told of.
fn speaker(net: &Net, c: ClientId) -> Vec<Option<String>> {
    net[c].messages_of(|m| match m {
        ServerMessage::ActiveSpeaker { participant_id } => Some(participant_id.clone()),
        _ => None,
    })
}
