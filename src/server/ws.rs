//! `GET /ws`: a snapshot of every drop on connect, then the committed events this client may
//! see. A client that falls behind gets a fresh snapshot instead of an unbounded queue.

use std::time::Duration;

use axum::{
    extract::{
        ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade},
        State,
    },
    http::HeaderMap,
    response::Response,
};
use chrono::Utc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{
    events::{BusMessage, EventBus},
    inventory::Inventory,
    AppState,
};
use crate::model::{LiveEvent, UserId};

/// How often the server pings an idle socket, so dead peers and proxies notice.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// Upgrades the request; the session cookie decides which owner-only events the socket gets.
pub async fn handler(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let user = state.auth.session_user(&headers);
    ws.on_upgrade(move |socket: WebSocket| async move {
        let (sink, stream) = socket.split();
        state.metrics.websockets.inc();
        serve_socket(
            sink,
            stream,
            state.inventory,
            state.bus,
            user,
            state.shutdown,
        )
        .await;
        state.metrics.websockets.dec();
    })
}

/// Drives one client until it leaves. Generic over the socket halves so tests can run it
/// without a network.
pub async fn serve_socket<S, R>(
    mut sink: S,
    mut stream: R,
    inventory: Inventory,
    bus: EventBus,
    user: Option<UserId>,
    shutdown: CancellationToken,
) where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    // Subscribe before reading the snapshot, so no event falls between the two.
    let mut events = bus.subscribe();
    if send_snapshot(&mut sink, &inventory).await.is_err() {
        return;
    }
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            received = events.recv() => {
                let sent = match received {
                    Ok(BusMessage::Event { to, json }) => {
                        if to.is_some() && to != user {
                            continue;
                        }
                        sink.send(Message::Text(json.as_ref().into())).await.is_ok()
                    }
                    Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => {
                        // Whatever is queued is stale next to a snapshot: skip to the tail.
                        events = events.resubscribe();
                        send_snapshot(&mut sink, &inventory).await.is_ok()
                    }
                    Err(RecvError::Closed) => false,
                };
                if !sent {
                    break;
                }
            }
            incoming = stream.next() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                // Clients have nothing to say yet; whatever they send is ignored.
                Some(Ok(_)) => {}
            },
            () = shutdown.cancelled() => {
                let close = CloseFrame {
                    code: close_code::AWAY,
                    reason: "server shutting down".into(),
                };
                let _ = sink.send(Message::Close(Some(close))).await;
                break;
            }
            _ = heartbeat.tick() => {
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Sends every drop as it stands, with the server's clock.
async fn send_snapshot<S>(sink: &mut S, inventory: &Inventory) -> Result<(), ()>
where
    S: Sink<Message> + Unpin,
{
    let drops = inventory.list_drops().await.map_err(|_| ())?;
    let snapshot = LiveEvent::Snapshot {
        drops,
        server_time: Utc::now(),
    };
    let json = serde_json::to_string(&snapshot).map_err(|_| ())?;
    sink.send(Message::Text(json.into())).await.map_err(|_| ())
}
