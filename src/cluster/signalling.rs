//! The signalling WebSocket (`/v1/rtc`) in a cluster: the room is named in the client's first
//! message (`join`), so this node accepts the socket, reads that message, checks it, gives the
//! room a home node if it has none, and hands the socket to its own SFU: a participant is
//! hosted by the node its signalling reaches, and the room spans every node that hosts one
//! of its participants (see `cascade.rs`).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;

use super::ClusterNode;
use crate::server::AppState;

/// As the SFU's own socket: a join within 10 s, messages up to 256 KiB.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_MESSAGE: usize = 256 * 1024;

/// Upgrades the request, reads the join, and hands the socket to this node's SFU.
pub async fn accept(state: AppState, node: ClusterNode, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| join(state, node, socket))
}

/// `{"type":"error",...}` as the SFU sends it, then the socket closes.
async fn refuse(socket: &mut WebSocket, code: &str, message: &str) {
    let error = serde_json::json!({"type": "error", "code": code, "message": message, "fatal": true});
    let _ = socket.send(Message::Text(error.to_string().into())).await;
    let _ = socket.close().await;
}

async fn join(state: AppState, node: ClusterNode, mut client: WebSocket) {
    let first = match tokio::time::timeout(JOIN_TIMEOUT, client.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => text.to_string(),
        _ => return refuse(&mut client, "bad_request", "expected a join message").await,
    };
    // The room and token are checked before anything is placed: a socket that may not join
    // never touches the cluster. The SFU that gets the message checks all of it again.
    let join = serde_json::from_str::<serde_json::Value>(&first).ok().filter(|v| v["type"] == "join");
    let room = join.as_ref().and_then(|v| v["room"].as_str()).map(str::to_owned);
    let token = join.as_ref().and_then(|v| v["token"].as_str()).unwrap_or_default().to_owned();
    let Some(room) = room else {
        return refuse(&mut client, "bad_request", "the first message must be join, with a room").await;
    };
    if !tessera_sfu::valid_room(&room) {
        return refuse(&mut client, "bad_request", "invalid room name").await;
    }
    if state.tokens().verify(&token, &room, crate::time::unix_now()).is_err() {
        return refuse(&mut client, "unauthorized", "invalid token").await;
    }
    // The room gets its home node (where its program runs) if it has none; the participant
    // itself is hosted here whatever the home: its media reaches the room's other nodes over
    // relay links (`tessera_sfu::cascade`).
    if let Err(refusal) = super::routing::host(&state, &node, &room, true).await {
        return refuse(&mut client, refusal.code, &refusal.message).await;
    }
    let Some(media) = state.media() else { return };
    node.follow_room(&room);
    let tokens = std::sync::Arc::new(crate::server::RoomTokens(state.tokens().clone()));
    tessera_sfu::serve_socket(media.sfu.clone(), tokens, client, first).await
}
