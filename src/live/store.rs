//! The page's live store: what every island reads of stock, holds, lines and the feed.

use std::collections::HashMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::{
    DropId, DropSize, LiveEvent, ProductDrop, Purchaser, QueueLine, Reservation, ReservationId,
    Ticket,
};

/// Where the socket stands, for the connection indicator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Live,
    Reconnecting,
}

/// Stock as a card shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// The viewer's live hold on a drop, as a card needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldView {
    pub id: ReservationId,
    pub drop_id: DropId,
    /// The size the unit is of.
    pub size: String,
    /// The deadline, in milliseconds since the epoch (database clock).
    pub expires_ms: i64,
}

impl From<&Reservation> for HoldView {
    fn from(hold: &Reservation) -> Self {
        Self {
            id: hold.id,
            drop_id: hold.drop_id,
            size: hold.size.clone(),
            expires_ms: hold.expires_at.timestamp_millis(),
        }
    }
}

#[cfg(feature = "hydrate")]
thread_local! {
    /// The tab's one store.
    static TAB_STORE: std::cell::OnceCell<LiveStore> = const { std::cell::OnceCell::new() };
}

/// Live state of the page, shared by every island. `Copy`: it is a bundle of signals.
#[derive(Clone, Copy)]
pub struct LiveStore {
    stock: RwSignal<HashMap<DropId, Stock>>,
    /// Each drop's sizes as the feed last said, each size at the newest version seen.
    sizes: RwSignal<HashMap<DropId, Vec<DropSize>>>,
    activity: RwSignal<HashMap<DropId, Vec<Purchaser>>>,
    /// Every drop the feed has announced, including those created after the page was rendered.
    seen: RwSignal<Vec<ProductDrop>>,
    /// The viewer's holds as the feed last said: `Some(None)` for a drop known to have none; a
    /// drop missing here is as the page rendered it.
    holds: RwSignal<HashMap<DropId, Option<HoldView>>>,
    /// How far each queue's line has moved, as the feed last said.
    lines: RwSignal<HashMap<DropId, QueueLine>>,
    /// The viewer's queue tickets as the feed last said, like `holds`.
    tickets: RwSignal<HashMap<DropId, Option<Ticket>>>,
    pub(super) connection: RwSignal<Connection>,
    /// Database clock minus browser clock, in milliseconds.
    pub(super) clock_offset_ms: RwSignal<i64>,
    /// Browser time corrected to the database's clock, ticking every quarter second.
    pub(super) now_ms: RwSignal<i64>,
    /// Bumped to make the socket reconnect (after sign-in or sign-out changes who we are).
    pub(super) reconnects: RwSignal<u64>,
}

impl LiveStore {
    fn new() -> Self {
        Self {
            stock: RwSignal::new(HashMap::new()),
            sizes: RwSignal::new(HashMap::new()),
            activity: RwSignal::new(HashMap::new()),
            seen: RwSignal::new(Vec::new()),
            holds: RwSignal::new(HashMap::new()),
            lines: RwSignal::new(HashMap::new()),
            tickets: RwSignal::new(HashMap::new()),
            connection: RwSignal::new(Connection::Connecting),
            clock_offset_ms: RwSignal::new(0),
            now_ms: RwSignal::new(now_here()),
            reconnects: RwSignal::new(0),
        }
    }

    /// Creates the store of one page render and provides it to everything below (server).
    pub fn provide() -> Self {
        let store = Self::new();
        provide_context(store);
        store
    }

    /// The page's store: the tab's (browser), or the render's (server).
    pub fn get() -> Self {
        #[cfg(feature = "hydrate")]
        {
            TAB_STORE.with(|store| *store.get_or_init(Self::new))
        }
        #[cfg(not(feature = "hydrate"))]
        {
            expect_context::<Self>()
        }
    }

    /// Stock to show for a drop: the live value if it is newer than `rendered`.
    pub fn stock(&self, drop: DropId, rendered: Stock) -> Stock {
        self.stock
            .with(|all| all.get(&drop).copied())
            .filter(|live| live.version > rendered.version)
            .unwrap_or(rendered)
    }

    /// The sizes to show for a drop: each rendered size, or its live value if that is newer.
    pub fn sizes(&self, drop: DropId, rendered: &[DropSize]) -> Vec<DropSize> {
        self.sizes.with(|all| {
            let live = all.get(&drop);
            rendered
                .iter()
                .map(|size| {
                    live.and_then(|live| live.iter().find(|l| l.label == size.label))
                        .filter(|live| live.version > size.version)
                        .unwrap_or(size)
                        .clone()
                })
                .collect()
        })
    }

    /// The drop's newest buyers, once the feed has said.
    pub fn activity(&self, drop: DropId) -> Option<Vec<Purchaser>> {
        self.activity.with(|all| all.get(&drop).cloned())
    }

    /// The viewer's hold on a drop, once the feed has said (`Some(None)`: none).
    pub fn hold(&self, drop: DropId) -> Option<Option<HoldView>> {
        self.holds.with(|all| all.get(&drop).cloned())
    }

    /// Records the viewer's hold on a drop (or that there is none).
    pub fn set_hold(&self, drop: DropId, hold: Option<HoldView>) {
        self.holds.update(|all| {
            all.insert(drop, hold);
        });
    }

    /// Replaces every hold with what the server now says (`active` holds; any other drop has
    /// none).
    pub fn replace_holds(&self, active: &[Reservation]) {
        self.holds.update(|all| {
            for hold in all.values_mut() {
                *hold = None;
            }
            for drop in self
                .seen
                .with_untracked(|seen| seen.iter().map(|d| d.id).collect::<Vec<_>>())
            {
                all.insert(drop, None);
            }
            for hold in active {
                all.insert(hold.drop_id, Some(HoldView::from(hold)));
            }
        });
    }

    /// How far a queue's line has moved, once the feed has said.
    pub fn line(&self, drop: DropId) -> Option<QueueLine> {
        self.lines.with(|all| all.get(&drop).copied())
    }

    /// The viewer's ticket in a drop's queue, once the feed has said (`Some(None)`: none).
    pub fn ticket(&self, drop: DropId) -> Option<Option<Ticket>> {
        self.tickets.with(|all| all.get(&drop).cloned())
    }

    /// Records the viewer's ticket in a drop's queue.
    pub fn set_ticket(&self, drop: DropId, ticket: Option<Ticket>) {
        self.tickets.update(|all| {
            all.insert(drop, ticket);
        });
    }

    /// Replaces every ticket with what the server now says (any other drop has none).
    pub fn replace_tickets(&self, tickets: Vec<(DropId, Ticket)>) {
        self.tickets.update(|all| {
            for ticket in all.values_mut() {
                *ticket = None;
            }
            for (drop, ticket) in tickets {
                all.insert(drop, Some(ticket));
            }
        });
    }

    /// Drops announced since the page was rendered (not in `rendered`), oldest first.
    pub fn created_since(&self, rendered: &[DropId]) -> Vec<ProductDrop> {
        self.seen.with(|seen| {
            seen.iter()
                .filter(|drop| !rendered.contains(&drop.id))
                .cloned()
                .collect()
        })
    }

    pub fn connection(&self) -> Connection {
        self.connection.get()
    }

    /// The database's time now, in milliseconds since the epoch (ticks four times a second).
    pub fn now_ms(&self) -> i64 {
        self.now_ms.get()
    }

    /// Reopens the socket, so owner-only events follow the current session.
    pub fn reconnect(&self) {
        self.reconnects.update(|n| *n += 1);
    }

    /// Applies one event from the server; answers true for a snapshot (the caller reloads
    /// what only a request can tell, such as the viewer's holds).
    pub fn apply(&self, event: LiveEvent) -> bool {
        match event {
            LiveEvent::Snapshot { drops, server_time } => {
                let offset = server_time.timestamp_millis() - now_here();
                self.clock_offset_ms.set(offset);
                for drop in drops {
                    // The database's word, whatever was shown: a version the screen took from
                    // somewhere else is put right (the server sends anything newer after it).
                    self.put_stock(drop.id, Stock::of(&drop));
                    self.put_sizes(drop.id, drop.sizes.clone());
                    if let Some(line) = drop.queue {
                        self.move_line(drop.id, line);
                    }
                    self.activity.update(|all| {
                        all.insert(drop.id, drop.recent_purchasers.clone());
                    });
                    self.remember(drop);
                }
                return true;
            }
            LiveEvent::StockUpdated {
                drop_id,
                available,
                total,
                version,
                sizes,
            } => {
                self.set_stock(
                    drop_id,
                    Stock {
                        available,
                        total,
                        version,
                    },
                );
                self.set_sizes(drop_id, sizes);
            }
            LiveEvent::DropCreated { drop } => {
                self.set_stock(drop.id, Stock::of(&drop));
                self.set_sizes(drop.id, drop.sizes.clone());
                self.remember(*drop);
            }
            LiveEvent::ActivityUpdated { drop_id, recent } => {
                self.activity.update(|all| {
                    all.insert(drop_id, recent);
                });
            }
            LiveEvent::HoldCreated { reservation } => {
                self.set_hold(reservation.drop_id, Some(HoldView::from(&reservation)));
            }
            LiveEvent::HoldCancelled { drop_id, .. }
            | LiveEvent::ReservationExpired { drop_id, .. } => self.set_hold(drop_id, None),
            LiveEvent::PurchaseCompleted { purchase } => self.set_hold(purchase.drop_id, None),
            LiveEvent::QueueMoved { drop_id, line, .. } => self.move_line(drop_id, line),
            LiveEvent::TicketUpdated {
                drop_id, ticket, ..
            } => self.set_ticket(drop_id, Some(ticket)),
        }
        false
    }

    /// A line only moves forward: a late or repeated event does not take it back.
    fn move_line(&self, drop: DropId, line: QueueLine) {
        self.lines.update(|all| {
            let merged = match all.get(&drop) {
                Some(old) => QueueLine {
                    live: old.live || line.live,
                    served_through: old.served_through.max(line.served_through),
                    per_minute: line.per_minute,
                    closed: old.closed || line.closed,
                },
                None => line,
            };
            all.insert(drop, merged);
        });
    }

    /// Shows `stock` whatever version the screen had.
    fn put_stock(&self, drop: DropId, stock: Stock) {
        let same = self
            .stock
            .with_untracked(|all| all.get(&drop) == Some(&stock));
        if !same {
            self.stock.update(|all| {
                all.insert(drop, stock);
            });
        }
    }

    /// Shows `stock` if it is newer than what the screen has: late or repeated events never
    /// take it back.
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

    /// Shows a drop's sizes as the database says, whatever versions the screen had.
    fn put_sizes(&self, drop: DropId, sizes: Vec<DropSize>) {
        let same = self
            .sizes
            .with_untracked(|all| all.get(&drop) == Some(&sizes));
        if !same {
            self.sizes.update(|all| {
                all.insert(drop, sizes);
            });
        }
    }

    /// Takes each size that is newer than what the screen has, size by size: a late event
    /// never takes a size back, and one size's news does not wait on another's.
    fn set_sizes(&self, drop: DropId, sizes: Vec<DropSize>) {
        let newer = self.sizes.with_untracked(|all| {
            let known = all.get(&drop);
            sizes.iter().any(|size| {
                known
                    .and_then(|known| known.iter().find(|k| k.label == size.label))
                    .is_none_or(|old| size.version > old.version)
            })
        });
        if !newer {
            return;
        }
        self.sizes.update(|all| {
            let known = all.entry(drop).or_default();
            for size in sizes {
                match known.iter_mut().find(|k| k.label == size.label) {
                    Some(old) if size.version > old.version => *old = size,
                    Some(_) => {}
                    None => known.push(size),
                }
            }
        });
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

/// This machine's clock, in milliseconds since the epoch.
pub(super) fn now_here() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    {
        chrono::Utc::now().timestamp_millis()
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
            ..ProductDrop::default()
        }
    }

    fn stock_event(version: i64, available: i64) -> LiveEvent {
        LiveEvent::StockUpdated {
            drop_id: DropId(7),
            available,
            total: 10,
            version,
            sizes: Vec::new(),
        }
    }

    fn size(label: &str, available_stock: i64, version: i64) -> DropSize {
        DropSize {
            label: label.into(),
            total_stock: 10,
            available_stock,
            version,
        }
    }

    #[test]
    fn each_size_takes_only_its_own_newer_version() {
        let owner = Owner::new();
        owner.with(|| {
            let store = LiveStore::provide();
            let rendered = vec![size("US 9", 5, 3), size("US 10", 5, 3)];
            let shown = |store: &LiveStore| -> Vec<i64> {
                store
                    .sizes(DropId(7), &rendered)
                    .iter()
                    .map(|s| s.available_stock)
                    .collect()
            };
            let event = |version, sizes| LiveEvent::StockUpdated {
                drop_id: DropId(7),
                available: 0,
                total: 20,
                version,
                sizes,
            };
            store.apply(event(4, vec![size("US 9", 4, 4), size("US 10", 5, 3)]));
            assert_eq!(shown(&store), vec![4, 5]);
            // A late event with an older US 9 and a newer US 10: only US 10 moves.
            store.apply(event(5, vec![size("US 9", 5, 3), size("US 10", 2, 6)]));
            assert_eq!(shown(&store), vec![4, 2]);
            // Older than what was rendered: ignored.
            store.apply(event(6, vec![size("US 9", 9, 1), size("US 10", 9, 1)]));
            assert_eq!(shown(&store), vec![4, 2]);
        });
    }

    #[test]
    fn only_newer_versions_move_the_stock() {
        let owner = Owner::new();
        owner.with(|| {
            let store = LiveStore::provide();
            let rendered = Stock::of(&drop(5, 6));
            // Older than what was rendered: ignored.
            store.apply(stock_event(4, 9));
            assert_eq!(store.stock(DropId(7), rendered).available, 6);
            store.apply(stock_event(7, 4));
            assert_eq!(store.stock(DropId(7), rendered).available, 4);
            // A late event from before: ignored.
            store.apply(stock_event(6, 5));
            assert_eq!(store.stock(DropId(7), rendered).available, 4);
        });
    }

    #[test]
    fn a_snapshot_puts_right_a_version_from_nowhere() {
        let owner = Owner::new();
        owner.with(|| {
            let store = LiveStore::provide();
            let rendered = Stock::of(&drop(5, 6));
            // Something showed a version no real change reached...
            store.apply(stock_event(1_000_000_000_000_000, 0));
            assert_eq!(store.stock(DropId(7), rendered).available, 0);
            // ...the next snapshot has the database's word, and what follows it moves again.
            store.apply(LiveEvent::Snapshot {
                drops: vec![drop(8, 3)],
                server_time: chrono::Utc::now(),
            });
            assert_eq!(store.stock(DropId(7), rendered).available, 3);
            store.apply(stock_event(9, 2));
            assert_eq!(store.stock(DropId(7), rendered).available, 2);
        });
    }

    #[test]
    fn created_drops_are_announced_once() {
        let owner = Owner::new();
        owner.with(|| {
            let store = LiveStore::provide();
            let mut new = drop(0, 3);
            new.id = DropId(8);
            store.apply(LiveEvent::DropCreated {
                drop: Box::new(new.clone()),
            });
            store.apply(LiveEvent::DropCreated {
                drop: Box::new(new),
            });
            let ids: Vec<_> = store
                .created_since(&[DropId(7)])
                .iter()
                .map(|d| d.id)
                .collect();
            assert_eq!(ids, vec![DropId(8)]);
        });
    }

    #[test]
    fn every_tab_follows_the_viewers_holds() {
        let owner = Owner::new();
        owner.with(|| {
            let store = LiveStore::provide();
            assert_eq!(store.hold(DropId(7)), None, "unknown until the feed says");
            let hold = Reservation {
                id: ReservationId(3),
                drop_id: DropId(7),
                user_id: crate::model::UserId(1),
                size: "One size".into(),
                status: crate::model::ReservationStatus::Active,
                created_at: chrono::Utc::now(),
                expires_at: chrono::Utc::now(),
            };
            store.apply(LiveEvent::HoldCreated {
                reservation: hold.clone(),
            });
            assert_eq!(store.hold(DropId(7)), Some(Some(HoldView::from(&hold))));
            store.apply(LiveEvent::HoldCancelled {
                reservation_id: ReservationId(3),
                drop_id: DropId(7),
            });
            assert_eq!(store.hold(DropId(7)), Some(None));
        });
    }
}
