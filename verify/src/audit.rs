//! A Dropline audit as its API documents it, read with types of the verifier's own.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// `GET /api/v1/drops/{id}/audit` is `{"audit": ...}`: final from go-live (a draw: the draw).
#[derive(Clone, Debug, Deserialize)]
pub struct Audit {
    /// `queue` or `draw`.
    pub sale_mode: String,
    /// `seed` or `beacon`.
    #[serde(default)]
    pub order: Option<String>,
    /// Seed mode: the seed behind the SHA-256 published when the drop was created.
    #[serde(default)]
    pub seed_sha256: Option<String>,
    #[serde(default)]
    pub seed: Option<String>,
    /// Beacon mode: the drand round named when the drop was created.
    #[serde(default)]
    pub beacon: Option<Beacon>,
    /// Beacon mode: the entry list sealed before the round existed.
    #[serde(default)]
    pub entries: Option<Entries>,
    /// The Ed25519 key (hex) the server signs its receipts with.
    #[serde(default)]
    pub receipt_key: Option<String>,
    pub starts_at: DateTime<Utc>,
    /// When the server put the tickets in order (a draw: made the draw).
    #[serde(default)]
    pub ordered_at: Option<DateTime<Utc>>,
    /// A draw: the units drawn for.
    #[serde(default)]
    pub units: Option<i64>,
    /// Every ticket placed when the tickets were put in order, by place.
    pub tickets: Vec<Placed>,
    /// A draw: the entries that won at the draw, in the drawn order.
    #[serde(default)]
    pub winners: Option<Vec<String>>,
}

/// A drand round (unchained BLS on BLS12-381, the quicknet scheme).
#[derive(Clone, Debug, Deserialize)]
pub struct Beacon {
    pub chain_hash: String,
    /// The chain's public key: a compressed G2 point, 96 bytes, hex.
    pub public_key: String,
    pub round: u64,
    /// When the round was published.
    pub round_at: DateTime<Utc>,
    /// The round named at creation, when it was out already at the seal and this later one
    /// was named instead.
    #[serde(default)]
    pub named_round: Option<u64>,
    /// The round's signature (a compressed G1 point, 48 bytes, hex) and its SHA-256.
    pub signature: String,
    pub randomness: String,
}

/// The sealed entry list: the RFC 6962 Merkle root (SHA-256) over the sorted ticket ids.
#[derive(Clone, Debug, Deserialize)]
pub struct Entries {
    pub root: String,
    pub count: i64,
    pub sealed_at: DateTime<Utc>,
    pub ids: Vec<String>,
}

/// A ticket as the final audit places it.
#[derive(Clone, Debug, Deserialize)]
pub struct Placed {
    pub id: String,
    pub joined_at: DateTime<Utc>,
    pub place: i64,
}

/// `GET /api/v1/drops/{id}/audit/tickets?after=` is `{"history": ...}`: one page of every
/// ticket ever issued, in the order they were issued.
#[derive(Clone, Debug, Deserialize)]
pub struct HistoryPage {
    pub tickets: Vec<History>,
    pub next_after: Option<i64>,
}

/// One ticket's whole story.
#[derive(Clone, Debug, Deserialize)]
pub struct History {
    pub id: String,
    pub joined_at: DateTime<Utc>,
    #[serde(default)]
    pub sealed: bool,
    pub place: Option<i64>,
    pub state: String,
    /// Left the line (a draw: withdrew).
    pub left_at: Option<DateTime<Utc>>,
    /// A queue: its turn came.
    pub admitted_at: Option<DateTime<Utc>>,
    /// Used its turn, let it lapse, or was closed or lost.
    pub ended_at: Option<DateTime<Utc>>,
    /// A draw: got a unit (at the draw, or from the waitlist later).
    pub won_at: Option<DateTime<Utc>>,
    /// Came back as this new ticket.
    pub rejoined_as: Option<String>,
}

/// What the server signs when a buyer joins a queue or enters a draw.
#[derive(Clone, Debug, Deserialize)]
pub struct Receipt {
    pub drop_id: i64,
    pub ticket: String,
    /// Milliseconds since the epoch.
    pub issued_at_ms: i64,
    /// The key it says it was signed with (the audit's `receipt_key` must be the same).
    pub public_key: String,
    /// Ed25519 over [`Receipt::message`], hex.
    pub signature: String,
}

impl Receipt {
    /// The bytes signed: a fixed first line and three more.
    pub fn message(&self) -> String {
        format!(
            "dropline receipt v1\ndrop {}\nticket {}\nissued_at {}",
            self.drop_id, self.ticket, self.issued_at_ms
        )
    }
}

/// `GET /api/v1/drops/{id}/entries/{ticket}/proof` is `{"proof": ...}`: that `ticket` is leaf
/// `index` of the sealed list's RFC 6962 tree (`count` leaves, root `root`), by the audit path
/// `path` (sibling hashes, hex, from the leaf up).
#[derive(Clone, Debug, Deserialize)]
pub struct EntryProof {
    pub ticket: String,
    pub index: u64,
    pub count: i64,
    pub root: String,
    pub sealed_at: DateTime<Utc>,
    pub path: Vec<String>,
}
