//! Storage: what Dropline needs from a database, one implementation per database.
//!
//! [`Reads`] are written per database, each with its own SQL. [`Writes`] — the operations that
//! move stock — are written once, in `writes.rs`, as a sequence of steps (lock the drop, check,
//! insert, adjust the stock, commit and publish) that each database supplies in its own SQL
//! ([`writes::WriteTx`]). Every write runs in one transaction and makes its events visible on
//! the [`EventBus`](super::events::EventBus) only once it has committed: SQLite publishes them
//! from the committing task, PostgreSQL sends them with `pg_notify` inside the transaction
//! (delivered by the database on commit, to every instance).

mod accounts;
mod keys;
mod postgres;
mod queue;
mod reads;
mod sqlite;
mod writes;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::{
    accounts::{AccountWrites, NewAccount},
    keys::{KeyClaim, KeyRequest, KeyWrites, Settlement, StoredResponse},
    postgres::PgStore,
    queue::{AdmitPass, HandOnPass, QueueWrites},
    sqlite::SqliteStore,
    writes::{Progress, Writes},
};
use super::{events::EventBus, rules, settings::Settings};
use crate::model::{
    Audit, AuditLater, AuditTicket, DropId, ErrorCode, ProductDrop, Purchase, PurchaseId,
    Purchaser, QueueLine, Reservation, ReservationId, ReservationStatus, SaleMode, Ticket,
    TicketState, User, UserId, WaitlistMove,
};

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An expected refusal (sold out, expired, ...): nothing was written.
    #[error("refused: {0:?}")]
    Refused(ErrorCode),
    /// The database failed; the transaction was rolled back.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// A fresh hold and the drop as it stands after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub reservation: Reservation,
    pub drop: ProductDrop,
}

/// One user's answer from a reserve batch: a fresh hold, or why they got none.
pub type ReserveOutcome = Result<Reserved, super::rules::Refusal>;

/// A hold given back and the drop as it stands after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    pub reservation: Reservation,
    pub drop: ProductDrop,
}

/// Where every unit of one drop is: the invariant says these add up to `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StockAudit {
    pub total: i64,
    pub available: i64,
    pub active_holds: i64,
    pub purchases: i64,
}

impl StockAudit {
    /// `available + active holds + purchases = total`.
    pub fn holds(&self) -> bool {
        self.available + self.active_holds + self.purchases == self.total
    }
}

/// Everything a database offers: its own reads, and the writes — stock, queues, idempotency
/// keys, sign-ups — written once for all databases.
pub trait Store: Reads + Writes + QueueWrites + KeyWrites + AccountWrites + 'static {}

impl<T: Reads + Writes + QueueWrites + KeyWrites + AccountWrites + 'static> Store for T {}

/// What each database answers in its own SQL.
#[async_trait]
pub trait Reads: Send + Sync {
    /// Confirms the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// Every drop, oldest first, each with its three newest purchasers.
    async fn list_drops(&self) -> Result<Vec<ProductDrop>, StoreError>;
    async fn get_drop(&self, id: DropId) -> Result<Option<ProductDrop>, StoreError>;
    /// How long until the earliest deadline of any live hold, by the database's clock (zero
    /// when one is already due).
    async fn next_deadline(&self) -> Result<Option<Duration>, StoreError>;
    /// How long until the earliest go-live (a draw: its draw) of a queue or draw drop not yet
    /// in order, by the database's clock (zero when one is due).
    async fn next_go_live(&self) -> Result<Option<Duration>, StoreError>;
    /// The user's holds, newest first.
    async fn user_reservations(&self, user: UserId) -> Result<Vec<Reservation>, StoreError>;
    /// Counts where each unit of a drop is, in one consistent read.
    async fn audit(&self, drop: DropId) -> Result<StockAudit, StoreError>;
    /// The queue and draw drops whose go-live (a draw: its draw) has come and that have not
    /// closed, each with how it is sold and whether its lobby is in order (drawn) yet: the
    /// queue worker's round.
    async fn queues_due(&self) -> Result<Vec<(DropId, SaleMode, bool)>, StoreError>;
    /// The user's ticket in the drop's queue, with where it stands in line.
    async fn ticket(&self, drop: DropId, user: UserId) -> Result<Option<Ticket>, StoreError>;
    /// Every ticket of the user, by drop.
    async fn user_tickets(&self, user: UserId) -> Result<Vec<(DropId, Ticket)>, StoreError>;
    /// The final audit of a queue or a draw (`{"audit": ...}`, as built when it went live);
    /// `NOT_STARTED` before, `NOT_A_QUEUE` for a drop sold otherwise.
    async fn final_audit(&self, drop: DropId) -> Result<String, StoreError>;
    /// What happened after the final audit, by place from `after` on, at most `limit` of it:
    /// a queue's later tickets, a draw's waitlist moves.
    async fn audit_later(
        &self,
        drop: DropId,
        after: i64,
        limit: i64,
    ) -> Result<AuditLater, StoreError>;
    /// Deletes idempotency keys first used longer ago than `older_than`; answers how many.
    async fn forget_keys(&self, older_than: Duration) -> Result<u64, StoreError>;
    /// The database's clock, in milliseconds since the epoch.
    async fn now_ms(&self) -> Result<i64, StoreError>;
    /// What the database says of a session id; `None` when it never existed.
    async fn session(&self, id: SessionId) -> Result<Option<SessionRecord>, StoreError>;
    /// Revokes a session (signing out).
    async fn revoke_session(&self, id: SessionId) -> Result<(), StoreError>;
    /// The sessions revoked at or after `since_ms` (database clock).
    async fn revoked_sessions_since(&self, since_ms: i64) -> Result<Vec<SessionId>, StoreError>;
}

/// A session's id: 128 random bits, written as 32 lowercase hex digits in the cookie and the
/// database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionId(u128);

impl SessionId {
    /// A new id no one can guess.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for SessionId {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Exactly the 32 digits `Display` writes; `from_str_radix` alone would take a sign.
        let digits = if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            text
        } else {
            "not hex"
        };
        u128::from_str_radix(digits, 16).map(Self)
    }
}

/// A session as the database has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: UserId,
    pub expires_at_ms: i64,
    /// Neither revoked nor past its expiry, by the database's clock.
    pub live: bool,
}

/// Opens the store `database_url` names, runs its migrations and wires it to `bus`.
pub async fn connect(settings: &Settings, bus: EventBus) -> Result<Arc<dyn Store>, StoreError> {
    let url = &settings.database_url;
    let connections = settings.database_max_connections;
    if settings.is_postgres() {
        let heartbeat = Duration::from_millis(settings.listen_heartbeat_timeout_ms);
        Ok(Arc::new(
            PgStore::connect(url, connections, heartbeat, bus).await?,
        ))
    } else {
        let sync = settings.sqlite_synchronous;
        Ok(Arc::new(
            SqliteStore::connect(url, connections, sync, bus).await?,
        ))
    }
}

/// Columns of `drops` in the order [`DropRow`] reads them (a macro, so `concat!` can build
/// `'static` SQL from it), given the database's "now": a queue's seed shows only from go-live.
macro_rules! drop_columns {
    ($($now:tt)+) => {
        concat!(
            "id, name, description, image, price_cents, total_stock, available_stock, \
             max_per_user, starts_at, created_at, version, sale_mode, opens_at, seed_sha256, \
             lined_up_at, closed_at, admit_rate_milli, served_through, \
             CASE WHEN starts_at <= ",
            $($now)+,
            " THEN seed END AS seed"
        )
    };
}
pub(crate) use drop_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct DropRow {
    id: DropId,
    name: String,
    description: String,
    image: String,
    price_cents: i64,
    total_stock: i64,
    available_stock: i64,
    max_per_user: i64,
    starts_at: i64,
    created_at: i64,
    version: i64,
    sale_mode: String,
    opens_at: Option<i64>,
    seed_sha256: Option<String>,
    lined_up_at: Option<i64>,
    closed_at: Option<i64>,
    admit_rate_milli: i64,
    served_through: i64,
    /// Only once revealed (see [`drop_columns`]).
    seed: Option<String>,
}

impl DropRow {
    pub(crate) fn into_drop(self, recent_purchasers: Vec<Purchaser>) -> ProductDrop {
        let sale_mode = SaleMode::parse(&self.sale_mode).unwrap_or_default();
        let queue = (sale_mode != SaleMode::FirstCome).then(|| QueueLine {
            live: self.lined_up_at.is_some(),
            served_through: self.served_through,
            per_minute: self.admit_rate_milli * 60 / 1000,
            closed: self.closed_at.is_some(),
        });
        ProductDrop {
            id: self.id,
            name: self.name,
            description: self.description,
            image: self.image,
            price_cents: self.price_cents,
            total_stock: self.total_stock,
            available_stock: self.available_stock,
            max_per_user: self.max_per_user,
            starts_at: from_ms(self.starts_at),
            created_at: from_ms(self.created_at),
            version: self.version,
            recent_purchasers,
            sale_mode,
            queue_opens_at: self
                .opens_at
                .filter(|_| sale_mode == SaleMode::Queue)
                .map(from_ms),
            entries_open_at: self
                .opens_at
                .filter(|_| sale_mode == SaleMode::Draw)
                .map(from_ms),
            seed_sha256: self.seed_sha256,
            seed: self.seed,
            queue,
        }
    }
}

/// Columns of `drops` in the order [`LockedDrop`](super::rules::LockedDrop) reads them
/// (followed by the database's "now").
macro_rules! locked_drop_columns {
    () => {
        "available_stock, max_per_user, starts_at, sale_mode, opens_at, lined_up_at, closed_at, \
         admitted_at, admit_rate_milli, served_through"
    };
}
pub(crate) use locked_drop_columns;

/// The secret that orders a queue's lobby: 256 random bits as 64 lowercase hex digits, and its
/// published SHA-256 (of those 64 ASCII digits, in hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seed {
    pub hex: String,
    pub sha256: String,
}

impl Seed {
    /// A new seed no one can guess.
    pub fn draw() -> Self {
        use sha2::{Digest, Sha256};
        let bytes: [u8; 32] = rand::random();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let sha256 = format!("{:x}", Sha256::digest(hex.as_bytes()));
        Self { hex, sha256 }
    }
}

/// Columns of `tickets` in the order [`TicketRow`] reads them.
macro_rules! ticket_columns {
    () => {
        "id, public_id, drop_id, user_id, place, state, admitted_until"
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
}

/// Columns of a ticket (`t`) joined with its drop (`d`), as [`TicketInLine`] reads them.
macro_rules! ticket_in_line_columns {
    () => {
        "t.id, t.public_id, t.drop_id, t.user_id, t.place, t.state, t.admitted_until, \
         d.lined_up_at, d.closed_at, d.admit_rate_milli, d.served_through"
    };
}
pub(crate) use ticket_in_line_columns;

/// A ticket read with how far its drop's line has moved.
#[derive(sqlx::FromRow)]
pub(crate) struct TicketInLine {
    #[sqlx(flatten)]
    pub(crate) ticket: TicketRow,
    lined_up_at: Option<i64>,
    closed_at: Option<i64>,
    admit_rate_milli: i64,
    served_through: i64,
}

impl TicketInLine {
    pub(crate) fn ticket(&self) -> Ticket {
        self.ticket.ticket(&QueueLine {
            live: self.lined_up_at.is_some(),
            served_through: self.served_through,
            per_minute: self.admit_rate_milli * 60 / 1000,
            closed: self.closed_at.is_some(),
        })
    }
}

/// One ticket of a queue's audit.
#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    public_id: String,
    joined_at: i64,
    place: i64,
    won_at: Option<i64>,
}

/// Where an audit's later part starts, as a drop's row tells: how it is sold, how many won at
/// the draw, and how many tickets the final audit placed (`None` before go-live).
#[derive(sqlx::FromRow)]
pub(crate) struct AuditStart {
    sale_mode: String,
    winners_drawn: i64,
    placed: Option<i64>,
}

impl AuditStart {
    /// The refusal for a drop with no audit (yet), else how it is sold and the highest place
    /// the final audit covers.
    pub(crate) fn after(row: Option<AuditStart>) -> Result<(SaleMode, i64), StoreError> {
        let row = row.ok_or(StoreError::Refused(ErrorCode::DropNotFound))?;
        match (audited(&row.sale_mode, row.placed.is_some())?, row.placed) {
            (SaleMode::Draw, _) => Ok((SaleMode::Draw, row.winners_drawn)),
            (mode, placed) => Ok((mode, placed.unwrap_or_default())),
        }
    }
}

/// How a drop whose final audit is (`kept`) or is not kept yet is sold; the refusal when it
/// has no audit to show: `NOT_A_QUEUE` for a first-come drop, `NOT_STARTED` before go-live.
pub(crate) fn audited(sale_mode: &str, kept: bool) -> Result<SaleMode, StoreError> {
    match SaleMode::parse(sale_mode).unwrap_or_default() {
        SaleMode::FirstCome => Err(StoreError::Refused(ErrorCode::NotAQueue)),
        _ if !kept => Err(StoreError::Refused(ErrorCode::NotStarted)),
        mode => Ok(mode),
    }
}

/// One page of an audit's later part from its rows (a queue's tickets, a draw's moves), by
/// place; the page is full when it has `limit` rows, and the next one starts after its last.
pub(crate) fn later_page(mode: SaleMode, rows: Vec<AuditRow>, limit: i64) -> AuditLater {
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let next_after = rows.last().filter(|_| full).map(|row| row.place);
    let mut later = AuditLater {
        next_after,
        ..AuditLater::default()
    };
    for row in rows {
        match mode {
            SaleMode::Draw => later.waitlist_moves.push(WaitlistMove {
                id: row.public_id,
                place: row.place,
                at: from_ms(row.won_at.unwrap_or_default()),
            }),
            _ => later.tickets.push(AuditTicket {
                id: row.public_id,
                joined_at: from_ms(row.joined_at),
                place: row.place,
            }),
        }
    }
    later
}

/// The final audit of a queue put in order or a draw made now, as its REST answer
/// (`{"audit": ...}`): the seed and the SHA-256 published for it, go-live at `starts_at`, the
/// tickets just placed (`placed`: (ticket, place)), and for a draw the places up to
/// `won_through` as its winners.
pub(crate) fn final_audit_document(
    mode: SaleMode,
    commitment: &queue::Commitment,
    starts_at: i64,
    placed: &[(&rules::LineTicket, i64)],
    won_through: Option<i64>,
) -> String {
    let mut tickets: Vec<AuditTicket> = placed
        .iter()
        .map(|(ticket, place)| AuditTicket {
            id: ticket.public_id.clone(),
            joined_at: from_ms(ticket.joined_at),
            place: *place,
        })
        .collect();
    tickets.sort_by_key(|ticket| ticket.place);
    let winners = won_through.map(|through| {
        tickets
            .iter()
            .take_while(|ticket| ticket.place <= through)
            .map(|ticket| ticket.id.clone())
            .collect()
    });
    let audit = Audit {
        sale_mode: mode,
        seed_sha256: commitment.seed_sha256.clone().unwrap_or_default(),
        seed: commitment.seed.clone().unwrap_or_default(),
        starts_at: from_ms(starts_at),
        tickets,
        winners,
    };
    serde_json::to_string(&serde_json::json!({ "audit": audit })).expect("an audit serializes")
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
        }
    }
}

/// Columns of `reservations` in the order [`ReservationRow`] reads them.
macro_rules! reservation_columns {
    () => {
        "id, drop_id, user_id, status, created_at, expires_at"
    };
}
pub(crate) use reservation_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ReservationRow {
    id: ReservationId,
    drop_id: DropId,
    user_id: UserId,
    status: String,
    created_at: i64,
    expires_at: i64,
}

impl From<ReservationRow> for Reservation {
    fn from(row: ReservationRow) -> Self {
        Reservation::from(&row)
    }
}

impl From<&ReservationRow> for Reservation {
    fn from(row: &ReservationRow) -> Self {
        Reservation {
            id: row.id,
            drop_id: row.drop_id,
            user_id: row.user_id,
            // The CHECK constraint admits only the four spellings.
            status: ReservationStatus::parse(&row.status).unwrap_or(ReservationStatus::Expired),
            created_at: from_ms(row.created_at),
            expires_at: from_ms(row.expires_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PurchaseRow {
    id: PurchaseId,
    reservation_id: ReservationId,
    drop_id: DropId,
    user_id: UserId,
    price_cents: i64,
    created_at: i64,
}

impl From<PurchaseRow> for Purchase {
    fn from(row: PurchaseRow) -> Self {
        Purchase {
            id: row.id,
            reservation_id: row.reservation_id,
            drop_id: row.drop_id,
            user_id: row.user_id,
            price_cents: row.price_cents,
            created_at: from_ms(row.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PurchaserRow {
    drop_id: DropId,
    name: String,
    created_at: i64,
}

impl From<PurchaserRow> for Purchaser {
    fn from(row: PurchaserRow) -> Self {
        Purchaser {
            name: row.name,
            purchased_at: from_ms(row.created_at),
        }
    }
}

// Portable SQL, the same text for both databases (sqlx reads `$N` parameters on SQLite too).

/// The three newest purchasers of drop `$1`, newest first.
pub(crate) const RECENT_PURCHASERS: &str =
    "SELECT p.drop_id, u.name, p.created_at FROM purchases p \
    JOIN users u ON u.id = p.user_id WHERE p.drop_id = $1 \
    ORDER BY p.created_at DESC, p.id DESC LIMIT 3";

/// Attaches each drop's purchasers (rows of several drops, newest first per drop).
pub(crate) fn with_purchasers(
    drops: Vec<DropRow>,
    purchasers: Vec<PurchaserRow>,
) -> Vec<ProductDrop> {
    drops
        .into_iter()
        .map(|drop| {
            let recent = purchasers
                .iter()
                .filter(|p| p.drop_id == drop.id)
                .map(|p| Purchaser {
                    name: p.name.clone(),
                    purchased_at: from_ms(p.created_at),
                })
                .collect();
            drop.into_drop(recent)
        })
        .collect()
}

/// Milliseconds since the epoch to a UTC time.
fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A signed distance in milliseconds as a wait (zero for the past).
pub(crate) fn until(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Milliseconds of a duration, for SQL arithmetic on stored times.
pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// How many overdue holds one expiry statement takes.
pub const EXPIRY_BATCH: i64 = 500;
