//! Tickets (a queue's places, a draw's entries) as the store reads and writes them.

use crate::model::{DropId, QueueLine, Ticket, TicketState, UserId};

use super::rows::{from_ms, queue_line};

/// Columns of `tickets` in the order [`TicketRow`] reads them.
macro_rules! ticket_columns {
    () => {
        "id, public_id, drop_id, user_id, place, state, admitted_until, sealed, network"
    };
}
pub(crate) use ticket_columns;

/// A ticket as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct TicketRow {
    pub(crate) id: i64,
    pub(crate) public_id: String,
    pub(crate) drop_id: DropId,
    pub(crate) user_id: UserId,
    pub(crate) place: Option<i64>,
    pub(crate) state: String,
    pub(crate) admitted_until: Option<i64>,
    pub(crate) sealed: bool,
    /// The network it joined from (see [`crate::server::rules::network_of`]).
    pub(crate) network: Option<String>,
}

impl TicketRow {
    /// The ticket as its owner sees it in a line that has moved this far.
    pub(crate) fn ticket(&self, line: &QueueLine) -> Ticket {
        let state = TicketState::parse(&self.state).unwrap_or(TicketState::Closed);
        let waiting_place = self.place.filter(|_| state.waiting() && line.live);
        Ticket {
            id: self.public_id.clone(),
            state,
            place: self.place,
            ahead: waiting_place.map(|place| line.ahead_of(place)),
            eta_seconds: waiting_place.and_then(|place| line.eta_seconds(place)),
            admitted_until: self.admitted_until.map(from_ms),
            sealed: self.sealed,
        }
    }
}

/// Columns of a ticket (`t`) joined with its drop (`d`), as [`TicketInLine`] reads them.
macro_rules! ticket_in_line_columns {
    () => {
        "t.id, t.public_id, t.drop_id, t.user_id, t.place, t.state, t.admitted_until, t.sealed, \
         t.network, d.lined_up_at, d.closed_at, d.admit_rate_milli, d.served_through"
    };
}
pub(crate) use ticket_in_line_columns;

/// A ticket read with how far its drop's line has moved.
#[derive(sqlx::FromRow)]
pub(crate) struct TicketInLine {
    #[sqlx(flatten)]
    pub(crate) ticket: TicketRow,
    pub(crate) lined_up_at: Option<i64>,
    pub(crate) closed_at: Option<i64>,
    pub(crate) admit_rate_milli: i64,
    pub(crate) served_through: i64,
}

impl TicketInLine {
    pub(crate) fn ticket(&self) -> Ticket {
        self.ticket.ticket(&queue_line(
            self.lined_up_at,
            self.closed_at,
            self.admit_rate_milli,
            self.served_through,
        ))
    }
}

/// The public ids of a drop's (`$1`) sealed entry list, in no order (callers sort them by
/// bytes, as the Merkle root is over them: PostgreSQL's collation is not bytes).
pub(crate) const SEALED_IDS_SQL: &str =
    "SELECT public_id FROM tickets WHERE drop_id = $1 AND sealed";

/// A ticket as go-live finds it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LineTicket {
    pub id: i64,
    pub public_id: String,
    pub joined_at: i64,
}

/// A ticket about to be inserted.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct NewTicket {
    pub user_id: UserId,
    pub public_id: String,
    /// After go-live: the back of the line.
    pub place: Option<i64>,
    pub network: Option<String>,
}

/// A buyer asking to join a queue or enter a draw, the network they ask from (none when the
/// address is unknown), and the proof of work they opened the door with (none when the doors
/// ask none), spent as their new ticket is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joiner {
    pub user: UserId,
    pub network: Option<String>,
    pub proof: Option<Spend>,
}

/// A checked proof of work's challenge, to be spent once: its nonce, and when it expires
/// (Unix seconds), after which nobody need remember it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spend {
    pub nonce: String,
    pub expires_at: i64,
}

/// What a drop's order is drawn from: its secret seed and the SHA-256 of it published when the
/// drop was created, or (beacon mode) the drand round named then, its signature and randomness
/// once fetched and checked, and the entry list sealed at go-live.
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub(crate) struct Commitment {
    pub seed: Option<String>,
    pub seed_sha256: Option<String>,
    pub beacon_chain: Option<String>,
    pub beacon_public_key: Option<String>,
    pub beacon_round: Option<i64>,
    pub beacon_round_at: Option<i64>,
    /// The round named at creation, when a late seal named a later one.
    pub beacon_named_round: Option<i64>,
    pub beacon_signature: Option<String>,
    pub beacon_randomness: Option<String>,
    pub entry_root: Option<String>,
    pub entry_count: Option<i64>,
    pub sealed_at: Option<i64>,
}

/// Columns of `drops` in the order [`Commitment`] reads them.
macro_rules! commitment_columns {
    () => {
        "seed, seed_sha256, beacon_chain, beacon_public_key, beacon_round, beacon_round_at, \
         beacon_named_round, \
         beacon_signature, beacon_randomness, entry_root, entry_count, sealed_at"
    };
}
pub(crate) use commitment_columns;

/// A drop put in order whose final audit was never kept.
#[derive(sqlx::FromRow)]
pub(crate) struct Unaudited {
    pub(crate) id: DropId,
    pub(crate) sale_mode: String,
    pub(crate) starts_at: i64,
    #[sqlx(flatten)]
    pub(crate) commitment: Commitment,
    pub(crate) winners_drawn: i64,
}

/// A ticket with the place it was given.
#[derive(sqlx::FromRow)]
pub(crate) struct PlacedTicket {
    #[sqlx(flatten)]
    pub(crate) ticket: LineTicket,
    pub(crate) place: i64,
}
