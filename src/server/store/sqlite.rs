//! The embedded store: one SQLite file in WAL mode.
//!
//! SQLite admits one writer at a time anyway, so writers queue on an async mutex (fair, and
//! without the busy-handler's sleeps) and hold it until their events are published: events
//! therefore reach the bus in commit order, and versions rise monotonically on every socket.
//! Transactions still begin `IMMEDIATE`, so another process sharing the file cannot make a
//! writer fail on a lock upgrade.

use std::{str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Sqlite, SqliteExecutor, SqlitePool, Transaction,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    drop_columns, locked_drop_columns, reservation_columns, ticket_columns, ttl_ms,
    writes::{Closing, Dialect, NewTicket, WriteTx},
    DropRow, PurchaseRow, PurchaserRow, ReservationRow, Seed, StoreError, TicketRow,
};
use crate::{
    model::{DropId, NewDrop, Purchaser, ReservationId, TicketState, UserId},
    server::{
        events::{Envelope, EventBus},
        rules::{BuyerCheck, HoldCheck, LockedDrop},
        settings::SqliteSync,
    },
};

/// "Now" in stored form: milliseconds since the epoch, from the database's clock.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

/// The SQLite store.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    bus: EventBus,
    writer: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// Opens (creating if asked by `mode=rwc`) the database and runs the migrations.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        sync: SqliteSync,
        bus: EventBus,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            // FULL (the default): every commit reaches the disk before it is answered; with
            // NORMAL a power cut could lose a purchase its buyer was already told of.
            .synchronous(match sync {
                SqliteSync::Full => SqliteSynchronous::Full,
                SqliteSync::Normal => SqliteSynchronous::Normal,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        bus.mark_local();
        Ok(Self {
            pool,
            bus,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// The connection pool, for what only SQLite has to say (its pragmas).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A write transaction holding the writer's turn until its events are published.
pub(crate) struct SqliteTx {
    tx: Transaction<'static, Sqlite>,
    bus: EventBus,
    /// Dropped after the transaction, so the next writer begins only once this one is over.
    _turn: OwnedMutexGuard<()>,
}

#[async_trait]
impl Dialect for SqliteStore {
    type Tx = SqliteTx;

    async fn begin_write(&self) -> Result<SqliteTx, sqlx::Error> {
        let turn = self.writer.clone().lock_owned().await;
        Ok(SqliteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            bus: self.bus.clone(),
            _turn: turn,
        })
    }

    async fn read_hold(&self, hold: ReservationId) -> Result<Option<HoldCheck>, sqlx::Error> {
        hold_check(&self.pool, hold).await
    }
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn lock_drop(&mut self, drop: DropId) -> Result<Option<LockedDrop>, sqlx::Error> {
        // The writer's turn and `BEGIN IMMEDIATE` are the lock: nothing else writes meanwhile.
        sqlx::query_as(concat!(
            "SELECT ",
            locked_drop_columns!(),
            ", ",
            now_ms!(),
            " AS now FROM drops WHERE id = $1"
        ))
        .bind(drop)
        .fetch_optional(&mut *self.tx)
        .await
    }

    async fn buyer_checks(
        &mut self,
        drop: DropId,
        users: &[UserId],
        now: i64,
    ) -> Result<Vec<BuyerCheck>, sqlx::Error> {
        // SQLite has no array parameters: the users travel as one JSON array.
        sqlx::query_as(
            "SELECT u.value AS user_id, \
               EXISTS (SELECT 1 FROM users WHERE users.id = u.value) AS known, \
               EXISTS (SELECT 1 FROM reservations r WHERE r.drop_id = $1 \
                 AND r.user_id = u.value AND r.status = 'ACTIVE') AS holds_one, \
               (SELECT COUNT(*) FROM purchases p \
                 WHERE p.drop_id = $1 AND p.user_id = u.value) AS bought, \
               EXISTS (SELECT 1 FROM tickets t WHERE t.drop_id = $1 AND t.user_id = u.value \
                 AND t.state = 'admitted' AND t.admitted_until > $3) AS admitted, \
               (SELECT COUNT(*) FROM reservations r WHERE r.drop_id = $1 \
                 AND r.user_id = u.value AND r.status IN ('CANCELLED', 'EXPIRED')) AS released, \
               (SELECT MAX(r.ended_at) FROM reservations r WHERE r.drop_id = $1 \
                 AND r.user_id = u.value AND r.status IN ('CANCELLED', 'EXPIRED')) \
                 AS released_at \
             FROM json_each($2) AS u",
        )
        .bind(drop)
        .bind(json_ids(users))
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn insert_holds(
        &mut self,
        drop: DropId,
        users: &[UserId],
        ttl: Duration,
    ) -> Result<Vec<ReservationRow>, sqlx::Error> {
        // `WHERE true` tells SQLite's parser the ON CONFLICT is the upsert's, not a join's.
        sqlx::query_as(concat!(
            "INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at) \
             SELECT $1, u.value, 'ACTIVE', ",
            now_ms!(),
            ", ",
            now_ms!(),
            " + $3 FROM json_each($2) AS u WHERE true \
             ON CONFLICT (drop_id, user_id) WHERE status = 'ACTIVE' DO NOTHING RETURNING ",
            reservation_columns!()
        ))
        .bind(drop)
        .bind(json_ids(users))
        .bind(ttl_ms(ttl))
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn add_stock(&mut self, drop: DropId, units: i64) -> Result<DropRow, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE drops SET available_stock = available_stock + $2, version = version + 1 \
             WHERE id = $1 RETURNING ",
            drop_columns!(now_ms!())
        ))
        .bind(drop)
        .bind(units)
        .fetch_one(&mut *self.tx)
        .await
    }

    async fn close_hold(
        &mut self,
        hold: ReservationId,
        user: UserId,
        to: Closing,
    ) -> Result<Option<ReservationRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE reservations SET status = $3, ended_at = ",
            now_ms!(),
            " WHERE id = $1 AND user_id = $2 AND status = 'ACTIVE' \
             AND ($3 <> 'PURCHASED' OR expires_at > ",
            now_ms!(),
            ") RETURNING ",
            reservation_columns!()
        ))
        .bind(hold)
        .bind(user)
        .bind(to.status())
        .fetch_optional(&mut *self.tx)
        .await
    }

    async fn hold(&mut self, hold: ReservationId) -> Result<Option<HoldCheck>, sqlx::Error> {
        hold_check(&mut *self.tx, hold).await
    }

    async fn insert_purchase(&mut self, hold: &ReservationRow) -> Result<PurchaseRow, sqlx::Error> {
        sqlx::query_as(concat!(
            "INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, created_at) \
             SELECT $1, id, $2, price_cents, ",
            now_ms!(),
            " FROM drops WHERE id = $3 \
             RETURNING id, reservation_id, drop_id, user_id, price_cents, created_at"
        ))
        .bind(hold.id)
        .bind(hold.user_id)
        .bind(hold.drop_id)
        .fetch_one(&mut *self.tx)
        .await
    }

    async fn recent_purchasers(&mut self, drop: DropId) -> Result<Vec<Purchaser>, sqlx::Error> {
        recent_in(&mut self.tx, drop).await
    }

    async fn lock_due_drops(&mut self) -> Result<Vec<DropId>, sqlx::Error> {
        sqlx::query_scalar(concat!(
            "SELECT DISTINCT drop_id FROM reservations WHERE status = 'ACTIVE' AND expires_at <= ",
            now_ms!(),
            " ORDER BY drop_id"
        ))
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn expire_holds(
        &mut self,
        drops: &[DropId],
        limit: i64,
    ) -> Result<Vec<ReservationRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE reservations SET status = 'EXPIRED', ended_at = expires_at WHERE id IN (\
               SELECT id FROM reservations WHERE status = 'ACTIVE' AND expires_at <= ",
            now_ms!(),
            " AND drop_id IN (SELECT value FROM json_each($1)) \
               ORDER BY expires_at LIMIT $2) RETURNING ",
            reservation_columns!()
        ))
        .bind(serde_json::to_string(drops).expect("ids serialize"))
        .bind(limit)
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn insert_drop(
        &mut self,
        new: &NewDrop,
        seed: Option<&Seed>,
    ) -> Result<DropRow, sqlx::Error> {
        sqlx::query_as(concat!(
            "INSERT INTO drops (name, description, image, price_cents, total_stock, \
             available_stock, max_per_user, starts_at, created_at, sale_mode, opens_at, seed, \
             seed_sha256) VALUES ($1, $2, $3, $4, $5, $5, $6, COALESCE($7, ",
            now_ms!(),
            "), ",
            now_ms!(),
            ", $8, $9, $10, $11) RETURNING ",
            drop_columns!(now_ms!())
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
        .bind(seed.map(|s| s.hex.as_str()))
        .bind(seed.map(|s| s.sha256.as_str()))
        .fetch_one(&mut *self.tx)
        .await
    }

    async fn tickets_of(
        &mut self,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<TicketRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            ticket_columns!(),
            " FROM tickets WHERE drop_id = $1 AND user_id IN (SELECT value FROM json_each($2))"
        ))
        .bind(drop)
        .bind(json_ids(users))
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn insert_tickets(
        &mut self,
        drop: DropId,
        tickets: &[NewTicket],
        state: TicketState,
    ) -> Result<Vec<TicketRow>, sqlx::Error> {
        // The rows travel as one JSON array of objects.
        let rows = serde_json::to_string(tickets).expect("tickets serialize");
        sqlx::query_as(concat!(
            "INSERT INTO tickets (public_id, drop_id, user_id, joined_at, place, state) \
             SELECT t.value ->> 'public_id', $1, t.value ->> 'user_id', ",
            now_ms!(),
            ", t.value ->> 'place', $3 FROM json_each($2) AS t ORDER BY t.key RETURNING ",
            ticket_columns!()
        ))
        .bind(drop)
        .bind(rows)
        .bind(state.as_str())
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn set_places(
        &mut self,
        places: &[(i64, i64)],
        won_through: Option<i64>,
    ) -> Result<Vec<TicketRow>, sqlx::Error> {
        // The pairs travel as one JSON array of [id, place].
        let pairs = serde_json::to_string(places).expect("pairs serialize");
        sqlx::query_as(concat!(
            "UPDATE tickets SET place = p.value ->> 1, \
               state = CASE WHEN $2 IS NULL THEN state \
                 WHEN p.value ->> 1 <= $2 THEN 'won' ELSE 'waitlisted' END, \
               won_at = CASE WHEN p.value ->> 1 <= $2 THEN ",
            now_ms!(),
            " END \
             FROM json_each($1) AS p WHERE tickets.id = p.value ->> 0 RETURNING ",
            ticket_columns!()
        ))
        .bind(pairs)
        .bind(won_through)
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn use_admissions(
        &mut self,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<TicketRow>, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE tickets SET state = 'used' WHERE drop_id = $1 AND state = 'admitted' \
             AND user_id IN (SELECT value FROM json_each($2)) RETURNING ",
            ticket_columns!()
        ))
        .bind(drop)
        .bind(json_ids(users))
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn lock_seeding(&mut self) -> Result<(), sqlx::Error> {
        // The writer's turn and `BEGIN IMMEDIATE` already shut out every other writer, also
        // those of another process on the same file.
        Ok(())
    }

    async fn has_drops(&mut self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM drops)")
            .fetch_one(&mut *self.tx)
            .await
    }

    async fn commit(self, events: Vec<Envelope>) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        // Still the writer's turn: events reach the bus in commit order.
        self.bus.publish(events);
        Ok(())
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

super::reads::reads!(SqliteStore, now: [now_ms!()], begin_read: "BEGIN");

super::queue::queue_steps!(SqliteTx, conn: tx, now: [now_ms!()]);

super::keys::key_steps!(SqliteTx, conn: tx, now: [now_ms!()]);

super::accounts::account_steps!(SqliteTx, conn: tx, now: [now_ms!()]);

/// User ids as a JSON array, the form `json_each` reads.
fn json_ids(ids: &[UserId]) -> String {
    serde_json::to_string(ids).expect("ids serialize")
}

/// Reads a hold's owner and state, with the database's "now".
async fn hold_check<'e>(
    executor: impl SqliteExecutor<'e>,
    hold: ReservationId,
) -> Result<Option<HoldCheck>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT id, drop_id, user_id, status, expires_at, ",
        now_ms!(),
        " AS now FROM reservations WHERE id = $1"
    ))
    .bind(hold)
    .fetch_optional(executor)
    .await
}

/// The three newest purchasers of each of these drops, newest first per drop: one index read
/// per drop (SQLite has no LATERAL join; in-process, a query per drop costs next to nothing).
async fn recent_purchasers_of(
    conn: &mut sqlx::SqliteConnection,
    drops: &[DropRow],
) -> Result<Vec<PurchaserRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for drop in drops {
        let feed: Vec<PurchaserRow> = sqlx::query_as(super::RECENT_PURCHASERS)
            .bind(drop.id)
            .fetch_all(&mut *conn)
            .await?;
        rows.extend(feed);
    }
    Ok(rows)
}

/// The drop's three newest purchasers, newest first.
async fn recent_in(
    conn: &mut sqlx::SqliteConnection,
    drop: DropId,
) -> Result<Vec<Purchaser>, sqlx::Error> {
    let rows: Vec<PurchaserRow> = sqlx::query_as(super::RECENT_PURCHASERS)
        .bind(drop)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Purchaser::from).collect())
}
