//! The bot's WebSocket to the server: connect, send and receive the signalling protocol's
//! messages (`sfu/PROTOCOL.md`).

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tessera_sfu::signal::{ClientMessage, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

use crate::bot::{BotError, HTTP_TIMEOUT, ServerUrl};

pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(server: &ServerUrl) -> Result<Ws, BotError> {
    let tls =
        if server.ws.starts_with("wss:") { Some(Arc::new(crate::http_client::tls_client_config()?)) } else { None };
    connect_with(server, tls).await
}

/// [`connect`] with a TLS configuration made once for many connections (`wss://` only).
pub async fn connect_with(server: &ServerUrl, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Ws, BotError> {
    let connector = tls.filter(|_| server.ws.starts_with("wss:")).map(tokio_tungstenite::Connector::Rustls);
    let connecting = tokio_tungstenite::connect_async_tls_with_config(server.ws.as_str(), None, false, connector);
    let (ws, _) = tokio::time::timeout(HTTP_TIMEOUT, connecting)
        .await
        .map_err(|_| BotError::Signalling(format!("{} did not answer", server.ws)))?
        .map_err(BotError::signalling(&server.ws))?;
    Ok(ws)
}

pub async fn send(ws: &mut Ws, msg: &ClientMessage) -> Result<(), BotError> {
    let text = serde_json::to_string(msg).map_err(BotError::signalling("encoding a message"))?;
    ws.send(Message::text(text)).await.map_err(BotError::signalling("send"))
}

/// The next protocol message; messages this build does not know are skipped.
pub async fn next_message(ws: &mut Ws) -> Result<ServerMessage, BotError> {
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| BotError::Signalling("the server closed the connection".into()))?
            .map_err(BotError::signalling("receive"))?;
        match frame {
            Message::Text(text) => match serde_json::from_str::<ServerMessage>(&text) {
                Ok(msg) => return Ok(msg),
                Err(e) => tracing::debug!(%e, "skipping a message this bot does not know"),
            },
            Message::Close(_) => return Err(BotError::Signalling("the server closed the connection".into())),
            _ => {}
        }
    }
}
