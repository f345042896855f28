//! The oversell check after a run: where every unit of the drop is, read straight from the
//! database (not through the server under test), compared with what the API says.

use std::{net::SocketAddr, str::FromStr};

use sqlx::{postgres::PgPoolOptions, sqlite::SqliteConnectOptions, ConnectOptions, Connection};

use crate::{api, error::Result, server::Db};

/// Where the units of one drop are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Audit {
    pub total: i64,
    pub available: i64,
    pub active_holds: i64,
    pub purchases: i64,
    /// Distinct buyers among the active holds and the purchases: one unit each, so this equals
    /// `active_holds + purchases` unless someone got two.
    pub owners: i64,
    /// `available_stock` as `GET /api/v1/drops/{id}` shows it.
    pub api_available: i64,
    /// Sizes whose units do not add up (available + holds + purchases of that size against
    /// its total), and one more if the sizes' totals or availabilities are not the drop's.
    pub sizes_off: i64,
}

impl Audit {
    /// Units held or sold beyond the drop's stock.
    pub fn oversold(&self) -> i64 {
        (self.active_holds + self.purchases - self.total).max(0)
    }

    /// Every unit accounted for exactly once, nobody owns two, and the API agrees with the
    /// database.
    pub fn balanced(&self) -> bool {
        self.available + self.active_holds + self.purchases == self.total
            && self.available >= 0
            && self.owners == self.active_holds + self.purchases
            && self.api_available == self.available
            && self.sizes_off == 0
    }
}

/// The drop's counts, in one statement (`$1` is the drop; SQLite reads `$1` as `?1`).
const COUNTS: &str = "SELECT d.total_stock, d.available_stock, \
     (SELECT COUNT(*) FROM reservations r WHERE r.drop_id = d.id AND r.status = 'ACTIVE'), \
     (SELECT COUNT(*) FROM purchases p WHERE p.drop_id = d.id), \
     (SELECT COUNT(DISTINCT o.user_id) FROM ( \
         SELECT r.user_id FROM reservations r WHERE r.drop_id = d.id AND r.status = 'ACTIVE' \
         UNION ALL SELECT p.user_id FROM purchases p WHERE p.drop_id = d.id) o) \
     FROM drops d WHERE d.id = $1";

/// The drop's sizes that do not add up, and one more if the sizes do not add up to the drop
/// (`$1` is the drop).
const SIZES_OFF: &str = "SELECT (SELECT COUNT(*) FROM drop_sizes s WHERE s.drop_id = d.id \
       AND (s.available_stock < 0 OR s.available_stock \
         + (SELECT COUNT(*) FROM reservations r WHERE r.drop_id = s.drop_id \
            AND r.size = s.label AND r.status = 'ACTIVE') \
         + (SELECT COUNT(*) FROM purchases p JOIN reservations r ON r.id = p.reservation_id \
            WHERE p.drop_id = s.drop_id AND r.size = s.label) <> s.total_stock)) \
     + CASE WHEN (SELECT SUM(total_stock) FROM drop_sizes WHERE drop_id = d.id) = d.total_stock \
       AND (SELECT SUM(available_stock) FROM drop_sizes WHERE drop_id = d.id) \
         = d.available_stock THEN 0 ELSE 1 END \
     FROM drops d WHERE d.id = $1";

/// The drop's [`COUNTS`] and [`SIZES_OFF`] in the read transaction `read`, which it ends (the
/// same text for either database's transaction type).
macro_rules! read_both {
    ($read:expr, $drop:expr) => {{
        let mut read = $read;
        let counts = sqlx::query_as(COUNTS)
            .bind($drop)
            .fetch_one(&mut *read)
            .await?;
        let off = sqlx::query_as(SIZES_OFF)
            .bind($drop)
            .fetch_one(&mut *read)
            .await?;
        read.commit().await?;
        (counts, off)
    }};
}

/// Reads the drop's counts, and its sizes', in one read.
pub async fn audit(db: Db, url: &str, addr: SocketAddr, drop: i64) -> Result<Audit> {
    let (counts, (sizes_off,)): ((i64, i64, i64, i64, i64), (i64,)) = match db {
        Db::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url)?
                .read_only(true)
                .connect()
                .await?;
            let counts = read_both!(conn.begin().await?, drop);
            conn.close().await?;
            counts
        }
        Db::Postgres => {
            let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
            let read = pool
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            let counts = read_both!(read, drop);
            pool.close().await;
            counts
        }
    };
    let shown = api::get(addr, &format!("/api/v1/drops/{drop}"))
        .await?
        .json()?;
    Ok(Audit {
        total: counts.0,
        available: counts.1,
        active_holds: counts.2,
        purchases: counts.3,
        owners: counts.4,
        api_available: shown["drop"]["available_stock"].as_i64().unwrap_or(-1),
        sizes_off,
    })
}
