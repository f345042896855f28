//! Open loop: reserves sent at a fixed offered rate, whatever the server does, the way wrk2
//! drives a server. Request `i` is due at `start + i / rate`; its latency runs from that due
//! time, not from when a connection got round to sending it, so a server that stalls is
//! charged for every request the stall held back (closed-loop latency hides those: a waiting
//! buyer sends nothing). Each request is another signed-in buyer, on a drop with stock for all.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    api::{Conn, Route},
    error::{BenchError, Result},
    figures::{OpenLoopCell, CONNECTIONS},
    measure::new_histogram,
};

/// What a cell needs.
pub struct Setup {
    pub addr: SocketAddr,
    pub drop: i64,
    /// One buyer per request; the cell sends `rate × duration` of them.
    pub buyers: Arc<Vec<String>>,
    /// Offered reserves per second.
    pub rate: u32,
    pub duration: Duration,
}

/// Requests one cell sends.
pub fn requests(rate: u32, duration: Duration) -> usize {
    (f64::from(rate) * duration.as_secs_f64()).ceil() as usize
}

/// Sends the requests at their due times and measures.
pub async fn run(setup: Setup) -> Result<OpenLoopCell> {
    let total = requests(setup.rate, setup.duration).min(setup.buyers.len());
    let mut conns = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        conns.push(Conn::open(setup.addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let interval = Duration::from_secs_f64(1.0 / f64::from(setup.rate));
    let start = Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut conn| {
            let (next, buyers, addr, drop) =
                (next.clone(), setup.buyers.clone(), setup.addr, setup.drop);
            tokio::spawn(async move {
                let mut latency = new_histogram();
                let mut send_lag = new_histogram();
                let (mut held, mut refused) = (0_u64, 0_u64);
                let mut last = start;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    let due = start + interval.mul_f64(i as f64);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                        send_lag.saturating_record(due.elapsed().as_micros() as u64);
                    }
                    let reply = conn.reserve_via(Route::Rest, drop, &buyers[i], i).await;
                    let answered = Instant::now();
                    latency.saturating_record(answered.duration_since(due).as_micros() as u64);
                    last = last.max(answered);
                    match reply {
                        Ok(reply) if reply.status == Route::Rest.held() => held += 1,
                        Ok(_) => refused += 1,
                        Err(_) => {
                            refused += 1;
                            conn = Conn::open(addr).await?;
                        }
                    }
                }
                Ok::<_, BenchError>((held, refused, last, latency, send_lag))
            })
        })
        .collect();
    let mut cell = OpenLoopCell {
        rate: setup.rate,
        sent: total as u64,
        held: 0,
        refused: 0,
        window: Duration::ZERO,
        latency: new_histogram(),
        send_lag: new_histogram(),
    };
    for task in tasks {
        let (held, refused, last, latency, send_lag) = task.await??;
        cell.held += held;
        cell.refused += refused;
        cell.window = cell.window.max(last.duration_since(start));
        cell.latency.add(&latency).ok();
        cell.send_lag.add(&send_lag).ok();
    }
    Ok(cell)
}
