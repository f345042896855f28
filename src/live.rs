//! The live feed in the browser: one WebSocket per tab feeding a reactive store of drops.
//!
//! The store exists on both sides so components can read it while rendering; only the browser
//! opens the socket ([`LiveStore::connect`]). Server-rendered values are the starting point, and
//! a live value replaces one only when its `version` is newer, so late or reordered events never
//! show stale stock.

use std::collections::HashMap;

use leptos::prelude::*;

use crate::model::{DropId, LiveEvent, ProductDrop, Purchaser};

/// Where the socket stands, for the connection indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting,
}

/// Stock as the live feed last reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stock {
    pub available: i64,
    pub total: i64,
    pub version: i64,
}

impl Stock {
    /// The stock a drop carries.
    pub fn of(drop: &ProductDrop) -> Self {
        Self {
            available: drop.available_stock,
            total: drop.total_stock,
            version: drop.version,
        }
    }
}

/// Live state of every drop, shared through context. `Copy`: it is a bundle of signals.
#[derive(Clone, Copy)]
pub struct LiveStore {
    stock: RwSignal<HashMap<DropId, Stock>>,
    activity: RwSignal<HashMap<DropId, Vec<Purchaser>>>,
    /// Every drop the feed has shown, including those created after the page was rendered.
    seen: RwSignal<Vec<ProductDrop>>,
    connection: RwSignal<Connection>,
    /// Server clock minus browser clock, in milliseconds.
    clock_offset_ms: RwSignal<i64>,
    /// Browser time corrected to the server's clock, ticking while a countdown needs it.
    now_ms: RwSignal<i64>,
    /// Bumped on every event meant for this user alone (hold expired, purchase done).
    private_changes: RwSignal<u64>,
    /// Bumped to make the socket reconnect (after sign-in or sign-out changes who we are).
    reconnects: RwSignal<u64>,
}

impl LiveStore {
    /// Creates the store and provides it to every component below.
    pub fn provide() -> Self {
        let store = Self {
            stock: RwSignal::new(HashMap::new()),
            activity: RwSignal::new(HashMap::new()),
            seen: RwSignal::new(Vec::new()),
            connection: RwSignal::new(Connection::Connecting),
            clock_offset_ms: RwSignal::new(0),
            now_ms: RwSignal::new(chrono::Utc::now().timestamp_millis()),
            private_changes: RwSignal::new(0),
            reconnects: RwSignal::new(0),
        };
        provide_context(store);
        store
    }

    /// The store provided by [`LiveStore::provide`].
    pub fn use_context() -> Self {
        expect_context::<Self>()
    }

    /// Stock to show for `drop`: the live value if it is newer than what was rendered.
    pub fn stock(&self, drop: &ProductDrop) -> Stock {
        let rendered = Stock::of(drop);
        self.stock
            .with(|all| all.get(&drop.id).copied())
            .filter(|live| live.version > rendered.version)
            .unwrap_or(rendered)
    }

    /// Recent buyers to show for `drop`: the live list once one has arrived.
    pub fn activity(&self, drop: &ProductDrop) -> Vec<Purchaser> {
        self.activity
            .with(|all| all.get(&drop.id).cloned())
            .unwrap_or_else(|| drop.recent_purchasers.clone())
    }

    /// The rendered drops followed by any created since, without duplicates.
    pub fn with_created(&self, rendered: &[ProductDrop]) -> Vec<ProductDrop> {
        let mut all = rendered.to_vec();
        for drop in self.seen.get() {
            if !all.iter().any(|d| d.id == drop.id) {
                all.push(drop);
            }
        }
        all
    }

    pub fn connection(&self) -> Connection {
        self.connection.get()
    }

    /// Server time now, in milliseconds since the epoch (ticks once a quarter second).
    pub fn now_ms(&self) -> i64 {
        self.now_ms.get()
    }

    /// Changes whenever an event for this user alone arrives.
    pub fn private_changes(&self) -> u64 {
        self.private_changes.get()
    }

    /// Reopens the socket, so owner-only events follow the current session.
    pub fn reconnect(&self) {
        self.reconnects.update(|n| *n += 1);
    }

    /// Applies one event from the server.
    pub fn apply(&self, event: LiveEvent) {
        match event {
            LiveEvent::Snapshot { drops, server_time } => {
                let offset = server_time.timestamp_millis() - chrono::Utc::now().timestamp_millis();
                self.clock_offset_ms.set(offset);
                for drop in drops {
                    self.set_stock(drop.id, Stock::of(&drop));
                    self.activity.update(|all| {
                        all.insert(drop.id, drop.recent_purchasers.clone());
                    });
                    self.remember(drop);
                }
                // What we hold may have changed while we were away.
                self.private_changes.update(|n| *n += 1);
            }
            LiveEvent::StockUpdated {
                drop_id,
                available,
                total,
                version,
            } => self.set_stock(
                drop_id,
                Stock {
                    available,
                    total,
                    version,
                },
            ),
            LiveEvent::DropCreated { drop } => {
                self.set_stock(drop.id, Stock::of(&drop));
                self.remember(drop);
            }
            LiveEvent::ActivityUpdated { drop_id, recent } => {
                self.activity.update(|all| {
                    all.insert(drop_id, recent);
                });
            }
            LiveEvent::ReservationExpired { .. } | LiveEvent::PurchaseCompleted { .. } => {
                self.private_changes.update(|n| *n += 1);
            }
        }
    }

    fn set_stock(&self, drop: DropId, stock: Stock) {
        let newer = self
            .stock
            .with_untracked(|all| all.get(&drop).is_none_or(|old| stock.version > old.version));
        if newer {
            self.stock.update(|all| {
                all.insert(drop, stock);
            });
        }
    }

    fn remember(&self, drop: ProductDrop) {
        let known = self
            .seen
            .with_untracked(|all| all.iter().any(|d| d.id == drop.id));
        if !known {
            self.seen.update(|all| all.push(drop));
        }
    }
}

#[cfg(feature = "hydrate")]
mod socket {
    //! The browser's WebSocket: connect, feed the store, reconnect with backoff.

    use std::{cell::RefCell, rc::Rc};

    use gloo_timers::callback::{Interval, Timeout};
    use leptos::prelude::*;
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{CloseEvent, MessageEvent, WebSocket};

    use super::{Connection, LiveStore};
    use crate::model::LiveEvent;

    /// One open socket and the callbacks it needs alive.
    struct Open {
        ws: WebSocket,
        _on_open: Closure<dyn FnMut()>,
        _on_message: Closure<dyn FnMut(MessageEvent)>,
        _on_close: Closure<dyn FnMut(CloseEvent)>,
    }

    impl Drop for Open {
        fn drop(&mut self) {
            self.ws.set_onopen(None);
            self.ws.set_onmessage(None);
            self.ws.set_onclose(None);
            let _ = self.ws.close();
        }
    }

    /// Everything the feed keeps between connections.
    #[derive(Default)]
    struct Feed {
        open: Option<Open>,
        retry: Option<Timeout>,
        attempt: u32,
        stopped: bool,
    }

    type Shared = Rc<RefCell<Feed>>;

    /// Opens the feed for this tab; it lives until the app is torn down.
    pub fn start(store: LiveStore) {
        let feed: Shared = Rc::default();
        connect(store, feed.clone());

        // Reconnect when the session changes (the cookie decides owner-only events).
        let reconnect_feed = feed.clone();
        Effect::new(move |previous: Option<u64>| {
            let current = store.reconnects.get();
            if previous.is_some_and(|p| p != current) {
                {
                    let mut feed = reconnect_feed.borrow_mut();
                    feed.attempt = 0;
                    // A pending retry would replace the socket opened now.
                    feed.retry = None;
                }
                connect(store, reconnect_feed.clone());
            }
            current
        });

        // The clock countdowns read, corrected to the server's.
        let tick = move || {
            let now = chrono::Utc::now().timestamp_millis() + store.clock_offset_ms.get_untracked();
            store.now_ms.set(now);
        };
        tick();
        let interval = Interval::new(250, tick);

        let keep = StoredValue::new_local(Some((feed, interval)));
        on_cleanup(move || {
            if let Some((feed, interval)) = keep.try_update_value(|v| v.take()).flatten() {
                interval.cancel();
                let mut feed = feed.borrow_mut();
                feed.stopped = true;
                feed.retry = None;
                feed.open = None;
            }
        });
    }

    fn url() -> Option<String> {
        let location = window().location();
        let scheme = if location.protocol().ok()? == "https:" {
            "wss"
        } else {
            "ws"
        };
        Some(format!("{scheme}://{}/ws", location.host().ok()?))
    }

    fn connect(store: LiveStore, feed: Shared) {
        if feed.borrow().stopped {
            return;
        }
        // Drop any previous socket first (its handlers are detached on drop).
        feed.borrow_mut().open = None;
        let Some(ws) = url().and_then(|url| WebSocket::new(&url).ok()) else {
            retry_later(store, feed);
            return;
        };

        let on_open = Closure::<dyn FnMut()>::new(move || store.connection.set(Connection::Live));
        let on_message = {
            let feed = feed.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let Some(text) = event.data().as_string() else {
                    return;
                };
                let Ok(event) = serde_json::from_str::<LiveEvent>(&text) else {
                    return;
                };
                if matches!(event, LiveEvent::Snapshot { .. }) {
                    // Only a served snapshot proves the server healthy: reset the backoff
                    // here, not on open, so a server that accepts and then fails backs off.
                    feed.borrow_mut().attempt = 0;
                }
                store.apply(event);
            })
        };
        let on_close = {
            let feed = feed.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |_| {
                store.connection.set(Connection::Reconnecting);
                // Never replace the socket from inside its own callback: schedule it.
                retry_later(store, feed.clone());
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        feed.borrow_mut().open = Some(Open {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        });
    }

    /// Waits 0.5 s, 1 s, 2 s, ... up to 10 s (with jitter), then reconnects.
    fn retry_later(store: LiveStore, feed: Shared) {
        let attempt = {
            let mut state = feed.borrow_mut();
            state.attempt = state.attempt.saturating_add(1);
            state.attempt
        };
        let base = 500u32.saturating_mul(1 << attempt.min(5)).min(10_000);
        let jitter = (js_sys::Math::random() * f64::from(base) * 0.3) as u32;
        let next = feed.clone();
        let timeout = Timeout::new(base + jitter, move || connect(store, next));
        feed.borrow_mut().retry = Some(timeout);
    }
}

impl LiveStore {
    /// Opens this tab's WebSocket; call it once, from an effect at the app root (effects run
    /// only in the browser, and on the server this does nothing).
    pub fn connect(&self) {
        #[cfg(feature = "hydrate")]
        socket::start(*self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop(version: i64, available: i64) -> ProductDrop {
        ProductDrop {
            id: DropId(7),
            name: "Test".into(),
            description: String::new(),
            image: String::new(),
            price_cents: 100,
            total_stock: 10,
            available_stock: available,
            max_per_user: 1,
            starts_at: chrono::Utc::now(),
            created_at: chrono::Utc::now(),
            version,
            recent_purchasers: Vec::new(),
        }
    }

    fn stock_event(version: i64, available: i64) -> LiveEvent {
        LiveEvent::StockUpdated {
            drop_id: DropId(7),
            available,
            total: 10,
            version,
        }
    }

    #[test]
    fn only_newer_versions_move_the_stock() {
        let owner = Owner::new();
        owner.with(|| {
            let store = LiveStore::provide();
            let rendered = drop(5, 6);
            // Older than what was rendered: ignored.
            store.apply(stock_event(4, 9));
            assert_eq!(store.stock(&rendered).available, 6);
            store.apply(stock_event(7, 4));
            assert_eq!(store.stock(&rendered).available, 4);
            // A late event from before: ignored.
            store.apply(stock_event(6, 5));
            assert_eq!(store.stock(&rendered).available, 4);
        });
    }

    #[test]
    fn created_drops_join_the_list_once() {
        let owner = Owner::new();
        owner.with(|| {
            let store = LiveStore::provide();
            let rendered = vec![drop(1, 1)];
            let mut new = drop(0, 3);
            new.id = DropId(8);
            store.apply(LiveEvent::DropCreated { drop: new.clone() });
            store.apply(LiveEvent::DropCreated { drop: new });
            let ids: Vec<_> = store.with_created(&rendered).iter().map(|d| d.id).collect();
            assert_eq!(ids, vec![DropId(7), DropId(8)]);
        });
    }
}
