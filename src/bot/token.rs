//! Minting a participant token with the API key, as an application would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::bot::{BotError, HTTP_TIMEOUT, ServerUrl};
use crate::cli::BotArgs;

/// `POST /v1/rooms/{room}/tokens` with the API key.
pub async fn mint_token(server: &ServerUrl, key: &str, args: &BotArgs) -> Result<String, BotError> {
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => {
            let base: String =
                args.name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').take(40).collect();
            let base = if base.is_empty() { "bot".to_owned() } else { base };
            format!("{base}-{:06x}", getrandom::u32().unwrap_or(0) & 0xff_ffff)
        }
    };
    let body = json!({ "identity": identity, "name": args.name, "publish": true, "subscribe": args.subscribe });
    let client = crate::http_client::https_client()?;
    let request = hyper::Request::post(format!("{}/v1/rooms/{}/tokens", server.http, args.room))
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
