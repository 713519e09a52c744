//! Simulcast: a publisher sends three layers; what a subscriber receives follows its bitrate
//! cap and its requested video size, switching layers only at a keyframe of the layer switched
//! to, in one continuous stream.

use std::time::Duration;

use crate::harness::{ClientId, Media, Net, is_keyframe, layer_of};

/// Packets of each layer bob received from `from` on, and the layer switches among them (at
/// which packet, to which layer, whether it was a keyframe).
fn since(net: &Net, bob: ClientId, track: &str, from: usize) -> ([usize; 3], Vec<(usize, bool)>) {
    let got = net[bob].received_on(track);
    let mut counts = [0; 3];
    let mut switches = Vec::new();
    let mut last = got.get(from.wrapping_sub(1)).and_then(|p| layer_of(&p.payload));
    for p in &got[from..] {
        let l = layer_of(&p.payload).expect("a layer");
        counts[l] += 1;
        if last != Some(l) {
            switches.push((l, is_keyframe(&p.payload)));
            last = Some(l);
        }
    }
    (counts, switches)
}

#[tokio::test]
async fn layers_follow_the_bitrate_cap_and_the_video_size_switching_at_keyframes() {
    let mut net = Net::new();
    let alice = net.join("alice").await;
    let bob = net.join("bob").await;
    net.publish(alice, vec![Media::simulcast("cam")]).await;
    net.until_published(alice, &["cam"]).await;
    let cam = net.track_id(alice, "cam");
    let track = net.track(alice, "cam").expect("alice's camera");
    assert_eq!(track.forwarder.layer_count(), 3, "three RIDs, three layers");
    let p = net[bob].participant.clone();
    let down = || p.down_tracks().into_iter().find(|(t, _)| *t == cam).map(|(_, d)| d).expect("bob's down track");

    // No limit: the top layer.
    net.run_for(Duration::from_secs(2)).await;
    assert_eq!(down().current_layer(), Some(2));
    let mut at = net[bob].received_on(&cam).len();
    net.run_for(Duration::from_secs(1)).await;
    let (counts, switches) = since(&net, bob, &cam, at);
    assert_eq!((counts[0], counts[1], switches.len()), (0, 0, 0), "{counts:?}");
    assert!(counts[2] >= 28, "{counts:?}");

    // A cap leaving 200 kbit/s for video (64 kbit/s are kept for audio): the middle layer
    // (about 123 kbit/s; the top one needs 267).
    at = net[bob].received_on(&cam).len();
    p.set_max_bitrate(264_000);
    net.run_for(Duration::from_secs(2)).await;
    let (counts, switches) = since(&net, bob, &cam, at);
    assert_eq!(switches, [(1, true)], "one switch, to the middle layer, at its keyframe ({counts:?})");
    assert_eq!(down().current_layer(), Some(1));
    assert!(counts[1] >= 50, "{counts:?}");

    // 180 lines wanted: the lowest layer is tall enough.
    at = net[bob].received_on(&cam).len();
    p.set_video_size(&cam, Some(180));
    net.run_for(Duration::from_secs(2)).await;
    let (counts, switches) = since(&net, bob, &cam, at);
    assert_eq!(switches, [(0, true)], "{counts:?}");
    assert_eq!(down().current_layer(), Some(0));

    // Neither: back to the top.
    at = net[bob].received_on(&cam).len();
    p.set_video_size(&cam, None);
    p.set_max_bitrate(0);
    net.run_for(Duration::from_secs(2)).await;
    let (counts, switches) = since(&net, bob, &cam, at);
    assert_eq!(switches, [(2, true)], "{counts:?}");

    // Through all of it one stream: one SSRC, no gap in the sequence numbers.
    let got = net[bob].received_on(&cam);
    assert!(got.iter().all(|p| p.header.ssrc == down().ssrc));
    for w in got.windows(2) {
        assert_eq!(w[1].header.sequence_number, w[0].header.sequence_number.wrapping_add(1));
        assert!(w[1].header.timestamp.wrapping_sub(w[0].header.timestamp) < 0x8000_0000, "timestamps go forward");
    }
    // The publisher was asked for the keyframes the switches waited for.
    for layer in 0..3 {
        let ssrc = net[alice].ssrc_of("cam", layer).expect("layer SSRC");
        assert!(net[alice].keyframe_requests.contains(&ssrc), "a keyframe of layer {layer} was asked for");
    }
}
