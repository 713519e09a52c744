//! The control page of a room (`GET /rooms/{room}/control`): participants, recording, live
//! stream, layout and a live preview, over the REST API with the API key the user enters.

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

use crate::server::error::ApiError;
use crate::server::routes::params::room_param;

const PAGE: &str = include_str!("../web/control.html");
const SCRIPT: &str = include_str!("../web/control.js");

/// Only this origin's scripts, API and preview blobs; the page is never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' blob:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `response` with the page's content security policy `csp`, no referrer and no sniffing
/// (the watch page uses it too).
pub(super) fn with_security_headers(mut response: Response, csp: &'static str) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// A script of ours, as served with `csp`.
pub(super) fn script_response(script: &'static str, csp: &'static str) -> Response {
    let r = ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], script).into_response();
    with_security_headers(r, csp)
}

/// `GET /rooms/{room}/control`: the page (no key needed to load it; every API call it makes
/// needs one).
pub async fn page(room: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    room_param(room)?;
    Ok(with_security_headers(Html(PAGE).into_response(), CSP))
}

/// `GET /control/control.js`.
pub async fn script() -> Response {
    script_response(SCRIPT, CSP)
}
