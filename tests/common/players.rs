//! The room's program played in headless Chromium, as the tests read it: the watch page
//! (WHEP, `window.tesseraWatch`) and the hls.js page (`window.player`, from
//! `tessera_testkit::chromium::hlsjs_player`). Both expose `sample(x, y)`: the RGB at a point
//! of the picture, in 0..1 of its size.

use std::time::Duration;

use serde_json::Value;
use tessera_testkit::cdp::Page;
use tessera_testkit::poll::wait_for;

/// The watch page's `tesseraWatch.stats()` once video and audio decode (a failure of the page
/// fails the test at once, with its offer).
pub fn whep_playing(tab: &mut Page) -> Value {
    wait_for("Chromium playing the program by WHEP", Duration::from_secs(40), || {
        let error = tab.eval("window.tesseraWatch && window.tesseraWatch.error");
        if !error.is_null() {
            let sdp = tab.eval("window.tesseraWatch.pc.localDescription.sdp");
            panic!("the watch page failed: {error}\n{}", sdp.as_str().unwrap_or_default());
        }
        let stats = tab.eval("window.tesseraWatch ? window.tesseraWatch.stats() : {}");
        let video = stats["video"]["framesDecoded"].as_f64().unwrap_or(0.0);
        let audio = stats["audio"]["packetsReceived"].as_f64().unwrap_or(0.0);
        (video > 30.0 && audio > 50.0).then_some(stats)
    })
}

/// Ends the watch page's WHEP session (its `DELETE`, on the node that answered); the status.
pub fn whep_leave(tab: &mut Page) -> Value {
    tab.eval(
        "fetch(window.tesseraWatch.resource, {method: 'DELETE', headers: {Authorization: \
         'Bearer ' + new URLSearchParams(location.search).get('token')}}).then(r => r.status)",
    )
}

/// The colour at canvas point `at` of the picture `player` (`window.tesseraWatch`,
/// `window.player`) shows, for a program of size `canvas`.
pub fn colour_at(tab: &mut Page, player: &str, at: (f64, f64), canvas: (u32, u32)) -> [u8; 3] {
    let (x, y) = (at.0 / f64::from(canvas.0), at.1 / f64::from(canvas.1));
    let v = tab.eval(&format!("{player}.sample({x}, {y})"));
    let c: Vec<u8> =
        v.as_array().map(|a| a.iter().filter_map(|c| c.as_u64()).map(|c| c as u8).collect()).unwrap_or_default();
    assert_eq!(c.len(), 3, "no picture to sample: {v}");
    [c[0], c[1], c[2]]
}

pub fn is_red(c: [u8; 3]) -> bool {
    c[0] > 200 && c[1] < 60 && c[2] < 60
}

pub fn is_blue(c: [u8; 3]) -> bool {
    c[2] > 200 && c[0] < 60 && c[1] < 60
}
