//! The built-in web client: its page for a room and its script (`sfu/web/`).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::errors::json_error;
use super::valid_room;

const PAGE: &str = include_str!("../../web/index.html");
const CLIENT_JS: &str = include_str!("../../web/client.js");

pub(super) async fn page(Path(room): Path<String>) -> Response {
    if !valid_room(&room) {
        return json_error(StatusCode::NOT_FOUND, "not_found", "invalid room name", None);
    }
    Html(PAGE).into_response()
}

pub(super) async fn client_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], CLIENT_JS).into_response()
}
