//! `GET /ws`: a snapshot of every drop on connect, then the committed events this client may
//! see. A client that falls behind gets a fresh snapshot instead of an unbounded queue.
//!
//! Stock changes are coalesced per drop: a socket sends the newest version of each changed drop
//! when it is ready to write, so a slow socket skips the versions it could not send in time
//! instead of queueing them, and the server's fan-out work follows how fast sockets write, not
//! reserves × sockets. With many sockets open each one also waits a little between stock frames
//! (see [`stock_interval`]), so a hot drop costs the same however many screens watch it. Every
//! other public event (new drops, the purchases feed) is still sent, in order; a signed-in
//! socket also gets its user's owner-only events, from a channel only that user's sockets read.

use std::{collections::HashMap, time::Duration};

use axum::{
    extract::{
        ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade},
        State,
    },
    response::Response,
};
use chrono::Utc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::{
    sync::{
        broadcast::{
            self,
            error::{RecvError, TryRecvError},
        },
        watch,
    },
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    events::{BusMessage, EventBus, OwnerEvents, StockBoard},
    http::extract::Caller,
    inventory::Inventory,
    AppState,
};
use crate::model::{DropId, LiveEvent, UserId};

/// How often the server pings an idle socket, so dead peers and proxies notice.
const HEARTBEAT: Duration = Duration::from_secs(20);

/// Stock frames per second this instance aims to send over all its sockets together once a
/// drop is hot; past it, each socket waits longer between two stock frames.
pub const STOCK_FRAMES_PER_SECOND: u64 = 50_000;

/// The longest a socket waits between two stock frames, however many sockets are open: a
/// screen still sees stock move several times a second.
pub const MAX_STOCK_INTERVAL: Duration = Duration::from_millis(100);

/// Read buffer per socket.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Largest message a client may send.
const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// Most queued events sent in one write before the socket looks at anything else.
const MAX_BATCH: usize = 64;

/// The pause a socket keeps between two stock frames when `sockets` are open: zero for a few,
/// growing with the crowd so that all of them together stay near [`STOCK_FRAMES_PER_SECOND`],
/// and never above [`MAX_STOCK_INTERVAL`]. The first change after a quiet spell goes out at once.
pub fn stock_interval(sockets: usize) -> Duration {
    let micros = (sockets as u64).saturating_mul(1_000_000) / STOCK_FRAMES_PER_SECOND;
    Duration::from_micros(micros).min(MAX_STOCK_INTERVAL)
}

/// Upgrades the request; the session cookie decides which owner-only events the socket gets.
pub async fn handler(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Caller { user }: Caller,
) -> Response {
    // Clients send nothing but control frames: a small read buffer keeps thousands of open
    // sockets cheap (the default is 128 KiB each), and a small message cap keeps one from
    // making the server buffer megabytes.
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket: WebSocket| async move {
            let (sink, stream) = socket.split();
            state.metrics.websockets.inc();
            serve_socket(
                sink,
                stream,
                state.inventory.clone(),
                state.bus.clone(),
                user,
                state.shutdown.clone(),
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
    let mut owner_events = bus.subscribe_owner(user);
    let mut stock = bus.stock();
    stock.mark_unchanged();
    // The stock version of each drop this client has been sent.
    let mut shown = HashMap::new();
    if send_snapshot(&mut sink, &inventory, &mut shown)
        .await
        .is_err()
    {
        return;
    }
    // When to look at the stock board next; `None` while waiting for it to change. Whatever
    // changed while the snapshot was read goes out first.
    let mut stock_check_at = Some(Instant::now());
    let mut next_stock_at = Instant::now();
    // `changed()` marks the board seen, so remember that it did change.
    let mut stock_changed = false;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            received = events.recv() => {
                let queued = match received {
                    Ok(BusMessage::Event(json)) => send_queued(&mut sink, json, &mut events).await,
                    Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => Ok(Queue::Stale),
                    Err(RecvError::Closed) => Err(()),
                };
                let sent = match queued {
                    Ok(Queue::Sent) => true,
                    Ok(Queue::Stale) => {
                        stock_check_at = Some(next_stock_at);
                        resync(&mut sink, &mut events, &mut owner_events, &inventory, &mut shown)
                            .await
                    }
                    Err(()) => false,
                };
                if !sent {
                    break;
                }
            }
            received = owner_events.recv() => {
                let sent = match received {
                    Ok(json) => sink.send(Message::Text(json)).await.is_ok(),
                    // Missed some of its own events: the snapshot makes the client reload its
                    // holds.
                    Err(RecvError::Lagged(_)) => {
                        stock_check_at = Some(next_stock_at);
                        resync(&mut sink, &mut events, &mut owner_events, &inventory, &mut shown)
                            .await
                    }
                    Err(RecvError::Closed) => false,
                };
                if !sent {
                    break;
                }
            }
            changed = stock.changed(), if stock_check_at.is_none() => {
                if changed.is_err() {
                    break;
                }
                stock_changed = true;
                stock_check_at = Some(next_stock_at);
            }
            // While a drop is hot the board has always changed by the time the pause is over,
            // so a busy socket wakes once per frame; a quiet one goes back to waiting.
            () = tokio::time::sleep_until(stock_check_at.unwrap_or(next_stock_at)),
                if stock_check_at.is_some() =>
            {
                let changed = std::mem::take(&mut stock_changed);
                match send_stock(&mut sink, &mut stock, changed, &mut shown).await {
                    Ok(true) => {
                        next_stock_at = Instant::now() + stock_interval(bus.subscribers());
                        stock_check_at = Some(next_stock_at);
                    }
                    Ok(false) => stock_check_at = None,
                    Err(()) => break,
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

/// What became of the ordered queue after a write.
enum Queue {
    /// Everything taken from it was sent.
    Sent,
    /// Events were missed (a lag or a resync): the client needs a fresh snapshot.
    Stale,
}

/// Sends one queued event and whatever else is already queued behind it (up to [`MAX_BATCH`])
/// in one write. `Err` when the socket is gone.
async fn send_queued<S>(
    sink: &mut S,
    first: Utf8Bytes,
    events: &mut broadcast::Receiver<BusMessage>,
) -> Result<Queue, ()>
where
    S: Sink<Message> + Unpin,
{
    sink.feed(Message::Text(first)).await.map_err(|_| ())?;
    let mut queue = Queue::Sent;
    for _ in 1..MAX_BATCH {
        match events.try_recv() {
            Ok(BusMessage::Event(json)) => {
                sink.feed(Message::Text(json)).await.map_err(|_| ())?;
            }
            Ok(BusMessage::Resync) | Err(TryRecvError::Lagged(_)) => {
                queue = Queue::Stale;
                break;
            }
            // Empty, or closed (the main loop sees that on its next receive).
            Err(_) => break,
        }
    }
    sink.flush().await.map_err(|_| ())?;
    Ok(queue)
}

/// Sends the newest stock frame of every drop whose version is above what this client was
/// shown, in one write. `Ok(false)` when there was nothing new. `changed` says the board
/// changed since this socket last looked, though it may already be marked seen.
async fn send_stock<S>(
    sink: &mut S,
    stock: &mut watch::Receiver<StockBoard>,
    changed: bool,
    shown: &mut HashMap<DropId, i64>,
) -> Result<bool, ()>
where
    S: Sink<Message> + Unpin,
{
    if !changed && !stock.has_changed().map_err(|_| ())? {
        return Ok(false);
    }
    let frames: Vec<_> = {
        let board = stock.borrow_and_update();
        board
            .iter()
            .filter(|(drop, frame)| shown.get(drop).is_none_or(|v| frame.version > *v))
            .map(|(drop, frame)| (*drop, frame.clone()))
            .collect()
    };
    if frames.is_empty() {
        return Ok(false);
    }
    for (drop, frame) in frames {
        shown.insert(drop, frame.version);
        sink.feed(Message::Text(frame.json)).await.map_err(|_| ())?;
    }
    sink.flush().await.map_err(|_| ())?;
    Ok(true)
}

/// After missed events: skips whatever is still queued on both ordered channels (it is stale
/// next to a snapshot) and sends a snapshot. False when the socket is gone.
async fn resync<S>(
    sink: &mut S,
    events: &mut broadcast::Receiver<BusMessage>,
    owner_events: &mut OwnerEvents,
    inventory: &Inventory,
    shown: &mut HashMap<DropId, i64>,
) -> bool
where
    S: Sink<Message> + Unpin,
{
    *events = events.resubscribe();
    owner_events.skip_queued();
    send_snapshot(sink, inventory, shown).await.is_ok()
}

/// Sends every drop as it stands, with the server's clock, and notes the versions shown.
async fn send_snapshot<S>(
    sink: &mut S,
    inventory: &Inventory,
    shown: &mut HashMap<DropId, i64>,
) -> Result<(), ()>
where
    S: Sink<Message> + Unpin,
{
    let drops = inventory.list_drops().await.map_err(|_| ())?;
    for drop in &drops {
        let version = shown.entry(drop.id).or_insert(drop.version);
        *version = (*version).max(drop.version);
    }
    let snapshot = LiveEvent::Snapshot {
        drops,
        server_time: Utc::now(),
    };
    let json = serde_json::to_string(&snapshot).map_err(|_| ())?;
    sink.send(Message::Text(json.into())).await.map_err(|_| ())
}
