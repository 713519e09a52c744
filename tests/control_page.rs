//! The room control page in headless Chromium, driven like a user over the DevTools protocol
//! (real mouse clicks and key presses): a browser participant shows up in the list, the
//! recording starts from its button and is listed by the API, the layout picker swaps the
//! recording's layout, the live preview refreshes, a live stream to an RTMP server (nginx-rtmp)
//! starts and stops from its buttons, and the recording stops.

mod common;

use std::time::{Duration, Instant};

use common::app::App;
use serde_json::Value;
use tessera_testkit::chromium::Browser;
use tessera_testkit::http;
use tessera_testkit::rtmp::NginxRtmp;

const KEY: &str = "control-page-key-0123456789abcdef";

fn streams(port: u16) -> Vec<Value> {
    http::get(port, "/v1/streams?room=demo", Some(KEY)).json()["streams"].as_array().unwrap().clone()
}

fn recordings(port: u16) -> Vec<Value> {
    http::get(port, "/v1/recordings?room=demo", Some(KEY)).json()["recordings"].as_array().unwrap().clone()
}

#[test]
fn the_control_page_records_swaps_the_layout_and_previews_the_room() {
    let app = App::start(KEY);
    let port = app.port;
    let _guard = app.rt.enter();

    // Alice joins the call from a browser with Chromium's fake camera and microphone.
    let token = http::post_json(port, "/v1/rooms/demo/tokens", Some(KEY), br#"{"identity":"alice","name":"Alice"}"#);
    assert_eq!(token.status, 201);
    let token = token.json()["token"].as_str().unwrap().to_string();
    let _alice = Browser::open(&format!("http://127.0.0.1:{port}/rooms/demo?token={token}&name=Alice"), &[]);

    // The operator opens the control page with the key in the URL.
    let control = Browser::open(&format!("http://127.0.0.1:{port}/rooms/demo/control?key={KEY}"), &[]);
    let mut page = control.page("/rooms/demo/control");
    // (The target may still show its first, blank document.)
    page.wait_for(
        "location.pathname === '/rooms/demo/control' && document.getElementById('layout')?.options.length > 0",
        Duration::from_secs(20),
    );
    // The key is kept for the tab and gone from the address bar.
    assert_eq!(page.eval("location.search"), "");
    assert_eq!(page.eval("sessionStorage.getItem('tessera-api-key')"), KEY);

    // Alice is listed, by name and identity, with her camera and microphone.
    let alice = page.wait_for(
        "(() => { const li = document.querySelector('#participants li[data-identity=\"alice\"]'); \
         return li && /audio/.test(li.textContent) && /camera/.test(li.textContent) ? li.textContent : null; })()",
        Duration::from_secs(45),
    );
    assert!(alice.as_str().unwrap().starts_with("Alice (alice)"), "{alice}");

    // No program yet: the preview says how to get one.
    page.wait_for(
        "/recording or a stream/.test(document.getElementById('preview-status').textContent)",
        Duration::from_secs(5),
    );
    assert!(recordings(port).is_empty());

    // Start recording with the button.
    page.click("#record-start");
    let deadline = Instant::now() + Duration::from_secs(20);
    let rec = loop {
        let list = recordings(port);
        if let Some(r) = list.iter().find(|r| r["status"] == "recording") {
            break r.clone();
        }
        assert!(Instant::now() < deadline, "no recording started from the page: {list:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["layout"], "grid");
    page.wait_for(&format!("document.getElementById('record-status').dataset.id === '{id}'"), Duration::from_secs(5));
    assert_eq!(page.eval("document.getElementById('record-stop').disabled"), false);

    // The preview shows the program and refreshes at least once a second.
    page.wait_for("document.getElementById('preview').naturalWidth > 0", Duration::from_secs(10));
    assert_eq!(page.eval("document.getElementById('preview').naturalWidth"), 640);
    let mut sequences = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let v =
            page.eval("[document.getElementById('preview').dataset.sequence, document.getElementById('preview').src]");
        sequences.push((v[0].as_str().unwrap_or("").to_string(), v[1].as_str().unwrap_or("").to_string()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let mut changes = sequences.clone();
    changes.dedup();
    assert!(changes.len() >= 5, "the preview changed {} times in 4 s: {sequences:?}", changes.len() - 1);
    assert!(changes.iter().all(|(_, src)| src.starts_with("blob:")), "stills come from blobs, not keyed URLs");

    // Pick "pip" in the layout picker with the keyboard: the recording's layout follows.
    page.eval("document.getElementById('layout').focus()");
    page.type_text("p");
    assert_eq!(page.eval("document.getElementById('layout').value"), "pip");
    page.wait_for("document.getElementById('layout-status').textContent === 'Showing pip.'", Duration::from_secs(10));
    let shown = http::get(port, &format!("/v1/recordings/{id}"), Some(KEY)).json();
    assert_eq!(shown["layout"], "pip");
    assert_eq!(app.hub.program("demo").unwrap().layout(), tessera_compositor::layout::Layout::builtin("pip").unwrap());

    // Stream the room to an RTMP ingest: type its URL, start, see it live (key masked), stop.
    let nginx = NginxRtmp::start();
    page.click("#stream-url");
    page.type_text(&nginx.url("page-SECRET"));
    page.click("#stream-start");
    page.wait_for("/\\(live\\)/.test(document.getElementById('stream-status').textContent)", Duration::from_secs(20));
    let status = page.eval("document.getElementById('stream-status').textContent");
    let masked = format!("rtmp://127.0.0.1:{}/live/****", nginx.port);
    assert!(status.as_str().is_some_and(|s| s.contains(&masked) && !s.contains("SECRET")), "{status}");
    let list = streams(port);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!((list[0]["status"].as_str(), list[0]["layout"].as_str()), (Some("active"), Some("pip")), "{list:?}");
    std::thread::sleep(Duration::from_secs(2));
    page.click("#stream-stop");
    page.wait_for("document.getElementById('stream-status').textContent === 'Not streaming.'", Duration::from_secs(20));
    assert_eq!(streams(port)[0]["status"], "stopped");
    let flv = nginx.recordings("page-SECRET");
    assert_eq!(flv.len(), 1, "the ingest got one stream");
    assert!(std::fs::metadata(&flv[0]).unwrap().len() > 20_000, "with media in it");

    // Stop it with the button: the recording completes and the page says so.
    page.click("#record-stop");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http::get(port, &format!("/v1/recordings/{id}"), Some(KEY)).json();
        if r["status"] == "completed" {
            assert!(r["bytes"].as_u64().unwrap() > 0);
            break;
        }
        assert!(Instant::now() < deadline, "the recording did not complete: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
    page.wait_for("document.getElementById('record-status').textContent === 'Not recording.'", Duration::from_secs(10));
    page.wait_for(
        "/recording or a stream/.test(document.getElementById('preview-status').textContent)",
        Duration::from_secs(20),
    );
    assert_eq!(page.eval("document.getElementById('message').textContent"), "", "no error shown");

    // The key never went into a URL the page requested.
    let urls = page.eval("JSON.stringify(performance.getEntriesByType('resource').map(e => e.name))");
    assert!(!urls.as_str().unwrap().contains(KEY), "{urls}");
}
