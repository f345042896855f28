//! Go-live of a queue drop: every buyer of the pool joins the lobby; those with the dashboard
//! open (a socket each, as many as the open-files limit lets both processes hold) reserve the
//! moment their socket says it is their turn, the others have walked away (their turns lapse,
//! which is what over-admission is for).
//!
//! Measured: joins per second into the lobby; from go-live (`starts_at`) to the moment the last
//! unit's hold is answered 201 (what the last lucky buyer sees); admissions per second (turns
//! as the sockets hear of them); place-update delivery to the waiting sockets (a `TICKET_UPDATED`
//! with a place, or a `QUEUE_MOVED`, from the `at` the server stamps it with by the database
//! clock to the moment the socket has read it, on the same machine's clock); and
//! over-admission, sampled straight from the database every 10 ms from go-live on: buyers in the
//! shop (admitted and not yet reserving, plus holding) plus units sold must never pass
//! `queue_over_admission` (1.5) × the stock.

use std::{
    net::SocketAddr,
    str::FromStr,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hdrhistogram::Histogram;
use hyper::{header::COOKIE, Method, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sqlx::{postgres::PgPoolOptions, sqlite::SqliteConnectOptions, ConnectOptions, Connection};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::{
    api::{self, Conn},
    audit, cpu,
    error::{BenchError, Result},
    figures::GoLive,
    measure::{self, new_histogram},
    server::{Db, ADMIN_TOKEN},
};

/// Connections that send the joins (and a draw's entries).
const JOINERS: usize = 256;
/// Connections the admitted buyers reserve over (a buyer's reserve waits for a free one).
const RESERVERS: usize = 64;
/// The server's default over-admission factor (`queue_over_admission`).
const OVER_ADMISSION: f64 = 1.5;
/// How long after go-live the run waits for every unit to be held.
const PATIENCE: Duration = Duration::from_secs(30);

/// What a go-live run needs, and a draw's (`draw.rs`).
pub struct Setup<'a> {
    pub db: Db,
    pub db_url: &'a str,
    pub addr: SocketAddr,
    pub parties: cpu::Parties,
    /// Signed-in buyers; every one of them joins the lobby (enters the draw).
    pub buyers: Arc<Vec<String>>,
    pub units: i64,
    /// How long the lobby (the draw's entries) is open before go-live (the draw): the joins
    /// (entries) must fit in it.
    pub window: Duration,
}

#[derive(Deserialize)]
struct Frame {
    #[serde(rename = "type")]
    kind: String,
    drop_id: Option<i64>,
    ticket: Option<TicketFrame>,
    at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct TicketFrame {
    state: String,
    place: Option<i64>,
}

/// What one screen saw.
#[derive(Default)]
struct Seen {
    /// Place updates while waiting: delivery, µs.
    place_latency: Vec<u64>,
    placed: bool,
    /// When the socket heard it was its buyer's turn (µs since the epoch).
    admitted_at: Option<i64>,
}

/// Opens every screen, fills the lobby, goes live, and measures until every unit is held.
pub async fn run(setup: Setup<'_>) -> Result<GoLive> {
    let buyers = setup.buyers.len();
    let screens = measure::screens_for(buyers);
    let stop = CancellationToken::new();
    let (turns, admitted) = mpsc::unbounded_channel::<usize>();
    let connect_started = Instant::now();
    let addr = setup.addr;
    let screens = measure::open_screens(screens, &stop, |i, ready, gate| {
        let cookie = setup.buyers[i].clone();
        screen(addr, i, cookie, ready, gate, turns.clone(), stop.clone())
    })
    .await?;
    let connect_time = connect_started.elapsed();

    let starts_at = Utc::now()
        + chrono::Duration::from_std(setup.window)
            .map_err(|e| BenchError::Unexpected(e.to_string()))?;
    let drop = create_queue_drop(setup.addr, setup.units, starts_at).await?;
    let (joins_per_second, join_latency, joins_refused) = post_for_each(
        setup.addr,
        &format!("/api/v1/drops/{drop}/queue"),
        &setup.buyers,
    )
    .await?;
    if Utc::now() >= starts_at {
        eprintln!("go-live: the joins outlasted the lobby; later ones queued behind it");
    }

    // The sampler watches the database from go-live on; the reservers act on every turn.
    let until_live = (starts_at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(until_live).await;
    let first = cpu::Sample::take(&setup.parties);
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn(sample(
        setup.db,
        setup.db_url.to_string(),
        drop,
        sampling.clone(),
    ));
    let held = Arc::new(AtomicUsize::new(0));
    let last_hold = Arc::new(Mutex::new(None::<DateTime<Utc>>));
    let reservers = reserve_turns(
        setup.addr,
        drop,
        setup.buyers.clone(),
        admitted,
        setup.units,
        held.clone(),
        last_hold.clone(),
    )
    .await?;
    let deadline = Instant::now() + PATIENCE;
    while held.load(Ordering::Acquire) < setup.units as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = first.share_until(&cpu::Sample::take(&setup.parties));
    // A second more for the line's last progress to reach every screen.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    sampling.store(false, Ordering::Release);
    stop.cancel();
    reservers.abort();
    let (worst_in_shop, samples) = sampler.await??;

    let screens_open = screens.len();
    let mut place_latency = new_histogram();
    let mut never_placed = 0;
    let mut turn_times = Vec::new();
    for screen in screens {
        let seen = screen.await?;
        for micros in &seen.place_latency {
            place_latency.saturating_record(*micros);
        }
        if !seen.placed && seen.admitted_at.is_none() {
            never_placed += 1;
        }
        turn_times.extend(seen.admitted_at);
    }
    turn_times.sort_unstable();
    let admitting_for = match (turn_times.first(), turn_times.last()) {
        (Some(first), Some(last)) => Duration::from_micros((last - first).max(0) as u64),
        _ => Duration::ZERO,
    };
    let held = held.load(Ordering::Acquire);
    let all_held_after = last_hold
        .lock()
        .ok()
        .and_then(|last| *last)
        .filter(|_| held >= setup.units as usize)
        .and_then(|last| (last - starts_at).to_std().ok());
    let limit = (setup.units as f64 * OVER_ADMISSION).floor() as i64;
    Ok(GoLive {
        buyers,
        screens: screens_open,
        units: setup.units,
        joins_per_second,
        join_latency,
        joins_refused,
        connect_time,
        all_held_after,
        held,
        admitted: turn_times.len(),
        admitting_for,
        place_latency,
        never_placed,
        worst_in_shop,
        over_admitted: (worst_in_shop - limit).max(0),
        samples,
        lined_up_after: lined_up_after(setup.db, setup.db_url, drop).await?,
        audit: audit::audit(setup.db, setup.db_url, setup.addr, drop).await?,
        cpu,
    })
}

/// One waiting buyer's screen: notes every place update and hands their turn to the
/// reservers.
async fn screen(
    addr: SocketAddr,
    buyer: usize,
    cookie: String,
    ready: mpsc::Sender<Result<()>>,
    gate: Arc<Semaphore>,
    turns: mpsc::UnboundedSender<usize>,
    stop: CancellationToken,
) -> Seen {
    let mut seen = Seen::default();
    let mut waiting = false;
    measure::watch(addr, cookie, ready, gate, stop, |text, read_at| {
        // Stock moves on every screen; only the queue's own frames matter here.
        if !text.contains("\"TICKET_UPDATED\"") && !text.contains("\"QUEUE_MOVED\"") {
            return;
        }
        let Ok(frame) = serde_json::from_str::<Frame>(text) else {
            return;
        };
        let delivery = frame
            .at
            .map(|at| (read_at - at.timestamp_micros()).max(1) as u64);
        match (frame.kind.as_str(), frame.ticket) {
            ("TICKET_UPDATED", Some(ticket)) => {
                waiting = ticket.state == "waiting";
                if waiting && ticket.place.is_some() {
                    seen.placed = true;
                    seen.place_latency.extend(delivery);
                }
                if ticket.state == "admitted" && seen.admitted_at.is_none() {
                    seen.admitted_at = Some(read_at);
                    let _ = turns.send(buyer);
                }
            }
            ("QUEUE_MOVED", _) if waiting && frame.drop_id.is_some() => {
                seen.place_latency.extend(delivery);
            }
            _ => {}
        }
    })
    .await;
    seen
}

/// A queue drop whose lobby is open now and that goes live at `starts_at`.
async fn create_queue_drop(addr: SocketAddr, units: i64, starts_at: DateTime<Utc>) -> Result<i64> {
    let drop = json!({
        "name": format!("Go-live ({units} units)"),
        "price_cents": 18_000,
        "total_stock": units,
        "sale_mode": "queue",
        "starts_at": starts_at,
        "queue_opens_at": Utc::now() - chrono::Duration::seconds(1),
    });
    api::post_drop(addr, ADMIN_TOKEN, &drop).await
}

/// Every buyer sends `POST path` once (joins a lobby, enters a draw), over [`JOINERS`]
/// connections; answers requests/s, their latency and how many were not answered 201.
pub async fn post_for_each(
    addr: SocketAddr,
    path: &str,
    buyers: &Arc<Vec<String>>,
) -> Result<(f64, Histogram<u64>, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..JOINERS.min(buyers.len()).max(1) {
        let (next, buyers, path) = (next.clone(), buyers.clone(), path.to_string());
        let mut conn = Conn::open(addr).await?;
        tasks.push(tokio::spawn(async move {
            let mut latency = new_histogram();
            let mut refused = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(cookie) = buyers.get(i) else {
                    return Ok::<_, BenchError>((latency, refused));
                };
                let sent = Instant::now();
                let reply = conn
                    .call(Method::POST, &path, &[(COOKIE, cookie)], None)
                    .await?;
                latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                if reply.status != StatusCode::CREATED {
                    refused += 1;
                }
            }
        }));
    }
    let mut latency = new_histogram();
    let mut refused = 0;
    for task in tasks {
        let (theirs, their_refused) = task.await??;
        latency.add(&theirs).ok();
        refused += their_refused;
    }
    let rate = buyers.len() as f64 / started.elapsed().as_secs_f64();
    Ok((rate, latency, refused))
}

/// Reserves for each buyer whose turn a screen heard of, over [`RESERVERS`] connections;
/// counts the holds and notes when the last one needed was answered.
async fn reserve_turns(
    addr: SocketAddr,
    drop: i64,
    buyers: Arc<Vec<String>>,
    turns: mpsc::UnboundedReceiver<usize>,
    units: i64,
    held: Arc<AtomicUsize>,
    last_hold: Arc<Mutex<Option<DateTime<Utc>>>>,
) -> Result<tokio::task::JoinHandle<()>> {
    let turns = Arc::new(tokio::sync::Mutex::new(turns));
    let mut conns = Vec::new();
    for _ in 0..RESERVERS {
        conns.push(Conn::open(addr).await?);
    }
    Ok(tokio::spawn(async move {
        let workers = conns.into_iter().map(|mut conn| {
            let (turns, buyers, held, last_hold) = (
                turns.clone(),
                buyers.clone(),
                held.clone(),
                last_hold.clone(),
            );
            async move {
                loop {
                    let Some(buyer) = turns.lock().await.recv().await else {
                        return;
                    };
                    let Ok(reply) = conn.reserve(drop, &buyers[buyer]).await else {
                        return;
                    };
                    if reply.status == StatusCode::CREATED {
                        let count = held.fetch_add(1, Ordering::AcqRel) + 1;
                        if count == units as usize {
                            if let Ok(mut last) = last_hold.lock() {
                                *last = Some(Utc::now());
                            }
                        }
                    }
                }
            }
        });
        futures::future::join_all(workers).await;
    }))
}

/// Reads the drop every 10 ms until told to stop: answers the most buyers in the shop plus
/// units sold at any sample, and how many samples were taken.
async fn sample(db: Db, url: String, drop: i64, running: Arc<AtomicBool>) -> Result<(i64, usize)> {
    const IN_SHOP: &str = "SELECT \
        (SELECT COUNT(*) FROM tickets WHERE drop_id = $1 AND state = 'admitted') \
        + (SELECT COUNT(*) FROM reservations WHERE drop_id = $1 AND status = 'ACTIVE') \
        + (SELECT COUNT(*) FROM purchases WHERE drop_id = $1)";
    let mut worst = 0;
    let mut samples = 0;
    match db {
        Db::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(&url)?
                .read_only(true)
                .connect()
                .await?;
            while running.load(Ordering::Acquire) {
                let n: i64 = sqlx::query_scalar(IN_SHOP)
                    .bind(drop)
                    .fetch_one(&mut conn)
                    .await?;
                worst = worst.max(n);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            conn.close().await?;
        }
        Db::Postgres => {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await?;
            while running.load(Ordering::Acquire) {
                let n: i64 = sqlx::query_scalar(IN_SHOP)
                    .bind(drop)
                    .fetch_one(&pool)
                    .await?;
                worst = worst.max(n);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            pool.close().await;
        }
    }
    Ok((worst, samples))
}

/// How long after `starts_at` the lobby was put in order, from the drop's row.
async fn lined_up_after(db: Db, url: &str, drop: i64) -> Result<Duration> {
    const LAG: &str = "SELECT COALESCE(lined_up_at - starts_at, -1) FROM drops WHERE id = $1";
    let ms: i64 = match db {
        Db::Sqlite => {
            let mut conn = SqliteConnectOptions::from_str(url)?
                .read_only(true)
                .connect()
                .await?;
            sqlx::query_scalar(LAG)
                .bind(drop)
                .fetch_one(&mut conn)
                .await?
        }
        Db::Postgres => {
            let mut conn = sqlx::PgConnection::connect(url).await?;
            sqlx::query_scalar(LAG)
                .bind(drop)
                .fetch_one(&mut conn)
                .await?
        }
    };
    Ok(Duration::from_millis(ms.max(0) as u64))
}
