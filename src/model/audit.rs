//! What anyone may check of a queue's order or a draw.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sale::SaleMode;

/// What anyone may check of a queue's order once it has gone live, or of a draw once it is
/// made: the seed behind the published SHA-256, and every ticket placed then, with its place
/// (no user ids or names). Final from that moment: it is built once, in the transaction that
/// placed the tickets, and served as the same bytes ever after. What comes later (a queue's
/// later arrivals, a draw's waitlist moves) is [`AuditLater`], page by page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Audit {
    pub sale_mode: SaleMode,
    pub seed_sha256: String,
    pub seed: String,
    /// Go-live: tickets that joined before it are the lobby, ordered by
    /// `sha256_hex(seed + ":" + id)`; later ones follow in the order they joined.
    pub starts_at: DateTime<Utc>,
    /// Every ticket placed at go-live (a draw: every entry), by place.
    pub tickets: Vec<AuditTicket>,
    /// A draw: the entries that won at the draw, in the drawn order (the first `total_stock`
    /// places, or every entry when there were fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winners: Option<Vec<String>>,
}

/// What happened to a queue or a draw after its audit was final, one page of it: a queue's
/// tickets placed since go-live, or a draw's units passed down the waitlist, by place.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditLater {
    /// A queue: tickets that joined after go-live, each at the back of the line then.
    pub tickets: Vec<AuditTicket>,
    /// A draw: each unit a winner left unused, given to the next entry on the waitlist, in the
    /// order they were given.
    pub waitlist_moves: Vec<WaitlistMove>,
    /// The `after` of the next page; null on the last one.
    pub next_after: Option<i64>,
}

/// A unit a draw's winner left unused, given to the next entry on the waitlist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct WaitlistMove {
    /// The entry that got the unit.
    pub id: String,
    pub place: i64,
    pub at: DateTime<Utc>,
}

/// One ticket of an audit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditTicket {
    pub id: String,
    pub joined_at: DateTime<Utc>,
    pub place: i64,
}
