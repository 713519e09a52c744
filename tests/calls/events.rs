//! Events reach the others (joined, published, mute from the page's buttons, the active
//! speaker, left), and the active speaker does not flicker between two people talking in turns.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_testkit::chromium::{audio_file, fake_mic};

use super::{KEY, devtools, get, open};
use crate::common::app::App;
use crate::common::observer::Observer;
use crate::common::token;

#[test]
fn events_reach_the_others_mute_from_the_page_and_the_speaker() {
    let app = App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let tone = audio_file(dir.path(), "tone.wav", "sine=f=440:d=5,volume=0.5");

    let mut obs = Observer::join(port, "ev", &token(port, KEY, "ev", "observer"), "observer");
    let alice = open(port, "ev", "alice", "&audio=raw", &[&fake_mic(&tone)]);

    // participant_joined, then track_published for her microphone and camera.
    let joined = obs.wait("participant_joined", Duration::from_secs(30), |m| m["type"] == "participant_joined");
    assert_eq!(joined["participant"]["name"], "alice", "{joined}");
    let alice_id = joined["participant"]["id"].as_str().unwrap().to_owned();
    let published = |m: &Value, source: &str| m["type"] == "track_published" && m["track"]["source"] == source;
    let audio = obs.wait("audio track_published", Duration::from_secs(30), |m| published(m, "audio"));
    let camera = obs.wait("camera track_published", Duration::from_secs(30), |m| published(m, "camera"));
    assert_eq!(
        (audio["track"]["participant_id"].as_str(), audio["track"]["mime_type"].as_str()),
        (Some(alice_id.as_str()), Some("audio/opus"))
    );
    assert_eq!(camera["track"]["mime_type"].as_str().map(str::to_ascii_lowercase).as_deref(), Some("video/vp8"));
    let audio_id = audio["track"]["track_id"].as_str().unwrap().to_owned();
    let camera_id = camera["track"]["track_id"].as_str().unwrap().to_owned();

    // Her steady tone makes her the active speaker, for the others and in the REST API.
    let speaker = obs.wait("active_speaker", Duration::from_secs(20), |m| m["type"] == "active_speaker");
    assert_eq!(speaker["participant_id"].as_str(), Some(alice_id.as_str()));
    let listed = |port| {
        let room = get(port, "/v1/rooms/ev");
        room["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "alice")
            .cloned()
            .expect("alice is listed")
    };
    assert_eq!(listed(port)["speaking"], true);

    // She mutes her microphone, then her camera, with the page's buttons.
    let mut page = devtools(&alice, "ev");
    page.wait_for(
        "!document.getElementById('mute-audio').disabled && tesseraClient.tracks.filter((t) => t.participant_id === tesseraClient.me).length === 2",
        Duration::from_secs(20),
    );
    let muted = |m: &Value, id: &str, on: bool| m["type"] == "mute" && m["track_id"] == id && m["muted"] == on;
    page.click("#mute-audio");
    let m = obs.wait("mute of the microphone", Duration::from_secs(10), |m| muted(m, &audio_id, true));
    assert_eq!(m["participant_id"].as_str(), Some(alice_id.as_str()));
    page.click("#mute-video");
    obs.wait("mute of the camera", Duration::from_secs(10), |m| muted(m, &camera_id, true));
    let track_muted = |p: &Value, id: &str| {
        p["tracks"].as_array().unwrap().iter().find(|t| t["id"] == id).map(|t| t["muted"].clone())
    };
    let p = listed(port);
    assert_eq!(
        (track_muted(&p, &audio_id), track_muted(&p, &camera_id)),
        (Some(json!(true)), Some(json!(true))),
        "{p}"
    );
    assert_eq!(page.eval("document.getElementById('mute-audio').textContent"), "Unmute mic");
    // Unmuting the microphone is told too; a late joiner sees the camera muted in `joined`.
    page.click("#mute-audio");
    obs.wait("unmute of the microphone", Duration::from_secs(10), |m| muted(m, &audio_id, false));
    assert_eq!(track_muted(&listed(port), &audio_id), Some(json!(false)));
    let late = Observer::join(port, "ev", &token(port, KEY, "ev", "late"), "late");
    let joined_late = &late.seen[0].1;
    let alice_seen =
        joined_late["participants"].as_array().unwrap().iter().find(|p| p["id"] == alice_id.as_str()).cloned().unwrap();
    let cam =
        alice_seen["tracks"].as_array().unwrap().iter().find(|t| t["track_id"] == camera_id.as_str()).cloned().unwrap();
    assert_eq!(
        (cam["muted"].as_bool(), joined_late["active_speaker"].as_str()),
        (Some(true), Some(alice_id.as_str())),
        "{joined_late}"
    );

    // She closes her browser: her tracks are unpublished, she leaves, nobody speaks.
    drop(page);
    drop(alice);
    for id in [&audio_id, &camera_id] {
        obs.wait("track_unpublished", Duration::from_secs(30), |m| {
            m["type"] == "track_unpublished" && m["track_id"] == id.as_str()
        });
    }
    obs.wait("participant_left", Duration::from_secs(30), |m| {
        m["type"] == "participant_left" && m["participant_id"] == alice_id.as_str()
    });
    obs.wait("active_speaker null", Duration::from_secs(10), |m| {
        m["type"] == "active_speaker" && m["participant_id"].is_null()
    });
    eprintln!("events seen by the observer: {}", obs.seen.len());
}

#[test]
fn the_active_speaker_does_not_flicker_between_two_people_talking_in_turns() {
    let app = App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();
    let dir = tempfile::tempdir().unwrap();
    // Each talks for 0.4 s, then is silent for 0.4 s, in turns: a turn every 0.4 s.
    let a = audio_file(dir.path(), "a.wav", "sine=f=440:d=8,volume='if(lt(mod(t,0.8),0.4),0.5,0)':eval=frame");
    let b = audio_file(dir.path(), "b.wav", "sine=f=660:d=8,volume='if(lt(mod(t,0.8),0.4),0,0.5)':eval=frame");
    let mut obs = Observer::join(port, "turns", &token(port, KEY, "turns", "observer"), "observer");
    let _a = open(port, "turns", "a", "&audio=raw&video=0", &[&fake_mic(&a)]);
    let _b = open(port, "turns", "b", "&audio=raw&video=0", &[&fake_mic(&b)]);
    let ids: HashSet<String> = obs
        .wait_count("participant_joined", 2, Duration::from_secs(30))
        .iter()
        .map(|m| m["participant"]["id"].as_str().unwrap().to_owned())
        .collect();
    obs.wait_count("track_published", 2, Duration::from_secs(30));
    obs.wait("a first active speaker", Duration::from_secs(20), |m| {
        m["type"] == "active_speaker" && !m["participant_id"].is_null()
    });
    let window = Duration::from_secs(10);
    let start = Instant::now();
    obs.listen(window);
    let changes: Vec<(Instant, String)> = obs
        .of_type("active_speaker")
        .into_iter()
        .filter(|(t, _)| *t >= start)
        .map(|(t, m)| (t, m["participant_id"].as_str().unwrap_or("null").to_owned()))
        .collect();
    let turns = (window.as_secs_f64() / 0.4) as usize;
    eprintln!(
        "{} active speaker changes in {window:?} of {turns} turns: {:?}",
        changes.len(),
        changes.iter().map(|c| (c.0 - start, &c.1)).collect::<Vec<_>>()
    );
    assert!(changes.iter().all(|(_, id)| ids.contains(id)), "{changes:?}");
    for w in changes.windows(2) {
        let gap = w[1].0 - w[0].0;
        assert!(gap >= Duration::from_millis(900), "the speaker flipped after {gap:?}: {changes:?}");
    }
    // Without the hold time (a challenger must lead for 0.7 s) it flipped about every 1.2 s.
    assert!(changes.len() <= 1, "{} changes for {turns} turns: {changes:?}", changes.len());
}
