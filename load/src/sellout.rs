//! Sell-out: far more buyers than units, so the boundary the hot drop never reaches (a batch
//! of reserves with a few units left) is crossed in every run. Each buyer sends one reserve,
//! C at a time, and the cell checks what a buyer and an auditor would: exactly `stock` buyers
//! got a 201, every other answer is 409 `OUT_OF_STOCK`, nobody holds two, every unit is
//! accounted for.
//!
//! With churn, each buyer who gets a hold then purchases it, cancels it or keeps it (a fixed
//! mix by buyer number), so units come back while the drop sells out and the audit must still
//! balance: the holds left are the ones kept, the purchases the ones bought.

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
use hyper::{header::COOKIE, Method, StatusCode};

use crate::{
    api::Conn,
    audit::{self, Audit},
    cpu,
    error::{BenchError, Result},
    figures::SellOutCell,
    measure::new_histogram,
    server::Db,
};

/// What a buyer does with a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    Keep,
    Purchase,
    Cancel,
}

impl Then {
    /// Buyer `i`'s choice in a churn cell: half purchase, a quarter cancel, a quarter keep.
    fn of(i: usize) -> Self {
        match i % 4 {
            0 | 1 => Self::Purchase,
            2 => Self::Cancel,
            _ => Self::Keep,
        }
    }
}

/// What a cell needs.
pub struct Setup<'a> {
    pub db: Db,
    pub db_url: &'a str,
    pub addr: SocketAddr,
    pub parties: cpu::Parties,
    pub drop: i64,
    pub stock: i64,
    /// One reserve per buyer.
    pub buyers: Arc<Vec<String>>,
    pub concurrency: usize,
    pub churn: bool,
}

#[derive(Default)]
struct Tally {
    held: u64,
    sold_out: u64,
    other: BTreeMap<String, u64>,
    failed: u64,
    purchased: u64,
    cancelled: u64,
    kept: u64,
    follow_up_failed: u64,
    last_hold: Option<Instant>,
    last_answer: Option<Instant>,
    latency: Option<Histogram<u64>>,
}

/// Runs one cell and audits the drop after it.
pub async fn run(setup: Setup<'_>) -> Result<SellOutCell> {
    let mut conns = Vec::with_capacity(setup.concurrency);
    for _ in 0..setup.concurrency {
        conns.push(Conn::open(setup.addr).await?);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let parties = setup.parties.clone();
    let first = cpu::Sample::take(&parties);
    let started = Instant::now();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            tokio::spawn(buyer(
                conn,
                setup.addr,
                setup.drop,
                setup.buyers.clone(),
                next.clone(),
                setup.churn,
            ))
        })
        .collect();
    let mut cell = SellOutCell {
        concurrency: setup.concurrency,
        churn: setup.churn,
        stock: setup.stock,
        buyers: setup.buyers.len(),
        held: 0,
        sold_out: 0,
        other: BTreeMap::new(),
        failed: 0,
        purchased: 0,
        cancelled: 0,
        kept: 0,
        follow_up_failed: 0,
        to_last_hold: Duration::ZERO,
        to_last_answer: Duration::ZERO,
        latency: new_histogram(),
        cpu: cpu::Share::default(),
        audit: Audit::default(),
    };
    for task in tasks {
        let t = task.await??;
        cell.held += t.held;
        cell.sold_out += t.sold_out;
        cell.failed += t.failed;
        cell.purchased += t.purchased;
        cell.cancelled += t.cancelled;
        cell.kept += t.kept;
        cell.follow_up_failed += t.follow_up_failed;
        for (what, n) in t.other {
            *cell.other.entry(what).or_default() += n;
        }
        if let Some(latency) = &t.latency {
            cell.latency.add(latency).ok();
        }
        if let Some(at) = t.last_hold {
            cell.to_last_hold = cell.to_last_hold.max(at.duration_since(started));
        }
        if let Some(at) = t.last_answer {
            cell.to_last_answer = cell.to_last_answer.max(at.duration_since(started));
        }
    }
    cell.cpu = first.share_until(&cpu::Sample::take(&parties));
    cell.audit = audit::audit(setup.db, setup.db_url, setup.addr, setup.drop).await?;
    Ok(cell)
}

async fn buyer(
    mut conn: Conn,
    addr: SocketAddr,
    drop: i64,
    buyers: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    churn: bool,
) -> Result<Tally> {
    let mut tally = Tally {
        latency: Some(new_histogram()),
        ..Tally::default()
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(cookie) = buyers.get(i) else {
            return Ok(tally);
        };
        let sent = Instant::now();
        let reply = match conn.reserve(drop, cookie).await {
            Ok(reply) => reply,
            Err(_) => {
                tally.failed += 1;
                conn = Conn::open(addr).await?;
                continue;
            }
        };
        let answered = Instant::now();
        tally.last_answer = Some(answered);
        if let Some(latency) = &mut tally.latency {
            latency.saturating_record(answered.duration_since(sent).as_micros().max(1) as u64);
        }
        let code = reply.json().ok().and_then(|body| {
            body["error"]["code"]
                .as_str()
                .map(str::to_string)
                .or_else(|| body["reservation"]["id"].as_i64().map(|id| id.to_string()))
        });
        match (reply.status, code.as_deref()) {
            (StatusCode::CREATED, Some(id)) => {
                tally.held += 1;
                tally.last_hold = Some(answered);
                let then = if churn { Then::of(i) } else { Then::Keep };
                let cookie: &str = cookie;
                let outcome = match then {
                    Then::Keep => {
                        tally.kept += 1;
                        continue;
                    }
                    Then::Purchase => {
                        let path = format!("/api/v1/reservations/{id}/purchase");
                        conn.call(Method::POST, &path, &[(COOKIE, cookie)], None)
                            .await
                    }
                    Then::Cancel => {
                        let path = format!("/api/v1/reservations/{id}");
                        conn.call(Method::DELETE, &path, &[(COOKIE, cookie)], None)
                            .await
                    }
                };
                match outcome {
                    Ok(reply) if reply.status.is_success() => match then {
                        Then::Purchase => tally.purchased += 1,
                        _ => tally.cancelled += 1,
                    },
                    Ok(_) => tally.follow_up_failed += 1,
                    Err(_) => {
                        tally.follow_up_failed += 1;
                        conn = Conn::open(addr).await?;
                    }
                }
            }
            (StatusCode::CONFLICT, Some("OUT_OF_STOCK")) => tally.sold_out += 1,
            (status, code) => {
                let what = format!("{} {}", status.as_u16(), code.unwrap_or("?"));
                *tally.other.entry(what).or_default() += 1;
            }
        }
    }
}

/// The cell's buyers: `count` from the pool (fails if the pool is smaller).
pub fn buyers(pool: &Arc<Vec<String>>, count: usize) -> Result<Arc<Vec<String>>> {
    pool.get(..count)
        .map(|b| Arc::new(b.to_vec()))
        .ok_or_else(|| BenchError::Unexpected(format!("a sell-out cell needs {count} buyers")))
}
