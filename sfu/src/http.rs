//! The SFU's HTTP surface as an axum `Router` the binary merges: the web client page,
//! WebSocket signalling and WHIP ingest.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::participant::Participant;
use crate::sfu::Sfu;
use crate::signal::{ClientMessage, IceServer, ServerMessage};

/// Decides whether a token may join a room. Implemented for `Fn(&str, &str) -> bool`
/// (room, token). Tokens are never logged.
pub trait TokenValidator: Send + Sync + 'static {
    /// True when `token` grants access to `room`.
    fn validate(&self, room: &str, token: &str) -> bool;

    /// The participant identity a valid `token` carries, if the application's tokens name
    /// one (shown by [`crate::Participant::identity`]). None by default.
    fn identity(&self, _room: &str, _token: &str) -> Option<String> {
        None
    }

    /// What a valid `token` allows; everything by default.
    fn grants(&self, _room: &str, _token: &str) -> Grants {
        Grants::default()
    }
}

/// What a participant's token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// May publish tracks (WebSocket `publish_offer`, WHIP).
    pub publish: bool,
    /// May receive the others' tracks.
    pub subscribe: bool,
}

impl Default for Grants {
    fn default() -> Self {
        Grants { publish: true, subscribe: true }
    }
}

impl<F: Fn(&str, &str) -> bool + Send + Sync + 'static> TokenValidator for F {
    fn validate(&self, room: &str, token: &str) -> bool {
        self(room, token)
    }
}

#[derive(Clone)]
struct AppState {
    sfu: Sfu,
    tokens: Arc<dyn TokenValidator>,
}

const PAGE: &str = include_str!("../web/index.html");
const CLIENT_JS: &str = include_str!("../web/client.js");
/// Garbage messages tolerated before a client is dropped.
const MAX_BAD_MESSAGES: u32 = 5;
const MAX_MESSAGE: usize = 256 * 1024;

/// The routes: `GET /rooms/{room}`, `GET /rooms/client.js`, `GET /v1/rtc` (WebSocket),
/// `POST /whip/{room}`, `DELETE`/`PATCH /whip/{room}/{participant}`.
pub fn router(sfu: Sfu, tokens: Arc<dyn TokenValidator>) -> Router {
    Router::new()
        .route("/rooms/{room}", get(page))
        .route("/sfu/client.js", get(client_js))
        .route("/v1/rtc", get(ws_upgrade))
        .route("/whip/{room}", post(whip_post))
        .route("/whip/{room}/{id}", axum::routing::delete(whip_delete).patch(whip_patch))
        .with_state(AppState { sfu, tokens })
}

/// `{"error":{"code","message","field"}}` with a 4xx/5xx status.
pub fn json_error(status: StatusCode, code: &str, message: &str, field: Option<&str>) -> Response {
    let mut e = serde_json::json!({"code": code, "message": message});
    if let Some(f) = field {
        e["field"] = serde_json::Value::String(f.to_owned());
    }
    (status, axum::Json(serde_json::json!({ "error": e }))).into_response()
}

fn error_response(e: &Error) -> Response {
    let status = match e {
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::BadRequest(_) => StatusCode::BAD_REQUEST,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::WebRtc(_) => StatusCode::UNPROCESSABLE_ENTITY,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, e.code(), &e.to_string(), None)
}

fn valid_room(room: &str) -> bool {
    !room.is_empty() && room.len() <= 64 && room.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

async fn page(Path(room): Path<String>) -> Response {
    if !valid_room(&room) {
        return json_error(StatusCode::NOT_FOUND, "not_found", "invalid room name", None);
    }
    Html(PAGE).into_response()
}

async fn client_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], CLIENT_JS).into_response()
}

/// The STUN/TURN servers (with credentials) for a participant: for its token's identity, else
/// its participant id. Empty when none are configured.
fn ice_servers_for(sfu: &Sfu, participant: &Participant) -> Vec<IceServer> {
    match &sfu.config().ice_servers {
        Some(provider) => provider.ice_servers(participant.identity().unwrap_or(&participant.id)),
        None => Vec::new(),
    }
}

/// RFC 9725 (WHIP) section 4.6: one `Link: <URL>; rel="ice-server"` per URL, with the username
/// and credential (`credential-type="password"`) when there are some. Values that cannot be
/// header values (or quoted strings) are left out.
fn ice_server_links(servers: &[IceServer]) -> Vec<HeaderValue> {
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

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

async fn whip_post(State(st): State<AppState>, Path(room): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if !valid_room(&room) {
        return json_error(StatusCode::NOT_FOUND, "not_found", "invalid room name", None);
    }
    let Some(token) = bearer(&headers) else {
        return json_error(StatusCode::UNAUTHORIZED, "unauthorized", "missing bearer token", None);
    };
    if !st.tokens.validate(&room, token) {
        return json_error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid token", None);
    }
    if !st.tokens.grants(&room, token).publish {
        return json_error(StatusCode::FORBIDDEN, "forbidden", "this token does not allow publishing", None);
    }
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/sdp") {
        return json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/sdp",
            None,
        );
    }
    if body.len() > 64 * 1024 {
        return json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "SDP offers are limited to 64 KiB",
            None,
        );
    }
    let Ok(sdp) = String::from_utf8(body.to_vec()) else {
        return json_error(StatusCode::BAD_REQUEST, "bad_request", "SDP is not UTF-8", None);
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

async fn whip_delete(
    State(st): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let authorized = bearer(&headers).is_some_and(|t| st.tokens.validate(&room, t));
    if !authorized {
        return json_error(StatusCode::UNAUTHORIZED, "unauthorized", "missing or invalid bearer token", None);
    }
    let p = st.sfu.get_room(&room).and_then(|r| r.participants().into_iter().find(|p| p.id == id));
    match p {
        Some(p) => {
            p.leave().await;
            StatusCode::OK.into_response()
        }
        None => json_error(StatusCode::NOT_FOUND, "not_found", "no such WHIP session", None),
    }
}

async fn whip_patch() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "trickle ICE over WHIP PATCH is not supported; send all candidates in the offer",
        None,
    )
}

async fn ws_upgrade(State(st): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| run_ws(st, socket))
}

async fn send_json(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    match serde_json::to_string(msg) {
        Ok(s) => socket.send(Message::Text(s.into())).await.is_ok(),
        Err(_) => false,
    }
}

fn err_msg(code: &str, message: &str, fatal: bool) -> ServerMessage {
    ServerMessage::Error { code: code.into(), message: message.into(), fatal }
}

async fn run_ws(st: AppState, mut socket: WebSocket) {
    // 1. Join, within 10 s.
    let first = tokio::time::timeout(Duration::from_secs(10), socket.recv()).await;
    let text = match first {
        Ok(Some(Ok(Message::Text(t)))) => t,
        _ => {
            send_json(&mut socket, &err_msg("bad_request", "expected a join message", true)).await;
            return;
        }
    };
    let (room, token, name) = match serde_json::from_str::<ClientMessage>(&text) {
        Ok(ClientMessage::Join { room, token, name }) => (room, token, name),
        Ok(_) => {
            send_json(&mut socket, &err_msg("bad_request", "the first message must be join", true)).await;
            return;
        }
        Err(e) => {
            send_json(&mut socket, &err_msg("bad_request", &format!("malformed message: {e}"), true)).await;
            return;
        }
    };
    if !valid_room(&room) {
        send_json(&mut socket, &err_msg("bad_request", "invalid room name", true)).await;
        return;
    }
    if !st.tokens.validate(&room, &token) {
        send_json(&mut socket, &err_msg("unauthorized", "invalid token", true)).await;
        return;
    }
    let name: String = name.unwrap_or_else(|| "guest".into()).chars().take(64).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerMessage>();
    let participant = match st.sfu.room(&room).join_as(name, st.tokens.identity(&room, &token), Some(tx.clone())) {
        Ok(p) => p,
        Err(e) => {
            send_json(&mut socket, &err_msg(e.code(), &e.to_string(), true)).await;
            return;
        }
    };
    participant.set_grants(st.tokens.grants(&room, &token));
    // Existing tracks: subscribe right away.
    {
        let p = Arc::clone(&participant);
        tokio::spawn(async move {
            if let Err(e) = p.sync_subscriptions().await {
                tracing::warn!("initial subscribe failed: {e}");
            }
        });
    }
    let mut bad = 0u32;
    loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(mut msg) = out else { break };
                // The room announces the join; the ICE servers depend on the token, known here.
                if let ServerMessage::Joined { ice_servers, .. } = &mut msg {
                    *ice_servers = ice_servers_for(&st.sfu, &participant);
                }
                let fatal = matches!(msg, ServerMessage::Error { fatal: true, .. });
                if !send_json(&mut socket, &msg).await || fatal {
                    break;
                }
            }
            inc = socket.recv() => {
                let text = match inc {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        bad += 1;
                        let fatal = bad >= MAX_BAD_MESSAGES;
                        let _ = tx.send(err_msg("bad_request", "binary messages are not part of the protocol", fatal));
                        continue;
                    }
                    _ => break,
                };
                match serde_json::from_str::<ClientMessage>(&text) {
                    Ok(ClientMessage::Leave) => break,
                    Ok(m) => {
                        if let Err(e) = handle(&participant, m).await {
                            bad += 1;
                            let fatal = bad >= MAX_BAD_MESSAGES;
                            let _ = tx.send(err_msg(e.code(), &e.to_string(), fatal));
                        }
                    }
                    Err(e) => {
                        bad += 1;
                        let fatal = bad >= MAX_BAD_MESSAGES;
                        let _ = tx.send(err_msg("bad_request", &format!("malformed message: {e}"), fatal));
                    }
                }
            }
        }
    }
    participant.leave().await;
}

async fn handle(p: &Arc<Participant>, m: ClientMessage) -> crate::Result<()> {
    match m {
        ClientMessage::Join { .. } => Err(Error::BadRequest("already joined".into())),
        ClientMessage::PublishOffer { sdp, tracks } => {
            let answer = p.publish_offer(sdp, tracks).await?;
            p.send(ServerMessage::PublishAnswer { sdp: answer });
            Ok(())
        }
        ClientMessage::SubscribeAnswer { sdp } => p.subscribe_answer(sdp).await,
        ClientMessage::Candidate { target, candidate } => p.add_candidate(target, candidate).await,
        ClientMessage::Mute { track_id, muted } => p.set_muted(&track_id, muted),
        ClientMessage::Subscribe { participants } => p.set_subscriptions(participants).await,
        ClientMessage::SetVideoSize { track_id, max_height } => {
            p.set_video_size(&track_id, max_height);
            Ok(())
        }
        ClientMessage::SetMaxBitrate { bps } => {
            p.set_max_bitrate(bps.unwrap_or(0));
            Ok(())
        }
        ClientMessage::Stats { stats } => {
            tracing::debug!(participant = %p.id, %stats, "client stats");
            *p.stats.lock().unwrap_or_else(|e| e.into_inner()) = Some(stats);
            Ok(())
        }
        ClientMessage::Ping => {
            p.send(ServerMessage::Pong);
            Ok(())
        }
        ClientMessage::Leave => Ok(()),
    }
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
