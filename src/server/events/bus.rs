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
};

use axum::extract::ws::Utf8Bytes;
use prometheus::{IntCounterVec, Opts};
use tokio::sync::{broadcast, watch};

use super::{
    envelope::Envelope,
    seal::{now_ms, EventKey, Heard, Sealed},
};
use crate::model::{DropId, LiveEvent, ProductDrop, UserId};

/// How far ahead of the version a drop's board shows a stock event may be. Versions rise by one
/// per committed change and every instance hears every change in order; only a lost LISTEN
/// connection skips some, and then a snapshot read puts the board right. A version further
/// ahead than this is no real event.
pub const MAX_VERSION_LEAP: i64 = 100_000;

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
                    let event = LiveEvent::stock_of(drop);
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
    pub(crate) fn receive(&self, payload: &str, heard: &mut Heard) {
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

    /// Notes whether the LISTEN connection that feeds this bus from the other instances is up.
    pub(crate) fn set_listening(&self, up: bool) {
        self.listening.store(up, Ordering::Relaxed);
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

    fn stock(drop: i64, available: i64, version: i64) -> Envelope {
        Envelope::public(LiveEvent::StockUpdated {
            drop_id: DropId(drop),
            available,
            total: 5,
            version,
            sizes: Vec::new(),
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

        bus.publish([Envelope::hold_expired(1, 10), Envelope::hold_expired(3, 30)]);

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
        bus.publish([Envelope::hold_expired(1, 10)]);
        assert_eq!(bus.owners_listening(), 1);
    }
}
