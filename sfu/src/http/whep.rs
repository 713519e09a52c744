//! WHEP playback (draft-ietf-wish-whep): a viewer `POST`s its `recvonly` SDP offer with a bearer
//! token that may subscribe, and receives the room's program (what the [`crate::WhepSource`]
//! names) in our answer; a `DELETE` of the resource it was given ends it. Trickle ICE
//! (`PATCH`) is refused: the answer carries all our candidates. Viewers are an audience, not
//! participants (see `whep.rs`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::errors::{error_response, json_error};
use super::whip::{ice_server_links, refuse_session_delete};
use super::{AppState, ice_servers_named};
use crate::participant::validate_sdp;
use crate::whep::{ViewerError, release};

pub(super) async fn whep_post(
    State(st): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (offer, token) = match super::whip::checked_offer(&st, &room, &headers, &body, super::whip::Grant::Subscribe) {
        Ok(checked) => checked,
        Err(refusal) => return *refusal,
    };
    // A malformed offer is refused before the source is started for it.
    if let Err(e) = validate_sdp(&offer) {
        return error_response(&e);
    }
    if let Err(e) = rtc::peer_connection::sdp::RTCSessionDescription::offer(offer.clone()) {
        return json_error(StatusCode::BAD_REQUEST, "bad_request", &format!("unparseable SDP offer: {e}"), None);
    }
    let Some(source) = st.sfu.whep_source() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server plays no rooms over WHEP",
            None,
        );
    };
    let acquired = {
        let (src, r) = (source.clone(), room.clone());
        let mut pending = PendingAcquire {
            task: Some(tokio::task::spawn_blocking(move || src.acquire(&r))),
            source: source.clone(),
            room: room.clone(),
        };
        pending.finish().await
    };
    let participant = match acquired {
        Ok(Ok(id)) => id,
        Ok(Err(message)) => return json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &message, None),
        Err(e) => {
            tracing::warn!(%room, "WHEP source failed: {e}");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the room's program cannot start", None);
        }
    };
    match st.sfu.start_viewer(&room, source.clone(), &participant, offer) {
        Ok((viewer, answer)) => {
            let mut r = (StatusCode::CREATED, answer).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/sdp"));
            if let Ok(v) = HeaderValue::from_str(&format!("/whep/{room}/{}", viewer.id)) {
                h.insert(header::LOCATION, v);
            }
            let who = st.tokens.identity(&room, token).unwrap_or_else(|| viewer.id.clone());
            for link in ice_server_links(&ice_servers_named(&st.sfu, &who)) {
                h.append(header::LINK, link);
            }
            r
        }
        Err(e) => {
            release(source, room);
            match e {
                ViewerError::Codec(m) => json_error(StatusCode::UNPROCESSABLE_ENTITY, "unsupported_codec", &m, None),
                ViewerError::Unavailable(m) => json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", &m, None),
                ViewerError::Other(e) => error_response(&e),
            }
        }
    }
}

pub(super) async fn whep_delete(
    State(st): State<AppState>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_session_delete(&st, &room, &headers) {
        return refused;
    }
    if st.sfu.end_viewer(&room, &id) {
        StatusCode::OK.into_response()
    } else {
        json_error(StatusCode::NOT_FOUND, "not_found", "no such WHEP session", None)
    }
}

pub(super) async fn whep_patch() -> Response {
    json_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "trickle ICE over WHEP PATCH is not supported; the answer carries all candidates",
        None,
    )
}

/// A source being acquired for a viewer. The client may go away meanwhile (the request's
/// future is then dropped), but the acquire runs on: what it acquired is released once it is
/// done, or the viewer count it took would never be given back and the program never stop.
struct PendingAcquire {
    task: Option<tokio::task::JoinHandle<std::result::Result<String, String>>>,
    source: std::sync::Arc<dyn crate::whep::WhepSource>,
    room: String,
}

impl PendingAcquire {
    async fn finish(&mut self) -> std::result::Result<std::result::Result<String, String>, tokio::task::JoinError> {
        let Some(task) = self.task.as_mut() else { return Ok(Err("already acquired".into())) };
        let done = task.await;
        self.task = None;
        done
    }
}

impl Drop for PendingAcquire {
    fn drop(&mut self) {
        let Some(task) = self.task.take() else { return };
        let (source, room) = (self.source.clone(), std::mem::take(&mut self.room));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Ok(Ok(_)) = task.await {
                    tracing::debug!(%room, "a WHEP viewer left before its answer: its program use is released");
                    release(source, room);
                }
            });
        }
    }
}
