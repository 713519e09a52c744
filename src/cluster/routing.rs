//! Which node answers a request: the middleware in front of every route in cluster mode.
//!
//! A request naming a room (or a recording or stream, which belong to a room's node) is
//! served here if the room lives here, else forwarded to its node. Starting something in a
//! room (a recording, a stream, a WHIP publisher) places the room first if it has no node.
//! A request another node already forwarded is always served where it lands.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_cluster::ClusterError;

use std::time::Duration;

use super::{ClusterNode, Forwarded};
use crate::server::{ApiError, AppState};

/// Where a request belongs, from its method and path alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Any node answers it (tokens, layouts, listings, pages, health, metrics).
    Any,
    /// The room's node; `place`: starting something, so the room gets a node if it has none.
    Room { room: String, place: bool },
    /// The node that owns a recording, stream or HLS output (`kind`: `recordings`, `streams`,
    /// `hls`).
    Record { kind: &'static str, id: String },
    /// The signalling WebSocket: the room is in its first message.
    Signalling,
    /// A WHIP publisher: hosted here (the room gets a home node if it has none).
    Whip { room: String },
    /// A new WHEP viewer: served here (the room gets a home node if it has none); when the
    /// home is another node, the program it watches comes through the relay.
    Whep { room: String },
}

pub fn target(method: &Method, path: &str) -> Target {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    // A name that is not a room's is left to the handlers (they answer 400/404).
    if parts.iter().any(|p| p.contains('%')) {
        return Target::Any;
    }
    let room = |room: &str, place: bool| match tessera_sfu::valid_room(room) {
        true => Target::Room { room: room.to_owned(), place },
        false => Target::Any,
    };
    match (method, parts.as_slice()) {
        (_, ["v1", "rtc"]) => Target::Signalling,
        (_, ["v1", "rooms", r]) | (_, ["v1", "rooms", r, "preview.jpg"]) => room(r, false),
        (&Method::POST, ["v1", "rooms", r, "recordings" | "streams" | "hls"]) => room(r, true),
        // An HLS output's files are served by the node that runs it: the room's.
        (&Method::GET, ["hls", r, _, _]) => room(r, false),
        (&Method::POST, ["whip", r]) if tessera_sfu::valid_room(r) => Target::Whip { room: (*r).to_owned() },
        // A WHIP session lives where its POST was answered (its Location names that node).
        (_, ["whip", _, _]) => Target::Any,
        (&Method::POST, ["whep", r]) if tessera_sfu::valid_room(r) => Target::Whep { room: (*r).to_owned() },
        // A WHEP viewer lives where its POST was answered, like a WHIP session.
        (_, ["whep", _, _]) => Target::Any,
        // Between nodes: for the room's home.
        (_, ["v1", "rooms", r, "program-viewers", _]) => room(r, false),
        (_, ["v1", kind @ ("recordings" | "streams" | "hls"), id, ..]) => {
            let kind = match *kind {
                "recordings" => "recordings",
                "hls" => "hls",
                _ => "streams",
            };
            Target::Record { kind, id: (*id).to_owned() }
        }
        _ => Target::Any,
    }
}

/// How long a routing decision may wait on Redis before it counts as an outage (a request
/// waiting on Redis is a request a user waits for).
const DECISION_DEADLINE: Duration = Duration::from_secs(3);

/// The middleware: serve here, or forward to the node that hosts the request's room.
pub async fn route(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(node) = state.cluster().cloned() else { return next.run(request).await };
    match node.forwarded_here(request.headers()) {
        Forwarded::No => {
            // A client's own copy of the marker headers means nothing.
            super::strip_forwarding_headers(request.headers_mut());
        }
        Forwarded::ToUs => return next.run(request).await,
        Forwarded::ToAnother(id) => {
            return ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected",
                format!("this is node {}, not {id}: check the nodes' --public-url", node.node_id()),
            )
            .into_response();
        }
    }
    let target = target(request.method(), request.uri().path());
    // Only a caller who may start something in the room gets a room placed; the others are
    // answered here (401 from the API key check or the SFU's token check).
    if matches!(
        target,
        Target::Room { place: true, .. } | Target::Record { .. } | Target::Whip { .. } | Target::Whep { .. }
    ) && !may_act(&state, &request, &target)
    {
        return next.run(request).await;
    }
    match target {
        Target::Any => next.run(request).await,
        Target::Signalling => super::signalling::accept(state, node, request).await,
        Target::Whip { room } | Target::Whep { room } => match host(&state, &node, &room, true).await {
            Ok(_) => {
                node.follow_room(&room);
                next.run(request).await
            }
            Err(refusal) => refusal.into_response(),
        },
        Target::Room { room, place } => match host(&state, &node, &room, place).await {
            Ok(Some(peer)) => node.forward(&peer, request).await,
            Ok(None) => next.run(request).await,
            Err(refusal) => refusal.into_response(),
        },
        Target::Record { kind, id } => match owner(&node, kind, &id).await {
            // A read whose node cannot be reached (it stopped a moment ago) is answered here
            // from the shared record.
            Some(peer) if request.method() == Method::GET => {
                let (parts, body) = request.into_parts();
                let again = Request::from_parts(parts.clone(), axum::body::Body::empty());
                let answer = node.forward(&peer, Request::from_parts(parts, body)).await;
                if answer.status() == StatusCode::BAD_GATEWAY { next.run(again).await } else { answer }
            }
            Some(peer) => node.forward(&peer, request).await,
            None => next.run(request).await,
        },
    }
}

/// Whether the request carries what starting something in its room takes: the API key for
/// `/v1`, a participant token of the room for WHIP.
fn may_act(state: &AppState, request: &Request, target: &Target) -> bool {
    let bearer = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(bearer) = bearer else { return false };
    match target {
        // A WHIP publisher: a token of the room that allows publishing.
        Target::Whip { room } => {
            state.tokens().verify(bearer, room, crate::time::unix_now()).is_ok_and(|claims| claims.publish)
        }
        // A WHEP viewer: a token of the room that allows subscribing.
        Target::Whep { room, .. } => {
            state.tokens().verify(bearer, room, crate::time::unix_now()).is_ok_and(|claims| claims.subscribe)
        }
        _ => state.api_key().matches(bearer),
    }
}

/// The other node hosting `room`, `None` if it is (or is now placed) here, or nowhere yet and
/// not being started.
pub async fn host(
    state: &AppState,
    node: &ClusterNode,
    room: &str,
    place: bool,
) -> Result<Option<super::Peer>, ApiError> {
    let lookup =
        async { if place { node.cluster.place(room).await.map(Some) } else { node.cluster.host_of(room).await } };
    let found =
        tokio::time::timeout(DECISION_DEADLINE, lookup).await.unwrap_or(Err(ClusterError::Timeout(DECISION_DEADLINE)));
    match found {
        Ok(Some(host)) if host.id() != node.node_id() => Ok(Some(super::Peer::of(&host))),
        Ok(_) => Ok(None),
        Err(err) => {
            // Redis away: a room this node hosts keeps being served here; a new one waits.
            let here = state.media().is_some_and(|media| super::load::hosts(media, room));
            if here {
                return Ok(None);
            }
            Err(refusal(err, place))
        }
    }
}

fn refusal(err: ClusterError, place: bool) -> ApiError {
    match err {
        ClusterError::NoCapacity => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_capacity",
            "no node can take this room now: every node is at its program or CPU budget",
        ),
        ClusterError::Busy { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "placement_busy",
            "another node is placing this room; try again",
        ),
        err if place => {
            tracing::warn!(%err, "cannot place a room");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                "the cluster's shared state is unreachable; new rooms can be placed again when it is back",
            )
        }
        err => {
            tracing::warn!(%err, "cannot look up a room");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cluster_unavailable",
                "the cluster's shared state is unreachable and this room is not on this node",
            )
        }
    }
}

/// The other node that owns a recording or stream, if it is up.
async fn owner(node: &ClusterNode, kind: &str, id: &str) -> Option<super::Peer> {
    let lookup = async {
        let record = node.cluster.record_of(kind, id).await.ok()??;
        let owner = record.get("node")?.as_str()?.to_owned();
        if owner == node.node_id() {
            return None;
        }
        let info = node.cluster.node(&owner).await.ok()??;
        info.is_up().then(|| super::Peer::of(&info))
    };
    tokio::time::timeout(DECISION_DEADLINE, lookup).await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_their_room() {
        let room = |r: &str, place| Target::Room { room: r.into(), place };
        assert_eq!(target(&Method::GET, "/v1/rooms/a"), room("a", false));
        assert_eq!(target(&Method::PATCH, "/v1/rooms/a"), room("a", false));
        assert_eq!(target(&Method::GET, "/v1/rooms/a/preview.jpg"), room("a", false));
        assert_eq!(target(&Method::POST, "/v1/rooms/a/recordings"), room("a", true));
        assert_eq!(target(&Method::POST, "/v1/rooms/a/streams"), room("a", true));
        assert_eq!(target(&Method::POST, "/whip/a"), Target::Whip { room: "a".into() });
        assert_eq!(target(&Method::DELETE, "/whip/a/p1"), Target::Any);
        assert_eq!(target(&Method::POST, "/whep/a"), Target::Whep { room: "a".into() });
        assert_eq!(target(&Method::DELETE, "/whep/a/v1"), Target::Any);
        assert_eq!(target(&Method::PUT, "/v1/rooms/a/program-viewers/n2"), room("a", false));
        assert_eq!(target(&Method::GET, "/v1/rtc"), Target::Signalling);
        let rec = |kind, id: &str| Target::Record { kind, id: id.into() };
        assert_eq!(target(&Method::GET, "/v1/recordings/r1"), rec("recordings", "r1"));
        assert_eq!(target(&Method::POST, "/v1/recordings/r1/stop"), rec("recordings", "r1"));
        assert_eq!(target(&Method::PATCH, "/v1/streams/s1"), rec("streams", "s1"));
        assert_eq!(target(&Method::POST, "/v1/hls/h1/stop"), rec("hls", "h1"));
        assert_eq!(target(&Method::POST, "/v1/rooms/a/hls"), room("a", true));
        assert_eq!(target(&Method::GET, "/hls/a/h1/index.m3u8"), room("a", false));
        for any in ["/v1/rooms", "/v1/recordings", "/v1/rooms/a/tokens", "/rooms/a", "/v1/nodes", "/v1/health"] {
            assert_eq!(target(&Method::GET, any), Target::Any, "{any}");
        }
        assert_eq!(target(&Method::POST, "/v1/rooms/a/tokens"), Target::Any);
        assert_eq!(target(&Method::GET, "/v1/rooms/a/recordings"), Target::Any);
        // Names that are not a room's are left to the handlers (400/404), never placed.
        assert_eq!(target(&Method::POST, "/v1/rooms/a%2Db/recordings"), Target::Any);
        assert_eq!(target(&Method::POST, "/whip/a.b"), Target::Any);
        assert_eq!(target(&Method::GET, &format!("/v1/rooms/{}", "x".repeat(65))), Target::Any);
    }
}
