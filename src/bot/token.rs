//! Minting a participant token with the API key, as an application would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::bot::{BotError, HTTP_TIMEOUT, ServerUrl};
use crate::cli::BotArgs;

/// `POST /v1/rooms/{room}/tokens` with the API key, for the bot's own participant.
pub async fn mint_token(server: &ServerUrl, key: &str, args: &BotArgs) -> Result<String, BotError> {
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => format!("{}-{}", identity_base(&args.name), random_suffix()),
    };
    let client = crate::http_client::https_client()?;
    let grants = Grants { publish: true, subscribe: args.subscribe };
    mint(&client, server, key, &args.room, &identity, &args.name, grants).await
}

/// What a minted token allows.
#[derive(Debug, Clone, Copy)]
pub struct Grants {
    pub publish: bool,
    pub subscribe: bool,
}

/// The name's letters, digits, '-' and '_' (at most 40), as an identity's start: `bot` when
/// none are left.
pub fn identity_base(name: &str) -> String {
    let base: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(40).collect();
    if base.is_empty() { "bot".to_owned() } else { base }
}

/// Six random hex digits, so that two bots of one name get different identities.
pub fn random_suffix() -> String {
    format!("{:06x}", getrandom::u32().unwrap_or(0) & 0xff_ffff)
}

/// `POST /v1/rooms/{room}/tokens` through `client` (shared by the load generator's
/// subscribers).
pub async fn mint(
    client: &crate::http_client::HttpsClient,
    server: &ServerUrl,
    key: &str,
    room: &str,
    identity: &str,
    name: &str,
    grants: Grants,
) -> Result<String, BotError> {
    let body = json!({ "identity": identity, "name": name, "publish": grants.publish, "subscribe": grants.subscribe });
    let request = hyper::Request::post(format!("{}/v1/rooms/{}/tokens", server.http, room))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {key}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(BotError::token("the request"))?;
    let response = tokio::time::timeout(HTTP_TIMEOUT, client.request(request))
        .await
        .map_err(|_| BotError::Token(format!("{} did not answer", server.http)))?
        .map_err(BotError::token(&server.http))?;
    let status = response.status();
    let bytes = response.into_body().collect().await.map_err(BotError::token("reading the reply"))?.to_bytes();
    let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        let message = reply["error"]["message"].as_str().unwrap_or("no details");
        return Err(BotError::Token(format!("HTTP {status}: {message}")));
    }
    reply["token"].as_str().map(str::to_owned).ok_or_else(|| BotError::Token("no token in the reply".into()))
}
