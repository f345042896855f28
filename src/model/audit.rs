//! What anyone may check of a queue's order or a draw.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    ids::DropId,
    sale::{SaleMode, TicketState},
};

/// What anyone may check of a queue's order once it has gone live, or of a draw once it is
/// made: what the order was drawn from (`order`: the seed behind the published SHA-256, or a
/// drand round and the entry list sealed before it existed), and every ticket placed then,
/// with its place (no user ids or names). Final from that moment: it is built once, in the
/// transaction that placed the tickets, and served as the same bytes ever after. What comes
/// later (a queue's later arrivals, a draw's waitlist moves) is [`AuditLater`], page by page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Audit {
    pub sale_mode: SaleMode,
    /// What the order is drawn from; `source` below is `seed` or `randomness:root`.
    #[serde(default)]
    pub order: OrderSource,
    /// Seed mode: the SHA-256 published at creation and the seed it was drawn from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// Beacon mode: the drand round, checked against the chain's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beacon: Option<AuditBeacon>,
    /// Beacon mode: the entry list sealed at go-live (a draw: at its draw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<SealedEntries>,
    /// The public key (Ed25519, hex) the receipts of this drop's joins or entries are signed
    /// with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_key: Option<String>,
    /// Go-live: tickets that joined before it are the lobby, ordered by
    /// `sha256_hex(source + ":" + id)`; later ones follow in the order they joined.
    pub starts_at: DateTime<Utc>,
    /// When the tickets were put in order (a draw: drawn); at or after `starts_at`, and in
    /// beacon mode once the round was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered_at: Option<DateTime<Utc>>,
    /// A draw: the units it was drawn for (the stock left at the draw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub units: Option<i64>,
    /// Every ticket placed at go-live (a draw: every entry), by place.
    pub tickets: Vec<AuditTicket>,
    /// A draw: the entries that won at the draw, in the drawn order (the first `total_stock`
    /// places, or every entry when there were fewer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub winners: Option<Vec<String>>,
}

/// A signed receipt for a ticket: joining a queue or entering a draw answers one. `signature`
/// is Ed25519 (hex) by `public_key` (hex, the key every final audit names as `receipt_key`)
/// over [`receipt_message`]. A receipt for a ticket the audit leaves out proves it was issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Receipt {
    pub drop_id: DropId,
    pub ticket: String,
    /// When it was issued, Unix milliseconds.
    pub issued_at_ms: i64,
    pub public_key: String,
    pub signature: String,
}

/// What a receipt signs: `dropline receipt v1\ndrop {drop}\nticket {ticket}\nissued_at {ms}`.
pub fn receipt_message(drop: DropId, ticket: &str, issued_at_ms: i64) -> String {
    format!(
        "dropline receipt v1\ndrop {}\nticket {ticket}\nissued_at {issued_at_ms}",
        drop.0
    )
}

/// What a queue's or a draw's order is drawn from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderSource {
    /// A seed the server drew at creation and published the SHA-256 of: checkable afterwards,
    /// but known early to whoever can read the server's database.
    #[default]
    Seed,
    /// A public drand round published only after the entry list was sealed: known to nobody
    /// while the list could change.
    Beacon,
}

/// The drand round a beacon-mode order is drawn from. Anyone can check `signature` under
/// `public_key` as round `round` of chain `chain_hash` (unchained BLS on BLS12-381, the
/// quicknet scheme, e.g. with `drand-verify`), and that `randomness` is its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditBeacon {
    pub chain_hash: String,
    pub public_key: String,
    pub round: u64,
    /// When the round was published: after `entries.sealed_at`.
    pub round_at: DateTime<Utc>,
    /// The round the drop named at creation, when it was out already at the seal (the server
    /// was down past the margin) and this later one was named instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_round: Option<u64>,
    pub signature: String,
    pub randomness: String,
}

/// The entry list sealed before the beacon round existed: the RFC 6962 Merkle root (SHA-256)
/// over `ids`, sorted by their bytes, and how many there are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct SealedEntries {
    pub root: String,
    pub count: i64,
    pub sealed_at: DateTime<Utc>,
    pub ids: Vec<String>,
}

/// The proof that a ticket is in a drop's sealed entry list, there from the seal on (before
/// the round that orders the list exists): leaf `index` of the RFC 6962 tree over the sorted
/// ids whose root is `root`, by the audit path `path` (the sibling hashes, hex, from the leaf
/// up, as RFC 6962 section 2.1.1 defines them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct EntryProof {
    pub ticket: String,
    pub index: u64,
    pub count: i64,
    pub root: String,
    pub sealed_at: DateTime<Utc>,
    pub path: Vec<String>,
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
    /// A later ticket whose buyer left it and joined again: the new ticket's id (at the back;
    /// this one keeps its place, so the places have no gap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoined_as: Option<String>,
}

/// Every ticket a queue or a draw ever issued, with its whole story, one page of it, in the
/// order they were issued: what anyone needs, with the final [`Audit`], to check each place,
/// admission and waitlist move (the `dropline-verify` crate does).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditHistory {
    pub tickets: Vec<TicketHistory>,
    /// The `after` of the next page; null on the last one.
    pub next_after: Option<i64>,
}

/// One ticket's story. Times are the database's clock, taken under the drop's lock, so for
/// one drop they order every move.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TicketHistory {
    pub id: String,
    /// When it joined (a ticket back in the lobby before go-live: when it came back).
    pub joined_at: DateTime<Utc>,
    /// Beacon mode: in the entry list sealed before the round existed.
    pub sealed: bool,
    /// Its place, from go-live (a later one: from joining); none if it left before.
    pub place: Option<i64>,
    pub state: TicketState,
    /// Left the line (a draw: withdrew).
    pub left_at: Option<DateTime<Utc>>,
    /// A queue: its turn came.
    pub admitted_at: Option<DateTime<Utc>>,
    /// Its turn was used or lapsed, or the line closed on it (a draw: lost).
    pub ended_at: Option<DateTime<Utc>>,
    /// A draw: it got a unit, at the draw or later from the waitlist.
    pub won_at: Option<DateTime<Utc>>,
    /// It left after go-live (or the seal) and its buyer joined again as this new ticket.
    pub rejoined_as: Option<String>,
}
