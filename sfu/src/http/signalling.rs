//! The WebSocket signalling (`GET /v1/rtc`, `PROTOCOL.md`): a client joins with its first
//! message, then the participant's messages go out and the client's are handled in order,
//! until it leaves, the socket closes or it sends too much garbage.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use tokio::sync::mpsc;

use super::{AppState, ice_servers_for, valid_room};
use crate::error::Error;
use crate::participant::Participant;
use crate::signal::{ClientMessage, ServerMessage};
use crate::sync::lock;

/// Garbage messages tolerated before a client is dropped.
const MAX_BAD_MESSAGES: u32 = 5;
/// The largest WebSocket message taken.
const MAX_MESSAGE: usize = 256 * 1024;

pub(super) async fn ws_upgrade(State(st): State<AppState>, ws: WebSocketUpgrade) -> Response {
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
        Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
        _ => {
            send_json(&mut socket, &err_msg("bad_request", "expected a join message", true)).await;
            return;
        }
    };
    run_joined(st, socket, text).await
}

/// Serves a signalling socket whose first message (the join) was already read, by someone
/// who had to see it first (in a cluster, the binary reads the room from it to find the
/// room's node).
pub(super) async fn serve_joined(st: AppState, socket: WebSocket, join: String) {
    run_joined(st, socket, join).await
}

async fn run_joined(st: AppState, mut socket: WebSocket, text: String) {
    let (room, token, name, subscribe) = match serde_json::from_str::<ClientMessage>(&text) {
        Ok(ClientMessage::Join { room, token, name, subscribe }) => (room, token, name, subscribe),
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
    if let Some(only) = subscribe {
        participant.set_initial_subscriptions(only);
    }
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
            *lock(&p.stats) = Some(stats);
            Ok(())
        }
        ClientMessage::Ping => {
            p.send(ServerMessage::Pong);
            Ok(())
        }
        ClientMessage::Leave => Ok(()),
    }
}
