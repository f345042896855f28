//! The production store: PostgreSQL, shared by any number of instances.
//!
//! Every write transaction locks a drop row before any reservation row, so reserve, cancel and
//! expiry never wait on each other in a cycle. Events go out with `pg_notify` inside the
//! transaction: PostgreSQL delivers them on commit, to every instance's LISTEN connection, and
//! drops them on rollback.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgConnection, PgPool,
};

use super::{
    batch_outcomes, count_by_drop, distinct_users, drop_columns, expired_event, hold_refusal,
    plan_batch, reservation_columns, stock_event, ttl_ms, until, with_purchasers, BatchDrop,
    BuyerCheck, Cancelled, DropRow, HoldCheck, KeyClaim, KeyRow, PurchaseRow, PurchaserRow,
    ReservationRow, ReserveOutcome, StockAudit, Store, StoreError, RECENT_PURCHASERS_OF_ALL,
};
use crate::{
    model::{
        DropId, ErrorCode, LiveEvent, NewDrop, ProductDrop, Purchase, Purchaser, Reservation,
        ReservationId, User, UserId,
    },
    server::events::{Envelope, EventBus, PG_CHANNEL},
};

/// The PostgreSQL implementation of [`Store`].
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects, runs the migrations and starts this instance's LISTEN bridge into `bus`.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        bus: EventBus,
    ) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        bus.listen_postgres(pool.clone()).await?;
        Ok(Self { pool })
    }
}

/// Queues events for delivery when the surrounding transaction commits.
async fn notify(tx: &mut PgConnection, envelopes: &[Envelope]) -> Result<(), sqlx::Error> {
    let payloads: Vec<String> = envelopes
        .iter()
        .map(|e| serde_json::to_string(e).expect("events always serialize"))
        .collect();
    sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
        .bind(PG_CHANNEL)
        .bind(payloads)
        .execute(tx)
        .await?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_user(&self, name: &str) -> Result<User, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (name, created_at) VALUES ($1, dropline_now_ms()) RETURNING id",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await?;
        Ok(User {
            id,
            name: name.to_string(),
        })
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let name: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(name.map(|name| User { id, name }))
    }

    async fn create_drop(&self, new: &NewDrop) -> Result<ProductDrop, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row: DropRow = sqlx::query_as(concat!(
            "INSERT INTO drops (name, description, image, price_cents, total_stock, \
             available_stock, max_per_user, starts_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $5, $6, COALESCE($7, dropline_now_ms()), \
             dropline_now_ms()) RETURNING ",
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
        let drop = row.into_drop(Vec::new());
        notify(
            &mut tx,
            &[Envelope::public(LiveEvent::DropCreated {
                drop: drop.clone(),
            })],
        )
        .await?;
        tx.commit().await?;
        Ok(drop)
    }

    async fn list_drops(&self) -> Result<Vec<ProductDrop>, StoreError> {
        // One snapshot, so stock and feed are of the same moment.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let drops: Vec<DropRow> = sqlx::query_as(concat!(
            "SELECT ",
            drop_columns!(),
            " FROM drops ORDER BY id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let purchasers: Vec<PurchaserRow> = sqlx::query_as(RECENT_PURCHASERS_OF_ALL)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(with_purchasers(drops, purchasers))
    }

    async fn get_drop(&self, id: DropId) -> Result<Option<ProductDrop>, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let drop: Option<DropRow> = sqlx::query_as(concat!(
            "SELECT ",
            drop_columns!(),
            " FROM drops WHERE id = $1"
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
        let mut tx = self.pool.begin().await?;
        // The drop row first, like every writer. Holding it, the checks below see every hold
        // and purchase committed before us, and no reserve of this drop can slip in between.
        let drop: Option<BatchDrop> = sqlx::query_as(
            "SELECT available_stock, max_per_user, starts_at, dropline_now_ms() AS now \
             FROM drops WHERE id = $1 FOR UPDATE",
        )
        .bind(drop_id)
        .fetch_optional(&mut *tx)
        .await?;
        let checks: Vec<BuyerCheck> = match &drop {
            Some(d) if d.starts_at <= d.now => {
                // One index probe per user and table. (As EXISTS in the select list, the
                // planner may instead hash every live hold of the drop, once per batch: a
                // cost that grows with the drop.)
                sqlx::query_as(
                    "SELECT u.id AS user_id, k.id IS NOT NULL AS known, \
                       h.id IS NOT NULL AS holds_one, b.n AS bought \
                     FROM unnest($2::bigint[]) AS u(id) \
                     LEFT JOIN LATERAL (SELECT users.id FROM users \
                       WHERE users.id = u.id LIMIT 1) AS k ON true \
                     LEFT JOIN LATERAL (SELECT r.id FROM reservations r WHERE r.drop_id = $1 \
                       AND r.user_id = u.id AND r.status = 'ACTIVE' LIMIT 1) AS h ON true \
                     CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM purchases p \
                       WHERE p.drop_id = $1 AND p.user_id = u.id) AS b",
                )
                .bind(drop_id)
                .bind(distinct_users(users))
                .fetch_all(&mut *tx)
                .await?
            }
            _ => Vec::new(),
        };
        let plan = plan_batch(users, drop.as_ref(), &checks);
        if plan.takers.is_empty() {
            // Nothing to write: the lock goes with the transaction.
            return Ok(batch_outcomes(users, plan, Vec::new(), None));
        }
        // The partial unique index has the last word: a row it turns away is not inserted,
        // and the stock below is taken only for the rows that went in.
        let inserted: Vec<ReservationRow> = sqlx::query_as(concat!(
            "INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at) \
             SELECT $1, u.id, 'ACTIVE', dropline_now_ms(), dropline_now_ms() + $3 \
             FROM unnest($2::bigint[]) AS u(id) \
             ON CONFLICT (drop_id, user_id) WHERE status = 'ACTIVE' DO NOTHING RETURNING ",
            reservation_columns!()
        ))
        .bind(drop_id)
        .bind(&plan.takers)
        .bind(ttl_ms(ttl))
        .fetch_all(&mut *tx)
        .await?;
        if inserted.is_empty() {
            return Ok(batch_outcomes(users, plan, inserted, None));
        }
        let taken = i64::try_from(inserted.len()).unwrap_or(i64::MAX);
        let drop: DropRow = sqlx::query_as(concat!(
            "UPDATE drops SET available_stock = available_stock - $2, version = version + 1 \
             WHERE id = $1 RETURNING ",
            drop_columns!()
        ))
        .bind(drop_id)
        .bind(taken)
        .fetch_one(&mut *tx)
        .await?;
        let drop = drop.into_drop(Vec::new());
        notify(&mut tx, &[stock_event(&drop)]).await?;
        tx.commit().await?;
        Ok(batch_outcomes(users, plan, inserted, Some(drop)))
    }

    async fn purchase(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Purchase, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Drop row first, like every writer: the purchase row's foreign key would take a share
        // lock on it later, after the hold, and invert the order against cancel and expiry.
        lock_drop_of(&mut tx, reservation).await?;
        let drop_id: Option<i64> = sqlx::query_scalar(
            "UPDATE reservations SET status = 'PURCHASED' \
             WHERE id = $1 AND user_id = $2 AND status = 'ACTIVE' \
             AND expires_at > dropline_now_ms() RETURNING drop_id",
        )
        .bind(reservation)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(drop_id) = drop_id else {
            let check = hold_check(&mut tx, reservation).await?;
            return Err(StoreError::Refused(hold_refusal(check, user)));
        };
        let purchase: PurchaseRow = sqlx::query_as(
            "INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, created_at) \
             SELECT $1, id, $2, price_cents, dropline_now_ms() FROM drops WHERE id = $3 \
             RETURNING id, reservation_id, drop_id, user_id, price_cents, created_at",
        )
        .bind(reservation)
        .bind(user)
        .bind(drop_id)
        .fetch_one(&mut *tx)
        .await?;
        let recent = recent_in(&mut tx, drop_id, 3).await?;
        let purchase = Purchase::from(purchase);
        notify(
            &mut tx,
            &[
                Envelope::public(LiveEvent::ActivityUpdated { drop_id, recent }),
                Envelope::private(
                    user,
                    LiveEvent::PurchaseCompleted {
                        purchase: purchase.clone(),
                    },
                ),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(purchase)
    }

    async fn cancel(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Cancelled, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Drop row first (the lock order every writer follows), then the hold.
        let drop_id = lock_drop_of(&mut tx, reservation).await?;
        let hold: Option<ReservationRow> = match drop_id {
            None => None,
            Some(_) => {
                sqlx::query_as(concat!(
                    "UPDATE reservations SET status = 'CANCELLED' \
                     WHERE id = $1 AND user_id = $2 AND status = 'ACTIVE' RETURNING ",
                    reservation_columns!()
                ))
                .bind(reservation)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(hold) = hold else {
            let check = hold_check(&mut tx, reservation).await?;
            return Err(StoreError::Refused(hold_refusal(check, user)));
        };
        let drop: DropRow = sqlx::query_as(concat!(
            "UPDATE drops SET available_stock = available_stock + 1, version = version + 1 \
             WHERE id = $1 RETURNING ",
            drop_columns!()
        ))
        .bind(hold.drop_id)
        .fetch_one(&mut *tx)
        .await?;
        let drop = drop.into_drop(Vec::new());
        notify(&mut tx, &[stock_event(&drop)]).await?;
        tx.commit().await?;
        Ok(Cancelled {
            reservation: hold.into(),
            drop,
        })
    }

    async fn expire_due(&self, limit: i64) -> Result<Vec<Reservation>, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the drops that have overdue holds (in id order), then take the holds no other
        // instance is already expiring. "Now" is a sub-select: `dropline_now_ms()` is VOLATILE,
        // so called bare it is evaluated per row and the planner cannot use `reservations_due`;
        // with 60,000 active holds a pass took 40 ms instead of 0.2 ms.
        let drops: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM drops WHERE id IN (SELECT DISTINCT drop_id FROM reservations \
             WHERE status = 'ACTIVE' AND expires_at <= (SELECT dropline_now_ms())) \
             ORDER BY id FOR UPDATE",
        )
        .fetch_all(&mut *tx)
        .await?;
        if drops.is_empty() {
            return Ok(Vec::new());
        }
        let expired: Vec<ReservationRow> = sqlx::query_as(concat!(
            "UPDATE reservations SET status = 'EXPIRED' WHERE id IN (\
               SELECT id FROM reservations WHERE status = 'ACTIVE' \
               AND expires_at <= (SELECT dropline_now_ms()) AND drop_id = ANY($1) \
               ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING ",
            reservation_columns!()
        ))
        .bind(&drops)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        let mut events = Vec::with_capacity(expired.len() * 2);
        for (drop_id, count) in count_by_drop(&expired) {
            let drop: DropRow = sqlx::query_as(concat!(
                "UPDATE drops SET available_stock = available_stock + $2, version = version + 1 \
                 WHERE id = $1 RETURNING ",
                drop_columns!()
            ))
            .bind(drop_id)
            .bind(count)
            .fetch_one(&mut *tx)
            .await?;
            events.push(stock_event(&drop.into_drop(Vec::new())));
        }
        events.extend(expired.iter().map(expired_event));
        notify(&mut tx, &events).await?;
        tx.commit().await?;
        Ok(expired.into_iter().map(Reservation::from).collect())
    }

    async fn next_deadline(&self) -> Result<Option<Duration>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(expires_at) - dropline_now_ms() FROM reservations WHERE status = 'ACTIVE'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(ms.map(until))
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
            " FROM reservations WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 100"
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
             FROM drops d WHERE d.id = $1",
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
        let claimed: Option<i64> = sqlx::query_scalar(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, created_at) \
             VALUES ($1, $2, $3, dropline_now_ms()) ON CONFLICT (scope, key) \
             DO UPDATE SET created_at = EXCLUDED.created_at \
             WHERE idempotency_keys.status IS NULL \
             AND idempotency_keys.fingerprint = EXCLUDED.fingerprint \
             AND idempotency_keys.created_at < EXCLUDED.created_at - $4 \
             RETURNING created_at",
        )
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
             WHERE scope = $1 AND key = $2",
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
                    "UPDATE idempotency_keys SET status = $3, response = $4 \
                     WHERE scope = $1 AND key = $2 AND created_at = $5 AND status IS NULL",
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
                     WHERE scope = $1 AND key = $2 AND created_at = $3 AND status IS NULL",
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
        let done = sqlx::query(
            "DELETE FROM idempotency_keys WHERE created_at < (SELECT dropline_now_ms()) - $1",
        )
        .bind(ttl_ms(older_than))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Locks the drop row of a hold (the first lock of every writer that touches a hold) and
/// answers its id; `None` when there is no such hold.
async fn lock_drop_of(
    tx: &mut PgConnection,
    reservation: ReservationId,
) -> Result<Option<DropId>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT d.id FROM drops d JOIN reservations r ON r.drop_id = d.id \
         WHERE r.id = $1 FOR UPDATE OF d",
    )
    .bind(reservation)
    .fetch_optional(tx)
    .await
}

/// Reads a hold's state to explain why a purchase or cancel did not match it.
async fn hold_check(
    tx: &mut PgConnection,
    reservation: ReservationId,
) -> Result<Option<HoldCheck>, sqlx::Error> {
    sqlx::query_as(
        "SELECT user_id, status, expires_at, dropline_now_ms() AS now \
         FROM reservations WHERE id = $1",
    )
    .bind(reservation)
    .fetch_optional(tx)
    .await
}

/// The drop's `limit` newest purchasers, newest first.
async fn recent_in(
    conn: &mut PgConnection,
    drop: DropId,
    limit: i64,
) -> Result<Vec<Purchaser>, sqlx::Error> {
    let rows: Vec<PurchaserRow> = sqlx::query_as(
        "SELECT p.drop_id, u.name, p.created_at FROM purchases p \
         JOIN users u ON u.id = p.user_id WHERE p.drop_id = $1 \
         ORDER BY p.created_at DESC, p.id DESC LIMIT $2",
    )
    .bind(drop)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(Purchaser::from).collect())
}
