//! A draw: every buyer of the pool enters a draw drop over 256 connections (as go-live's
//! buyers join its lobby); those with the dashboard open (a socket each, as many as the
//! open-files limit lets both processes hold) wait to be told the result. At `starts_at` the
//! server draws.
//!
//! Measured: entries per second; from the draw instant (`starts_at`) to every winner holding a
//! unit (the database polled every 10 ms from that instant: the holds are committed with the
//! result, so all or none are there); from the draw instant to each open screen reading its
//! own result (`TICKET_UPDATED` with `won` or `waitlisted`, on the same machine's clock), a
//! screen never told counting as [`PATIENCE`]; and the oversell audit.

use std::{
    str::FromStr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{postgres::PgPoolOptions, sqlite::SqliteConnectOptions, ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use crate::{
    api, audit, cpu,
    error::{BenchError, Result},
    figures::Draw,
    golive,
    measure::{self, new_histogram},
    server::{Db, ADMIN_TOKEN},
};

/// How long after the draw instant the run waits for the winners and the screens.
const PATIENCE: Duration = Duration::from_secs(60);

/// What one screen read: its result and when (µs since the epoch).
#[derive(Default)]
struct Outcome {
    told_at: Option<i64>,
    won: bool,
}

/// Opens the screens, takes every entry, waits for the draw, and measures until every winner
/// holds and every screen is told (or [`PATIENCE`] runs out).
pub async fn run(setup: golive::Setup<'_>) -> Result<Draw> {
    let entries = setup.buyers.len();
    let stop = CancellationToken::new();
    let addr = setup.addr;
    let told_so_far = Arc::new(AtomicUsize::new(0));
    let screens = measure::open_screens(measure::screens_for(entries), &stop, |i, ready, gate| {
        let cookie = setup.buyers[i].clone();
        let (stop, told_so_far) = (stop.clone(), told_so_far.clone());
        async move {
            let mut result = Outcome::default();
            measure::watch(addr, cookie, ready, gate, stop, |text, read_at| {
                if result.told_at.is_some() || !text.contains("\"TICKET_UPDATED\"") {
                    return;
                }
                let won = text.contains("\"state\":\"won\"");
                if won || text.contains("\"state\":\"waitlisted\"") {
                    result = Outcome {
                        told_at: Some(read_at),
                        won,
                    };
                    told_so_far.fetch_add(1, Ordering::AcqRel);
                }
            })
            .await;
            result
        }
    })
    .await?;

    let starts_at = Utc::now()
        + chrono::Duration::from_std(setup.window)
            .map_err(|e| BenchError::Unexpected(e.to_string()))?;
    let drop = api::post_drop(
        addr,
        ADMIN_TOKEN,
        &json!({
            "name": format!("Draw ({} units)", setup.units),
            "price_cents": 18_000,
            "total_stock": setup.units,
            "sale_mode": "draw",
            "starts_at": starts_at,
        }),
    )
    .await?;
    let path = format!("/api/v1/drops/{drop}/entry");
    let (entries_per_second, _, entries_refused) =
        golive::post_for_each(addr, &path, &setup.buyers).await?;
    if Utc::now() >= starts_at {
        return Err(BenchError::Unexpected(
            "draw: the entries outlasted their window; give --draw-window more seconds".into(),
        ));
    }
    let until_draw = (starts_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_draw).await;
    let first = cpu::Sample::take(&setup.parties);
    let winners = setup.units.min(entries as i64);
    let held_after = all_held(setup.db, setup.db_url, drop, winners, starts_at).await?;
    let cpu = first.share_until(&cpu::Sample::take(&setup.parties));
    // Every screen has until PATIENCE after the draw to hear its result.
    let deadline = starts_at + chrono::Duration::from_std(PATIENCE).unwrap_or_default();
    while Utc::now() < deadline && told_so_far.load(Ordering::Acquire) < screens.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let opened = screens.len();
    let mut told = new_histogram();
    let (mut never_told, mut winners_told) = (0, 0);
    let draw_micros = starts_at.timestamp_micros();
    for screen in screens {
        let result = screen.await?;
        let after = match result.told_at {
            Some(at) => (at - draw_micros).max(1) as u64,
            None => {
                never_told += 1;
                PATIENCE.as_micros() as u64
            }
        };
        told.saturating_record(after);
        winners_told += usize::from(result.won);
    }
    let audit = audit::audit(setup.db, setup.db_url, addr, drop).await?;
    Ok(Draw {
        entries,
        screens: opened,
        units: setup.units,
        entries_per_second,
        entries_refused,
        all_held_after: held_after,
        told,
        never_told,
        winners_told,
        holds: audit.active_holds,
        audit,
        cpu,
    })
}

/// Polls the database every 10 ms from the draw instant until the drop has `winners` live
/// holds; answers how long after `starts_at` it saw them (`None` past [`PATIENCE`]).
async fn all_held(
    db: Db,
    url: &str,
    drop: i64,
    winners: i64,
    starts_at: DateTime<Utc>,
) -> Result<Option<Duration>> {
    const HOLDS: &str =
        "SELECT COUNT(*) FROM reservations WHERE drop_id = $1 AND status = 'ACTIVE'";
    let deadline = Instant::now() + PATIENCE;
    let seen = |count: i64| {
        (count >= winners).then(|| (Utc::now() - starts_at).to_std().unwrap_or_default())
    };
    match db {
        Db::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url)?
                .read_only(true)
                .connect()
                .await?;
            while Instant::now() < deadline {
                let count: i64 = sqlx::query_scalar(HOLDS)
                    .bind(drop)
                    .fetch_one(&mut conn)
                    .await?;
                if let Some(after) = seen(count) {
                    conn.close().await?;
                    return Ok(Some(after));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            conn.close().await?;
        }
        Db::Postgres => {
            let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
            while Instant::now() < deadline {
                let count: i64 = sqlx::query_scalar(HOLDS)
                    .bind(drop)
                    .fetch_one(&pool)
                    .await?;
                if let Some(after) = seen(count) {
                    pool.close().await;
                    return Ok(Some(after));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            pool.close().await;
        }
    }
    Ok(None)
}
