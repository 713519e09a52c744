//! TURN end to end, with real parts only: coturn from Debian on loopback with the TURN REST
//! API's shared secret, `tessera serve --turn-urls … --turn-secret …`, a headless Chromium on
//! the web client with `iceTransportPolicy: "relay"` (`?relay=1`), and `tessera bot`s (one of
//! them `--relay-only`). Chromium joins, publishes its camera and receives a bot's video only
//! through the TURN relay; its camera reaches the recorded program; WHIP answers carry the TURN
//! servers as `Link` headers; neither the secret nor an issued password reaches the logs.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::token;
use serde_json::{Value, json};
use tessera_testkit::analysis::{BLUE, Frame, RED, close, decode_frames};
use tessera_testkit::chromium::{Browser, red_camera};
use tessera_testkit::http;
use tessera_testkit::poll::{poll, wait};
use tessera_testkit::tessera::{Node, TEST_KEY as KEY, serve_command};
use tessera_testkit::turn::Turn;

const SECRET: &str = "turn-shared-secret-5e1f0c";
const ROOM: &str = "relayed";

/// `tessera serve` with TURN; debug logs from our crates, so that the check for leaked
/// credentials covers them too.
fn serve(turn: &Turn) -> Node {
    let url = turn.url();
    common::node()
        .args(["--turn-urls", &url, "--turn-secret", SECRET])
        .env("RUST_LOG", "info,tessera=debug,tessera_sfu=debug")
        .env_remove("TESSERA_TURN_URLS")
        .env_remove("TESSERA_TURN_SECRET")
        .env_remove("TESSERA_TURN_TTL_S")
        .start()
}

/// Independently of the server's code: `base64(HMAC-SHA1(secret, username))` by openssl.
fn openssl_password(secret: &str, username: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", "printf %s \"$1\" | openssl dgst -sha1 -hmac \"$2\" -binary | base64", "sh", username, secret])
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The TURN REST credentials issued for `identity`: `EXPIRY:identity`, EXPIRY a day from now,
/// and the matching password.
fn assert_credentials(username: &str, credential: &str, identity: &str) {
    let (expiry, who) = username.split_once(':').expect("EXPIRY:IDENTITY");
    assert_eq!(who, identity, "{username}");
    let expiry: u64 = expiry.parse().expect("a Unix time");
    let day = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 86_400;
    assert!(expiry.abs_diff(day) < 120, "expiry {expiry}, a day from now is {day}");
    assert_eq!(credential, openssl_password(SECRET, username), "the password of {username}");
}

/// The selected candidate pairs of the page's two peer connections, and every local candidate
/// type they gathered.
const TRANSPORTS_JS: &str = "(async () => {
  const one = async (pc) => {
    if (!pc) return null;
    const r = await pc.getStats();
    let pair = null; const locals = []; let rtt = 0, pairs = [];
    r.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = r.get(s.selectedCandidatePairId);
      if (s.type === 'local-candidate') locals.push(s.candidateType);
      if (s.type === 'remote-inbound-rtp') rtt += s.roundTripTimeMeasurements || 0;
      if (s.type === 'candidate-pair') pairs.push([s.state, s.nominated, s.bytesSent, s.bytesReceived, s.packetsReceived, s.localCandidateId]);
    });
    if (!pair) return { selected: null, locals, pairs };
    const l = r.get(pair.localCandidateId) || {}, rm = r.get(pair.remoteCandidateId) || {};
    return { selected: { local: l.candidateType, relayProtocol: l.relayProtocol || null, localAddress: l.address + ':' + l.port,
      remote: rm.candidateType, remoteAddress: rm.address + ':' + rm.port, bytesSent: pair.bytesSent, bytesReceived: pair.bytesReceived,
      responsesReceived: pair.responsesReceived }, locals, rtcpReports: rtt, pairs };
  };
  return { pub: await one(tesseraClient.pub), sub: await one(tesseraClient.sub) };
})()";

/// Video frames the page decoded, over all its received video tracks.
const FRAMES_DECODED_JS: &str = "(async () => {
  if (!tesseraClient.sub) return 0;
  let n = 0; (await tesseraClient.sub.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') n += s.framesDecoded || 0; });
  return n;
})()";

/// A WHIP offer made by the browser (its camera, send only; host candidates only, which is
/// all a WHIP client has before it learns the TURN servers from the answer).
const WHIP_OFFER_JS: &str = "(async () => {
  const pc = new RTCPeerConnection();
  const s = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
  for (const t of s.getTracks()) pc.addTransceiver(t, { direction: 'sendonly', streams: [s] });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => { if (pc.iceGatheringState === 'complete') done(); pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') done(); }; setTimeout(done, 3000); });
  window.whipPc = pc;
  return pc.localDescription.sdp;
})()";

fn recording_path(port: u16, id: &str) -> PathBuf {
    let mut last = Value::Null;
    wait("the recording to complete", Duration::from_secs(60), || {
        last = http::get(port, &format!("/v1/recordings/{id}"), Some(KEY)).json();
        last["status"] == "completed" || last["status"] == "failed"
    });
    assert_eq!(last["status"], "completed", "{last}");
    PathBuf::from(last["location"]["path"].as_str().expect("a local recording path"))
}

/// Share of a frame's pixels close to `color`.
fn share_of(frame: &Frame, color: u32) -> f64 {
    let px = frame.rgb.chunks_exact(3).filter(|p| close((p[0], p[1], p[2]), color)).count();
    px as f64 / (frame.width * frame.height) as f64
}

#[test]
fn a_relay_only_browser_publishes_and_receives_through_coturn() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let _guard = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let turn = Turn::start(SECRET);
    let server = serve(&turn);
    let port = server.port;

    // A bot publishes blue, directly (host candidates).
    let mut blue = server.bot(ROOM, "blue", &["--color", "#0000ff", "--size", "320x180", "--silent"]);
    blue.wait_for("published", Duration::from_secs(30));

    // Chromium joins with iceTransportPolicy "relay": it can reach the server only through
    // coturn's relay address on 127.0.0.1.
    let url =
        format!("http://127.0.0.1:{port}/rooms/{ROOM}?token={}&name=chrome&relay=1", token(port, KEY, ROOM, "chrome"));
    let chrome = Browser::open(&url, &[&red_camera(dir.path())]);
    let mut page = chrome.page(&format!("/rooms/{ROOM}"));
    page.wait_for(
        "typeof tesseraClient === 'object' && !!tesseraClient.pub && !!tesseraClient.sub",
        Duration::from_secs(40),
    );

    // Its peer connections were made with the TURN server and this participant's credentials.
    let config = page.eval("(() => { const c = tesseraClient.pub.getConfiguration(); return { policy: c.iceTransportPolicy, servers: c.iceServers }; })()");
    assert_eq!(config["policy"], "relay", "{config}");
    let servers = config["servers"].as_array().expect("iceServers");
    assert_eq!(servers.len(), 1, "{config}");
    let urls: Vec<&str> =
        servers[0]["urls"].as_array().map(|u| u.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    assert_eq!(urls, [turn.url().as_str()], "{config}");
    let page_user = servers[0]["username"].as_str().expect("a TURN username").to_owned();
    let page_pass = servers[0]["credential"].as_str().expect("a TURN credential").to_owned();
    assert_credentials(&page_user, &page_pass, "chrome");

    // Both connections come up over a relay candidate of coturn's, and only relay candidates
    // were gathered.
    let mut transports = Value::Null;
    // The publish connection's proof of a way back: the server's receiver reports arrived
    // (on whichever of the relay allocations the server answers; the selected pair's own
    // byte count may stay 0 when both sides settle on different relayed pairs).
    let connected = poll(Duration::from_secs(40), || {
        transports = page.eval(TRANSPORTS_JS);
        let bytes = |pc: &str, dir: &str| transports[pc]["selected"][dir].as_f64().unwrap_or(0.0);
        bytes("pub", "bytesSent") > 0.0
            && transports["pub"]["rtcpReports"].as_f64().unwrap_or(0.0) > 0.0
            && bytes("sub", "bytesReceived") > 0.0
    });
    assert!(
        connected,
        "Chromium's connections did not come up through TURN: {transports}; page errors {}; coturn's log:\n{}\nserver's log:\n{}",
        page.eval("JSON.stringify(tesseraStats.errors)"),
        turn.log(),
        server.stderr()
    );
    eprintln!("Chromium's transports: {transports}");
    for pc in ["pub", "sub"] {
        let t = &transports[pc];
        assert_eq!(t["selected"]["local"], "relay", "{pc}: {t}");
        assert_eq!(t["selected"]["relayProtocol"], "udp", "{pc}: {t}");
        let local = t["selected"]["localAddress"].as_str().unwrap_or_default();
        let (ip, relay_port) = local.rsplit_once(':').unwrap();
        let relay_port: u16 = relay_port.parse().unwrap();
        assert!(ip == "127.0.0.1" && (turn.relay_ports.0..=turn.relay_ports.1).contains(&relay_port), "{pc}: {t}");
        let locals = t["locals"].as_array().unwrap();
        assert!(!locals.is_empty() && locals.iter().all(|c| c == "relay"), "{pc} gathered {locals:?}");
    }

    // It decodes the bot's video, received through the relay.
    wait("Chromium to decode the bot's video", Duration::from_secs(40), || {
        page.eval(FRAMES_DECODED_JS).as_f64().unwrap_or(0.0) > 60.0
    });

    // Its camera reaches the server (through the relay) and the recorded program.
    wait("Chromium's camera published", Duration::from_secs(30), || {
        let room = http::get(port, &format!("/v1/rooms/{ROOM}"), Some(KEY)).json();
        room["participants"].as_array().into_iter().flatten().any(|p| {
            p["identity"] == "chrome" && p["tracks"].as_array().into_iter().flatten().any(|t| t["source"] == "camera")
        })
    });
    let body = json!({ "layout": "grid", "video": { "width": 640, "height": 360 } }).to_string();
    let r = http::post_json(port, &format!("/v1/rooms/{ROOM}/recordings"), Some(KEY), body.as_bytes());
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let rec = r.json()["id"].as_str().expect("a recording id").to_owned();
    std::thread::sleep(Duration::from_secs(6));
    let r = http::post_json(port, &format!("/v1/recordings/{rec}/stop"), Some(KEY), b"{}");
    assert!(r.status == 200 || r.status == 202, "stop: {} {}", r.status, String::from_utf8_lossy(&r.body));
    let path = recording_path(port, &rec);
    let frames = decode_frames(&path, 160, 90);
    let end = frames.last().expect("recorded frames").pts;
    let last: Vec<&Frame> = frames.iter().filter(|f| f.pts >= end - 2.0).collect();
    assert!(last.len() > 20, "{} frames in the last 2 s", last.len());
    for f in &last {
        // Two tiles side by side in the grid: Chromium's red camera and the bot's blue.
        let (red, blue) = (share_of(f, RED), share_of(f, BLUE));
        assert!(red > 0.1, "Chromium's (red) tile covers {:.1}% of the frame at {:.2} s", red * 100.0, f.pts);
        assert!(blue > 0.1, "the bot's (blue) tile covers {:.1}% of the frame at {:.2} s", blue * 100.0, f.pts);
    }

    // A second bot receives only through the relay too (webrtc-rs's TURN client).
    let mut green = server.bot(
        ROOM,
        "green",
        &["--color", "#00ff00", "--size", "320x180", "--silent", "--subscribe", "--relay-only"],
    );
    let joined = green.wait_for("joined", Duration::from_secs(20));
    assert_eq!((joined["turn_urls"].as_u64(), joined["relay_only"].as_bool()), (Some(1), Some(true)), "{joined}");
    green.wait_for("published", Duration::from_secs(30));
    wait("the relayed bot's camera at Chromium", Duration::from_secs(30), || {
        page.eval("tesseraClient.tracks.filter((t) => t.source === 'camera').length").as_u64() == Some(3)
    });
    std::thread::sleep(Duration::from_secs(3));
    let (exit, report) = green.stop();
    assert!(exit.success(), "{report}");
    assert!(report["packets_received"].as_u64().unwrap_or(0) > 100, "the relayed bot received {report}");

    // WHIP: the answer names the TURN server with credentials for the token's identity.
    let offer = page.eval(WHIP_OFFER_JS).as_str().expect("an SDP offer").to_owned();
    let whip_token = token(port, KEY, ROOM, "whip-ada");
    let headers = vec![
        ("Authorization".to_owned(), format!("Bearer {whip_token}")),
        ("Content-Type".to_owned(), "application/sdp".to_owned()),
    ];
    let r = http::send(port, "POST", &format!("/whip/{ROOM}"), &headers, http::Body::Sized(offer.as_bytes()))
        .expect("WHIP POST");
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let links: Vec<&str> =
        r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("link")).map(|(_, v)| v.as_str()).collect();
    assert_eq!(links.len(), 1, "{links:?}");
    let link = links[0];
    let param = |name: &str| -> String {
        link.split(';')
            .find_map(|p| p.trim().strip_prefix(&format!("{name}=\""))?.strip_suffix('"').map(str::to_owned))
            .unwrap_or_default()
    };
    assert!(link.starts_with(&format!("<{}>", turn.url())), "{link}");
    assert_eq!((param("rel"), param("credential-type")), ("ice-server".to_owned(), "password".to_owned()), "{link}");
    let (whip_user, whip_pass) = (param("username"), param("credential"));
    assert_credentials(&whip_user, &whip_pass, "whip-ada");
    let location = r.header("location").expect("a WHIP Location").to_owned();
    let r = http::send(port, "DELETE", &location, &headers[..1], http::Body::None).expect("WHIP DELETE");
    assert_eq!(r.status, 200);

    // coturn did the relaying, for the identities above (its log names each session's user).
    let turn_log = turn.log();
    for identity in [":chrome", ":green-"] {
        assert!(turn_log.contains(identity), "coturn's log names no {identity} session:\n{turn_log}");
    }

    // The server's logs never show the secret or a password it issued.
    drop(page);
    drop(chrome);
    let log = server.stderr();
    assert!(log.contains("TURN: clients get time-limited credentials"), "{log}");
    for secret in [SECRET, &page_pass, &whip_pass] {
        assert!(!log.contains(secret), "a TURN secret or password in the server's log");
    }
    assert!(server.stop_with("TERM").success());
}

/// `tessera serve` refuses bad TURN settings at start, naming the setting, and exits 2
/// without showing the secret.
#[test]
fn bad_turn_settings_stop_the_server_at_start() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--turn-urls", "turn:127.0.0.1:3478,https://turn.example.com", "--turn-secret", SECRET],
            "turn_urls: `https://turn.example.com` is not a TURN URL",
        ),
        (&["--turn-urls", "turn:127.0.0.1:3478"], "turn_urls: "),
        (&["--turn-secret", SECRET], "turn_secret: "),
    ];
    for (args, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let status = serve_command(common::BIN, dir.path())
            .args(["--api-key", KEY, "--http-addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("TESSERA_TURN_URLS")
            .env_remove("TESSERA_TURN_SECRET")
            .env_remove("TESSERA_TURN_TTL_S")
            .status()
            .expect("tessera serve runs");
        let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains(SECRET), "{args:?}: the secret in {stderr}");
    }
}
