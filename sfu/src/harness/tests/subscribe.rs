//! Subscribing: each change of what a participant receives is a new subscribe offer, one at a
//! time (a change while an offer is out is offered after its answer), and `subscribe` picks
//! whose tracks come.

use std::time::Duration;

use super::{last_offer, offers_track};
use crate::harness::{ClientId, Media, Net};

/// `who` publishes a camera; returns its server track id once the SFU has it.
async fn camera(net: &mut Net, who: ClientId) -> String {
    net.publish(who, vec![Media::camera("cam")]).await;
    net.until_published(who, &["cam"]).await;
    net.track_id(who, "cam")
}

#[tokio::test]
async fn a_new_publisher_is_offered_to_the_subscribers_and_its_media_follows() {
    let mut net = Net::new();
    let bob = net.join("bob").await;
    let alice = net.join("alice").await;
    let a = camera(&mut net, alice).await;
    assert_eq!(net[bob].subscribe_offers(), 1);
    let carol = net.join("carol").await;
    let c = camera(&mut net, carol).await;
    net.run_for(Duration::from_secs(1)).await;

    assert_eq!(net[bob].subscribe_offers(), 2, "one offer per change");
    let offer = last_offer(&net[bob]);
    assert!(offers_track(&offer, &a) && offers_track(&offer, &c), "{offer}");
    assert!(!net[bob].received_on(&a).is_empty() && !net[bob].received_on(&c).is_empty());
    // Carol, joining after alice published, had alice's camera in her first offer.
    assert!(offers_track(&last_offer(&net[carol]), &a));
    assert!(!offers_track(&last_offer(&net[carol]), &c), "not her own");
}

#[tokio::test]
async fn a_change_while_an_offer_is_out_is_offered_after_the_answer() {
    let mut net = Net::new();
    let bob = net.join("bob").await;
    net[bob].auto_answer = false;
    let alice = net.join("alice").await;
    let a = camera(&mut net, alice).await;
    assert_eq!((net[bob].subscribe_offers(), net[bob].held_offers().len()), (1, 1));

    // Carol publishes while bob has not answered: no second offer meanwhile.
    let carol = net.join("carol").await;
    net.publish(carol, vec![Media::camera("cam")]).await;
    net.run_for(Duration::from_secs(1)).await;
    let c = net.track_id(carol, "cam");
    assert_eq!(net[bob].subscribe_offers(), 1, "one offer out at a time");
    assert!(!offers_track(&last_offer(&net[bob]), &c));

    // His answer releases the change that waited.
    net[bob].auto_answer = true;
    net.answer_held(bob).await;
    net.run_for(Duration::from_millis(500)).await;
    assert_eq!(net[bob].subscribe_offers(), 2);
    let offer = last_offer(&net[bob]);
    assert!(offers_track(&offer, &a) && offers_track(&offer, &c), "{offer}");
    assert!(!net[bob].received_on(&c).is_empty(), "carol's camera reaches bob after the second answer");
}

#[tokio::test]
async fn subscribing_to_one_participant_leaves_out_the_others() {
    let mut net = Net::new();
    let bob = net.join("bob").await;
    let alice = net.join("alice").await;
    let carol = net.join("carol").await;
    let a = camera(&mut net, alice).await;
    let c = camera(&mut net, carol).await;
    net.run_for(Duration::from_secs(1)).await;
    assert!(!net[bob].received_on(&c).is_empty());

    let p = net[bob].participant.clone();
    p.set_subscriptions(Some(vec![net[alice].participant.id.clone()])).await.expect("subscribe to alice");
    net.run_for(Duration::from_millis(200)).await;
    let offer = last_offer(&net[bob]);
    assert!(offers_track(&offer, &a) && !offers_track(&offer, &c), "{offer}");
    let (from_a, from_c) = (net[bob].received_on(&a).len(), net[bob].received_on(&c).len());
    net.run_for(Duration::from_secs(1)).await;
    assert!(net[bob].received_on(&a).len() >= from_a + 25, "alice's camera goes on");
    assert_eq!(net[bob].received_on(&c).len(), from_c, "carol's stopped");
    assert!(net.track(carol, "cam").expect("carol's camera").forwarder.downs().iter().all(|d| d.subscriber_id != p.id));

    // `null`: everyone again.
    p.set_subscriptions(None).await.expect("subscribe to all");
    net.run_for(Duration::from_secs(1)).await;
    assert!(offers_track(&last_offer(&net[bob]), &c));
    assert!(net[bob].received_on(&c).len() > from_c + 10, "carol's camera is back");
}
