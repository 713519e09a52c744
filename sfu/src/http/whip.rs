//! WHIP ingest (RFC 9725): an encoder (OBS, GStreamer, ffmpeg) publishes with one `POST` of
//! its SDP offer and a bearer token, and stops with a `DELETE` of the session it was given.
//! Trickle ICE (`PATCH`) is refused: the offer carries every candidate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::{error_response, json_error};
use super::{AppState, ice_servers_for, valid_room};
use crate::participant::Participant;
use crate::signal::IceServer;

/// RFC 9725 (WHIP) section 4.6: one `Link: <URL>; rel="ice-server"` per URL, with the username
/// and credential (`credential-type="password"`) when there are some. Values that cannot be
/// header values (or quoted strings) are left out.
pub(super) fn ice_server_links(servers: &[IceServer]) -> Vec<HeaderValue> {
    let quotable = |v: &str| v.chars().all(|c| (c == ' ' || c.is_ascii_graphic()) && c != '"' && c != '\\');
    let mut links = Vec::new();
    for server in servers {
        let auth = match (&server.username, &server.credential) {
            (Some(u), Some(c)) if quotable(u) && quotable(c) => {
                format!("; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\"")
            }
            (None, None) => String::new(),
            _ => continue,
        };
        for url in &server.urls {
            if url.contains(['<', '>']) {
                continue;
            }
            if let Ok(v) = HeaderValue::from_str(&format!("<{url}>; rel=\"ice-server\"{auth}")) {
                links.push(v);
            }
        }
    }
    links
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// A WHIP or WHEP session's `DELETE` needs a valid token of its room: the 401 to answer
/// without one.
pub(super) fn refuse_session_delete(st: &AppState, room: &str, headers: &HeaderMap) -> Option<Response> {
    let authorized = bearer(headers).is_some_and(|t| st.tokens.validate(room, t));
    (!authorized).then(|| json_error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid bearer token", None))
}

/// What a WHIP or WHEP token must allow.
#[derive(Debug, Clone, Copy)]
pub(super) enum Grant {
    Publish,
    Subscribe,
}

/// The checks WHIP and WHEP share before an offer is looked at: the room's name, the bearer
/// token (valid for the room, allowing `grant`), `Content-Type: application/sdp`, at most
/// 64 KiB of UTF-8. The offer's text and the token, or the JSON error to answer with.
pub(super) fn checked_offer<'h>(
    st: &AppState,
    room: &str,
    headers: &'h HeaderMap,
    body: &Bytes,
    grant: Grant,
) -> Result<(String, &'h str), Box<Response>> {
    if !valid_room(room) {
        return Err(Box::new(json_error(StatusCode::NOT_FOUND, "not_found", "invalid room name", None)));
    }
    let Some(token) = bearer(headers) else {
        return Err(Box::new(json_error(StatusCode::UNAUTHORIZED, "unauthorized", "missing bearer token", None)));
    };
    if !st.tokens.validate(room, token) {
        return Err(Box::new(json_error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid token", None)));
    }
    let grants = st.tokens.grants(room, token);
    let (allowed, what) = match grant {
        Grant::Publish => (grants.publish, "publishing"),
        Grant::Subscribe => (grants.subscribe, "subscribing"),
    };
    if !allowed {
        let message = format!("this token does not allow {what}");
        return Err(Box::new(json_error(StatusCode::FORBIDDEN, "forbidden", &message, None)));
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/sdp") {
        return Err(Box::new(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/sdp",
            None,
        )));
    }
    if body.len() > 64 * 1024 {
        return Err(Box::new(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "SDP offers are limited to 64 KiB",
            None,
        )));
    }
    let sdp = String::from_utf8(body.to_vec())
        .map_err(|_| Box::new(json_error(StatusCode::BAD_REQUEST, "bad_request", "SDP is not UTF-8", None)))?;
    Ok((sdp, token))
}

pub(super) async fn whip_post(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (sdp, token) = match checked_offer(&st, &room, &headers, &body, Grant::Publish) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    let room_ref = st.sfu.room(&room);
    let participant = match room_ref.join_as("whip".into(), st.tokens.identity(&room, token), None) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    participant.set_grants(st.tokens.grants(&room, token));
    match participant.publish_offer(sdp, Vec::new()).await {
        Ok(answer) => {
            let location = format!("/whip/{room}/{}", participant.id);
            let mut r = (StatusCode::CREATED, answer).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
            if let Ok(v) = HeaderValue::from_str(&location) {
                h.insert(header::LOCATION, v);
            }
            for link in ice_server_links(&ice_servers_for(&st.sfu, &participant)) {
                h.append(header::LINK, link);
            }
            r
        }
        Err(e) => {
            participant.leave().await;
            error_response(&e)
        }
    }
}

pub(super) async fn whip_delete(
    State(st): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_session_delete(&st, &room, &headers) {
        return refused;
    }
    // Only a WHIP session of this node: not a WebSocket client, another node's participant
    // or the room's program (whose id every client of the room sees).
    let whip = |p: &Arc<Participant>| p.id == id && p.outbox.is_none() && p.node.is_none() && !p.in_process;
    let p = st.sfu.get_room(&room).and_then(|r| r.participants().into_iter().find(whip));
    match p {
        Some(p) => {
            p.leave().await;
            StatusCode::OK.into_response()
        }
        None => json_error(StatusCode::NOT_FOUND, "not_found", "no such WHIP session", None),
    }
}

pub(super) async fn whip_patch() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "trickle ICE over WHIP PATCH is not supported; send all candidates in the offer",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whip_link_headers_name_each_ice_server_url() {
        let turn = IceServer {
            urls: vec![
                "turn:turn.example.net:3478?transport=udp".into(),
                "turns:turn.example.net:5349?transport=tcp".into(),
            ],
            username: Some("1700000000:ada".into()),
            credential: Some("a+b/c=".into()),
        };
        let stun = IceServer { urls: vec!["stun:stun.example.net".into()], username: None, credential: None };
        let bad = IceServer { urls: vec!["turn:x".into()], username: Some("u\"".into()), credential: Some("c".into()) };
        let links: Vec<String> =
            ice_server_links(&[turn, stun, bad]).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
        assert_eq!(
            links,
            [
                r#"<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="1700000000:ada"; credential="a+b/c="; credential-type="password""#,
                r#"<turns:turn.example.net:5349?transport=tcp>; rel="ice-server"; username="1700000000:ada"; credential="a+b/c="; credential-type="password""#,
                r#"<stun:stun.example.net>; rel="ice-server""#,
            ]
        );
    }
}
