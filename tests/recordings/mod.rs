//! The recordings of `recordings_api.rs`, one module per concern, and the requests they share.

mod bad_requests;
mod local;
mod s3;
mod webhooks;

use tessera_testkit::http::{self, Body};
use tessera_testkit::tessera::TEST_KEY;

pub fn patch_json(port: u16, path: &str, body: &[u8]) -> http::Response {
    let mut headers = http::auth(Some(TEST_KEY));
    headers.push(("Content-Type".into(), "application/json".into()));
    http::send(port, "PATCH", path, &headers, Body::Sized(body)).expect("PATCH")
}

pub fn error(resp: &http::Response) -> (u16, String, String) {
    let v = resp.json();
    (
        resp.status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["field"].as_str().unwrap_or("").to_string(),
    )
}
