//! The event bus: committed changes fan out to every WebSocket of this instance, and — on
//! PostgreSQL — to every other instance through LISTEN/NOTIFY.
//!
//! Stock changes do not queue: each drop's newest `STOCK_UPDATED` sits on a board that sockets
//! read when they are ready to write, so a hot drop costs a socket one frame per write however
//! many reserves landed meanwhile (latest version wins). Every other event is queued in order.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::{broadcast, watch};

use crate::model::{DropId, LiveEvent, UserId};

/// The PostgreSQL channel that carries committed events between instances.
pub const PG_CHANNEL: &str = "dropline_events";

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

/// What travels on the local bus, in order.
#[derive(Clone, Debug)]
pub enum BusMessage {
    /// A committed event, serialized once for every socket that will send it.
    Event { to: Option<UserId>, json: Utf8Bytes },
    /// Events may have been missed (the LISTEN connection dropped): every client needs a snapshot.
    Resync,
}

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
    stock: watch::Sender<StockBoard>,
    listening: Arc<AtomicBool>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus {
    /// A bus that keeps up to `capacity` messages for a slow subscriber before it lags.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self {
            tx,
            stock: watch::Sender::new(StockBoard::new()),
            listening: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Hands committed events to every local subscriber: public stock changes to the board
    /// (kept only if newer than what it shows), everything else to the ordered queue.
    pub fn publish(&self, envelopes: impl IntoIterator<Item = Envelope>) {
        for envelope in envelopes {
            let json: Utf8Bytes = serde_json::to_string(&envelope.event)
                .expect("events always serialize")
                .into();
            if let (
                None,
                LiveEvent::StockUpdated {
                    drop_id, version, ..
                },
            ) = (envelope.to, &envelope.event)
            {
                let (drop_id, version) = (*drop_id, *version);
                self.stock.send_if_modified(|board| {
                    if board.get(&drop_id).is_some_and(|f| f.version >= version) {
                        return false;
                    }
                    board.insert(drop_id, StockFrame { version, json });
                    true
                });
                continue;
            }
            // No subscriber is not an error: nobody is watching.
            let _ = self.tx.send(BusMessage::Event {
                to: envelope.to,
                json,
            });
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
        let _ = self.tx.send(BusMessage::Resync);
    }

    /// A receiver of everything published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.tx.subscribe()
    }

    /// False while the PostgreSQL LISTEN connection is down (always true on SQLite once started).
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    /// Marks the bus as fed by this process alone (SQLite).
    pub fn mark_local(&self) {
        self.listening.store(true, Ordering::Relaxed);
    }

    /// Opens this instance's LISTEN connection, then keeps it open in the background and
    /// re-broadcasts what arrives. Returns once events flow, so nothing committed after
    /// start-up is missed. When the connection drops it reconnects by itself and asks every
    /// client to resync, since notifications sent while it was down are gone.
    pub async fn listen_postgres(&self, pool: PgPool) -> Result<(), sqlx::Error> {
        let listener = open_listener(&pool).await?;
        self.listening.store(true, Ordering::Relaxed);
        tokio::spawn(self.clone().relay(pool, listener));
        Ok(())
    }

    async fn relay(self, pool: PgPool, mut listener: PgListener) {
        loop {
            let Err(error) = self.forward(&mut listener).await;
            self.listening.store(false, Ordering::Relaxed);
            tracing::warn!(%error, "LISTEN connection failed; reconnecting");
            let mut backoff = Duration::from_millis(100);
            listener = loop {
                tokio::time::sleep(backoff).await;
                match open_listener(&pool).await {
                    Ok(listener) => break listener,
                    Err(error) => tracing::warn!(%error, "LISTEN reconnect failed"),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            };
            tracing::info!("LISTEN connection up again");
            self.listening.store(true, Ordering::Relaxed);
            self.resync();
        }
    }

    /// Re-broadcasts notifications until the listener fails for good.
    async fn forward(&self, listener: &mut PgListener) -> Result<Infallible, sqlx::Error> {
        loop {
            match listener.try_recv().await? {
                Some(notification) => {
                    match serde_json::from_str::<Envelope>(notification.payload()) {
                        Ok(envelope) => self.publish([envelope]),
                        Err(error) => tracing::warn!(%error, "unreadable notification ignored"),
                    }
                }
                // The connection dropped and sqlx has already re-established it: whatever was
                // sent in between is lost, so every client reloads from a snapshot.
                None => {
                    tracing::warn!("LISTEN connection lost and re-established");
                    self.resync();
                }
            }
        }
    }
}

/// A connection listening on the events channel.
async fn open_listener(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(PG_CHANNEL).await?;
    Ok(listener)
}
