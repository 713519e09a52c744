//! The watch page of a room (`GET /rooms/{room}/watch?token=…`): its program played by WHEP
//! (`POST /whep/{room}`) in the browser's own RTCPeerConnection, with the participant token
//! in the URL (one that may subscribe).

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::response::{Html, IntoResponse, Response};

use super::control::{script_response, with_security_headers};
use crate::server::error::ApiError;
use crate::server::routes::params::room_param;

const PAGE: &str = include_str!("../web/watch.html");
const SCRIPT: &str = include_str!("../web/watch.js");

/// Only this origin's script and API; the page is never framed; the token in its URL is not
/// sent on as a referrer.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /rooms/{room}/watch`: the page (the token is checked by WHEP when it plays).
pub async fn page(room: Result<Path<String>, PathRejection>) -> Result<Response, ApiError> {
    room_param(room)?;
    Ok(with_security_headers(Html(PAGE).into_response(), CSP))
}

/// `GET /watch/watch.js`.
pub async fn script() -> Response {
    script_response(SCRIPT, CSP)
}
