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

/// Reads the drop's counts in one statement.
pub async fn audit(db: Db, url: &str, addr: SocketAddr, drop: i64) -> Result<Audit> {
    let counts: (i64, i64, i64, i64, i64) = match db {
        Db::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url)?
                .read_only(true)
                .connect()
                .await?;
            let row = sqlx::query_as(COUNTS)
                .bind(drop)
                .fetch_one(&mut conn)
                .await?;
            conn.close().await?;
            row
        }
        Db::Postgres => {
            let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
            let row = sqlx::query_as(COUNTS).bind(drop).fetch_one(&pool).await?;
            pool.close().await;
            row
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
    })
}
