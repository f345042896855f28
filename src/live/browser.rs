//! The tab's store and its WebSocket: connect, feed the store, reconnect with backoff.

use std::{cell::RefCell, rc::Rc};

use gloo_timers::callback::{Interval, Timeout};
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use super::store::{now_here, Connection, LiveStore};
use crate::{
    api::{my_reservations, my_tickets},
    model::LiveEvent,
};

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
    /// Snapshots received; the first shows what the page already rendered.
    snapshots: u64,
}

type Shared = Rc<RefCell<Feed>>;

/// Opens the tab's feed; it lives as long as the page.
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

    // The clock countdowns read, corrected to the database's.
    let tick = move || {
        store
            .now_ms
            .set(now_here() + store.clock_offset_ms.get_untracked());
    };
    tick();
    Interval::new(250, tick).forget();
    std::mem::forget(feed);
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
            if !store.apply(event) {
                return;
            }
            // A snapshot: only a served one proves the server healthy, so the backoff
            // resets here, not on open. After a reconnect, what the viewer holds may have
            // changed meanwhile: ask.
            let reload = {
                let mut feed = feed.borrow_mut();
                feed.attempt = 0;
                feed.snapshots += 1;
                feed.snapshots > 1
            };
            if reload {
                reload_mine(store);
            }
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

/// Asks the server for the viewer's holds and queue tickets and shows them.
pub fn reload_mine(store: LiveStore) {
    spawn_local(async move {
        if let Ok(holds) = my_reservations().await {
            let active: Vec<_> = holds
                .into_iter()
                .filter(|h| h.status == crate::model::ReservationStatus::Active)
                .collect();
            store.replace_holds(&active);
        }
        if let Ok(tickets) = my_tickets().await {
            store.replace_tickets(tickets);
        }
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
