//! Hot drop: C buyers, each on its own keep-alive connection, reserve one drop as fast as the
//! server answers, every request as another signed-in buyer. Closed loop: a buyer sends its
//! next request when the previous one is answered, so latency is what one buyer waits and
//! throughput is what the server sustains with C requests in flight. A cell reserves by one
//! [`Route`]: plain REST (a script), REST with an `Idempotency-Key` on every request, or the
//! web app's form post to `/rpc/reserve_unit`.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::{
    api::{Conn, Route},
    audit::{self, Audit},
    cpu,
    error::{BenchError, Result},
    figures::HotCell,
    measure::new_histogram,
    server::Db,
    steps::{Batches, Reading},
};

/// What a cell needs.
pub struct Setup<'a> {
    pub db: Db,
    pub db_url: &'a str,
    pub addr: SocketAddr,
    pub parties: cpu::Parties,
    pub drop: i64,
    /// Session cookies of signed-in buyers; each request takes the next unused one.
    pub buyers: Arc<Vec<String>>,
    pub concurrency: usize,
    pub route: Route,
    pub warmup: Duration,
    pub duration: Duration,
}

struct BuyerResult {
    holds: u64,
    holds_total: u64,
    requests: u64,
    refused: BTreeMap<u16, u64>,
    failed: u64,
    last_answer: Option<Instant>,
    out_of_buyers: bool,
    latency: Histogram<u64>,
}

/// Runs one cell and audits the drop after it.
pub async fn run(setup: Setup<'_>) -> Result<HotCell> {
    let mut conns = Vec::with_capacity(setup.concurrency);
    for _ in 0..setup.concurrency {
        conns.push(Conn::open(setup.addr).await?);
    }
    let measured_from = Instant::now() + setup.warmup;
    let end = measured_from + setup.duration;
    let shared = Arc::new(Shared {
        addr: setup.addr,
        drop: setup.drop,
        route: setup.route,
        buyers: setup.buyers.clone(),
        next: AtomicUsize::new(0),
        measured_from,
        end,
    });
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| tokio::spawn(buyer(conn, shared.clone())))
        .collect();
    let parties = setup.parties.clone();
    let addr = setup.addr;
    let watch = tokio::spawn(async move {
        tokio::time::sleep_until(measured_from.into()).await;
        let first = cpu::Sample::take(&parties);
        let before = Reading::take(addr).await?;
        tokio::time::sleep_until(end.into()).await;
        let cpu = first.share_until(&cpu::Sample::take(&parties));
        Ok::<_, BenchError>((cpu, Reading::take(addr).await?.since(&before)))
    });
    let mut cell = HotCell {
        concurrency: setup.concurrency,
        route: setup.route,
        requests: 0,
        holds: 0,
        refused: BTreeMap::new(),
        failed: 0,
        window: Duration::ZERO,
        latency: new_histogram(),
        out_of_buyers: false,
        cpu: cpu::Share::default(),
        batches: Batches::default(),
        holds_total: 0,
        audit: Audit::default(),
    };
    let mut last_answer = measured_from;
    for task in tasks {
        let result = task.await??;
        cell.requests += result.requests;
        cell.holds += result.holds;
        cell.holds_total += result.holds_total;
        cell.failed += result.failed;
        cell.out_of_buyers |= result.out_of_buyers;
        for (status, n) in result.refused {
            *cell.refused.entry(status).or_default() += n;
        }
        cell.latency.add(&result.latency).ok();
        if let Some(at) = result.last_answer {
            last_answer = last_answer.max(at);
        }
    }
    cell.window = last_answer.duration_since(measured_from);
    (cell.cpu, cell.batches) = watch.await??;
    cell.audit = audit::audit(setup.db, setup.db_url, setup.addr, setup.drop).await?;
    Ok(cell)
}

/// What every buyer of a cell shares.
struct Shared {
    addr: SocketAddr,
    drop: i64,
    route: Route,
    /// Session cookies; each request takes the next unused one.
    buyers: Arc<Vec<String>>,
    next: AtomicUsize,
    measured_from: Instant,
    end: Instant,
}

async fn buyer(mut conn: Conn, shared: Arc<Shared>) -> Result<BuyerResult> {
    let Shared {
        addr,
        drop,
        route,
        ref buyers,
        ref next,
        measured_from,
        end,
    } = *shared;
    let mut result = BuyerResult {
        holds: 0,
        holds_total: 0,
        requests: 0,
        refused: BTreeMap::new(),
        failed: 0,
        last_answer: None,
        out_of_buyers: false,
        latency: new_histogram(),
    };
    while Instant::now() < end {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(cookie) = buyers.get(i) else {
            result.out_of_buyers = true;
            break;
        };
        let sent = Instant::now();
        let reply = conn.reserve_via(route, drop, cookie, i).await;
        let answered = Instant::now();
        let measured = sent >= measured_from;
        match reply {
            Ok(reply) => {
                let held = reply.status == route.held();
                result.holds_total += u64::from(held);
                if measured {
                    result.requests += 1;
                    if held {
                        result.holds += 1;
                    } else {
                        *result.refused.entry(reply.status.as_u16()).or_default() += 1;
                    }
                    let micros = answered.duration_since(sent).as_micros() as u64;
                    result.latency.saturating_record(micros.max(1));
                    result.last_answer = Some(answered);
                }
            }
            Err(_) => {
                if measured {
                    result.failed += 1;
                }
                conn = Conn::open(addr).await?;
            }
        }
    }
    Ok(result)
}
