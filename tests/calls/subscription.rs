//! Selective subscription: a participant that asks for one other participant's tracks
//! receives only those, then everyone's again, then nobody's.

use std::collections::HashSet;
use std::time::Duration;

use tessera_testkit::bot::Bot;
use tessera_testkit::cdp::Page;
use tessera_testkit::poll::wait;

use super::{KEY, devtools, frames_of, open, page_stats};
use crate::common::app::App;
use crate::common::{BIN, participants};

/// A participant's published track ids, by source.
fn tracks_of(sfu: &tessera_sfu::Sfu, room: &str, participant: &str) -> Vec<(String, String)> {
    let p = participants(sfu, room).into_iter().find(|p| p.id == participant).expect("participant");
    p.tracks()
        .iter()
        .map(|t| (serde_json::to_value(t.source).unwrap().as_str().unwrap().to_owned(), t.id.clone()))
        .collect()
}

#[test]
fn selective_subscription_receives_only_the_chosen_participant() {
    let app = App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let sfu = app.sfu.clone();
    let mut red = Bot::start(BIN, port, KEY, "sel", "red", &["--color", "#ff0000", "--size", "320x180", "--silent"]);
    let mut blue = Bot::start(BIN, port, KEY, "sel", "blue", &["--color", "#0000ff", "--size", "320x180", "--silent"]);
    let (red_id, blue_id) = (red.participant_id(), blue.participant_id());
    red.wait_for("published", Duration::from_secs(20));
    blue.wait_for("published", Duration::from_secs(20));
    wait("four published tracks", Duration::from_secs(20), || {
        tracks_of(&sfu, "sel", &red_id).len() == 2 && tracks_of(&sfu, "sel", &blue_id).len() == 2
    });
    let video = |id: &str| tracks_of(&sfu, "sel", id).into_iter().find(|t| t.0 == "camera").unwrap().1;
    let (red_video, blue_video) = (video(&red_id), video(&blue_id));
    let red_tracks: HashSet<String> = tracks_of(&sfu, "sel", &red_id).into_iter().map(|t| t.1).collect();

    let viewer = open(port, "sel", "viewer", "&publish=0", &[]);
    let decodes = |track: &str| frames_of(&page_stats(&sfu, "sel", "viewer"), track);
    wait("the viewer decoding both bots", Duration::from_secs(30), || {
        decodes(&red_video) > 20.0 && decodes(&blue_video) > 20.0
    });

    // Only red, please.
    let mut page = devtools(&viewer, "sel");
    page.eval(&format!("tesseraClient.send({{type: 'subscribe', participants: ['{red_id}']}})"));
    let me = participants(&sfu, "sel").into_iter().find(|p| p.name == "viewer").unwrap();
    wait("the SFU to forward only red's tracks", Duration::from_secs(10), || {
        me.down_tracks().into_iter().map(|(id, _)| id).collect::<HashSet<_>>() == red_tracks
    });
    // The renegotiated offer sends only red's tracks (the other m-sections are inactive).
    let sending = |page: &mut Page| -> HashSet<String> {
        let sdp = page.eval("tesseraClient.sub.remoteDescription.sdp").as_str().unwrap().to_owned();
        sdp.split("\r\nm=")
            .skip(1)
            .filter(|m| m.contains("a=sendonly") || m.contains("a=sendrecv"))
            .filter_map(|m| {
                m.lines().find_map(|l| l.strip_prefix("a=msid:")).map(|l| l.split(' ').next().unwrap().to_owned())
            })
            .collect()
    };
    wait("a subscribe offer with red's tracks only", Duration::from_secs(10), || sending(&mut page) == red_tracks);
    std::thread::sleep(Duration::from_secs(1));
    let (red0, blue0) = (decodes(&red_video), decodes(&blue_video));
    std::thread::sleep(Duration::from_secs(3));
    let (red1, blue1) = (decodes(&red_video), decodes(&blue_video));
    eprintln!("filtered: red {red0} -> {red1} frames, blue {blue0} -> {blue1}");
    assert!(red1 - red0 >= 30.0, "red stopped: {red0} -> {red1}");
    assert!(blue1 - blue0 <= 2.0, "blue still decodes: {blue0} -> {blue1}");

    // Everyone again.
    page.eval("tesseraClient.send({type: 'subscribe', participants: null})");
    wait("blue's video again", Duration::from_secs(15), || decodes(&blue_video) >= blue1 + 30.0);
    assert_eq!(me.down_tracks().len(), 4);
    let both: HashSet<String> =
        red_tracks.iter().cloned().chain(tracks_of(&sfu, "sel", &blue_id).into_iter().map(|t| t.1)).collect();
    wait("an offer with everyone's tracks", Duration::from_secs(10), || sending(&mut page) == both);
    // A filter naming nobody in the room receives nothing, without an error.
    page.eval("tesseraClient.send({type: 'subscribe', participants: ['PA_nobody']})");
    wait("nothing forwarded", Duration::from_secs(10), || me.down_tracks().is_empty());
    assert!(page_stats(&sfu, "sel", "viewer")["errors"].as_array().is_some_and(|e| e.is_empty()));
}
