//! The rows of drops, holds and purchases as the store reads them, the columns they are read
//! from, and what a write reads under a drop's lock to decide on (`LockedDrop`, `BuyerCheck`,
//! `HoldCheck`). Times are stored as milliseconds since the epoch.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::model::{
    DropId, DropSize, ProductDrop, Purchase, PurchaseId, Purchaser, QueueLine, Reservation,
    ReservationId, ReservationStatus, SaleMode, UserId,
};

/// How far a queue's line has moved, from the drop's columns that say so: when it went live
/// and closed, its smoothed admissions per second (x1000), the highest place served.
pub(crate) fn queue_line(
    lined_up_at: Option<i64>,
    closed_at: Option<i64>,
    admit_rate_milli: i64,
    served_through: i64,
) -> QueueLine {
    QueueLine {
        live: lined_up_at.is_some(),
        served_through,
        per_minute: admit_rate_milli * 60 / 1000,
        closed: closed_at.is_some(),
    }
}

/// Columns of `drops` in the order [`DropRow`] reads them (a macro, so `concat!` can build
/// `'static` SQL from it), given the database's "now": a queue's seed shows only from go-live.
macro_rules! drop_columns {
    ($($now:tt)+) => {
        concat!(
            "id, name, description, image, price_cents, total_stock, available_stock, \
             max_per_user, starts_at, created_at, version, sale_mode, opens_at, seed_sha256, \
             lined_up_at, closed_at, admit_rate_milli, served_through, beacon_round, \
             CASE WHEN starts_at <= ",
            $($now)+,
            " THEN seed END AS seed"
        )
    };
}
pub(crate) use drop_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct DropRow {
    pub(crate) id: DropId,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) image: String,
    pub(crate) price_cents: i64,
    pub(crate) total_stock: i64,
    pub(crate) available_stock: i64,
    pub(crate) max_per_user: i64,
    pub(crate) starts_at: i64,
    pub(crate) created_at: i64,
    pub(crate) version: i64,
    pub(crate) sale_mode: String,
    pub(crate) opens_at: Option<i64>,
    seed_sha256: Option<String>,
    pub(crate) lined_up_at: Option<i64>,
    pub(crate) closed_at: Option<i64>,
    pub(crate) admit_rate_milli: i64,
    pub(crate) served_through: i64,
    beacon_round: Option<i64>,
    /// Only once revealed (see [`drop_columns`]).
    pub(crate) seed: Option<String>,
}

impl DropRow {
    /// The drop with its feed and its sizes (rows of this drop, in the card's order).
    pub(crate) fn into_drop(
        self,
        recent_purchasers: Vec<Purchaser>,
        sizes: Vec<SizeRow>,
    ) -> ProductDrop {
        let sale_mode = SaleMode::parse(&self.sale_mode).unwrap_or_default();
        let queue = (sale_mode != SaleMode::FirstCome).then(|| {
            queue_line(
                self.lined_up_at,
                self.closed_at,
                self.admit_rate_milli,
                self.served_through,
            )
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
            sizes: sizes.into_iter().map(DropSize::from).collect(),
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
            beacon_round: self.beacon_round.and_then(|r| u64::try_from(r).ok()),
            queue,
        }
    }
}

/// Columns of `drop_sizes` in the order [`SizeRow`] reads them, and the order a drop's sizes
/// are read in (a macro, for `concat!`).
macro_rules! size_columns {
    () => {
        "drop_id, label, total_stock, available_stock, version"
    };
}
pub(crate) use size_columns;

/// One size of a drop as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SizeRow {
    pub drop_id: DropId,
    pub label: String,
    pub total_stock: i64,
    pub available_stock: i64,
    pub version: i64,
}

impl From<SizeRow> for DropSize {
    fn from(row: SizeRow) -> Self {
        DropSize {
            label: row.label,
            total_stock: row.total_stock,
            available_stock: row.available_stock,
            version: row.version,
        }
    }
}

/// Columns of `drops` in the order [`LockedDrop`] reads them
/// (followed by the database's "now").
macro_rules! locked_drop_columns {
    () => {
        "available_stock, max_per_user, starts_at, sale_mode, opens_at, lined_up_at, closed_at, \
         admitted_at, admit_rate_milli, served_through, accounts_before"
    };
}
pub(crate) use locked_drop_columns;

/// A drop row as a write finds it under its lock, with the database's "now".
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct LockedDrop {
    pub available_stock: i64,
    pub max_per_user: i64,
    pub starts_at: i64,
    pub sale_mode: String,
    /// A queue: when joining opens.
    pub opens_at: Option<i64>,
    /// A queue: when the lobby was put in order (go-live done).
    pub lined_up_at: Option<i64>,
    /// A queue: when it closed (sold out).
    pub closed_at: Option<i64>,
    /// A queue: when the last admission pass ran.
    pub admitted_at: Option<i64>,
    /// A queue: admissions per second, smoothed, x1000.
    pub admit_rate_milli: i64,
    /// A queue: the highest place whose turn has come.
    pub served_through: i64,
    /// A queue or a draw: only accounts created before this may join or enter.
    pub accounts_before: Option<i64>,
    pub now: i64,
}

impl LockedDrop {
    /// True once the drop's sale has opened.
    pub fn started(&self) -> bool {
        self.starts_at <= self.now
    }

    /// How the drop is sold.
    pub fn mode(&self) -> SaleMode {
        SaleMode::parse(&self.sale_mode).unwrap_or_default()
    }

    /// How far the drop's queue has moved.
    pub fn line(&self) -> QueueLine {
        queue_line(
            self.lined_up_at,
            self.closed_at,
            self.admit_rate_milli,
            self.served_through,
        )
    }
}

/// What a reserve batch needs to know about one of its users, read under the drop's lock.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct BuyerCheck {
    pub user_id: UserId,
    /// The user exists (a stale session may name one that does not).
    pub known: bool,
    /// The user already has an ACTIVE hold on the drop.
    pub holds_one: bool,
    /// Units of the drop the user has bought.
    pub bought: i64,
    /// The user's turn in the drop's queue has come and not passed (a queue drop's reserves
    /// need it).
    pub admitted: bool,
    /// Holds of the drop the user gave back: cancelled, or let run out.
    pub released: i64,
    /// When the last of those ended (a cancel's time, an expired hold's deadline).
    pub released_at: Option<i64>,
}

/// A hold as a purchase or cancel finds it, with the database's "now".
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HoldCheck {
    pub id: ReservationId,
    pub drop_id: DropId,
    pub user_id: UserId,
    pub status: String,
    pub expires_at: i64,
    pub now: i64,
}

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

/// How a new queue or draw is put in order: by a seed drawn now (whose SHA-256 is published),
/// or by a beacon round named now and published only after its entries are sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Order {
    Seed(Seed),
    Beacon(BeaconPlan),
}

/// The drand round a new drop will be ordered by, and the chain it is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeaconPlan {
    pub chain_hash: String,
    /// Hex of the chain's key, kept with the drop so its audit names the key it was checked by.
    pub public_key: String,
    pub round: u64,
    /// When the round is published (Unix milliseconds).
    pub round_at: i64,
}

impl Order {
    fn seed(&self) -> Option<&Seed> {
        match self {
            Order::Seed(seed) => Some(seed),
            Order::Beacon(_) => None,
        }
    }

    fn beacon(&self) -> Option<&BeaconPlan> {
        match self {
            Order::Beacon(plan) => Some(plan),
            Order::Seed(_) => None,
        }
    }

    /// What `insert_drop` binds: seed, its SHA-256, chain, key, round, when it is published.
    #[allow(clippy::type_complexity)]
    pub(crate) fn columns(
        order: Option<&Order>,
    ) -> (
        Option<&str>,
        Option<&str>,
        Option<&str>,
        Option<&str>,
        Option<i64>,
        Option<i64>,
    ) {
        let seed = order.and_then(Order::seed);
        let plan = order.and_then(Order::beacon);
        (
            seed.map(|s| s.hex.as_str()),
            seed.map(|s| s.sha256.as_str()),
            plan.map(|p| p.chain_hash.as_str()),
            plan.map(|p| p.public_key.as_str()),
            plan.map(|p| i64::try_from(p.round).unwrap_or(i64::MAX)),
            plan.map(|p| p.round_at),
        )
    }
}

/// Columns of `reservations` in the order [`ReservationRow`] reads them.
macro_rules! reservation_columns {
    () => {
        "id, drop_id, user_id, size, status, created_at, expires_at"
    };
}
pub(crate) use reservation_columns;

#[derive(sqlx::FromRow)]
pub(crate) struct ReservationRow {
    pub(crate) id: ReservationId,
    pub(crate) drop_id: DropId,
    pub(crate) user_id: UserId,
    pub(crate) size: String,
    pub(crate) status: String,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
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
            size: row.size.clone(),
            // The CHECK constraint admits only the four spellings.
            status: ReservationStatus::parse(&row.status).unwrap_or(ReservationStatus::Expired),
            created_at: from_ms(row.created_at),
            expires_at: from_ms(row.expires_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PurchaseRow {
    pub(crate) id: PurchaseId,
    pub(crate) reservation_id: ReservationId,
    pub(crate) drop_id: DropId,
    pub(crate) user_id: UserId,
    pub(crate) price_cents: i64,
    pub(crate) created_at: i64,
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
    pub(crate) drop_id: DropId,
    pub(crate) name: String,
    pub(crate) created_at: i64,
}

impl From<PurchaserRow> for Purchaser {
    fn from(row: PurchaserRow) -> Self {
        Purchaser {
            name: row.name,
            purchased_at: from_ms(row.created_at),
        }
    }
}

/// The three newest purchasers of drop `$1`, newest first.
pub(crate) const RECENT_PURCHASERS: &str =
    "SELECT p.drop_id, u.name, p.created_at FROM purchases p \
    JOIN users u ON u.id = p.user_id WHERE p.drop_id = $1 \
    ORDER BY p.created_at DESC, p.id DESC LIMIT 3";

/// Attaches each drop's purchasers (rows of several drops, newest first per drop) and sizes
/// (rows of several drops, in each drop's order).
pub(crate) fn with_purchasers(
    drops: Vec<DropRow>,
    purchasers: Vec<PurchaserRow>,
    sizes: Vec<SizeRow>,
) -> Vec<ProductDrop> {
    let mut by_drop: std::collections::HashMap<DropId, Vec<SizeRow>> =
        std::collections::HashMap::new();
    for size in sizes {
        by_drop.entry(size.drop_id).or_default().push(size);
    }
    drops
        .into_iter()
        .map(|drop| {
            let sizes = by_drop.remove(&drop.id).unwrap_or_default();
            let recent = purchasers
                .iter()
                .filter(|p| p.drop_id == drop.id)
                .map(|p| Purchaser {
                    name: p.name.clone(),
                    purchased_at: from_ms(p.created_at),
                })
                .collect();
            drop.into_drop(recent, sizes)
        })
        .collect()
}

/// Milliseconds since the epoch to a UTC time.
pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
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
