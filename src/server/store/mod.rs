//! Storage: one trait, one implementation per database, each with its own SQL.
//!
//! Every mutating operation runs in one transaction and, once it has committed, makes its
//! events visible on the [`EventBus`](super::events::EventBus): SQLite publishes them from the
//! committing task, PostgreSQL sends them with `pg_notify` inside the transaction (delivered by
//! the database on commit, to every instance).

mod postgres;
mod sqlite;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::{postgres::PgStore, sqlite::SqliteStore};
use super::events::{Envelope, EventBus};
use crate::model::{
    DropId, ErrorCode, LiveEvent, NewDrop, ProductDrop, Purchase, Purchaser, Reservation,
    ReservationId, ReservationStatus, User, UserId,
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
pub type ReserveOutcome = Result<Reserved, ErrorCode>;

/// A hold given back and the drop as it stands after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancelled {
    pub reservation: Reservation,
    pub drop: ProductDrop,
}

/// Where every unit of one drop is: the invariant says these add up to `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// The operations Dropline needs from a database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Confirms the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    async fn create_user(&self, name: &str) -> Result<User, StoreError>;
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// Inserts a validated drop and announces it.
    async fn create_drop(&self, drop: &NewDrop) -> Result<ProductDrop, StoreError>;
    /// Every drop, oldest first, each with its three newest purchasers.
    async fn list_drops(&self) -> Result<Vec<ProductDrop>, StoreError>;
    async fn get_drop(&self, id: DropId) -> Result<Option<ProductDrop>, StoreError>;
    /// Takes one unit of `drop` for each of `users` until now + `ttl`, in one transaction, and
    /// answers every user's own outcome in the order given. First come, first served: when
    /// stock runs out inside the batch, the later users get `OUT_OF_STOCK`. A user named twice
    /// gets one hold and `ALREADY_RESERVED` for the rest. The drop's `version` rises once and
    /// one stock event goes out for the whole batch. A database error fails the whole batch
    /// and writes nothing.
    async fn reserve_many(
        &self,
        drop: DropId,
        users: &[UserId],
        ttl: Duration,
    ) -> Result<Vec<ReserveOutcome>, StoreError>;
    /// Takes one unit of `drop` for `user`: [`Store::reserve_many`] with a batch of one.
    async fn reserve(
        &self,
        drop: DropId,
        user: UserId,
        ttl: Duration,
    ) -> Result<Reserved, StoreError> {
        match self.reserve_many(drop, &[user], ttl).await?.pop() {
            Some(outcome) => outcome.map_err(StoreError::Refused),
            None => Err(StoreError::Refused(ErrorCode::Internal)),
        }
    }
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
    /// How long until the earliest deadline of any live hold, by the database's clock (zero
    /// when one is already due).
    async fn next_deadline(&self) -> Result<Option<Duration>, StoreError>;
    /// The newest `limit` purchasers of a drop, newest first.
    async fn recent_purchasers(
        &self,
        drop: DropId,
        limit: i64,
    ) -> Result<Vec<Purchaser>, StoreError>;
    /// The user's holds, newest first.
    async fn user_reservations(&self, user: UserId) -> Result<Vec<Reservation>, StoreError>;
    /// Counts where each unit of a drop is, in one consistent read.
    async fn audit(&self, drop: DropId) -> Result<StockAudit, StoreError>;
    /// Claims an idempotency key for a request, or says what became of its first use.
    async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<KeyClaim, StoreError>;
    /// Records the outcome of a claimed key (`None` releases it, so a retry runs again). Only
    /// the holder of `token` may settle, so a claim taken over after a timeout is not clobbered.
    async fn settle_key(
        &self,
        scope: &str,
        key: &str,
        token: i64,
        outcome: Option<(u16, &str)>,
    ) -> Result<(), StoreError>;
    /// Deletes idempotency keys first used longer ago than `older_than`; answers how many.
    async fn forget_keys(&self, older_than: Duration) -> Result<u64, StoreError>;
}

/// What an idempotency key says about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyClaim {
    /// First use (or a stale claim taken over): run the request, then settle the key with
    /// this token.
    Claimed { token: i64 },
    /// Already answered: send this again.
    Replay { status: u16, body: String },
    /// The key was used for a different request.
    Mismatch,
    /// The first request with this key is still running.
    InFlight,
}

/// How long an unsettled claim blocks retries before a retry may take it over (a server that
/// died mid-request never settles its claim).
pub const KEY_CLAIM_TIMEOUT_MS: i64 = 30_000;

/// The stored row of a key that could not be claimed.
#[derive(sqlx::FromRow)]
struct KeyRow {
    fingerprint: String,
    status: Option<i32>,
    response: Option<String>,
}

impl KeyRow {
    fn claim(row: Option<KeyRow>, fingerprint: &str) -> KeyClaim {
        match row {
            // Released between our insert and this read: let the client retry.
            None => KeyClaim::InFlight,
            Some(row) if row.fingerprint != fingerprint => KeyClaim::Mismatch,
            Some(KeyRow {
                status: Some(status),
                response,
                ..
            }) => KeyClaim::Replay {
                status: u16::try_from(status).unwrap_or(500),
                body: response.unwrap_or_default(),
            },
            Some(_) => KeyClaim::InFlight,
        }
    }
}

/// Opens the store the URL's scheme names, runs its migrations and wires it to `bus`.
pub async fn connect(
    url: &str,
    max_connections: u32,
    bus: EventBus,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            SqliteStore::connect(url, max_connections, bus).await?,
        ))
    } else {
        Ok(Arc::new(PgStore::connect(url, max_connections, bus).await?))
    }
}

/// Columns of `drops` in the order [`DropRow`] reads them (a macro, so `concat!` can build
/// `'static` SQL from it).
macro_rules! drop_columns {
    () => {
        "id, name, description, image, price_cents, total_stock, available_stock, \
         max_per_user, starts_at, created_at, version"
    };
}
use drop_columns;

#[derive(sqlx::FromRow)]
struct DropRow {
    id: i64,
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
}

impl DropRow {
    fn into_drop(self, recent_purchasers: Vec<Purchaser>) -> ProductDrop {
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
        }
    }
}

/// Columns of `reservations` in the order [`ReservationRow`] reads them.
macro_rules! reservation_columns {
    () => {
        "id, drop_id, user_id, status, created_at, expires_at"
    };
}
use reservation_columns;

#[derive(sqlx::FromRow)]
struct ReservationRow {
    id: i64,
    drop_id: i64,
    user_id: i64,
    status: String,
    created_at: i64,
    expires_at: i64,
}

impl From<ReservationRow> for Reservation {
    fn from(row: ReservationRow) -> Self {
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
struct PurchaseRow {
    id: i64,
    reservation_id: i64,
    drop_id: i64,
    user_id: i64,
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
struct PurchaserRow {
    drop_id: i64,
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

/// The three newest purchasers of every drop, newest first per drop (portable SQL).
const RECENT_PURCHASERS_OF_ALL: &str = "SELECT drop_id, name, created_at FROM (\
      SELECT p.drop_id, u.name, p.created_at, ROW_NUMBER() OVER (\
        PARTITION BY p.drop_id ORDER BY p.created_at DESC, p.id DESC) AS rn \
      FROM purchases p JOIN users u ON u.id = p.user_id\
    ) AS ranked WHERE rn <= 3 ORDER BY drop_id, created_at DESC";

/// Attaches each drop's purchasers (rows of several drops, newest first per drop).
fn with_purchasers(drops: Vec<DropRow>, purchasers: Vec<PurchaserRow>) -> Vec<ProductDrop> {
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

/// The drop row a reserve batch has locked, with the database's "now".
#[derive(sqlx::FromRow)]
struct BatchDrop {
    available_stock: i64,
    max_per_user: i64,
    starts_at: i64,
    now: i64,
}

/// What a reserve batch needs to know about one of its users, read under the drop's lock.
#[derive(sqlx::FromRow)]
struct BuyerCheck {
    user_id: i64,
    /// The user exists (a stale session may name one that does not).
    known: bool,
    /// The user already has an ACTIVE hold on the drop.
    holds_one: bool,
    /// Units of the drop the user has bought.
    bought: i64,
}

/// How a reserve batch answers its users before any row is written: a refusal for some, a
/// unit (and a hold to insert) for the others.
struct BatchPlan {
    /// Per user, in batch order: `None` for a user who gets a unit, else the refusal.
    refusals: Vec<Option<ErrorCode>>,
    /// The users who get a unit, each once, in batch order.
    takers: Vec<UserId>,
}

/// The users of a batch, each once, in first-come order (the set the checks are read for).
fn distinct_users(users: &[UserId]) -> Vec<UserId> {
    let mut seen = HashSet::with_capacity(users.len());
    users.iter().copied().filter(|u| seen.insert(*u)).collect()
}

/// Decides every user's outcome in one batch: first come, first served. `drop` is `None` when
/// the drop does not exist; `checks` hold what was read for each distinct user.
fn plan_batch(users: &[UserId], drop: Option<&BatchDrop>, checks: &[BuyerCheck]) -> BatchPlan {
    let whole_batch = |code| BatchPlan {
        refusals: vec![Some(code); users.len()],
        takers: Vec::new(),
    };
    let Some(drop) = drop else {
        return whole_batch(ErrorCode::DropNotFound);
    };
    if drop.starts_at > drop.now {
        return whole_batch(ErrorCode::NotStarted);
    }
    let checks: HashMap<UserId, &BuyerCheck> = checks.iter().map(|c| (c.user_id, c)).collect();
    // Each user is answered as if their reserve ran alone, after the ones before it: a user
    // named again after getting a hold is already holding one; after a refusal, refused alike.
    let mut left = drop.available_stock;
    let mut takers = Vec::new();
    let mut holding = HashSet::new();
    let refusals = users
        .iter()
        .map(|&user| {
            let refusal = match checks.get(&user) {
                None => Some(ErrorCode::Unauthenticated),
                Some(c) if !c.known => Some(ErrorCode::Unauthenticated),
                Some(c) if c.holds_one || holding.contains(&user) => {
                    Some(ErrorCode::AlreadyReserved)
                }
                Some(c) if c.bought >= drop.max_per_user => Some(ErrorCode::LimitReached),
                Some(_) if left <= 0 => Some(ErrorCode::OutOfStock),
                Some(_) => None,
            };
            if refusal.is_none() {
                left -= 1;
                holding.insert(user);
                takers.push(user);
            }
            refusal
        })
        .collect();
    BatchPlan { refusals, takers }
}

/// Every user's outcome once the holds are in (`drop` as it stands after the batch, `None`
/// when no hold went in). A taker whose row the unique index turned away (a live hold another
/// writer made first) gets `ALREADY_RESERVED`; no unit was taken for it.
fn batch_outcomes(
    users: &[UserId],
    plan: BatchPlan,
    inserted: Vec<ReservationRow>,
    drop: Option<ProductDrop>,
) -> Vec<ReserveOutcome> {
    let mut holds: HashMap<UserId, ReservationRow> =
        inserted.into_iter().map(|row| (row.user_id, row)).collect();
    users
        .iter()
        .zip(plan.refusals)
        .map(|(user, refusal)| {
            if let Some(code) = refusal {
                return Err(code);
            }
            match (holds.remove(user), &drop) {
                (Some(row), Some(drop)) => Ok(Reserved {
                    reservation: row.into(),
                    drop: drop.clone(),
                }),
                _ => Err(ErrorCode::AlreadyReserved),
            }
        })
        .collect()
}

/// What a hold looked like when a purchase or cancel did not match it.
#[derive(sqlx::FromRow)]
struct HoldCheck {
    user_id: i64,
    status: String,
    expires_at: i64,
    now: i64,
}

/// Names the refusal of a purchase or cancel whose conditional UPDATE matched no row.
fn hold_refusal(check: Option<HoldCheck>, user: UserId) -> ErrorCode {
    match check {
        None => ErrorCode::ReservationNotFound,
        Some(c) if c.user_id != user => ErrorCode::NotYourReservation,
        Some(c) if c.status == "EXPIRED" => ErrorCode::ReservationExpired,
        Some(c) if c.status == "ACTIVE" && c.expires_at <= c.now => ErrorCode::ReservationExpired,
        Some(_) => ErrorCode::ReservationNotActive,
    }
}

/// The public stock event for a drop as it stands.
fn stock_event(drop: &ProductDrop) -> Envelope {
    Envelope::public(LiveEvent::StockUpdated {
        drop_id: drop.id,
        available: drop.available_stock,
        total: drop.total_stock,
        version: drop.version,
    })
}

/// The owner-only notice that a hold expired.
fn expired_event(hold: &ReservationRow) -> Envelope {
    Envelope::private(
        hold.user_id,
        LiveEvent::ReservationExpired {
            reservation_id: hold.id,
            drop_id: hold.drop_id,
        },
    )
}

/// How many of these holds belong to each drop, in drop order (the order locks are taken in).
fn count_by_drop(holds: &[ReservationRow]) -> BTreeMap<DropId, i64> {
    let mut counts = BTreeMap::new();
    for hold in holds {
        *counts.entry(hold.drop_id).or_insert(0) += 1;
    }
    counts
}

/// Milliseconds since the epoch to a UTC time.
fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A signed distance in milliseconds as a wait (zero for the past).
fn until(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Milliseconds of a duration, for SQL arithmetic on stored times.
fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)
}

/// How many overdue holds one expiry statement takes.
pub const EXPIRY_BATCH: i64 = 500;
