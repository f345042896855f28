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
    PgConnection, PgExecutor, PgPool, Postgres, Transaction,
};

use super::{
    drop_columns, locked_drop_columns, reservation_columns, ticket_columns, ttl_ms,
    writes::{Closing, Dialect, NewTicket, WriteTx},
    DropRow, PurchaseRow, PurchaserRow, ReservationRow, Seed, StoreError, TicketRow,
};
use crate::{
    model::{DropId, NewDrop, Purchaser, ReservationId, TicketState, UserId},
    server::{
        events::{Envelope, EventBus, EventKey, PG_CHANNEL},
        rules::{BuyerCheck, HoldCheck, LockedDrop},
    },
};

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Seals the events every commit sends to the other instances.
    key: EventKey,
}

impl PgStore {
    /// Connects, runs the migrations and starts this instance's LISTEN bridge into `bus`, which
    /// counts its connection dead when it hears no heartbeat for `heartbeat_timeout`.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        heartbeat_timeout: Duration,
        bus: EventBus,
    ) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        bus.listen_postgres(options, pool.clone(), heartbeat_timeout)
            .await?;
        Ok(Self {
            pool,
            key: bus.key().clone(),
        })
    }
}

/// A write transaction; its events ride on `pg_notify`, sealed, and are delivered on commit.
pub(crate) struct PgTx {
    tx: Transaction<'static, Postgres>,
    key: EventKey,
}

#[async_trait]
impl Dialect for PgStore {
    type Tx = PgTx;

    async fn begin_write(&self) -> Result<PgTx, sqlx::Error> {
        Ok(PgTx {
            tx: self.pool.begin().await?,
            key: self.key.clone(),
        })
    }

    async fn read_hold(&self, hold: ReservationId) -> Result<Option<HoldCheck>, sqlx::Error> {
        hold_check(&self.pool, hold).await
    }
}

#[async_trait]
impl WriteTx for PgTx {
    async fn lock_drop(&mut self, drop: DropId) -> Result<Option<LockedDrop>, sqlx::Error> {
        sqlx::query_as(concat!(
            "SELECT ",
            locked_drop_columns!(),
            ", dropline_now_ms() AS now FROM drops WHERE id = $1 FOR UPDATE"
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
        // One index probe per user and table. (As EXISTS in the select list, the planner may
        // instead hash every live hold of the drop, once per batch: a cost that grows with the
        // drop.)
        sqlx::query_as(
            "SELECT u.id AS user_id, k.id IS NOT NULL AS known, \
               h.id IS NOT NULL AS holds_one, b.n AS bought, a.id IS NOT NULL AS admitted, \
               g.n AS released, g.at AS released_at \
             FROM unnest($2::bigint[]) AS u(id) \
             LEFT JOIN LATERAL (SELECT users.id FROM users \
               WHERE users.id = u.id LIMIT 1) AS k ON true \
             LEFT JOIN LATERAL (SELECT r.id FROM reservations r WHERE r.drop_id = $1 \
               AND r.user_id = u.id AND r.status = 'ACTIVE' LIMIT 1) AS h ON true \
             CROSS JOIN LATERAL (SELECT COUNT(*) AS n FROM purchases p \
               WHERE p.drop_id = $1 AND p.user_id = u.id) AS b \
             LEFT JOIN LATERAL (SELECT t.id FROM tickets t WHERE t.drop_id = $1 \
               AND t.user_id = u.id AND t.state = 'admitted' AND t.admitted_until > $3 \
               LIMIT 1) AS a ON true \
             CROSS JOIN LATERAL (SELECT COUNT(*) AS n, MAX(r.ended_at) AS at \
               FROM reservations r WHERE r.drop_id = $1 AND r.user_id = u.id \
               AND r.status IN ('CANCELLED', 'EXPIRED')) AS g",
        )
        .bind(drop)
        .bind(users)
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
        sqlx::query_as(concat!(
            "INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at) \
             SELECT $1, u.id, 'ACTIVE', dropline_now_ms(), dropline_now_ms() + $3 \
             FROM unnest($2::bigint[]) AS u(id) \
             ON CONFLICT (drop_id, user_id) WHERE status = 'ACTIVE' DO NOTHING RETURNING ",
            reservation_columns!()
        ))
        .bind(drop)
        .bind(users)
        .bind(ttl_ms(ttl))
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn add_stock(&mut self, drop: DropId, units: i64) -> Result<DropRow, sqlx::Error> {
        sqlx::query_as(concat!(
            "UPDATE drops SET available_stock = available_stock + $2, version = version + 1 \
             WHERE id = $1 RETURNING ",
            drop_columns!("dropline_now_ms()")
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
            "UPDATE reservations SET status = $3, ended_at = dropline_now_ms() \
             WHERE id = $1 AND user_id = $2 AND status = 'ACTIVE' \
             AND ($3 <> 'PURCHASED' OR expires_at > dropline_now_ms()) RETURNING ",
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
        sqlx::query_as(
            "INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, created_at) \
             SELECT $1, id, $2, price_cents, dropline_now_ms() FROM drops WHERE id = $3 \
             RETURNING id, reservation_id, drop_id, user_id, price_cents, created_at",
        )
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
        // "Now" is a sub-select: `dropline_now_ms()` is VOLATILE, so called bare it is
        // evaluated per row and the planner cannot use `reservations_due`; with 60,000 active
        // holds a pass took 40 ms instead of 0.2 ms.
        sqlx::query_scalar(
            "SELECT id FROM drops WHERE id IN (SELECT DISTINCT drop_id FROM reservations \
             WHERE status = 'ACTIVE' AND expires_at <= (SELECT dropline_now_ms())) \
             ORDER BY id FOR UPDATE",
        )
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn expire_holds(
        &mut self,
        drops: &[DropId],
        limit: i64,
    ) -> Result<Vec<ReservationRow>, sqlx::Error> {
        // Holds another instance is expiring right now are skipped, not waited for.
        sqlx::query_as(concat!(
            "UPDATE reservations SET status = 'EXPIRED', ended_at = expires_at WHERE id IN (\
               SELECT id FROM reservations WHERE status = 'ACTIVE' \
               AND expires_at <= (SELECT dropline_now_ms()) AND drop_id = ANY($1) \
               ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING ",
            reservation_columns!()
        ))
        .bind(drops)
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
             seed_sha256) VALUES ($1, $2, $3, $4, $5, $5, $6, COALESCE($7, dropline_now_ms()), \
             dropline_now_ms(), $8, $9, $10, $11) RETURNING ",
            drop_columns!("dropline_now_ms()")
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
            " FROM tickets WHERE drop_id = $1 AND user_id = ANY($2::bigint[])"
        ))
        .bind(drop)
        .bind(users)
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn insert_tickets(
        &mut self,
        drop: DropId,
        tickets: &[NewTicket],
        state: TicketState,
    ) -> Result<Vec<TicketRow>, sqlx::Error> {
        let users: Vec<UserId> = tickets.iter().map(|t| t.user_id).collect();
        let ids: Vec<&str> = tickets.iter().map(|t| t.public_id.as_str()).collect();
        let places: Vec<Option<i64>> = tickets.iter().map(|t| t.place).collect();
        sqlx::query_as(concat!(
            "INSERT INTO tickets (public_id, drop_id, user_id, joined_at, place, state) \
             SELECT t.public_id, $1, t.user_id, dropline_now_ms(), t.place, $5 \
             FROM unnest($2::text[], $3::bigint[], $4::bigint[]) \
               WITH ORDINALITY AS t(public_id, user_id, place, n) ORDER BY t.n RETURNING ",
            ticket_columns!()
        ))
        .bind(drop)
        .bind(ids)
        .bind(users)
        .bind(places)
        .bind(state.as_str())
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn set_places(
        &mut self,
        places: &[(i64, i64)],
        won_through: Option<i64>,
    ) -> Result<Vec<TicketRow>, sqlx::Error> {
        let (ids, places): (Vec<i64>, Vec<i64>) = places.iter().copied().unzip();
        sqlx::query_as(
            "UPDATE tickets t SET place = p.place, \
               state = CASE WHEN $3::bigint IS NULL THEN t.state \
                 WHEN p.place <= $3 THEN 'won' ELSE 'waitlisted' END, \
               won_at = CASE WHEN p.place <= $3 THEN dropline_now_ms() END \
             FROM unnest($1::bigint[], $2::bigint[]) AS p(id, place) WHERE t.id = p.id \
             RETURNING t.id, t.public_id, t.drop_id, t.user_id, t.place, t.state, \
               t.admitted_until",
        )
        .bind(ids)
        .bind(places)
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
             AND user_id = ANY($2::bigint[]) RETURNING ",
            ticket_columns!()
        ))
        .bind(drop)
        .bind(users)
        .fetch_all(&mut *self.tx)
        .await
    }

    async fn lock_seeding(&mut self) -> Result<(), sqlx::Error> {
        // Held until this transaction ends: the next instance decides after it has committed.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('dropline seeding'))")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn has_drops(&mut self) -> Result<bool, sqlx::Error> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM drops)")
            .fetch_one(&mut *self.tx)
            .await
    }

    async fn commit(mut self, events: Vec<Envelope>) -> Result<(), sqlx::Error> {
        // Queued now, delivered by PostgreSQL when (and only if) the commit succeeds.
        let payloads = self
            .key
            .payloads(&events, chrono::Utc::now().timestamp_millis());
        sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
            .bind(PG_CHANNEL)
            .bind(payloads)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

super::reads::reads!(PgStore, now: ["dropline_now_ms()"], begin_read: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");

super::queue::queue_steps!(PgTx, conn: tx, now: ["dropline_now_ms()"]);

super::keys::key_steps!(PgTx, conn: tx, now: ["dropline_now_ms()"]);

super::accounts::account_steps!(PgTx, conn: tx, now: ["dropline_now_ms()"]);

/// Reads a hold's owner and state, with the database's "now".
async fn hold_check<'e>(
    executor: impl PgExecutor<'e>,
    hold: ReservationId,
) -> Result<Option<HoldCheck>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, drop_id, user_id, status, expires_at, dropline_now_ms() AS now \
         FROM reservations WHERE id = $1",
    )
    .bind(hold)
    .fetch_optional(executor)
    .await
}

/// The three newest purchasers of each of these drops, newest first per drop: three index
/// reads per drop, however many purchases there are.
async fn recent_purchasers_of(
    conn: &mut PgConnection,
    drops: &[DropRow],
) -> Result<Vec<PurchaserRow>, sqlx::Error> {
    let ids: Vec<DropId> = drops.iter().map(|drop| drop.id).collect();
    sqlx::query_as(
        "SELECT d.id AS drop_id, feed.name, feed.created_at \
         FROM unnest($1::bigint[]) AS d(id) CROSS JOIN LATERAL (\
           SELECT u.name, p.created_at, p.id FROM purchases p JOIN users u ON u.id = p.user_id \
           WHERE p.drop_id = d.id ORDER BY p.created_at DESC, p.id DESC LIMIT 3) AS feed \
         ORDER BY d.id, feed.created_at DESC, feed.id DESC",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The drop's three newest purchasers, newest first.
async fn recent_in(conn: &mut PgConnection, drop: DropId) -> Result<Vec<Purchaser>, sqlx::Error> {
    let rows: Vec<PurchaserRow> = sqlx::query_as(super::RECENT_PURCHASERS)
        .bind(drop)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(Purchaser::from).collect())
}
