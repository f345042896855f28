//! The live feed of one socket (opened at `GET /ws`, `http::live`): a snapshot of every drop on
//! connect, then the committed events this client may see. A client that falls behind gets a
//! fresh snapshot instead of an unbounded queue.
//!
//! Stock changes are coalesced per drop: a socket sends the newest version of each changed drop
//! when it is ready to write, so a slow socket skips the versions it could not send in time
//! instead of queueing them, and the server's fan-out work follows how fast sockets write, not
//! reserves × sockets. With many sockets open each one also waits a little between stock frames
//! (see [`stock_interval`]), so a hot drop costs the same however many screens watch it. Every
//! other public event (new drops, the purchases feed) is still sent, in order; a signed-in
//! socket also gets its user's owner-only events, from a channel only that user's sockets read.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes};
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
    snapshots::Snapshots,
};
use crate::model::{DropId, UserId};

/// Stock frames per second this instance aims to send over all its sockets together once a
/// drop is hot; past it, each socket waits longer between two stock frames.
pub const STOCK_FRAMES_PER_SECOND: u64 = 50_000;

/// The longest a socket waits between two stock frames, however many sockets are open: a
/// screen still sees stock move several times a second.
pub const MAX_STOCK_INTERVAL: Duration = Duration::from_millis(100);

/// Read buffer per socket.
pub const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Largest message a client may send.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;

/// Most queued events sent in one write before the socket looks at anything else.
const MAX_BATCH: usize = 64;

/// The pause a socket keeps between two stock frames when `sockets` are open: zero for a few,
/// growing with the crowd so that all of them together stay near [`STOCK_FRAMES_PER_SECOND`],
/// and never above [`MAX_STOCK_INTERVAL`]. The first change after a quiet spell goes out at once.
pub fn stock_interval(sockets: usize) -> Duration {
    let micros = (sockets as u64).saturating_mul(1_000_000) / STOCK_FRAMES_PER_SECOND;
    Duration::from_micros(micros).min(MAX_STOCK_INTERVAL)
}

/// How many live-feed sockets each client address holds open, against a cap per address.
pub struct SocketSlots {
    max_per_ip: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl SocketSlots {
    pub fn new(max_per_ip: usize) -> Self {
        Self {
            max_per_ip,
            open: Mutex::default(),
        }
    }

    /// A place for one more socket from `ip`, held until the returned slot drops; `None` when
    /// the address already holds its share. A request without an address is not counted.
    pub(crate) fn take(self: &Arc<Self>, ip: Option<IpAddr>) -> Option<Slot> {
        let Some(ip) = ip else {
            return Some(Slot {
                slots: None,
                ip: None,
            });
        };
        let mut open = self.open();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: Some(self.clone()),
            ip: Some(ip),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Nothing panics while holding the lock, and the map is consistent between calls.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One socket's place among its address's sockets.
pub struct Slot {
    slots: Option<Arc<SocketSlots>>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let (Some(slots), Some(ip)) = (&self.slots, self.ip) else {
            return;
        };
        let mut open = slots.open();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// What a socket needs of its instance.
#[derive(Clone)]
pub struct Feed {
    pub snapshots: Snapshots,
    pub bus: EventBus,
    /// Cancelled when the server shuts down: the socket closes with 1001.
    pub shutdown: CancellationToken,
    /// How often the socket pings its client.
    pub ping_interval: Duration,
    /// How long one write may wait for the client to take it; past it the socket closes.
    pub write_timeout: Duration,
}

/// A socket's writing half whose every write must be taken within `limit`. A client that
/// stopped reading (its receive window closed, the kernel's buffers full) fails the write after
/// it instead of holding the socket — its task, its buffers, its place among its address's
/// sockets — for ever; nothing else would notice, since the loop that would ping it is the
/// one waiting.
pub struct WriteDeadline<S> {
    inner: S,
    limit: Duration,
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

/// A write that failed: the socket is gone, or its client took longer than the deadline.
#[derive(Debug)]
pub struct WriteFailed;

impl<S> WriteDeadline<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
        }
    }

    /// `polled` as the deadline sees it: ready resets the clock, pending starts it (once).
    fn guard<E>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: std::task::Poll<Result<(), E>>,
    ) -> std::task::Poll<Result<(), WriteFailed>> {
        use std::{future::Future, task::Poll};
        match polled {
            Poll::Ready(result) => {
                self.timer = None;
                Poll::Ready(result.map_err(|_| WriteFailed))
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(WriteFailed)),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: Sink<Message> + Unpin> Sink<Message> for WriteDeadline<S> {
    type Error = WriteFailed;

    fn poll_ready(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), WriteFailed>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_ready(cx);
        self.guard(cx, polled)
    }

    fn start_send(mut self: std::pin::Pin<&mut Self>, item: Message) -> Result<(), WriteFailed> {
        std::pin::Pin::new(&mut self.inner)
            .start_send(item)
            .map_err(|_| WriteFailed)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), WriteFailed>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, polled)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), WriteFailed>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_close(cx);
        self.guard(cx, polled)
    }
}

/// Drives one client until it leaves (or stops taking what it is sent: see
/// [`WriteDeadline`]). Generic over the socket halves so tests can run it without a network.
pub async fn serve_socket<S, R>(sink: S, mut stream: R, feed: Feed, user: Option<UserId>)
where
    S: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mut sink = WriteDeadline::new(sink, feed.write_timeout);
    let bus = &feed.bus;
    // Subscribe before reading the snapshot, so no event falls between the two.
    let mut events = bus.subscribe();
    let mut owner_events = bus.subscribe_owner(user);
    let mut stock = bus.stock();
    stock.mark_unchanged();
    // The stock version of each drop this client has been sent.
    let mut shown = HashMap::new();
    if send_snapshot(&mut sink, &feed, bus.published(), &mut shown)
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
    // A ping now and every interval after; a client that has answered neither of the last two
    // is gone (a peer that vanished without a word, or one that just holds the socket).
    let mut pings = tokio::time::interval(feed.ping_interval);
    let mut unanswered = 0u32;
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
                        resync(&mut sink, &mut events, &mut owner_events, &feed, &mut shown)
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
                        resync(&mut sink, &mut events, &mut owner_events, &feed, &mut shown)
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
                None | Some(Ok(Message::Close(_))) => break,
                Some(Err(error)) => {
                    if is_too_large(&error) {
                        close(&mut sink, close_code::SIZE, "message too big").await;
                    }
                    break;
                }
                // Anything from the client shows it is there; it has nothing to say yet.
                Some(Ok(_)) => unanswered = 0,
            },
            () = feed.shutdown.cancelled() => {
                close(&mut sink, close_code::AWAY, "server shutting down").await;
                break;
            }
            _ = pings.tick() => {
                if unanswered >= 2 {
                    close(&mut sink, close_code::POLICY, "no answer to ping").await;
                    break;
                }
                unanswered += 1;
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
    feed: &Feed,
    shown: &mut HashMap<DropId, i64>,
) -> bool
where
    S: Sink<Message> + Unpin,
{
    *events = events.resubscribe();
    owner_events.skip_queued();
    let subscribed_at = feed.bus.published();
    send_snapshot(sink, feed, subscribed_at, shown)
        .await
        .is_ok()
}

/// Sends a snapshot of every drop (shared with every socket that needs one, see
/// [`Snapshots`]) and notes the versions shown. A snapshot the database cannot give now is
/// retried with backoff: the socket stays open. `Err` when the socket is gone or the server
/// shuts down.
async fn send_snapshot<S>(
    sink: &mut S,
    feed: &Feed,
    subscribed_at: u64,
    shown: &mut HashMap<DropId, i64>,
) -> Result<(), ()>
where
    S: Sink<Message> + Unpin,
{
    let mut backoff = Duration::from_millis(100);
    let snapshot = loop {
        match feed.snapshots.for_socket(subscribed_at).await {
            Ok(snapshot) => break snapshot,
            Err(error) => tracing::warn!(%error, "snapshot failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = feed.shutdown.cancelled() => return Err(()),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    // What the client shows from now on is the snapshot, whatever it was shown before: any
    // newer frame on the board goes out after it.
    shown.clear();
    shown.extend(snapshot.versions.iter().copied());
    sink.send(Message::Text(snapshot.json))
        .await
        .map_err(|_| ())
}

/// Says why the socket ends, if the client still listens (waiting at most a second: a peer
/// that stopped reading must not hold the server up).
async fn close<S>(sink: &mut S, code: u16, reason: &'static str)
where
    S: Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
}

/// True when a client sent a frame or message over the size the socket accepts.
fn is_too_large(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|error| matches!(error, tungstenite::Error::Capacity(_)))
}
