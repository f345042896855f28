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
    SqlitePool,
};
use tokio::sync::{Mutex, MutexGuard};

use super::{
    batch_outcomes, count_by_drop, distinct_users, drop_columns, expired_event, hold_refusal,
    plan_batch, reservation_columns, stock_event, ttl_ms, with_purchasers, BatchDrop, BuyerCheck,
    Cancelled, DropRow, HoldCheck, KeyClaim, KeyRow, PurchaseRow, PurchaserRow, ReservationRow,
    ReserveOutcome, StockAudit, Store, StoreError,
};
use crate::{
    model::{
        DropId, ErrorCode, LiveEvent, NewDrop, ProductDrop, Purchase, Purchaser, Reservation,
        ReservationId, User, UserId,
    },
    server::events::{Envelope, EventBus},
};

/// "Now" in stored form: milliseconds since the epoch, from the database's clock.
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

/// The SQLite implementation of [`Store`].
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
        bus: EventBus,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
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

    /// Waits for the writer's turn and begins a write transaction. Keep the turn until the
    /// transaction's events are published.
    async fn begin_write(
        &self,
    ) -> Result<(MutexGuard<'_, ()>, sqlx::Transaction<'static, sqlx::Sqlite>), sqlx::Error> {
        let turn = self.writer.lock().await;
        Ok((turn, self.pool.begin_with("BEGIN IMMEDIATE").await?))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_user(&self, name: &str) -> Result<User, StoreError> {
        let id: i64 = sqlx::query_scalar(concat!(
            "INSERT INTO users (name, created_at) VALUES (?1, ",
            now_ms!(),
            ") RETURNING id"
        ))
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        Ok(User {
            id,
            name: name.to_string(),
        })
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(name.map(|name| User { id, name }))
    }

    async fn create_drop(&self, new: &NewDrop) -> Result<ProductDrop, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let row: DropRow = sqlx::query_as(concat!(
            "INSERT INTO drops (name, description, image, price_cents, total_stock, \
             available_stock, max_per_user, starts_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, COALESCE(?7, ",
            now_ms!(),
            "), ",
            now_ms!(),
            ") RETURNING ",
            drop_columns!()
        ))
        .bind(&new.name)
        .bind(new.description.as_deref().unwrap_or_default())
        .bind(new.image.as_deref().unwrap_or_default())
        .bind(new.price_cents)
        .bind(new.total_stock)
        .bind(new.max_per_user.unwrap_or(1))
        .bind(new.starts_at.map(|t| t.timestamp_millis()))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let drop = row.into_drop(Vec::new());
        self.bus.publish([Envelope::public(LiveEvent::DropCreated {
            drop: drop.clone(),
        })]);
        Ok(drop)
    }

    async fn list_drops(&self) -> Result<Vec<ProductDrop>, StoreError> {
        // One read transaction, so stock and feed are of the same moment.
        let mut tx = self.pool.begin().await?;
        let drops: Vec<DropRow> = sqlx::query_as(concat!(
            "SELECT ",
            drop_columns!(),
            " FROM drops ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let purchasers: Vec<PurchaserRow> = sqlx::query_as(super::RECENT_PURCHASERS_OF_ALL)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(with_purchasers(drops, purchasers))
    }

    async fn get_drop(&self, id: DropId) -> Result<Option<ProductDrop>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let drop: Option<DropRow> = sqlx::query_as(concat!(
            "SELECT ",
            drop_columns!(),
            " FROM drops WHERE id = ?1"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(drop) = drop else { return Ok(None) };
        let recent = recent_in(&mut tx, id, 3).await?;
        tx.commit().await?;
        Ok(Some(drop.into_drop(recent)))
    }

    async fn reserve_many(
        &self,
        drop_id: DropId,
        users: &[UserId],
        ttl: Duration,
    ) -> Result<Vec<ReserveOutcome>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let (_turn, mut tx) = self.begin_write().await?;
        let drop: Option<BatchDrop> = sqlx::query_as(concat!(
            "SELECT available_stock, max_per_user, starts_at, ",
            now_ms!(),
            " AS now FROM drops WHERE id = ?1"
        ))
        .bind(drop_id)
        .fetch_optional(&mut *tx)
        .await?;
        // SQLite has no array parameters: the users travel as one JSON array.
        let checks: Vec<BuyerCheck> = match &drop {
            Some(d) if d.starts_at <= d.now => {
                sqlx::query_as(
                    "SELECT u.value AS user_id, \
                       EXISTS (SELECT 1 FROM users WHERE users.id = u.value) AS known, \
                       EXISTS (SELECT 1 FROM reservations r WHERE r.drop_id = ?1 \
                         AND r.user_id = u.value AND r.status = 'ACTIVE') AS holds_one, \
                       (SELECT COUNT(*) FROM purchases p \
                         WHERE p.drop_id = ?1 AND p.user_id = u.value) AS bought \
                     FROM json_each(?2) AS u",
                )
                .bind(drop_id)
                .bind(json_ids(&distinct_users(users)))
                .fetch_all(&mut *tx)
                .await?
            }
            _ => Vec::new(),
        };
        let plan = plan_batch(users, drop.as_ref(), &checks);
        if plan.takers.is_empty() {
            return Ok(batch_outcomes(users, plan, Vec::new(), None));
        }
        // `WHERE true` tells SQLite's parser the ON CONFLICT is the upsert's, not a join's.
        let inserted: Vec<ReservationRow> = sqlx::query_as(concat!(
            "INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at) \
             SELECT ?1, u.value, 'ACTIVE', ",
            now_ms!(),
            ", ",
            now_ms!(),
            " + ?3 FROM json_each(?2) AS u WHERE true \
             ON CONFLICT (drop_id, user_id) WHERE status = 'ACTIVE' DO NOTHING RETURNING ",
            reservation_columns!()
        ))
        .bind(drop_id)
        .bind(json_ids(&plan.takers))
        .bind(ttl_ms(ttl))
        .fetch_all(&mut *tx)
        .await?;
        if inserted.is_empty() {
            return Ok(batch_outcomes(users, plan, inserted, None));
        }
        let taken = i64::try_from(inserted.len()).unwrap_or(i64::MAX);
        let drop: DropRow = sqlx::query_as(concat!(
            "UPDATE drops SET available_stock = available_stock - ?2, version = version + 1 \
             WHERE id = ?1 RETURNING ",
            drop_columns!()
        ))
        .bind(drop_id)
        .bind(taken)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let drop = drop.into_drop(Vec::new());
        self.bus.publish([stock_event(&drop)]);
        Ok(batch_outcomes(users, plan, inserted, Some(drop)))
    }

    async fn purchase(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Purchase, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let drop_id: Option<i64> = sqlx::query_scalar(concat!(
            "UPDATE reservations SET status = 'PURCHASED' \
             WHERE id = ?1 AND user_id = ?2 AND status = 'ACTIVE' AND expires_at > ",
            now_ms!(),
            " RETURNING drop_id"
        ))
        .bind(reservation)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(drop_id) = drop_id else {
            let check = hold_check(&mut tx, reservation).await?;
            return Err(StoreError::Refused(hold_refusal(check, user)));
        };
        let purchase: PurchaseRow = sqlx::query_as(concat!(
            "INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, created_at) \
             SELECT ?1, id, ?2, price_cents, ",
            now_ms!(),
            " FROM drops WHERE id = ?3 \
             RETURNING id, reservation_id, drop_id, user_id, price_cents, created_at"
        ))
        .bind(reservation)
        .bind(user)
        .bind(drop_id)
        .fetch_one(&mut *tx)
        .await?;
        let recent = recent_in(&mut tx, drop_id, 3).await?;
        tx.commit().await?;
        let purchase = Purchase::from(purchase);
        self.bus.publish([
            Envelope::public(LiveEvent::ActivityUpdated { drop_id, recent }),
            Envelope::private(
                user,
                LiveEvent::PurchaseCompleted {
                    purchase: purchase.clone(),
                },
            ),
        ]);
        Ok(purchase)
    }

    async fn cancel(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Cancelled, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let hold: Option<ReservationRow> = sqlx::query_as(concat!(
            "UPDATE reservations SET status = 'CANCELLED' \
             WHERE id = ?1 AND user_id = ?2 AND status = 'ACTIVE' RETURNING ",
            reservation_columns!()
        ))
        .bind(reservation)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(hold) = hold else {
            let check = hold_check(&mut tx, reservation).await?;
            return Err(StoreError::Refused(hold_refusal(check, user)));
        };
        let drop: DropRow = sqlx::query_as(concat!(
            "UPDATE drops SET available_stock = available_stock + 1, version = version + 1 \
             WHERE id = ?1 RETURNING ",
            drop_columns!()
        ))
        .bind(hold.drop_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let drop = drop.into_drop(Vec::new());
        self.bus.publish([stock_event(&drop)]);
        Ok(Cancelled {
            reservation: hold.into(),
            drop,
        })
    }

    async fn expire_due(&self, limit: i64) -> Result<Vec<Reservation>, StoreError> {
        let (_turn, mut tx) = self.begin_write().await?;
        let expired: Vec<ReservationRow> = sqlx::query_as(concat!(
            "UPDATE reservations SET status = 'EXPIRED' WHERE id IN (\
               SELECT id FROM reservations WHERE status = 'ACTIVE' AND expires_at <= ",
            now_ms!(),
            " ORDER BY expires_at LIMIT ?1) RETURNING ",
            reservation_columns!()
        ))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        let mut events = Vec::with_capacity(expired.len() * 2);
        for (drop_id, count) in count_by_drop(&expired) {
            let drop: DropRow = sqlx::query_as(concat!(
                "UPDATE drops SET available_stock = available_stock + ?2, version = version + 1 \
                 WHERE id = ?1 RETURNING ",
                drop_columns!()
            ))
            .bind(drop_id)
            .bind(count)
            .fetch_one(&mut *tx)
            .await?;
            events.push(stock_event(&drop.into_drop(Vec::new())));
        }
        tx.commit().await?;
        events.extend(expired.iter().map(expired_event));
        self.bus.publish(events);
        Ok(expired.into_iter().map(Reservation::from).collect())
    }

    async fn next_deadline(&self) -> Result<Option<Duration>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar(concat!(
            "SELECT MIN(expires_at) - ",
            now_ms!(),
            " FROM reservations WHERE status = 'ACTIVE'"
        ))
        .fetch_one(&self.pool)
        .await?;
        Ok(ms.map(super::until))
    }

    async fn recent_purchasers(
        &self,
        drop: DropId,
        limit: i64,
    ) -> Result<Vec<Purchaser>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(recent_in(&mut conn, drop, limit).await?)
    }

    async fn user_reservations(&self, user: UserId) -> Result<Vec<Reservation>, StoreError> {
        let rows: Vec<ReservationRow> = sqlx::query_as(concat!(
            "SELECT ",
            reservation_columns!(),
            " FROM reservations WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT 100"
        ))
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Reservation::from).collect())
    }

    async fn audit(&self, drop: DropId) -> Result<StockAudit, StoreError> {
        let (total, available, active_holds, purchases): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT total_stock, available_stock, \
               (SELECT COUNT(*) FROM reservations WHERE drop_id = d.id AND status = 'ACTIVE'), \
               (SELECT COUNT(*) FROM purchases WHERE drop_id = d.id) \
             FROM drops d WHERE d.id = ?1",
        )
        .bind(drop)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::Refused(ErrorCode::DropNotFound))?;
        Ok(StockAudit {
            total,
            available,
            active_holds,
            purchases,
        })
    }

    async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<KeyClaim, StoreError> {
        let claimed: Option<i64> = sqlx::query_scalar(concat!(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) \
             VALUES (?1, ?2, ?3, ",
            now_ms!(),
            ") ON CONFLICT (scope, key) DO UPDATE SET created_at = excluded.created_at \
             WHERE idempotency_keys.status IS NULL \
             AND idempotency_keys.fingerprint = excluded.fingerprint \
             AND idempotency_keys.created_at < excluded.created_at - ?4 \
             RETURNING created_at"
        ))
        .bind(scope)
        .bind(key)
        .bind(fingerprint)
        .bind(super::KEY_CLAIM_TIMEOUT_MS)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(token) = claimed {
            return Ok(KeyClaim::Claimed { token });
        }
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT fingerprint, status, response FROM idempotency_keys \
             WHERE scope = ?1 AND key = ?2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(KeyRow::claim(row, fingerprint))
    }

    async fn settle_key(
        &self,
        scope: &str,
        key: &str,
        token: i64,
        outcome: Option<(u16, &str)>,
    ) -> Result<(), StoreError> {
        match outcome {
            Some((status, body)) => {
                sqlx::query(
                    "UPDATE idempotency_keys SET status = ?3, response = ?4 \
                     WHERE scope = ?1 AND key = ?2 AND created_at = ?5 AND status IS NULL",
                )
                .bind(scope)
                .bind(key)
                .bind(i32::from(status))
                .bind(body)
                .bind(token)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query(
                    "DELETE FROM idempotency_keys \
                     WHERE scope = ?1 AND key = ?2 AND created_at = ?3 AND status IS NULL",
                )
                .bind(scope)
                .bind(key)
                .bind(token)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    async fn forget_keys(&self, older_than: Duration) -> Result<u64, StoreError> {
        let done = sqlx::query(concat!(
            "DELETE FROM idempotency_keys WHERE created_at < ",
            now_ms!(),
            " - ?1"
        ))
        .bind(ttl_ms(older_than))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// User ids as a JSON array, the form `json_each` reads.
fn json_ids(ids: &[UserId]) -> String {
    serde_json::Value::from(ids).to_string()
}

/// Reads a hold's state to explain why a purchase or cancel did not match it.
async fn hold_check(
    tx: &mut sqlx::SqliteConnection,
    reservation: ReservationId,
) -> Result<Option<HoldCheck>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT user_id, status, expires_at, ",
        now_ms!(),
        " AS now FROM reservations WHERE id = ?1"
    ))
    .bind(reservation)
    .fetch_optional(tx)
    .await
}

/// The drop's `limit` newest purchasers, newest first.
async fn recent_in(
    conn: &mut sqlx::SqliteConnection,
    drop: DropId,
    limit: i64,
) -> Result<Vec<Purchaser>, sqlx::Error> {
    let rows: Vec<PurchaserRow> = sqlx::query_as(
        "SELECT p.drop_id, u.name, p.created_at FROM purchases p \
         JOIN users u ON u.id = p.user_id WHERE p.drop_id = ?1 \
         ORDER BY p.created_at DESC, p.id DESC LIMIT ?2",
    )
    .bind(drop)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Purchaser::from).collect())
}
