//! The signalling WebSocket (`/v1/rtc`) in a cluster: the room is named in the client's first
//! message (`join`), so this node accepts the socket, reads that message, places the room and
//! relays the conversation to the room's node, message for message, both ways. Media then
//! flows straight between the client and that node (its ICE candidates are in the answers).

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

use super::{ClusterNode, Peer};
use crate::server::AppState;

/// As the SFU's own socket: a join within 10 s, messages up to 256 KiB.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_MESSAGE: usize = 256 * 1024;

/// Upgrades the request, reads the join, and hands the socket to this node's SFU if the room
/// is here, else relays it to the room's node.
pub async fn accept(state: AppState, node: ClusterNode, request: Request) -> Response {
    let (mut parts, _body) = request.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| relay(state, node, socket))
}

/// `{"type":"error",...}` as the SFU sends it, then the socket closes.
async fn refuse(socket: &mut WebSocket, code: &str, message: &str) {
    let error = serde_json::json!({"type": "error", "code": code, "message": message, "fatal": true});
    let _ = socket.send(Message::Text(error.to_string().into())).await;
    let _ = socket.close().await;
}

async fn relay(state: AppState, node: ClusterNode, mut client: WebSocket) {
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
    let peer = match super::routing::host(&state, &node, &room, true).await {
        Ok(Some(peer)) => peer,
        Ok(None) => {
            // The room is here: the SFU takes the socket as it is.
            let Some(media) = state.media() else { return };
            let tokens = std::sync::Arc::new(crate::server::RoomTokens(state.tokens().clone()));
            return tessera_sfu::serve_socket(media.sfu.clone(), tokens, client, first).await;
        }
        Err(refusal) => return refuse(&mut client, refusal.code, &refusal.message).await,
    };
    let upstream = match connect(&node, &peer).await {
        Ok(upstream) => upstream,
        Err(err) => {
            node.count_forward(true, false);
            tracing::warn!(%room, node = %peer.id, %err, "cannot reach the room's node for signalling");
            return refuse(&mut client, "node_unreachable", "the room's node cannot be reached; try again").await;
        }
    };
    node.count_forward(true, true);
    pump(client, upstream, first).await
}

/// Relays messages both ways until either side ends (the other half is then closed too).
async fn pump(client: WebSocket, upstream: Upstream, first: String) {
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut client_tx, mut client_rx) = client.split();
    if up_tx.send(tungstenite::Message::text(first)).await.is_err() {
        let _ = client_tx.close().await;
        return;
    }
    let to_node = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let Some(message) = to_tungstenite(message) else { continue };
            let closing = message.is_close();
            if up_tx.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = up_tx.close().await;
    };
    let to_client = async {
        while let Some(Ok(message)) = up_rx.next().await {
            let Some(message) = from_tungstenite(message) else { continue };
            let closing = matches!(message, Message::Close(_));
            if client_tx.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::select! {
        () = to_node => {},
        () = to_client => {},
    }
}

type Upstream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(node: &ClusterNode, peer: &Peer) -> Result<Upstream, String> {
    let base = peer.url.as_str();
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}/v1/rtc")
    } else {
        format!("ws://{}/v1/rtc", base.strip_prefix("http://").unwrap_or(base))
    };
    let mut request = ws.into_client_request().map_err(|e| e.to_string())?;
    for (name, value) in node.forwarding_headers(peer) {
        if let Ok(value) = value.parse() {
            request.headers_mut().insert(name, value);
        }
    }
    let connecting = tokio_tungstenite::connect_async(request);
    let (stream, _) = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

fn to_tungstenite(message: Message) -> Option<tungstenite::Message> {
    Some(match message {
        Message::Text(text) => tungstenite::Message::text(text.to_string()),
        Message::Binary(bytes) => tungstenite::Message::binary(bytes),
        Message::Close(_) => tungstenite::Message::Close(None),
        // Pings are answered by each hop itself.
        Message::Ping(_) | Message::Pong(_) => return None,
    })
}

fn from_tungstenite(message: tungstenite::Message) -> Option<Message> {
    Some(match message {
        tungstenite::Message::Text(text) => Message::Text(text.as_str().into()),
        tungstenite::Message::Binary(bytes) => Message::Binary(bytes),
        tungstenite::Message::Close(_) => Message::Close(None),
        _ => return None,
    })
}
