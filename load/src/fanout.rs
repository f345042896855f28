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
//! The watchers run in child processes of the generator ([`Watchers`]), at most
//! [`PER_PROCESS`] sockets each, and a run past that many clients spreads them over as many
//! server instances: a process may hold only 20,000 open files here (a hard limit), the server's
//! as much as the generator's. Each watcher process matches its sockets' frames against the
//! clicks itself and sends back a histogram; both clocks are the machine's.
//!
//! A run may also have a hot drop meanwhile: buyers reserving another drop back to back (a
//! [`hot`] cell over the same window), so every watcher's socket also carries that drop's stock
//! and the server's write path is busy while the watched clicks go out.

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::{mpsc, Semaphore},
    task::JoinHandle,
};
use tokio_tungstenite::{connect_async, tungstenite::Message};
use tokio_util::sync::CancellationToken;

use crate::{
    api::Conn,
    cpu,
    error::{BenchError, Result},
    figures::{Fanout, PER_PROCESS},
    hot,
    measure::{self, new_histogram, now_micros},
};

/// Connections that reserve at the fixed rate.
const RESERVERS: usize = 32;

/// The generator's first argument when it runs as a watcher process ([`watcher_process`]).
pub const WATCHER_FLAG: &str = "--fanout-watcher";

/// What a fan-out run needs.
pub struct Setup<'a> {
    /// Every instance of the database; the clicks (and the hot drop) go to the first, the
    /// watcher processes spread over them in turn.
    pub instances: Vec<SocketAddr>,
    /// With every instance's process.
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

/// Connects the clients, runs the reserves, and measures.
pub async fn run(mut setup: Setup<'_>) -> Result<Fanout> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = cpu::rss_kib(&setup.parties.servers)?;
    let started = Instant::now();
    let watchers = Watchers::start(&setup.instances, setup.drop, setup.clients).await?;
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = cpu::rss_kib(&setup.parties.servers)?;

    let parties = cpu::Parties {
        helpers: watchers.pids(),
        ..setup.parties.clone()
    };
    let first = cpu::Sample::take(&parties);
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
    let cpu = first.share_until(&cpu::Sample::take(&parties));
    // Let the last events arrive, then hang up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard = watchers.finish(&commits).await?;

    let seconds = setup.duration.as_secs_f64();
    Ok(Fanout {
        clients: setup.clients,
        instances: setup.instances.len(),
        commits_per_second: commits.len() as f64 / seconds,
        frames_per_second: heard.frames as f64 / seconds,
        latency: heard.latency,
        missed: heard.missed,
        wake_lag,
        kib_per_connection: rss_after.saturating_sub(rss_before) as f64
            / setup.clients.max(1) as f64,
        connect_time,
        cpu,
        reserve_latency,
        hot,
    })
}

/// What the watchers heard of the clicks: every (click, client) pair's latency, the pairs
/// never heard of (also in `latency`, at its ceiling), and the stock frames read.
struct Heard {
    latency: Histogram<u64>,
    missed: u64,
    frames: u64,
}

impl Heard {
    fn new() -> Self {
        Self {
            latency: new_histogram(),
            missed: 0,
            frames: 0,
        }
    }

    /// Adds one client's frames, (version, receive time in µs) in order, against the clicks,
    /// (version, send time in µs) in version order.
    fn add_client(&mut self, seen: &[(i64, i64)], clicks: &[(i64, i64)]) {
        self.frames += seen.len() as u64;
        let mut next = 0;
        for &(version, clicked_at) in clicks {
            while next < seen.len() && seen[next].0 < version {
                next += 1;
            }
            match seen.get(next) {
                Some(&(_, received_at)) => {
                    let micros = (received_at - clicked_at).max(0) as u64;
                    self.latency.saturating_record(micros);
                }
                None => {
                    self.missed += 1;
                    self.latency.saturating_record(u64::MAX);
                }
            }
        }
    }
}

/// [`Heard`] as a watcher process sends it to the generator: the histogram as (value, count).
#[derive(Serialize, Deserialize)]
struct HeardWire {
    latency: Vec<(u64, u64)>,
    missed: u64,
    frames: u64,
}

impl From<&Heard> for HeardWire {
    fn from(heard: &Heard) -> Self {
        Self {
            latency: heard
                .latency
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
            missed: heard.missed,
            frames: heard.frames,
        }
    }
}

/// One watcher process: its stdin takes the clicks, its stdout says `ready`, then what it heard.
struct Watcher {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

/// The watcher processes of one run.
struct Watchers(Vec<Watcher>);

impl Watchers {
    /// Starts enough watcher processes for `clients` sockets on `drop`, spread over
    /// `instances` in turn, and waits until every socket has read its snapshot.
    async fn start(instances: &[SocketAddr], drop: i64, clients: usize) -> Result<Self> {
        let processes = clients.div_ceil(PER_PROCESS).max(1);
        let program = std::env::current_exe()?;
        let mut watchers = Vec::with_capacity(processes);
        for p in 0..processes {
            let count = clients / processes + usize::from(p < clients % processes);
            let addr = instances[p % instances.len()];
            let mut child = Command::new(&program)
                .args([
                    WATCHER_FLAG.to_string(),
                    addr.to_string(),
                    drop.to_string(),
                    count.to_string(),
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                return Err(BenchError::Unexpected(
                    "a watcher process has no pipes".into(),
                ));
            };
            watchers.push(Watcher {
                child,
                stdin,
                stdout: BufReader::new(stdout).lines(),
            });
        }
        for watcher in &mut watchers {
            match watcher.stdout.next_line().await? {
                Some(line) if line == "ready" => {}
                other => {
                    return Err(BenchError::Unexpected(format!(
                        "a watcher process did not get ready ({other:?}); its error is above"
                    )))
                }
            }
        }
        Ok(Self(watchers))
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().filter_map(|w| w.child.id()).collect()
    }

    /// Sends every process the clicks, and merges what they heard.
    async fn finish(self, clicks: &[(i64, i64)]) -> Result<Heard> {
        let line = format!("{}\n", serde_json::to_string(clicks)?);
        let mut heard = Heard::new();
        for mut watcher in self.0 {
            watcher.stdin.write_all(line.as_bytes()).await?;
            let reply = watcher.stdout.next_line().await?.ok_or_else(|| {
                BenchError::Unexpected("a watcher process ended without an answer".into())
            })?;
            let wire: HeardWire = serde_json::from_str(&reply)?;
            for (value, count) in wire.latency {
                heard.latency.saturating_record_n(value, count);
            }
            heard.missed += wire.missed;
            heard.frames += wire.frames;
            watcher.child.wait().await?;
        }
        Ok(heard)
    }
}

/// The generator as a watcher process (`--fanout-watcher ADDR DROP CLIENTS`): connects the
/// clients, says `ready`, reads the clicks from stdin, hangs up, and answers what it heard.
pub async fn watcher_process(args: &[String]) -> Result<()> {
    let usage = || BenchError::Unexpected(format!("usage: {WATCHER_FLAG} ADDR DROP CLIENTS"));
    let [addr, drop, clients] = args else {
        return Err(usage());
    };
    let addr: SocketAddr = addr.parse().map_err(|_| usage())?;
    let drop: i64 = drop.parse().map_err(|_| usage())?;
    let clients: usize = clients.parse().map_err(|_| usage())?;
    let stop = CancellationToken::new();
    let sockets = connect_watchers(addr, drop, clients, &stop).await?;
    let mut out = tokio::io::stdout();
    out.write_all(b"ready\n").await?;
    out.flush().await?;
    let mut line = String::new();
    BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    let clicks: Vec<(i64, i64)> = serde_json::from_str(&line)?;
    stop.cancel();
    let mut heard = Heard::new();
    for socket in sockets {
        heard.add_client(&socket.await?, &clicks);
    }
    let reply = serde_json::to_string(&HeardWire::from(&heard))?;
    out.write_all(format!("{reply}\n").as_bytes()).await?;
    out.flush().await?;
    Ok(())
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
    measure::open_screens(clients, stop, |_, ready, gate| {
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
        let mut conn = Conn::open(setup.instances[0]).await?;
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
    if let Err(error) = measure::snapshot_read(&mut ws).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_click_counts_until_a_frame_at_least_as_new_arrives_and_a_miss_at_the_ceiling() {
        let clicks = [(1, 1_000), (2, 1_100), (5, 2_000)];
        let mut heard = Heard::new();
        // Version 2 coalesced into 3; nothing as new as 5 ever came.
        heard.add_client(&[(1, 1_400), (3, 1_700)], &clicks);
        assert_eq!(heard.frames, 2);
        assert_eq!(heard.missed, 1);
        assert_eq!(heard.latency.len(), 3);
        assert_eq!(heard.latency.min(), 400);
        assert!(heard
            .latency
            .equivalent(heard.latency.value_at_quantile(0.5), 600));
        assert!(
            heard.latency.max() >= 60_000_000,
            "a miss is infinitely late"
        );
    }

    #[test]
    fn what_a_watcher_process_heard_survives_the_pipe() {
        let clicks = [(1, 0), (2, 10_000)];
        let mut heard = Heard::new();
        heard.add_client(&[(1, 250), (2, 90_000)], &clicks);
        heard.add_client(&[(1, 7_000)], &clicks);
        let line = serde_json::to_string(&HeardWire::from(&heard)).unwrap();
        let wire: HeardWire = serde_json::from_str(&line).unwrap();
        let mut merged = Heard::new();
        for (value, count) in wire.latency {
            merged.latency.saturating_record_n(value, count);
        }
        assert_eq!(merged.latency.len(), heard.latency.len());
        for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
            assert_eq!(
                merged.latency.value_at_quantile(q),
                heard.latency.value_at_quantile(q)
            );
        }
        assert_eq!((wire.missed, wire.frames), (1, 3));
    }
}
