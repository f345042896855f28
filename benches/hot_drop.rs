//! Reserves per second on one hot drop, with and without reserve batching.
//!
//! `cargo bench --features ssr --bench hot_drop` runs, on SQLite and on PostgreSQL, 256 buyers
//! who each reserve over and over (a fresh user every time, so every reserve can succeed) on
//! one drop, through `Inventory::reserve` — the call every entry point makes — once with
//! `reserve_batch_max` = 256 and once with 1 (batching off). It also times a lone buyer, to
//! show that batching adds nothing when traffic is light. HTTP is not part of it.
//!
//! Environment: `BENCH_RESERVES` (per run, default 100000), `BENCH_BUYERS` (default 256),
//! `BENCH_BATCH` (comma-separated batch sizes, default `256,1`), `BENCH_DATABASES`
//! (default `sqlite,postgres`), `DROPLINE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use dropline::{
    model::{NewDrop, UserId},
    server::{self, settings::Settings, store::Reserve},
};
use sqlx::{Connection, PgConnection};

fn env_or(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

fn admin_url() -> String {
    env_or(
        "DROPLINE_TEST_POSTGRES_URL",
        "postgres://postgres@127.0.0.1:5432/postgres",
    )
}

/// A fresh database for one run: its URL, and what to remove afterwards (the SQLite file goes
/// with its folder when the value is dropped).
enum Scratch {
    Sqlite(String, #[allow(dead_code)] tempfile::TempDir),
    Postgres(String, String),
}

impl Scratch {
    async fn new(kind: &str) -> Self {
        match kind {
            "sqlite" => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                Self::Sqlite(url, dir)
            }
            _ => {
                let admin = admin_url();
                let name = format!("dropline_bench_{}", std::process::id());
                let mut conn = PgConnection::connect(&admin).await.expect("PostgreSQL");
                for sql in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("CREATE DATABASE {name}"),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await
                        .expect("scratch database");
                }
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Self::Postgres(format!("{base}/{name}"), name)
            }
        }
    }

    fn url(&self) -> &str {
        match self {
            Self::Sqlite(url, _) | Self::Postgres(url, _) => url,
        }
    }

    async fn remove(self) {
        if let Self::Postgres(_, name) = self {
            let mut conn = PgConnection::connect(&admin_url())
                .await
                .expect("PostgreSQL");
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Inserts `n` users in one statement and answers their ids.
async fn bulk_users(url: &str, n: i64) -> Vec<UserId> {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("SQLite");
        sqlx::query(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?1) \
             INSERT INTO users (name, created_at) SELECT 'buyer ' || i, 0 FROM g",
        )
        .bind(n)
        .execute(&mut conn)
        .await
        .expect("users");
        sqlx::query_scalar("SELECT id FROM users ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("user ids")
    } else {
        let mut conn = PgConnection::connect(url).await.expect("PostgreSQL");
        sqlx::query(
            "INSERT INTO users (name, created_at) \
             SELECT 'buyer ' || g, 0 FROM generate_series(1, $1) AS g",
        )
        .bind(n)
        .execute(&mut conn)
        .await
        .expect("users");
        sqlx::query_scalar("SELECT id FROM users ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .expect("user ids")
    }
}

/// Latencies sorted, for percentiles.
struct Timings(Vec<Duration>);

impl Timings {
    fn at(&self, p: f64) -> Duration {
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0.get(i).copied().unwrap_or_default()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One run: `buyers` concurrent loops sharing `reserves` fresh users on one drop.
async fn run(kind: &str, batch: usize, buyers: usize, reserves: usize) {
    let scratch = Scratch::new(kind).await;
    let settings = Settings {
        database_url: scratch.url().to_string(),
        seed_demo: false,
        admin_token: "bench-admin-token-bench-admin-token".into(),
        session_secret: "bench-secret-bench-secret-bench-secret".into(),
        reserve_batch_max: batch,
        ..Settings::default()
    };
    let state = server::start(&settings).await.expect("server");
    let inventory = state.inventory.clone();
    let lone = 200;
    let users = Arc::new(bulk_users(scratch.url(), (reserves + lone) as i64).await);
    let drop = inventory
        .create_drop(NewDrop {
            name: "Hot drop".into(),
            price_cents: 10_000,
            total_stock: (reserves + lone) as i64,
            ..NewDrop::default()
        })
        .await
        .expect("drop")
        .id;

    // A lone buyer: every reserve is a batch of one.
    let mut alone = Vec::with_capacity(lone);
    for &user in &users[reserves..] {
        let start = Instant::now();
        inventory
            .reserve(drop, Reserve::any(user))
            .await
            .expect("lone reserve");
        alone.push(start.elapsed());
    }
    alone.sort();
    let alone = Timings(alone);

    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let loops: Vec<_> = (0..buyers)
        .map(|_| {
            let (inventory, users, next) = (inventory.clone(), users.clone(), next.clone());
            tokio::spawn(async move {
                let mut timings = Vec::new();
                let mut refused = 0usize;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= reserves {
                        return (timings, refused);
                    }
                    let start = Instant::now();
                    if inventory
                        .reserve(drop, Reserve::any(users[i]))
                        .await
                        .is_err()
                    {
                        refused += 1;
                    }
                    timings.push(start.elapsed());
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(reserves);
    let mut refused = 0;
    for task in loops {
        let (timings, r) = task.await.expect("buyer");
        all.extend(timings);
        refused += r;
    }
    let elapsed = started.elapsed();
    all.sort();
    let all = Timings(all);
    let audit = inventory.audit(drop).await.expect("audit");
    assert!(audit.holds(), "invariant broken: {audit:?}");
    println!(
        "{kind:<8} batch {batch:>4}  {buyers} buyers  {:>7.0} reserves/s  p50 {:>6.2} ms  \
         p99 {:>7.2} ms  max {:>7.2} ms  refused {refused}  | lone buyer p50 {:.2} ms p99 {:.2} ms",
        reserves as f64 / elapsed.as_secs_f64(),
        ms(all.at(0.50)),
        ms(all.at(0.99)),
        ms(all.at(1.0)),
        ms(alone.at(0.50)),
        ms(alone.at(0.99)),
    );
    scratch.remove().await;
}

#[tokio::main]
async fn main() {
    let reserves: usize = env_or("BENCH_RESERVES", "100000")
        .parse()
        .expect("BENCH_RESERVES");
    let buyers: usize = env_or("BENCH_BUYERS", "256").parse().expect("BENCH_BUYERS");
    let batches: Vec<usize> = env_or("BENCH_BATCH", "256,1")
        .split(',')
        .map(|b| b.trim().parse().expect("BENCH_BATCH"))
        .collect();
    for kind in env_or("BENCH_DATABASES", "sqlite,postgres").split(',') {
        for &batch in &batches {
            run(kind.trim(), batch, buyers, reserves).await;
        }
    }
}
