//! The event bus: committed changes fan out to every WebSocket of this instance, and — on
//! PostgreSQL — to every other instance through LISTEN/NOTIFY.
//!
//! Stock changes do not queue: each drop's newest `STOCK_UPDATED` sits on a board that sockets
//! read when they are ready to write, so a hot drop costs a socket one frame per write however
//! many reserves landed meanwhile (latest version wins). Every other public event is queued in
//! order. Owner-only events go to a channel of their own per signed-in user, so an expiry burst
//! wakes only the sockets of the buyers whose holds ran out, not every socket.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError,
    },
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use prometheus::{IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tokio::sync::{broadcast, watch};

use crate::model::{DropId, LiveEvent, ProductDrop, UserId};

/// The PostgreSQL channel that carries committed events between instances, sealed. (Not the
/// unsealed channel's name of earlier versions: during a rolling upgrade the old and the new
/// instances simply do not hear each other, rather than the new ones refusing every payload
/// of the old and the old ones resyncing every socket on every payload of the new.)
pub const PG_CHANNEL: &str = "dropline_sealed_events";

/// The PostgreSQL channel each instance sends its heartbeat on, to hear it back on its own
/// LISTEN connection.
pub const PG_HEARTBEAT: &str = "dropline_heartbeat";

/// The most bytes one notification carries: PostgreSQL takes payloads under 8,000 bytes.
pub const NOTIFY_PAYLOAD_BYTES: usize = 7_900;

/// What a seal and its frame (`{"at":...,"nonce":...,"events":` and `}`) add to a payload's
/// events, at most.
const SEAL_OVERHEAD_BYTES: usize = 128;

/// How far a sealed payload's time may be from this instance's clock (milliseconds): an older
/// one (or one from the future) is refused, so a payload recorded off the channel cannot be
/// sent again later; within the window each is taken once, by its nonce.
pub const SEAL_WINDOW_MS: i64 = 120_000;

/// How far ahead of the version a drop's board shows a stock event may be. Versions rise by one
/// per committed change and every instance hears every change in order; only a lost LISTEN
/// connection skips some, and then a snapshot read puts the board right. A version further
/// ahead than this is no real event.
pub const MAX_VERSION_LEAP: i64 = 100_000;

type HmacSha256 = Hmac<Sha256>;

/// The key that seals the events instances pass each other through PostgreSQL: HMAC-SHA256
/// under a key derived by HKDF-SHA256 from `session_secret`, which every instance of one
/// deployment shares (it must, to read each other's cookies) and a database role does not.
#[derive(Clone)]
pub struct EventKey([u8; 32]);

impl std::fmt::Debug for EventKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventKey(..)")
    }
}

impl EventKey {
    /// The key of a deployment whose instances share `secret`.
    pub fn derive(secret: &str) -> Self {
        let mut key = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"dropline"), secret.as_bytes())
            .expand(b"live events v1", &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(key)
    }

    /// A key of this process alone (an instance with no secret shares no events).
    pub fn random() -> Self {
        Self(rand::random())
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.0).expect("HMAC takes a key of any length")
    }

    /// `body` with its seal in front: 64 hex digits of HMAC-SHA256, a dot, the body.
    pub fn seal(&self, body: &str) -> String {
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        format!("{}.{body}", hex::encode(mac.finalize().into_bytes()))
    }

    /// The body of a payload sealed with this key; `None` for any other (no seal, another
    /// key's, a changed byte). The seal is compared in constant time.
    pub fn open<'a>(&self, payload: &'a str) -> Option<&'a str> {
        let (seal, body) = payload.split_once('.')?;
        let seal = hex::decode(seal).ok()?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&seal).ok()?;
        Some(body)
    }

    /// A transaction's events as the sealed payloads of as few notifications as fit, in order,
    /// each under [`NOTIFY_PAYLOAD_BYTES`] (an envelope too big to share one goes alone). One
    /// write then costs one notification to send, and one for each instance to read, instead
    /// of one per event. `now_ms` is this instance's clock.
    pub fn payloads(&self, events: &[Envelope], now_ms: i64) -> Vec<String> {
        let budget = NOTIFY_PAYLOAD_BYTES - SEAL_OVERHEAD_BYTES;
        let mut arrays = Vec::new();
        let mut current = String::from("[");
        for event in events {
            let json = serde_json::to_string(event).expect("events always serialize");
            if current.len() > 1 && current.len() + json.len() + 2 > budget {
                current.push(']');
                arrays.push(std::mem::replace(&mut current, String::from("[")));
            }
            if current.len() > 1 {
                current.push(',');
            }
            current.push_str(&json);
        }
        if current.len() > 1 {
            current.push(']');
            arrays.push(current);
        }
        arrays
            .into_iter()
            .map(|events| {
                let nonce: u64 = rand::random();
                self.seal(&format!(
                    r#"{{"at":{now_ms},"nonce":{nonce},"events":{events}}}"#
                ))
            })
            .collect()
    }
}

/// A sealed payload's body.
#[derive(Deserialize)]
struct Sealed {
    /// When it was sealed, by the sender's clock (milliseconds since the epoch).
    at: i64,
    nonce: u64,
    events: Vec<Envelope>,
}

/// The nonces of the sealed payloads heard within the last [`SEAL_WINDOW_MS`], each with
/// when it was sealed.
#[derive(Default)]
struct Heard {
    nonces: HashMap<u64, i64>,
    /// How many nonces to hold before forgetting those past the window.
    prune_at: usize,
}

impl Heard {
    /// Why a sealed payload sent at `at` must not be taken now, if it must not.
    fn refusal(&mut self, at: i64, nonce: u64, now_ms: i64) -> Option<&'static str> {
        if (now_ms - at).abs() > SEAL_WINDOW_MS {
            return Some("stale");
        }
        if self.nonces.len() >= self.prune_at {
            self.nonces
                .retain(|_, sealed| (now_ms - *sealed).abs() <= SEAL_WINDOW_MS);
            self.prune_at = (self.nonces.len() * 2).max(1024);
        }
        self.nonces.insert(nonce, at).map(|_| "replayed")
    }
}

/// This machine's clock, in milliseconds since the epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// One event and who may see it: everyone, or only the user it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `Some(user)` for owner-only events.
    pub to: Option<UserId>,
    pub event: LiveEvent,
}

impl Envelope {
    /// An event every client may see.
    pub fn public(event: LiveEvent) -> Self {
        Self { to: None, event }
    }

    /// An event only `user`'s sockets may see.
    pub fn private(user: UserId, event: LiveEvent) -> Self {
        Self {
            to: Some(user),
            event,
        }
    }
}

/// What travels on the local bus of public events, in order.
#[derive(Clone, Debug)]
pub enum BusMessage {
    /// A committed event, serialized once for every socket that will send it.
    Event(Utf8Bytes),
    /// Events may have been missed (the LISTEN connection dropped): every client needs a snapshot.
    Resync,
}

/// How many owner-only events one user's sockets may fall behind before they resync.
const OWNER_CAPACITY: usize = 256;

/// The owner-only channel of every user who has a socket open on this instance.
type Owners = HashMap<UserId, broadcast::Sender<Utf8Bytes>>;

/// The newest stock event of one drop, serialized once for every socket.
#[derive(Clone, Debug)]
pub struct StockFrame {
    pub version: i64,
    pub json: Utf8Bytes,
}

/// Each drop's newest stock event. Only ever holds one frame per drop.
pub type StockBoard = HashMap<DropId, StockFrame>;

/// In-process fan-out of committed events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<BusMessage>,
    owners: Arc<Mutex<Owners>>,
    stock: watch::Sender<StockBoard>,
    listening: Arc<AtomicBool>,
    /// How many times events were published or a resync asked for.
    published: Arc<AtomicU64>,
    /// Seals what this instance sends to the others, and opens what they send.
    key: EventKey,
    /// Events refused, by why: `bad_seal`, `stale`, `replayed`, `version_leap`.
    refused: IntCounterVec,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096, EventKey::random(), refusal_counter())
    }
}

/// The counter of refused events, for a bus that reports to no registry.
pub fn refusal_counter() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new(
            "live_events_refused_total",
            "Live events refused: a payload from another instance without this deployment's \
             seal, too old or heard before, or a stock version far ahead of the known one",
        ),
        &["reason"],
    )
    .expect("valid metric")
}

impl EventBus {
    /// A bus that keeps up to `capacity` messages for a slow subscriber before it lags, seals
    /// with `key` and counts what it refuses in `refused` (see [`refusal_counter`]).
    pub fn new(capacity: usize, key: EventKey, refused: IntCounterVec) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self {
            tx,
            owners: Arc::default(),
            stock: watch::Sender::new(StockBoard::new()),
            listening: Arc::new(AtomicBool::new(false)),
            published: Arc::default(),
            key,
            refused,
        }
    }

    /// The key this instance seals its events with.
    pub fn key(&self) -> &EventKey {
        &self.key
    }

    /// Counts one refused event.
    fn refuse(&self, reason: &'static str) {
        let counter = self.refused.with_label_values(&[reason]);
        counter.inc();
        // Logged at the first and then at every power of two: a flood cannot flood the log.
        let count = counter.get();
        if count.is_power_of_two() {
            tracing::warn!(reason, count, "refused a live event");
        }
    }

    /// Hands committed events to every local subscriber: public stock changes to the board
    /// (kept only if newer than what it shows), owner-only events to the owner's channel (if
    /// the owner has a socket here), everything else to the ordered queue.
    pub fn publish(&self, envelopes: impl IntoIterator<Item = Envelope>) {
        // Counted before anyone can see the events: a snapshot read that begins after this
        // count sees what they changed (they are committed).
        self.published.fetch_add(1, Ordering::AcqRel);
        for envelope in envelopes {
            if let Some(user) = envelope.to {
                let mut owners = self.owners();
                if let Some(channel) = owners.get(&user) {
                    if channel.send(serialize(&envelope.event)).is_err() {
                        // Its last socket just closed.
                        owners.remove(&user);
                    }
                }
                continue;
            }
            let json = serialize(&envelope.event);
            if let LiveEvent::StockUpdated {
                drop_id, version, ..
            } = envelope.event
            {
                let mut leap = false;
                self.stock
                    .send_if_modified(|board| match board.get(&drop_id) {
                        Some(frame) if frame.version >= version => false,
                        Some(frame) if version - frame.version > MAX_VERSION_LEAP => {
                            leap = true;
                            false
                        }
                        _ => {
                            board.insert(drop_id, StockFrame { version, json });
                            true
                        }
                    });
                if leap {
                    self.refuse("version_leap");
                }
                continue;
            }
            // No subscriber is not an error: nobody is watching.
            let _ = self.tx.send(BusMessage::Event(json));
        }
    }

    fn owners(&self) -> MutexGuard<'_, Owners> {
        lock(&self.owners)
    }

    /// Puts the board right from a snapshot of the database: a drop missing from it, shown
    /// older than the snapshot, or far ahead of it (no real event leaps that far) takes the
    /// snapshot's stock. Sockets hear of whatever changed. Answers true when a version far ahead
    /// was replaced: sockets may have shown it, and need a snapshot themselves.
    pub fn rebuild_stock(&self, drops: &[ProductDrop]) -> bool {
        let mut poisoned = false;
        self.stock.send_if_modified(|board| {
            let mut changed = false;
            for drop in drops {
                let stale = match board.get(&drop.id) {
                    None => true,
                    Some(frame) if frame.version > drop.version + MAX_VERSION_LEAP => {
                        poisoned = true;
                        true
                    }
                    Some(frame) => frame.version < drop.version,
                };
                if stale {
                    let event = LiveEvent::StockUpdated {
                        drop_id: drop.id,
                        available: drop.available_stock,
                        total: drop.total_stock,
                        version: drop.version,
                    };
                    board.insert(
                        drop.id,
                        StockFrame {
                            version: drop.version,
                            json: serialize(&event),
                        },
                    );
                    changed = true;
                }
            }
            changed
        });
        poisoned
    }

    /// Takes one notification from the events channel: publishes what it carries if it is
    /// sealed with this deployment's key, recent and not heard before; asks every socket to
    /// resync if it is sealed but unreadable (another version's format); refuses and counts
    /// anything else.
    fn receive(&self, payload: &str, heard: &mut Heard) {
        let Some(body) = self.key.open(payload) else {
            return self.refuse("bad_seal");
        };
        match serde_json::from_str::<Sealed>(body) {
            Ok(sealed) => match heard.refusal(sealed.at, sealed.nonce, now_ms()) {
                Some(reason) => self.refuse(reason),
                None => self.publish(sealed.events),
            },
            // Ours, so what it carried was real and would be missed: every client reloads.
            Err(error) => {
                tracing::warn!(%error, "unreadable notification; resyncing clients");
                self.resync();
            }
        }
    }

    /// The stock board; `changed()` on it wakes once for any number of updates in between.
    pub fn stock(&self) -> watch::Receiver<StockBoard> {
        self.stock.subscribe()
    }

    /// How many sockets (subscribers) this instance serves right now.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Tells every subscriber to reload its state from a snapshot.
    pub fn resync(&self) {
        self.published.fetch_add(1, Ordering::AcqRel);
        let _ = self.tx.send(BusMessage::Resync);
    }

    /// How many times events were published (or a resync asked for) so far: a snapshot whose
    /// read began at or after a subscriber's count misses nothing that subscriber missed.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// A receiver of every public event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }

    /// A receiver of `user`'s owner-only events published from now on; `None` for no user.
    pub fn subscribe_owner(&self, user: Option<UserId>) -> OwnerEvents {
        let events = user.map(|user| {
            let receiver = self
                .owners()
                .entry(user)
                .or_insert_with(|| broadcast::channel(OWNER_CAPACITY).0)
                .subscribe();
            (user, receiver)
        });
        OwnerEvents {
            owners: self.owners.clone(),
            events,
        }
    }

    /// How many users have an owner-only channel on this instance (a socket open).
    pub fn owners_listening(&self) -> usize {
        self.owners().len()
    }

    /// False while the PostgreSQL LISTEN connection is down (always true on SQLite once started).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Marks the bus as fed by this process alone (SQLite).
    pub fn mark_local(&self) {
        self.listening.store(true, Ordering::Relaxed);
    }

    /// Opens this instance's LISTEN connection — its own, not one of the request pool's — then
    /// keeps it open in the background and re-broadcasts what arrives. Returns once events
    /// flow, so nothing committed after start-up is missed.
    ///
    /// A connection can die without a word (a NAT or load balancer dropping it, a failover):
    /// `recv` would then wait forever while the instance delivers nothing. So the instance
    /// sends a heartbeat through `pool` and expects to hear it back on the LISTEN connection;
    /// when none arrives within `heartbeat_timeout`, it counts the connection dead: `/readyz`
    /// says so, the connection is rebuilt, and every client gets a fresh snapshot once it is
    /// back (whatever was sent meanwhile is lost).
    pub async fn listen_postgres(
        &self,
        options: PgConnectOptions,
        pool: PgPool,
        heartbeat_timeout: Duration,
    ) -> Result<(), sqlx::Error> {
        let listener = Listener::open(&options).await?;
        self.listening.store(true, Ordering::Relaxed);
        let instance = format!("{:032x}", rand::random::<u128>());
        tokio::spawn(send_heartbeats(
            pool,
            instance.clone(),
            heartbeat_timeout / 3,
        ));
        tokio::spawn(
            self.clone()
                .relay(options, listener, instance, heartbeat_timeout),
        );
        Ok(())
    }

    async fn relay(
        self,
        options: PgConnectOptions,
        mut listener: Listener,
        instance: String,
        heartbeat_timeout: Duration,
    ) {
        // Kept across reconnects: a payload recorded off the channel and sent again after one
        // is still one heard before.
        let mut heard = Heard::default();
        loop {
            let why = self
                .forward(&mut listener, &instance, heartbeat_timeout, &mut heard)
                .await;
            self.listening.store(false, Ordering::Relaxed);
            tracing::warn!(%why, "LISTEN connection lost; rebuilding it");
            // Closes the old connection, whatever state it is in.
            drop(listener);
            let mut backoff = Duration::from_millis(100);
            listener = loop {
                tokio::time::sleep(backoff).await;
                match tokio::time::timeout(heartbeat_timeout, Listener::open(&options)).await {
                    Ok(Ok(listener)) => break listener,
                    Ok(Err(error)) => tracing::warn!(%error, "LISTEN reconnect failed"),
                    Err(_) => tracing::warn!("LISTEN reconnect timed out"),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            };
            tracing::info!("LISTEN connection up again");
            self.listening.store(true, Ordering::Relaxed);
            self.resync();
        }
    }

    /// Re-broadcasts notifications until the connection fails or falls silent; answers why.
    async fn forward(
        &self,
        listener: &mut Listener,
        instance: &str,
        heartbeat_timeout: Duration,
        heard: &mut Heard,
    ) -> String {
        let mut silent_after = tokio::time::Instant::now() + heartbeat_timeout;
        loop {
            let received = tokio::select! {
                received = listener.listener.try_recv() => received,
                () = tokio::time::sleep_until(silent_after) => {
                    return format!("no heartbeat for {heartbeat_timeout:?}");
                }
            };
            match received {
                Err(error) => return error.to_string(),
                Ok(Some(notification)) if notification.channel() == PG_HEARTBEAT => {
                    if notification.payload() == instance {
                        silent_after = tokio::time::Instant::now() + heartbeat_timeout;
                    }
                }
                Ok(Some(notification)) => self.receive(notification.payload(), heard),
                // The connection dropped and sqlx has already re-established it: whatever was
                // sent in between is lost, so every client reloads from a snapshot.
                Ok(None) => {
                    tracing::warn!("LISTEN connection lost and re-established");
                    self.resync();
                }
            }
        }
    }
}

/// Sends this instance's heartbeat every `every`, through the request pool (a heartbeat that
/// cannot be sent is a heartbeat not heard).
async fn send_heartbeats(pool: PgPool, instance: String, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PG_HEARTBEAT)
            .bind(&instance)
            .execute(&pool);
        match tokio::time::timeout(every, sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "heartbeat not sent"),
            Err(_) => tracing::debug!("heartbeat timed out"),
        }
    }
}

/// The LISTEN connection, on a pool of its own (one connection), so it never takes one of
/// the connections requests need.
struct Listener {
    listener: PgListener,
    _pool: PgPool,
}

impl Listener {
    async fn open(options: &PgConnectOptions) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen_all([PG_CHANNEL, PG_HEARTBEAT]).await?;
        Ok(Self {
            listener,
            _pool: pool,
        })
    }
}

fn lock(owners: &Mutex<Owners>) -> MutexGuard<'_, Owners> {
    // Nothing panics while holding the lock, and the map is consistent between calls.
    owners.lock().unwrap_or_else(PoisonError::into_inner)
}

fn serialize(event: &LiveEvent) -> Utf8Bytes {
    serde_json::to_string(event)
        .expect("events always serialize")
        .into()
}

/// One socket's subscription to its user's owner-only events. Dropping the last one of a user
/// removes the user's channel.
#[derive(Debug)]
pub struct OwnerEvents {
    owners: Arc<Mutex<Owners>>,
    events: Option<(UserId, broadcast::Receiver<Utf8Bytes>)>,
}

impl OwnerEvents {
    /// The next owner-only event; never resolves for a socket without a signed-in user.
    pub async fn recv(&mut self) -> Result<Utf8Bytes, broadcast::error::RecvError> {
        match &mut self.events {
            Some((_, receiver)) => receiver.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Skips whatever is queued (a snapshot is about to replace it).
    pub fn skip_queued(&mut self) {
        if let Some((_, receiver)) = &mut self.events {
            *receiver = receiver.resubscribe();
        }
    }
}

impl Drop for OwnerEvents {
    fn drop(&mut self) {
        let Some((user, receiver)) = self.events.take() else {
            return;
        };
        drop(receiver);
        // Subscribing happens under the same lock, so no new socket of this user can slip in
        // between the count and the removal.
        let mut owners = lock(&self.owners);
        if owners.get(&user).is_some_and(|c| c.receiver_count() == 0) {
            owners.remove(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::model::ReservationId;

    fn expired(user: i64, reservation_id: i64) -> Envelope {
        Envelope::private(
            UserId(user),
            LiveEvent::ReservationExpired {
                reservation_id: ReservationId(reservation_id),
                drop_id: DropId(1),
            },
        )
    }

    #[test]
    fn a_transactions_events_share_as_few_notifications_as_fit() {
        let key = EventKey::derive("a deployment's secret");
        let events: Vec<Envelope> = (0..500).map(|i| expired(i, i)).collect();
        let payloads = key.payloads(&events, now_ms());
        let one = serde_json::to_string(&events[0]).unwrap().len();
        // Each envelope is ~100 bytes: dozens share a payload, none passes the limit.
        let budget = NOTIFY_PAYLOAD_BYTES - SEAL_OVERHEAD_BYTES;
        assert!(payloads.len() <= events.len() * (one + 1) / budget + 1);
        assert!(payloads.iter().all(|p| p.len() <= NOTIFY_PAYLOAD_BYTES));
        let back: Vec<Envelope> = payloads
            .iter()
            .flat_map(|p| {
                serde_json::from_str::<Sealed>(key.open(p).unwrap())
                    .unwrap()
                    .events
            })
            .collect();
        assert_eq!(back, events);
        assert!(key.payloads(&[], now_ms()).is_empty());
    }

    #[test]
    fn only_the_deployments_own_seal_opens() {
        let key = EventKey::derive("a deployment's secret");
        let sealed = key.seal("{\"x\":1}");
        assert_eq!(key.open(&sealed), Some("{\"x\":1}"));
        // Another instance of the same deployment derives the same key.
        assert_eq!(
            EventKey::derive("a deployment's secret").open(&sealed),
            Some("{\"x\":1}")
        );
        assert_eq!(EventKey::derive("another secret").open(&sealed), None);
        let changed = sealed.replace("\"x\":1", "\"x\":2");
        assert_eq!(key.open(&changed), None);
        assert_eq!(key.open("{\"x\":1}"), None);
        assert_eq!(key.open(&format!("{}.{{}}", "0".repeat(64))), None);
    }

    #[test]
    fn a_sealed_payload_is_taken_once_and_only_while_fresh() {
        let mut heard = Heard::default();
        let now = 1_000_000_000;
        assert_eq!(heard.refusal(now - 5, 7, now), None);
        assert_eq!(heard.refusal(now - 5, 7, now + 10), Some("replayed"));
        assert_eq!(
            heard.refusal(now - SEAL_WINDOW_MS - 1, 8, now),
            Some("stale")
        );
        assert_eq!(
            heard.refusal(now + SEAL_WINDOW_MS + 1, 9, now),
            Some("stale")
        );
        assert_eq!(heard.refusal(now, 10, now), None);
    }

    fn stock(drop: i64, available: i64, version: i64) -> Envelope {
        Envelope::public(LiveEvent::StockUpdated {
            drop_id: DropId(drop),
            available,
            total: 5,
            version,
        })
    }

    fn shown(bus: &EventBus, drop: i64) -> Option<i64> {
        bus.stock().borrow().get(&DropId(drop)).map(|f| f.version)
    }

    #[test]
    fn no_event_poisons_the_board_and_a_snapshot_puts_it_right() {
        let bus = EventBus::default();
        bus.publish([stock(1, 4, 3)]);
        // A version far ahead of the known one is no real event.
        bus.publish([stock(1, 0, 1_000_000_000_000_000)]);
        assert_eq!(shown(&bus, 1), Some(3));
        bus.publish([stock(1, 3, 4)]);
        assert_eq!(shown(&bus, 1), Some(4));
        // A board that went wrong anyway (here: a drop first heard of at a wild version) is
        // put right by the next snapshot, which says to resync the sockets.
        bus.publish([stock(2, 0, 1_000_000_000_000_000)]);
        let snapshot = |id, version| ProductDrop {
            id: DropId(id),
            total_stock: 5,
            available_stock: 2,
            version,
            ..ProductDrop::default()
        };
        assert!(bus.rebuild_stock(&[snapshot(1, 6), snapshot(2, 9)]));
        assert_eq!((shown(&bus, 1), shown(&bus, 2)), (Some(6), Some(9)));
        // A board a little ahead of a snapshot (events after its read began) is left alone.
        bus.publish([stock(1, 1, 7)]);
        assert!(!bus.rebuild_stock(&[snapshot(1, 6), snapshot(3, 1)]));
        assert_eq!((shown(&bus, 1), shown(&bus, 3)), (Some(7), Some(1)));
        let refused = bus.refused.with_label_values(&["version_leap"]).get();
        assert_eq!(refused, 1);
    }

    #[tokio::test]
    async fn owner_events_reach_only_the_owners_sockets() {
        let bus = EventBus::default();
        let mut public = bus.subscribe();
        let mut alice = bus.subscribe_owner(Some(UserId(1)));
        let mut alice_tab = bus.subscribe_owner(Some(UserId(1)));
        let mut bob = bus.subscribe_owner(Some(UserId(2)));
        let mut anonymous = bus.subscribe_owner(None);

        bus.publish([expired(1, 10), expired(3, 30)]);

        for socket in [&mut alice, &mut alice_tab] {
            let json = socket.recv().await.unwrap();
            assert!(json.as_str().contains("\"reservation_id\":10"), "{json}");
        }
        // Publishing is synchronous: whatever was meant for them would be queued already.
        assert!(bob.recv().now_or_never().is_none());
        assert!(anonymous.recv().now_or_never().is_none());
        // Public subscribers are not woken for someone else's hold.
        assert!(matches!(
            public.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
    }

    #[test]
    fn a_users_channel_goes_when_their_last_socket_closes() {
        let bus = EventBus::default();
        let first = bus.subscribe_owner(Some(UserId(1)));
        let second = bus.subscribe_owner(Some(UserId(1)));
        let _other = bus.subscribe_owner(Some(UserId(2)));
        assert_eq!(bus.owners_listening(), 2);
        drop(first);
        assert_eq!(bus.owners_listening(), 2);
        drop(second);
        assert_eq!(bus.owners_listening(), 1);
        // An event for a user with no socket here goes nowhere and leaves nothing behind.
        bus.publish([expired(1, 10)]);
        assert_eq!(bus.owners_listening(), 1);
    }
}
