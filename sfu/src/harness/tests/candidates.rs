//! Trickled candidates: `add_candidate` takes a publisher's candidate sent after its offer (none
//! in the offer) and the end of candidates, and the call goes on; one before any offer is
//! refused. (The SFU's side of ICE answers checks from any address, so this shows the
//! signalling path, not that the SFU needed the candidate.)

use std::time::Duration;

use crate::harness::{Media, Net};
use crate::signal::{Candidate, Target};

#[tokio::test]
async fn a_publisher_trickling_its_candidate_connects_and_publishes() {
    let mut net = Net::new();
    let alice = net.join("alice").await;
    let bob = net.join("bob").await;

    let early = Candidate {
        candidate: "candidate:1 1 udp 2130706431 10.1.0.1 50000 typ host".into(),
        sdp_mid: None,
        sdp_mline_index: None,
    };
    let refused = net[alice].participant.add_candidate(Target::Publish, early).await;
    assert!(matches!(refused, Err(crate::Error::BadRequest(_))), "{refused:?}");

    net[alice].trickle = true;
    net.publish(alice, vec![Media::audio("mic")]).await;
    net.connect().await;
    net.until_published(alice, &["mic"]).await;
    let mic = net.track_id(alice, "mic");
    net.run_for(Duration::from_secs(1)).await;
    assert!(!net[bob].received_on(&mic).is_empty());
}
