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
    Sqlite, SqlitePool, Transaction,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    error::StoreError,
    rows::{BuyerCheck, DropRow, PurchaserRow, RECENT_PURCHASERS},
    steps::{Commitments, Dialect, WriteTx},
};
use crate::{
    model::{DropId, UserId},
    server::{
        events::{Envelope, EventBus},
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
    commitments: Commitments,
}

impl SqliteStore {
    /// What new drops commit to and final audits name (see [`Commitments`]).
    pub fn with_commitments(self, commitments: Commitments) -> Self {
        Self {
            commitments,
            ..self
        }
    }

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
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        bus.mark_local();
        Ok(Self {
            pool,
            bus,
            writer: Arc::new(Mutex::new(())),
            commitments: Commitments::default(),
        })
    }

    /// The secret this database keeps for a server without a session secret: `candidate`
    /// if it has none yet, else the one kept at an earlier start.
    pub async fn kept_secret(&self, candidate: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO kept_secret (id, secret) VALUES (1, $1) ON CONFLICT DO NOTHING")
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM kept_secret WHERE id = 1")
                .fetch_one(&self.pool)
                .await?,
        )
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

    fn commitments(&self) -> &Commitments {
        &self.commitments
    }
}

#[async_trait]
impl WriteTx for SqliteTx {
    async fn lock_seeding(&mut self) -> Result<(), sqlx::Error> {
        // The writer's turn and `BEGIN IMMEDIATE` already shut out every other writer, also
        // those of another process on the same file.
        Ok(())
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

super::dialect::dialect_steps!(
    store: SqliteStore,
    tx: SqliteTx,
    conn: tx,
    now: [now_ms!()],
    begin_read: "BEGIN",
    ids: ids,
    in_ids: ("IN (SELECT value FROM json_each(", "))"),
    lock: "",
    skip_locked: "",
    holds: {
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
            .bind(ids(users))
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
            // The holds travel as one JSON array of objects. `WHERE true` tells SQLite's parser
            // the ON CONFLICT is the upsert's, not a join's.
            let rows = serde_json::to_string(holds).expect("holds serialize");
            sqlx::query_as(concat!(
                "INSERT INTO reservations (drop_id, user_id, size, status, created_at, \
                   expires_at) \
                 SELECT $1, h.value ->> 'user_id', h.value ->> 'size', 'ACTIVE', ",
                now_ms!(),
                ", ",
                now_ms!(),
                " + $3 FROM json_each($2) AS h WHERE true \
                 ON CONFLICT (drop_id, user_id) WHERE status = 'ACTIVE' DO NOTHING RETURNING ",
                crate::server::store::rows::reservation_columns!()
            ))
            .bind(drop)
            .bind(rows)
            .bind(crate::server::store::rows::ttl_ms(ttl))
            .fetch_all(&mut *self.tx)
            .await
        }

        async fn move_sizes(
            &mut self,
            drop: DropId,
            moves: &[(String, i64)],
        ) -> Result<Vec<crate::server::store::rows::SizeRow>, sqlx::Error> {
            // The moves travel as one JSON array of [label, units].
            let pairs = serde_json::to_string(moves).expect("moves serialize");
            sqlx::query_as(concat!(
                "UPDATE drop_sizes SET available_stock = available_stock + (m.value ->> 1), \
                   version = version + 1 \
                 FROM json_each($2) AS m \
                 WHERE drop_sizes.drop_id = $1 AND drop_sizes.label = m.value ->> 0 \
                 RETURNING ",
                crate::server::store::rows::size_columns!()
            ))
            .bind(drop)
            .bind(pairs)
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
                "SELECT n.value, (SELECT COUNT(*) FROM tickets t WHERE t.drop_id = $1 \
                   AND t.network = n.value AND t.rejoined_as IS NULL) \
                 FROM json_each($2) AS n",
            )
            .bind(drop)
            .bind(ids(networks))
            .fetch_all(&mut *self.tx)
            .await
        }

        async fn insert_tickets(
            &mut self,
            drop: crate::model::DropId,
            tickets: &[crate::server::store::tickets::NewTicket],
            state: crate::model::TicketState,
        ) -> Result<Vec<crate::server::store::tickets::TicketRow>, sqlx::Error> {
            // The rows travel as one JSON array of objects.
            let rows = serde_json::to_string(tickets).expect("tickets serialize");
            sqlx::query_as(concat!(
                "INSERT INTO tickets (public_id, drop_id, user_id, joined_at, place, state, \
                   network) \
                 SELECT t.value ->> 'public_id', $1, t.value ->> 'user_id', ",
                now_ms!(),
                ", t.value ->> 'place', $3, t.value ->> 'network' FROM json_each($2) AS t \
                 ORDER BY t.key RETURNING ",
                crate::server::store::tickets::ticket_columns!()
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
        ) -> Result<Vec<crate::server::store::tickets::TicketRow>, sqlx::Error> {
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
                crate::server::store::tickets::ticket_columns!()
            ))
            .bind(pairs)
            .bind(won_through)
            .fetch_all(&mut *self.tx)
            .await
        }
    },
);

/// A list of ids as the JSON array `json_each` reads.
fn ids<T: serde::Serialize>(ids: &[T]) -> String {
    serde_json::to_string(ids).expect("ids serialize")
}

/// The three newest purchasers of each of these drops, newest first per drop: one index read
/// per drop (SQLite has no LATERAL join; in-process, a query per drop costs next to nothing).
async fn recent_purchasers_of(
    conn: &mut sqlx::SqliteConnection,
    drops: &[DropRow],
) -> Result<Vec<PurchaserRow>, sqlx::Error> {
    let mut rows = Vec::new();
    for drop in drops {
        let feed: Vec<PurchaserRow> = sqlx::query_as(RECENT_PURCHASERS)
            .bind(drop.id)
            .fetch_all(&mut *conn)
            .await?;
        rows.extend(feed);
    }
    Ok(rows)
}
