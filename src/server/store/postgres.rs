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
    PgConnection, PgPool, Postgres, Transaction,
};

/// "Now" in stored form: milliseconds since the epoch, from the database's clock (the
/// function the first migration defines).
macro_rules! now_ms {
    () => {
        "dropline_now_ms()"
    };
}

use super::{
    error::StoreError,
    listen::{listen_postgres, PG_CHANNEL},
    rows::{BuyerCheck, DropRow, PurchaserRow},
    steps::{Commitments, Dialect, WriteTx},
};
use crate::{
    model::{DropId, UserId},
    server::events::{Envelope, EventBus, EventKey},
};

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
    /// Seals the events every commit sends to the other instances.
    key: EventKey,
    commitments: Commitments,
}

impl PgStore {
    /// What new drops commit to and final audits name (see [`Commitments`]).
    pub fn with_commitments(self, commitments: Commitments) -> Self {
        Self {
            commitments,
            ..self
        }
    }

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
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        listen_postgres(&bus, options, pool.clone(), heartbeat_timeout).await?;
        Ok(Self {
            pool,
            key: bus.key().clone(),
            commitments: Commitments::default(),
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

    fn commitments(&self) -> &Commitments {
        &self.commitments
    }
}

#[async_trait]
impl WriteTx for PgTx {
    async fn lock_seeding(&mut self) -> Result<(), sqlx::Error> {
        // Held until this transaction ends: the next instance decides after it has committed.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('dropline seeding'))")
            .execute(&mut *self.tx)
            .await?;
        Ok(())
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

super::dialect::dialect_steps!(
    store: PgStore,
    tx: PgTx,
    conn: tx,
    now: [now_ms!()],
    begin_read: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    ids: ids,
    in_ids: ("= ANY(", "::bigint[])"),
    lock: " FOR UPDATE",
    skip_locked: " FOR UPDATE SKIP LOCKED",
    holds: {
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
            holds: &[crate::server::store::holds::NewHold],
            ttl: std::time::Duration,
        ) -> Result<Vec<crate::server::store::rows::ReservationRow>, sqlx::Error> {
            let users: Vec<UserId> = holds.iter().map(|h| h.user_id).collect();
            let sizes: Vec<&str> = holds.iter().map(|h| h.size.as_str()).collect();
            sqlx::query_as(concat!(
                "INSERT INTO reservations (drop_id, user_id, size, status, created_at, \
                   expires_at) \
                 SELECT $1, h.user_id, h.size, 'ACTIVE', ",
                now_ms!(),
                ", ",
                now_ms!(),
                " + $4 FROM unnest($2::bigint[], $3::text[]) AS h(user_id, size) \
                 ON CONFLICT (drop_id, user_id) WHERE status = 'ACTIVE' DO NOTHING RETURNING ",
                crate::server::store::rows::reservation_columns!()
            ))
            .bind(drop)
            .bind(users)
            .bind(sizes)
            .bind(crate::server::store::rows::ttl_ms(ttl))
            .fetch_all(&mut *self.tx)
            .await
        }

        async fn move_sizes(
            &mut self,
            drop: DropId,
            moves: &[(String, i64)],
        ) -> Result<Vec<crate::server::store::rows::SizeRow>, sqlx::Error> {
            let (labels, units): (Vec<&str>, Vec<i64>) =
                moves.iter().map(|(label, units)| (label.as_str(), *units)).unzip();
            sqlx::query_as(
                "UPDATE drop_sizes s SET available_stock = s.available_stock + m.units, \
                   version = s.version + 1 \
                 FROM unnest($2::text[], $3::bigint[]) AS m(label, units) \
                 WHERE s.drop_id = $1 AND s.label = m.label \
                 RETURNING s.drop_id, s.label, s.total_stock, s.available_stock, s.version",
            )
            .bind(drop)
            .bind(labels)
            .bind(units)
            .fetch_all(&mut *self.tx)
            .await
        }
    },
    queue: {
        async fn network_counts(
            &mut self,
            drop: crate::model::DropId,
            networks: &[String],
        ) -> Result<Vec<(String, i64)>, sqlx::Error> {
            sqlx::query_as(
                "SELECT n.network, (SELECT COUNT(*) FROM tickets t WHERE t.drop_id = $1 \
                   AND t.network = n.network AND t.rejoined_as IS NULL) \
                 FROM unnest($2::text[]) AS n(network)",
            )
            .bind(drop)
            .bind(networks)
            .fetch_all(&mut *self.tx)
            .await
        }

        async fn insert_tickets(
            &mut self,
            drop: crate::model::DropId,
            tickets: &[crate::server::store::tickets::NewTicket],
            state: crate::model::TicketState,
        ) -> Result<Vec<crate::server::store::tickets::TicketRow>, sqlx::Error> {
            let users: Vec<crate::model::UserId> = tickets.iter().map(|t| t.user_id).collect();
            let ids: Vec<&str> = tickets.iter().map(|t| t.public_id.as_str()).collect();
            let places: Vec<Option<i64>> = tickets.iter().map(|t| t.place).collect();
            let networks: Vec<Option<&str>> =
                tickets.iter().map(|t| t.network.as_deref()).collect();
            sqlx::query_as(concat!(
                "INSERT INTO tickets (public_id, drop_id, user_id, joined_at, place, state, \
                   network) \
                 SELECT t.public_id, $1, t.user_id, dropline_now_ms(), t.place, $5, t.network \
                 FROM unnest($2::text[], $3::bigint[], $4::bigint[], $6::text[]) \
                   WITH ORDINALITY AS t(public_id, user_id, place, network, n) \
                 ORDER BY t.n RETURNING ",
                crate::server::store::tickets::ticket_columns!()
            ))
            .bind(drop)
            .bind(ids)
            .bind(users)
            .bind(places)
            .bind(state.as_str())
            .bind(networks)
            .fetch_all(&mut *self.tx)
            .await
        }

        async fn set_places(
            &mut self,
            places: &[(i64, i64)],
            won_through: Option<i64>,
        ) -> Result<Vec<crate::server::store::tickets::TicketRow>, sqlx::Error> {
            let (ids, places): (Vec<i64>, Vec<i64>) = places.iter().copied().unzip();
            sqlx::query_as(
                "UPDATE tickets t SET place = p.place, \
                   state = CASE WHEN $3::bigint IS NULL THEN t.state \
                     WHEN p.place <= $3 THEN 'won' ELSE 'waitlisted' END, \
                   won_at = CASE WHEN p.place <= $3 THEN (SELECT dropline_now_ms()) END \
                 FROM unnest($1::bigint[], $2::bigint[]) AS p(id, place) WHERE t.id = p.id \
                 RETURNING t.id, t.public_id, t.drop_id, t.user_id, t.place, t.state, \
                   t.admitted_until, t.sealed, t.network",
            )
            .bind(ids)
            .bind(places)
            .bind(won_through)
            .fetch_all(&mut *self.tx)
            .await
        }
    },
);

/// A list of ids, bound as the array it is.
fn ids<T>(ids: &[T]) -> &[T] {
    ids
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
