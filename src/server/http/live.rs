//! `GET /ws`: who may open the live feed, and how its socket is set up; the feed itself is
//! `server::ws`.

use std::time::Duration;

use axum::{
    extract::{
        ws::{WebSocket, WebSocketUpgrade},
        State,
    },
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
};
use futures::StreamExt;

use super::extract::{Caller, ClientAddr};
use crate::{
    model::{ApiError, ErrorCode},
    server::{
        ws::{serve_socket, Feed, MAX_CLIENT_MESSAGE_BYTES, READ_BUFFER_BYTES},
        AppState,
    },
};

/// Upgrades the request; the session decides which owner-only events the socket gets.
///
/// A page of another site may not open one (the buyer's cookie would ride along and hand it
/// their owner-only events): an `Origin` that is present and not this site's gets 403. Browsers
/// always send it; tools that send none pass. One address holds at most `ws_max_per_ip`
/// sockets; the next gets 429.
pub async fn handler(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    headers: HeaderMap,
) -> Response {
    if !origin_is_own(&headers) {
        return ApiError::new(
            ErrorCode::Forbidden,
            "Live updates cannot be opened from another site.",
        )
        .into_response();
    }
    let Some(slot) = state.sockets.take(ip) else {
        return ApiError::new(
            ErrorCode::RateLimited,
            "Too many live connections from this address.",
        )
        .into_response();
    };
    let feed = Feed {
        snapshots: state.snapshots.clone(),
        bus: state.bus.clone(),
        shutdown: state.shutdown.clone(),
        ping_interval: Duration::from_millis(state.settings.ws_ping_interval_ms),
        write_timeout: Duration::from_millis(state.settings.ws_write_timeout_ms),
    };
    let user = caller.user();
    // Clients send nothing but control frames: a small read buffer keeps thousands of open
    // sockets cheap (the default is 128 KiB each), and small message and frame caps keep one
    // from making the server buffer megabytes (a frame is refused as its header arrives).
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket: WebSocket| async move {
            let _slot = slot;
            let (sink, stream) = socket.split();
            state.metrics.websockets.inc();
            serve_socket(sink, stream, feed, user).await;
            state.metrics.websockets.dec();
        })
}

/// True unless the request names an `Origin` other than the host it was sent to.
fn origin_is_own(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}
