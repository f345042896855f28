//! How a drop is sold, and a buyer's place in a queue or a draw.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How far a queue's line has moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct QueueLine {
    /// Go-live has put the lobby in order.
    pub live: bool,
    /// Every place up to this one has had its turn (0: none yet).
    pub served_through: i64,
    /// About how many buyers are let in a minute, smoothed.
    pub per_minute: i64,
    /// Sold out: the queue is over.
    pub closed: bool,
}

impl QueueLine {
    /// How many places are ahead of `place` whose turn has not come.
    pub fn ahead_of(&self, place: i64) -> i64 {
        (place - self.served_through - 1).max(0)
    }

    /// About how many seconds until the turn of `place`; `None` while nobody is let in.
    pub fn eta_seconds(&self, place: i64) -> Option<i64> {
        (self.per_minute > 0).then(|| self.ahead_of(place) * 60 / self.per_minute)
    }
}

/// How a drop is sold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SaleMode {
    /// Whoever reserves first holds a unit.
    #[default]
    FirstCome,
    /// A waiting room: everyone who joins before go-live is put in a random order that anyone
    /// can check; buyers are let in at the rate the stock absorbs.
    Queue,
    /// A raffle: buyers enter between `entries_open_at` and `starts_at`; at `starts_at` the
    /// entries are put in a random order anyone can check, the first `total_stock` win a hold,
    /// and the rest wait in that order for a unit a winner leaves unused.
    Draw,
}

impl SaleMode {
    /// The spelling stored in the database and sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FirstCome => "first_come",
            Self::Queue => "queue",
            Self::Draw => "draw",
        }
    }

    /// Reads the stored spelling back.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "first_come" => Some(Self::FirstCome),
            "queue" => Some(Self::Queue),
            "draw" => Some(Self::Draw),
            _ => None,
        }
    }
}

/// A buyer's place in a drop's queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Ticket {
    /// Random and opaque: the audit shows it, never who it belongs to.
    pub id: String,
    pub state: TicketState,
    /// 1 = first in line; null until go-live puts the lobby in order.
    pub place: Option<i64>,
    /// Buyers still waiting ahead (while waiting, after go-live).
    pub ahead: Option<i64>,
    /// About how long until it is this buyer's turn (while waiting, after go-live).
    pub eta_seconds: Option<i64>,
    /// While admitted: reserve before this.
    pub admitted_until: Option<DateTime<Utc>>,
    /// Beacon mode: the ticket is in the entry list sealed at go-live (a draw: at the draw),
    /// whose Merkle root the audit publishes before the round that orders it exists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sealed: bool,
}

/// Where a ticket stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    /// In the lobby (before go-live) or in line.
    Waiting,
    /// Its turn: the buyer may reserve until `admitted_until`.
    Admitted,
    /// The buyer reserved with it.
    Used,
    /// Its turn passed unused.
    Lapsed,
    /// The buyer left the queue.
    Left,
    /// Sold out: the queue closed.
    Closed,
    /// A draw's entry, before the draw.
    Entered,
    /// Drawn a unit: the buyer holds it (a hold like any other) until its deadline.
    Won,
    /// Drawn after the winners: waiting, in the drawn order, for a unit a winner leaves unused.
    Waitlisted,
    /// The buyer took the entry back.
    Withdrawn,
    /// The draw is over and no unit came to this entry.
    Lost,
}

impl TicketState {
    /// Still in line: waiting for a turn or a unit, or having a turn now.
    pub fn in_line(self) -> bool {
        matches!(
            self,
            Self::Waiting | Self::Admitted | Self::Entered | Self::Waitlisted
        )
    }

    /// Waiting for a place to come up: in a queue's line, or on a draw's waitlist.
    pub fn waiting(self) -> bool {
        matches!(self, Self::Waiting | Self::Waitlisted)
    }

    /// The spelling stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Admitted => "admitted",
            Self::Used => "used",
            Self::Lapsed => "lapsed",
            Self::Left => "left",
            Self::Closed => "closed",
            Self::Entered => "entered",
            Self::Won => "won",
            Self::Waitlisted => "waitlisted",
            Self::Withdrawn => "withdrawn",
            Self::Lost => "lost",
        }
    }

    /// Reads the stored spelling back.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Waiting,
            Self::Admitted,
            Self::Used,
            Self::Lapsed,
            Self::Left,
            Self::Closed,
            Self::Entered,
            Self::Won,
            Self::Waitlisted,
            Self::Withdrawn,
            Self::Lost,
        ]
        .into_iter()
        .find(|state| state.as_str() == text)
    }
}
