//! WebSocket fan-out: N clients watch `/ws` while reserves commit on one drop at a fixed rate.
//!
//! What is measured, for every (click, client) pair: click to screen — from the moment the
//! reserve was sent to the moment that client has received a stock event of the version the
//! reserve answered, or newer: what its screen would show. Both ends are read from the
//! generator's own clock. Coalescing may skip versions; a skipped version counts until the
//! newer one arrives. A client that never hears of a click counts it as infinitely late (the
//! histogram's ceiling, 60 s), so misses show in the percentiles rather than vanish from them.
//! The reserving side notes how late the generator itself woke for each scheduled click.
//!
//! A run may also have a hot drop meanwhile: buyers reserving another drop back to back (a
//! [`hot`] cell over the same window), so every watcher's socket also carries that drop's stock
//! and the server's write path is busy while the watched clicks go out.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::{
    sync::{mpsc, Semaphore},
    task::JoinHandle,
};
use tokio_tungstenite::{connect_async, tungstenite::Message};
use tokio_util::sync::CancellationToken;

use crate::{
    api::Conn,
    cpu, golive,
    hot::{self, new_histogram},
    BenchError, Result,
};

/// Connections that reserve at the fixed rate.
const RESERVERS: usize = 32;

/// One row of the fan-out table.
pub struct Fanout {
    pub clients: usize,
    /// Reserves committed per second, as achieved.
    pub commits_per_second: f64,
    /// Stock frames all clients received per second.
    pub frames_per_second: f64,
    /// Click (reserve sent) → client has that version or newer, in microseconds; a miss is
    /// recorded at the ceiling.
    pub latency: Histogram<u64>,
    /// (click, client) pairs whose version never reached the client.
    pub missed: u64,
    /// How late the generator woke for its scheduled clicks, in microseconds.
    pub wake_lag: Histogram<u64>,
    /// Server memory growth per connected client, in KiB.
    pub kib_per_connection: f64,
    pub connect_time: Duration,
    pub cpu: cpu::Share,
    /// Latency of the reserves made meanwhile, in microseconds.
    pub reserve_latency: Histogram<u64>,
    /// The hot drop that ran meanwhile, if any.
    pub hot: Option<hot::Cell>,
}

/// What a fan-out run needs.
pub struct Setup<'a> {
    pub addr: SocketAddr,
    pub parties: cpu::Parties,
    pub drop: i64,
    /// Signed-in buyers for the reserves, one per reserve.
    pub buyers: Arc<Vec<String>>,
    pub clients: usize,
    pub rate: u32,
    pub duration: Duration,
    /// A hot drop to run over the same window (its warm-up and duration are set here).
    pub hot: Option<hot::Setup<'a>>,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    drop_id: Option<i64>,
    version: Option<i64>,
}

/// Microseconds since the epoch, on the machine's clock.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Connects the clients, runs the reserves, and measures.
pub async fn run(mut setup: Setup<'_>) -> Result<Fanout> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = cpu::rss_kib(setup.parties.server_pid)?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let clients = connect_watchers(setup.addr, setup.drop, setup.clients, &stop).await?;
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = cpu::rss_kib(setup.parties.server_pid)?;

    let first = cpu::Sample::take(&setup.parties);
    let ((commits, reserve_latency, wake_lag), hot) = match setup.hot.take() {
        None => (reserve_at_rate(&setup).await?, None),
        Some(busy) => {
            let busy = hot::Setup {
                warmup: Duration::ZERO,
                duration: setup.duration,
                ..busy
            };
            let (clicks, busy) = tokio::join!(reserve_at_rate(&setup), hot::run(busy));
            (clicks?, Some(busy?))
        }
    };
    let cpu = first.share_until(&cpu::Sample::take(&setup.parties));
    // Let the last events arrive, then hang up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();

    let mut latency = new_histogram();
    let mut missed = 0;
    let mut frames = 0;
    for client in clients {
        let seen = client.await?;
        frames += seen.len() as u64;
        let mut next = 0;
        for &(version, clicked_at) in &commits {
            while next < seen.len() && seen[next].0 < version {
                next += 1;
            }
            match seen.get(next) {
                Some(&(_, received_at)) => {
                    let micros = (received_at - clicked_at).max(0) as u64;
                    latency.saturating_record(micros);
                }
                None => {
                    missed += 1;
                    latency.saturating_record(u64::MAX);
                }
            }
        }
    }
    let seconds = setup.duration.as_secs_f64();
    Ok(Fanout {
        clients: setup.clients,
        commits_per_second: commits.len() as f64 / seconds,
        frames_per_second: frames as f64 / seconds,
        latency,
        missed,
        wake_lag,
        kib_per_connection: rss_after.saturating_sub(rss_before) as f64
            / setup.clients.max(1) as f64,
        connect_time,
        cpu,
        reserve_latency,
        hot,
    })
}

/// Connects `clients` watchers of `drop` and waits until each has read its snapshot; each then
/// answers (version, receive time in µs) of every stock event of the drop it heard before
/// `stop`.
pub async fn connect_watchers(
    addr: SocketAddr,
    drop_id: i64,
    clients: usize,
    stop: &CancellationToken,
) -> Result<Vec<JoinHandle<Vec<(i64, i64)>>>> {
    golive::open_screens(clients, stop, |_, ready, gate| {
        watch(addr, drop_id, ready, gate, stop.clone())
    })
    .await
}

/// Reserves at the fixed rate for the duration; answers (version, send time in µs) of every
/// hold, in version order, the reserves' latency and the generator's wake-up lag.
async fn reserve_at_rate(
    setup: &Setup<'_>,
) -> Result<(Vec<(i64, i64)>, Histogram<u64>, Histogram<u64>)> {
    let next = Arc::new(AtomicUsize::new(0));
    let every = Duration::from_secs_f64(RESERVERS as f64 / f64::from(setup.rate.max(1)));
    let start = tokio::time::Instant::now();
    let end = start + setup.duration;
    let mut tasks = Vec::new();
    for k in 0..RESERVERS {
        let mut conn = Conn::open(setup.addr).await?;
        let (next, buyers, drop) = (next.clone(), setup.buyers.clone(), setup.drop);
        let offset = every.mul_f64(k as f64 / RESERVERS as f64);
        tasks.push(tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(start + offset, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut commits = Vec::new();
            let mut latency = new_histogram();
            let mut wake_lag = new_histogram();
            loop {
                let due = ticker.tick().await;
                if due >= end {
                    return Ok::<_, BenchError>((commits, latency, wake_lag));
                }
                wake_lag.saturating_record(due.elapsed().as_micros() as u64);
                let i = next.fetch_add(1, Ordering::Relaxed);
                let cookie = buyers
                    .get(i)
                    .ok_or_else(|| BenchError::Unexpected("fan-out ran out of buyers".into()))?;
                let sent = Instant::now();
                let clicked_at = now_micros();
                let reply = conn.reserve(drop, cookie).await?;
                latency.saturating_record(sent.elapsed().as_micros().max(1) as u64);
                let reply = reply.expect(hyper::StatusCode::CREATED, "fan-out reserve")?;
                let body = reply.json()?;
                let version = body["drop"]["version"].as_i64().ok_or_else(|| {
                    BenchError::Unexpected("a reserve answered no version".into())
                })?;
                commits.push((version, clicked_at));
            }
        }));
    }
    let mut commits = Vec::new();
    let mut latency = new_histogram();
    let mut wake_lag = new_histogram();
    for task in tasks {
        let (mine, their_latency, their_lag) = task.await??;
        commits.extend(mine);
        latency.add(&their_latency).ok();
        wake_lag.add(&their_lag).ok();
    }
    commits.sort_unstable();
    Ok((commits, latency, wake_lag))
}

/// Reads a new socket's first frame, the snapshot; fails if the socket closes first.
pub async fn snapshot_read<S>(ws: &mut S) -> Result<()>
where
    S: futures::Stream<Item = std::result::Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(_))) => return Ok(()),
            Some(Ok(_)) => {}
            _ => {
                return Err(BenchError::Unexpected(
                    "socket closed before its snapshot".into(),
                ))
            }
        }
    }
}

/// One watching client: connects, reads the snapshot, then notes (version, receive time) of
/// every stock event of `drop_id` until told to stop.
async fn watch(
    addr: SocketAddr,
    drop_id: i64,
    ready: mpsc::Sender<Result<()>>,
    gate: Arc<Semaphore>,
    stop: CancellationToken,
) -> Vec<(i64, i64)> {
    let mut seen = Vec::new();
    let permit = gate.acquire_owned().await;
    let mut ws = match connect_async(format!("ws://{addr}/ws")).await {
        Ok((ws, _)) => ws,
        Err(error) => {
            let _ = ready.send(Err(error.into())).await;
            return seen;
        }
    };
    if let Err(error) = snapshot_read(&mut ws).await {
        let _ = ready.send(Err(error)).await;
        return seen;
    }
    drop(permit);
    let _ = ready.send(Ok(())).await;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let received_at = now_micros();
                    if let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) {
                        if frame.kind == "STOCK_UPDATED" && frame.drop_id == Some(drop_id) {
                            seen.push((frame.version.unwrap_or(0), received_at));
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
        }
    }
    seen
}
