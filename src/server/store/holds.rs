//! The steps of the writes that move stock — holds, purchases, expiries, new drops — inside one
//! write transaction ([`HoldTx`]), and their SQL, written once for both databases
//! ([`hold_steps!`]): it is the same text but for a few phrases each database says its own
//! way (its "now", a list of ids, a row lock), which each database's store passes in.

use std::time::Duration;

use async_trait::async_trait;

use super::rows::{
    BuyerCheck, DropRow, HoldCheck, LockedDrop, Order, PurchaseRow, ReservationRow, SizeRow,
};
use crate::model::{DropId, NewDrop, NewSize, Purchaser, ReservationId, UserId};

/// A hold to insert: its buyer and the size (label) its unit is of.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NewHold {
    pub user_id: UserId,
    pub size: String,
}

/// A drop's sizes in the card's order, by the drop's id (`$1`).
pub(crate) const SIZES_OF_DROP: &str = concat!(
    "SELECT ",
    super::rows::size_columns!(),
    " FROM drop_sizes WHERE drop_id = $1 ORDER BY position"
);

/// Where a purchase or cancel takes a live hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Bought: only before the hold's deadline, checked in the statement itself.
    Purchased,
    /// Given back to stock.
    Cancelled,
}

impl Closing {
    /// The status the hold takes.
    pub fn status(self) -> &'static str {
        match self {
            Self::Purchased => "PURCHASED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// The steps on a drop's row and its holds inside one write transaction.
#[async_trait]
pub(crate) trait HoldTx: Send {
    /// Locks the drop row — every write's first lock — and reads what a reserve decides on,
    /// with the database's "now"; `None` when there is no such drop.
    async fn lock_drop(&mut self, drop: DropId) -> Result<Option<LockedDrop>, sqlx::Error>;
    /// What the reserve rules need to know about each of these (distinct) users.
    async fn buyer_checks(
        &mut self,
        drop: DropId,
        users: &[UserId],
        now: i64,
    ) -> Result<Vec<BuyerCheck>, sqlx::Error>;
    /// The drop's sizes, in the card's order.
    async fn sizes(&mut self, drop: DropId) -> Result<Vec<SizeRow>, sqlx::Error>;
    /// Inserts a live hold for each of `holds`, until now + `ttl`, in one statement. A row the
    /// one-live-hold-per-buyer index turns away is left out of the answer.
    async fn insert_holds(
        &mut self,
        drop: DropId,
        holds: &[NewHold],
        ttl: Duration,
    ) -> Result<Vec<ReservationRow>, sqlx::Error>;
    /// Moves the drop's available stock by `units` and its version by one.
    async fn add_stock(&mut self, drop: DropId, units: i64) -> Result<DropRow, sqlx::Error>;
    /// Moves the available stock of each named size by its units, and its version by one, in
    /// one statement (the drop's own sum moves by [`HoldTx::add_stock`]); answers the sizes it
    /// moved, as they stand after.
    async fn move_sizes(
        &mut self,
        drop: DropId,
        moves: &[(String, i64)],
    ) -> Result<Vec<SizeRow>, sqlx::Error>;
    /// Takes the user's live hold to `to`; `None` when it did not match (not live, not theirs,
    /// or past its deadline for a purchase).
    async fn close_hold(
        &mut self,
        hold: ReservationId,
        user: UserId,
        to: Closing,
    ) -> Result<Option<ReservationRow>, sqlx::Error>;
    /// A hold as it stands now, to name a refusal.
    async fn hold(&mut self, hold: ReservationId) -> Result<Option<HoldCheck>, sqlx::Error>;
    /// Records the sale of a purchased hold at the drop's price.
    async fn insert_purchase(&mut self, hold: &ReservationRow) -> Result<PurchaseRow, sqlx::Error>;
    /// The drop's three newest purchasers, newest first.
    async fn recent_purchasers(&mut self, drop: DropId) -> Result<Vec<Purchaser>, sqlx::Error>;
    /// Locks, in id order, the drops that have holds past their deadline; answers their ids.
    async fn lock_due_drops(&mut self) -> Result<Vec<DropId>, sqlx::Error>;
    /// Expires up to `limit` overdue holds of these drops (none another instance is expiring).
    async fn expire_holds(
        &mut self,
        drops: &[DropId],
        limit: i64,
    ) -> Result<Vec<ReservationRow>, sqlx::Error>;
    /// Inserts a validated drop (a queue's or a draw's with how it will be ordered).
    async fn insert_drop(
        &mut self,
        new: &NewDrop,
        order: Option<&Order>,
    ) -> Result<DropRow, sqlx::Error>;
    /// Inserts a new drop's sizes, all in stock, in the order given.
    async fn insert_sizes(
        &mut self,
        drop: DropId,
        sizes: &[NewSize],
    ) -> Result<Vec<SizeRow>, sqlx::Error>;
    /// True when any drop exists.
    async fn has_drops(&mut self) -> Result<bool, sqlx::Error>;
}

/// How a hold is read to name a refusal, with the database's "now": inside a write (`hold`)
/// and without any lock (`Reads::hold`).
macro_rules! hold_check_sql {
    ($($now:tt)+) => {
        concat!(
            "SELECT id, drop_id, user_id, status, expires_at, ",
            $($now)+,
            " AS now FROM reservations WHERE id = $1"
        )
    };
}
pub(crate) use hold_check_sql;

/// Expands to the [`HoldTx`] impl of a transaction type whose connection is `self.$conn`,
/// with what each database says its own way passed in (see `steps::dialect_steps!`) and the
/// steps it writes in SQL of its own (`own`).
macro_rules! hold_steps {
    (
        $tx:ty,
        conn: $conn:tt,
        now: [$($now:tt)+],
        ids: $ids:path,
        in_ids: ($in_ids:literal, $in_ids_end:literal),
        lock: $lock:literal,
        skip_locked: $skip_locked:literal,
        own: { $($own:tt)* }
    ) => {
        #[async_trait::async_trait]
        impl $crate::server::store::holds::HoldTx for $tx {
            $($own)*

            async fn lock_drop(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Option<$crate::server::store::rows::LockedDrop>, sqlx::Error> {
                // On SQLite the writer's turn and `BEGIN IMMEDIATE` are the lock: nothing else
                // writes meanwhile.
                sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::server::store::rows::locked_drop_columns!(),
                    ", ",
                    $($now)+,
                    " AS now FROM drops WHERE id = $1",
                    $lock
                ))
                .bind(drop)
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn sizes(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::server::store::rows::SizeRow>, sqlx::Error> {
                sqlx::query_as($crate::server::store::holds::SIZES_OF_DROP)
                    .bind(drop)
                    .fetch_all(&mut *self.$conn)
                    .await
            }

            async fn add_stock(
                &mut self,
                drop: $crate::model::DropId,
                units: i64,
            ) -> Result<$crate::server::store::rows::DropRow, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE drops SET available_stock = available_stock + $2, \
                     version = version + 1 WHERE id = $1 RETURNING ",
                    $crate::server::store::rows::drop_columns!($($now)+)
                ))
                .bind(drop)
                .bind(units)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn close_hold(
                &mut self,
                hold: $crate::model::ReservationId,
                user: $crate::model::UserId,
                to: $crate::server::store::holds::Closing,
            ) -> Result<Option<$crate::server::store::rows::ReservationRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE reservations SET status = $3, ended_at = ",
                    $($now)+,
                    " WHERE id = $1 AND user_id = $2 AND status = 'ACTIVE' \
                     AND ($3 <> 'PURCHASED' OR expires_at > ",
                    $($now)+,
                    ") RETURNING ",
                    $crate::server::store::rows::reservation_columns!()
                ))
                .bind(hold)
                .bind(user)
                .bind(to.status())
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn hold(
                &mut self,
                hold: $crate::model::ReservationId,
            ) -> Result<Option<$crate::server::store::rows::HoldCheck>, sqlx::Error> {
                sqlx::query_as($crate::server::store::holds::hold_check_sql!($($now)+))
                    .bind(hold)
                    .fetch_optional(&mut *self.$conn)
                    .await
            }

            async fn insert_purchase(
                &mut self,
                hold: &$crate::server::store::rows::ReservationRow,
            ) -> Result<$crate::server::store::rows::PurchaseRow, sqlx::Error> {
                sqlx::query_as(concat!(
                    "INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, \
                     created_at) SELECT $1, id, $2, price_cents, ",
                    $($now)+,
                    " FROM drops WHERE id = $3 \
                     RETURNING id, reservation_id, drop_id, user_id, price_cents, created_at"
                ))
                .bind(hold.id)
                .bind(hold.user_id)
                .bind(hold.drop_id)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn recent_purchasers(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::model::Purchaser>, sqlx::Error> {
                let rows: Vec<$crate::server::store::rows::PurchaserRow> =
                    sqlx::query_as($crate::server::store::rows::RECENT_PURCHASERS)
                        .bind(drop)
                        .fetch_all(&mut *self.$conn)
                        .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn lock_due_drops(
                &mut self,
            ) -> Result<Vec<$crate::model::DropId>, sqlx::Error> {
                // "Now" is a sub-select: PostgreSQL's `dropline_now_ms()` is VOLATILE, so
                // called bare it is evaluated per row and the planner cannot use
                // `reservations_due`; with 60,000 active holds a pass took 40 ms, not 0.2 ms.
                sqlx::query_scalar(concat!(
                    "SELECT id FROM drops WHERE id IN (SELECT DISTINCT drop_id FROM \
                     reservations WHERE status = 'ACTIVE' AND expires_at <= (SELECT ",
                    $($now)+,
                    ")) ORDER BY id",
                    $lock
                ))
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn expire_holds(
                &mut self,
                drops: &[$crate::model::DropId],
                limit: i64,
            ) -> Result<Vec<$crate::server::store::rows::ReservationRow>, sqlx::Error> {
                // Holds another instance is expiring right now are skipped, not waited for.
                sqlx::query_as(concat!(
                    "UPDATE reservations SET status = 'EXPIRED', ended_at = expires_at \
                     WHERE id IN (SELECT id FROM reservations WHERE status = 'ACTIVE' \
                     AND expires_at <= (SELECT ",
                    $($now)+,
                    ") AND drop_id ",
                    $in_ids, "$1", $in_ids_end,
                    " ORDER BY expires_at LIMIT $2",
                    $skip_locked,
                    ") RETURNING ",
                    $crate::server::store::rows::reservation_columns!()
                ))
                .bind($ids(drops))
                .bind(limit)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn insert_drop(
                &mut self,
                new: &$crate::model::NewDrop,
                order: Option<&$crate::server::store::rows::Order>,
            ) -> Result<$crate::server::store::rows::DropRow, sqlx::Error> {
                let (seed, seed_sha256, chain, key, round, round_at) =
                    $crate::server::store::rows::Order::columns(order);
                sqlx::query_as(concat!(
                    "INSERT INTO drops (name, description, image, price_cents, total_stock, \
                     available_stock, max_per_user, starts_at, created_at, sale_mode, opens_at, \
                     seed, seed_sha256, beacon_chain, beacon_public_key, beacon_round, \
                     beacon_round_at, accounts_before) \
                     VALUES ($1, $2, $3, $4, $5, $5, $6, COALESCE($7, ",
                    $($now)+,
                    "), ",
                    $($now)+,
                    ", $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING ",
                    $crate::server::store::rows::drop_columns!($($now)+)
                ))
                .bind(&new.name)
                .bind(new.description.as_deref().unwrap_or_default())
                .bind(new.image.as_deref().unwrap_or_default())
                .bind(new.price_cents)
                .bind(new.total_stock)
                .bind(new.max_per_user.unwrap_or(1))
                .bind(new.starts_at.map(|t| t.timestamp_millis()))
                .bind(new.sale_mode.unwrap_or_default().as_str())
                .bind(new.opens_at().map(|t| t.timestamp_millis()))
                .bind(seed)
                .bind(seed_sha256)
                .bind(chain)
                .bind(key)
                .bind(round)
                .bind(round_at)
                .bind(new.accounts_before.map(|t| t.timestamp_millis()))
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn insert_sizes(
                &mut self,
                drop: $crate::model::DropId,
                sizes: &[$crate::model::NewSize],
            ) -> Result<Vec<$crate::server::store::rows::SizeRow>, sqlx::Error> {
                // A drop is created once, with a few sizes: a statement each.
                let mut rows = Vec::with_capacity(sizes.len());
                for (position, size) in sizes.iter().enumerate() {
                    rows.push(
                        sqlx::query_as(concat!(
                            "INSERT INTO drop_sizes (drop_id, label, position, total_stock, \
                             available_stock) VALUES ($1, $2, $3, $4, $4) RETURNING ",
                            $crate::server::store::rows::size_columns!()
                        ))
                        .bind(drop)
                        .bind(&size.label)
                        .bind(i64::try_from(position).unwrap_or(i64::MAX))
                        .bind(size.stock)
                        .fetch_one(&mut *self.$conn)
                        .await?,
                    );
                }
                Ok(rows)
            }

            async fn has_drops(&mut self) -> Result<bool, sqlx::Error> {
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM drops)")
                    .fetch_one(&mut *self.$conn)
                    .await
            }
        }
    };
}
pub(crate) use hold_steps;
