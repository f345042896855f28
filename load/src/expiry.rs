//! Expiry lateness: many holds with a short hold time, nobody buys; how long after each
//! deadline is its unit back in stock?
//!
//! Measured twice. As a buyer sees it: a WebSocket client watches the drop's stock climb back;
//! the k-th unit to come back is matched with the k-th earliest deadline (the worker returns
//! holds in deadline order), and the time it was seen minus that deadline is one sample. As the
//! server sees it: its `dropline_expiry_lateness_seconds` histogram from `/metrics` (deadline to
//! the commit that returned the unit): the bucket a quantile falls in, as a range, since
//! anything finer would be made up.
//!
//! A run may also be busy: watching sockets connected once the holds are placed (placing them
//! while thousands of sockets read every stock change took the generator past the first
//! deadline), and a hot drop (a [`hot`] cell on another drop) over the deadlines, from a second
//! before the first to a second after the last, so the expiry worker's transactions queue with
//! the hot drop's and every returned unit's frame goes out to every socket.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;
use tokio_tungstenite::{
    connect_async,
    tungstenite::{Error as WsError, Message},
};
use tokio_util::sync::CancellationToken;

use crate::{
    api::{self, Conn},
    error::{BenchError, Result},
    fanout,
    figures::{Bucket, Expiry},
    hot,
    measure::{new_histogram, now_micros},
};

/// Connections placing the holds.
const RESERVERS: usize = 64;

/// What the expiry run needs.
pub struct Setup<'a> {
    pub addr: SocketAddr,
    pub drop: i64,
    /// Signed-in buyers; the first `holds` each place one hold.
    pub buyers: Arc<Vec<String>>,
    pub holds: usize,
    pub ttl: Duration,
    pub busy: Option<Busy<'a>>,
}

/// What keeps a busy run busy.
pub struct Busy<'a> {
    /// Sockets watching the dashboard from when the holds are placed.
    pub watchers: usize,
    /// The hot drop; its warm-up and duration are set here, to span the deadlines.
    pub hot: hot::Setup<'a>,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    drop_id: Option<i64>,
    available: Option<i64>,
}

/// Places the holds, waits for every unit to come back, and measures.
pub async fn run(mut setup: Setup<'_>) -> Result<Expiry> {
    if setup.buyers.len() < setup.holds {
        return Err(BenchError::Unexpected(format!(
            "{} holds need as many buyers, have {}",
            setup.holds,
            setup.buyers.len()
        )));
    }
    let busy = setup.busy.take();
    let busy_watchers = busy.as_ref().map_or(0, |busy| busy.watchers);
    let stop = CancellationToken::new();
    let (ws, _) = connect_async(format!("ws://{}/ws", setup.addr)).await?;
    let (available_tx, mut available) = watch::channel(-1_i64);
    let observer = tokio::spawn(observe(ws, setup.drop, available_tx, stop.clone()));

    let started = now_micros();
    let mut deadlines = place_holds(&setup).await?;
    let placed = now_micros();
    deadlines.sort_unstable();
    let first_deadline = deadlines.first().copied().unwrap_or(i64::MAX);
    let last_deadline = deadlines.last().copied().unwrap_or(i64::MAX);
    let watchers = match &busy {
        Some(busy) => {
            fanout::connect_watchers(setup.addr, setup.drop, busy.watchers, &stop).await?
        }
        None => Vec::new(),
    };

    let total = setup.holds as i64;
    let wait = setup.ttl + Duration::from_secs(60);
    let all_back = async {
        tokio::time::timeout(wait, available.wait_for(|a| *a == total))
            .await
            .map_err(|_| BenchError::Unexpected("not every held unit came back in time".into()))?
            .map_err(|_| BenchError::Unexpected("the watching socket closed".into()))?;
        Ok::<_, BenchError>(())
    };
    let hot = match busy {
        None => {
            all_back.await?;
            None
        }
        Some(busy) => {
            let second = 1_000_000;
            let hot_drop = async {
                let starts_in = (first_deadline - second - now_micros()).max(0) as u64;
                tokio::time::sleep(Duration::from_micros(starts_in)).await;
                let window = (last_deadline - now_micros()).max(0) as u64 + second as u64;
                hot::run(hot::Setup {
                    warmup: Duration::ZERO,
                    duration: Duration::from_micros(window),
                    ..busy.hot
                })
                .await
            };
            let (back, hot) = tokio::join!(all_back, hot_drop);
            back?;
            Some(hot?)
        }
    };
    stop.cancel();
    let events = observer.await?;
    for watcher in watchers {
        watcher.await?;
    }
    // Units come back from the moment the last hold took the stock to zero.
    let from_empty = events
        .iter()
        .rposition(|(a, _)| *a == 0)
        .ok_or_else(|| BenchError::Unexpected("the watcher never saw the stock at 0".into()))?;

    // The k-th unit back is matched with the k-th earliest deadline.
    let mut returns = Vec::with_capacity(setup.holds);
    let mut level = 0;
    for &(available, at) in &events[from_empty..] {
        for _ in level..available.max(level) {
            returns.push(at);
        }
        level = level.max(available);
    }
    let mut seen = new_histogram();
    let mut early = 0;
    for (deadline, back) in deadlines.iter().zip(&returns) {
        early += usize::from(back < deadline);
        seen.saturating_record((back - deadline).max(0) as u64);
    }

    let metrics = api::get(setup.addr, "/metrics").await?;
    let buckets = histogram_buckets(
        &String::from_utf8_lossy(&metrics.body),
        "dropline_expiry_lateness_seconds_bucket",
    );
    Ok(Expiry {
        holds: setup.holds,
        ttl: setup.ttl,
        placing: Duration::from_micros((placed - started).max(0) as u64),
        placed_before_first_deadline: placed < first_deadline,
        seen,
        early,
        server_p50_ms: bucket_of(&buckets, 0.5),
        server_p99_ms: bucket_of(&buckets, 0.99),
        watchers: busy_watchers,
        hot,
    })
}

/// Places one hold per buyer; answers each hold's deadline in microseconds since the epoch.
async fn place_holds(setup: &Setup<'_>) -> Result<Vec<i64>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..RESERVERS {
        let mut conn = Conn::open(setup.addr).await?;
        let (next, buyers, drop, holds) =
            (next.clone(), setup.buyers.clone(), setup.drop, setup.holds);
        tasks.push(tokio::spawn(async move {
            let mut deadlines = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= holds {
                    return Ok::<_, BenchError>(deadlines);
                }
                let reply = conn
                    .reserve(drop, &buyers[i])
                    .await?
                    .expect(hyper::StatusCode::CREATED, "expiry hold")?;
                let deadline = reply.json()?["reservation"]["expires_at"]
                    .as_str()
                    .and_then(|t| t.parse::<DateTime<Utc>>().ok())
                    .ok_or_else(|| BenchError::Unexpected("a hold without expires_at".into()))?;
                deadlines.push(deadline.timestamp_micros());
            }
        }));
    }
    let mut deadlines = Vec::new();
    for task in tasks {
        deadlines.extend(task.await??);
    }
    Ok(deadlines)
}

/// Watches the drop's stock until told to stop; answers (available, receive time in µs) of
/// every stock event and publishes the latest level.
async fn observe<S>(
    mut ws: S,
    drop_id: i64,
    level: watch::Sender<i64>,
    stop: CancellationToken,
) -> Vec<(i64, i64)>
where
    S: futures::Stream<Item = std::result::Result<Message, WsError>> + Unpin,
{
    let mut events = Vec::new();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = ws.next() => message,
        };
        let Some(Ok(message)) = message else {
            break;
        };
        let Message::Text(text) = message else {
            continue;
        };
        let at = now_micros();
        let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
            continue;
        };
        if frame.kind == "STOCK_UPDATED" && frame.drop_id == Some(drop_id) {
            if let Some(available) = frame.available {
                events.push((available, at));
                level.send_replace(available);
            }
        }
    }
    events
}

/// The cumulative buckets (`le`, count) of one Prometheus histogram in text format.
fn histogram_buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| {
            let le = line.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = line.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The bucket holding the rank of quantile `q`.
fn bucket_of(buckets: &[(f64, f64)], q: f64) -> Bucket {
    let Some(&(_, total)) = buckets.last() else {
        return Bucket::Empty;
    };
    if total <= 0.0 {
        return Bucket::Empty;
    }
    let rank = q * total;
    let mut lower = 0.0;
    for &(le, count) in buckets {
        if count >= rank {
            return if le.is_infinite() {
                Bucket::Above(lower * 1000.0)
            } else {
                Bucket::Within(lower * 1000.0, le * 1000.0)
            };
        }
        lower = le;
    }
    Bucket::Empty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quantile_is_the_bucket_it_falls_in() {
        let text = "x_bucket{le=\"0.005\"} 10\nx_bucket{le=\"0.01\"} 90\n\
                    x_bucket{le=\"0.025\"} 99\nx_bucket{le=\"+Inf\"} 100\nx_count 100\n";
        let buckets = histogram_buckets(text, "x_bucket");
        assert_eq!(bucket_of(&buckets, 0.5), Bucket::Within(5.0, 10.0));
        assert_eq!(bucket_of(&buckets, 0.99), Bucket::Within(10.0, 25.0));
        assert_eq!(bucket_of(&buckets, 0.999), Bucket::Above(25.0));
        assert_eq!(bucket_of(&[], 0.5), Bucket::Empty);
    }
}
