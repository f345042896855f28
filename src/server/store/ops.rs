//! What the rest of the server may ask of a database: the reads, the writes (their flows are
//! written once, in `server::sale` and beside the steps of keys and accounts), and what they
//! answer. Every database offers all of it, so the rest of the server holds an
//! `Arc<dyn Store>`.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    accounts::AccountWrites,
    error::StoreError,
    keys::KeyWrites,
    rows::{HoldCheck, SessionId, SessionRecord},
    tickets::Joiner,
};
use crate::{
    model::{
        AuditHistory, AuditLater, DropId, ErrorCode, NewDrop, ProductDrop, Purchase, Refusal,
        Reservation, ReservationId, SaleMode, SealedEntries, Ticket, User, UserId,
    },
    server::settings::{AdmissionRule, HoldTerms, NetworkCaps},
};

/// A fresh hold and the drop as it stands after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub reservation: Reservation,
    pub drop: ProductDrop,
}

/// One buyer's reserve: who asks, and for which size (`None`: the drop's only size).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserve {
    pub user: UserId,
    pub size: Option<String>,
}

impl Reserve {
    /// A reserve of the drop's only size.
    pub fn any(user: UserId) -> Self {
        Self { user, size: None }
    }

    /// A reserve of the size a buyer typed or picked: trimmed and in Unicode's composed form
    /// (NFC), as labels are stored; a blank one names no size.
    pub fn of(user: UserId, size: Option<&str>) -> Self {
        use unicode_normalization::UnicodeNormalization;
        let size = size
            .map(|size| size.trim().nfc().collect::<String>())
            .filter(|size| !size.is_empty());
        Self { user, size }
    }
}

/// One user's answer from a reserve batch: a fresh hold, or why they got none.
pub type ReserveOutcome = Result<Reserved, Refusal>;

/// A hold given back and the drop as it stands after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    pub reservation: Reservation,
    pub drop: ProductDrop,
}

/// Where every unit of one drop is, and of each of its sizes: the invariant says these add
/// up to `total`, for the drop and for every size, and the sizes add up to the drop.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StockAudit {
    pub total: i64,
    pub available: i64,
    pub active_holds: i64,
    pub purchases: i64,
    #[sqlx(skip)]
    pub sizes: Vec<SizeAudit>,
}

/// Where every unit of one size is.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SizeAudit {
    pub label: String,
    pub total: i64,
    pub available: i64,
    pub active_holds: i64,
    pub purchases: i64,
}

impl StockAudit {
    /// `available + active holds + purchases = total`, for the drop and for each size, and
    /// each of the four is the sum of its sizes'.
    pub fn holds(&self) -> bool {
        let sum = |part: fn(&SizeAudit) -> i64| self.sizes.iter().map(part).sum::<i64>();
        self.available + self.active_holds + self.purchases == self.total
            && self
                .sizes
                .iter()
                .all(|size| size.available + size.active_holds + size.purchases == size.total)
            && sum(|s| s.total) == self.total
            && sum(|s| s.available) == self.available
            && sum(|s| s.active_holds) == self.active_holds
            && sum(|s| s.purchases) == self.purchases
    }
}

/// An account with a username, and its password's hash if it has a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    pub password_hash: Option<String>,
}

/// Everything a database offers: its reads, and the writes — stock, queues, draws,
/// idempotency keys, sign-ups — written once for all databases.
pub trait Store:
    Reads + Writes + QueueWrites + DrawWrites + KeyWrites + AccountWrites + 'static
{
}

impl<T: Reads + Writes + QueueWrites + DrawWrites + KeyWrites + AccountWrites + 'static> Store
    for T
{
}

/// What each database answers in its own SQL.
#[async_trait]
pub trait Reads: Send + Sync {
    /// Confirms the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// A hold as it stands, read without any lock, with the database's "now".
    async fn hold(&self, hold: ReservationId) -> Result<Option<HoldCheck>, StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// The account signed up as `username` (whatever its case).
    async fn account(&self, username: &str) -> Result<Option<Account>, StoreError>;
    /// The user's passkeys (JSON), oldest first.
    async fn passkeys(&self, user: UserId) -> Result<Vec<String>, StoreError>;
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
    /// The beacon-mode drops whose entry list is sealed and whose round's time has come (by
    /// the database's clock) but is not kept yet: (drop, round, chain hash, chain key), the
    /// chain the drop was created under.
    async fn beacons_due(&self) -> Result<Vec<(DropId, u64, String, String)>, StoreError>;
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
    /// Every ticket the queue or draw issued, with its story, in the order they were issued,
    /// after the one at `after` (a position [`AuditHistory::next_after`] gave), at most `limit`;
    /// refused as [`Reads::final_audit`] is before go-live.
    async fn audit_history(
        &self,
        drop: DropId,
        after: i64,
        limit: i64,
    ) -> Result<AuditHistory, StoreError>;
    /// The drop's sealed entry list (beacon mode), from the seal on, its ids sorted by their
    /// bytes; `NOT_SEALED` before the seal or for a drop ordered by its seed.
    async fn sealed_entries(&self, drop: DropId) -> Result<SealedEntries, StoreError>;
    /// Deletes idempotency keys first used longer ago than `older_than` (answers how many),
    /// the spent proofs whose challenges have expired, and passkey ceremonies never answered.
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

/// How long each step of a batch's transaction took, for whoever runs the batch to report.
#[derive(Debug)]
pub struct Progress {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            steps: Vec::new(),
        }
    }
}

impl Progress {
    /// The step just finished: the time since the previous one (or since the start).
    pub fn step(&mut self, name: &'static str) {
        let now = Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }

    /// Every step finished so far, in order.
    pub fn steps(&self) -> &[(&'static str, Duration)] {
        &self.steps
    }
}

/// The writes that move stock (`sale::holds` writes them once for every database).
#[async_trait]
pub trait Writes: Send + Sync {
    /// Inserts a validated drop and announces it.
    async fn create_drop(&self, new: &NewDrop) -> Result<ProductDrop, StoreError>;
    /// Inserts these validated drops if the database has none yet, deciding under a lock, so
    /// instances starting together seed once; answers the drops inserted.
    async fn seed(&self, drops: &[NewDrop]) -> Result<Vec<ProductDrop>, StoreError>;
    /// Takes one unit of `drop` for each of `asks` (of the size each names) for `terms.ttl`, in
    /// one transaction, and answers every user's own outcome in the order given. First come,
    /// first served: when a size runs out inside the batch, the later users asking for it get
    /// `OUT_OF_STOCK`; a size the drop lacks is `SIZE_NOT_FOUND`, none named on a drop of
    /// several `SIZE_REQUIRED`. A user named twice gets one hold and `ALREADY_RESERVED` for
    /// the rest; one who gave a hold of the drop back lately gets `COOLING_DOWN`, one who gave
    /// back too many `HOLD_LIMIT_REACHED` (`terms`). The drop's `version` (and that of each
    /// size it took from) rises once and one stock event goes out for the whole batch. A
    /// database error fails the whole batch and writes nothing. `progress` hears how long each
    /// step took.
    async fn reserve_many(
        &self,
        drop: DropId,
        asks: &[Reserve],
        terms: &HoldTerms,
        progress: &mut Progress,
    ) -> Result<Vec<ReserveOutcome>, StoreError>;
    /// Turns the caller's live hold into a purchase, if its deadline has not passed.
    async fn purchase(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Purchase, StoreError>;
    /// Gives the caller's live hold back to stock.
    async fn cancel(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Cancelled, StoreError>;
    /// Expires up to `limit` overdue holds, returning their units; answers the holds expired.
    async fn expire_due(&self, limit: i64) -> Result<Vec<Reservation>, StoreError>;
}

/// A queue's writes (`sale::queue` writes them once for every database).
#[async_trait]
pub trait QueueWrites: Send + Sync {
    /// Joins each user to the drop's queue (`mode` queue) or enters them in its draw (`mode`
    /// draw) in one transaction (see `batch.rs`), answering each in the order given: their
    /// ticket, and whether it is new. Joining again answers the same ticket; after leaving
    /// before their turn (or withdrawing before the draw), the buyer joins again like anyone
    /// else (the lobby before go-live, the back of the line after, in the order given). A
    /// buyer gets one turn: after it, joining answers the ticket as it stands. A new ticket is
    /// refused to an account made at or after the drop's `accounts_before`, and past `caps`
    /// for its joiner's network (`rules::refuse_joiners`).
    async fn join_many(
        &self,
        drop: DropId,
        mode: SaleMode,
        joiners: &[Joiner],
        caps: NetworkCaps,
    ) -> Result<Vec<Result<(Ticket, bool), ErrorCode>>, StoreError>;
    /// Takes the user out of the drop's queue (their admission too, if their turn had come), or
    /// withdraws their entry in its draw (their place on the waitlist too, after the draw).
    async fn leave_queue(
        &self,
        drop: DropId,
        mode: SaleMode,
        user: UserId,
    ) -> Result<Ticket, StoreError>;
    /// Go-live, once, on whichever instance comes first: puts the lobby in order by its keys
    /// (see `rules::line_up`) and tells every ticket its place. Answers false when it was not
    /// due or already done.
    async fn line_up(&self, drop: DropId) -> Result<bool, StoreError>;
    /// Keeps a beacon-mode drop's round, its signature checked (see `server::beacon`), if it
    /// is the round the drop named and none is kept; answers whether it was kept. The drop is
    /// put in order at the next `line_up` (a draw: `draw`).
    async fn keep_beacon(
        &self,
        drop: DropId,
        round: u64,
        signature: &str,
        randomness: &str,
    ) -> Result<bool, StoreError>;
    /// One admission pass: lapses admissions whose time ran out, lets the next buyers in as
    /// `rule` allows for `ttl`, and closes the queue once the drop has sold out.
    async fn admit(
        &self,
        drop: DropId,
        rule: AdmissionRule,
        ttl: Duration,
    ) -> Result<AdmitPass, StoreError>;
}

/// A draw's writes (`sale::draw` writes them once for every database).
#[async_trait]
pub trait DrawWrites: Send + Sync {
    /// The draw, once, on whichever instance comes first: reveals the order of the entries
    /// (see `rules::draw_order`), and in the same transaction gives each of the first
    /// `total_stock` a hold until now + `claim` and puts the rest on the waitlist. Answers
    /// false when it was not due or already done.
    async fn draw(&self, drop: DropId, claim: Duration) -> Result<bool, StoreError>;
    /// One pass over a drawn draw: gives each unit a winner left unused (cancelled or let
    /// lapse) to the next entry on the waitlist, as a new hold until now + `claim`, and closes
    /// the draw once nothing can pass on (see `rules::hand_on`).
    async fn hand_on(&self, drop: DropId, claim: Duration) -> Result<HandOnPass, StoreError>;
    /// Keeps the final audit of every drop an earlier version put in order without keeping
    /// one: its tickets as they are placed now (a draw's winners, the first it drew). Answers
    /// how many it kept.
    async fn keep_earlier_audits(&self) -> Result<usize, StoreError>;
}

/// What an admission pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmitPass {
    pub admitted: usize,
    pub lapsed: usize,
    pub closed: bool,
}

/// What a pass over a drawn draw did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandOnPass {
    /// Units given to entries from the waitlist.
    pub handed_on: usize,
    pub closed: bool,
}
