//! What the server pushes to browsers over `/ws`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    drop::{DropSize, ProductDrop, Purchaser},
    hold::{Purchase, Reservation},
    ids::{DropId, ReservationId},
    sale::{QueueLine, Ticket},
};

/// What the server pushes to browsers over `/ws`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LiveEvent {
    /// Every drop as it stands, with the server's clock; sent on connect and on resync.
    Snapshot {
        drops: Vec<ProductDrop>,
        server_time: DateTime<Utc>,
    },
    StockUpdated {
        drop_id: DropId,
        available: i64,
        total: i64,
        version: i64,
        /// Every size of the drop as it stands, each with its own version.
        #[serde(default)]
        sizes: Vec<DropSize>,
    },
    DropCreated {
        /// Boxed: a drop with its sizes is many times the size of every other event.
        drop: Box<ProductDrop>,
    },
    ActivityUpdated {
        drop_id: DropId,
        recent: Vec<Purchaser>,
    },
    /// A queue's line moved (at most once a second per drop, and when it goes live or
    /// closes): each waiting buyer works out their own place in it. `at` is when, by the
    /// database's clock.
    QueueMoved {
        drop_id: DropId,
        line: QueueLine,
        at: DateTime<Utc>,
    },
    /// Sent only to the ticket's owner: their place in a queue changed state (at `at`, by the
    /// database's clock).
    TicketUpdated {
        drop_id: DropId,
        ticket: Ticket,
        at: DateTime<Utc>,
    },
    /// Sent only to the hold's owner (every tab of theirs shows it).
    HoldCreated { reservation: Reservation },
    /// Sent only to the hold's owner.
    HoldCancelled {
        reservation_id: ReservationId,
        drop_id: DropId,
    },
    /// Sent only to the hold's owner.
    ReservationExpired {
        reservation_id: ReservationId,
        drop_id: DropId,
    },
    /// Sent only to the buyer.
    PurchaseCompleted { purchase: Purchase },
}

impl LiveEvent {
    /// The stock event of a drop as it stands: its sums and every size.
    pub fn stock_of(drop: &ProductDrop) -> Self {
        Self::StockUpdated {
            drop_id: drop.id,
            available: drop.available_stock,
            total: drop.total_stock,
            version: drop.version,
            sizes: drop.sizes.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_events_use_the_documented_tags() {
        let ev = LiveEvent::StockUpdated {
            drop_id: DropId(1),
            available: 2,
            total: 3,
            version: 4,
            sizes: vec![DropSize {
                label: "EU 42".into(),
                total_stock: 3,
                available_stock: 2,
                version: 4,
            }],
        };
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["type"], "STOCK_UPDATED");
        assert_eq!(serde_json::from_value::<LiveEvent>(json).unwrap(), ev);
    }
}
