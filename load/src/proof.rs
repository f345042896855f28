//! What the doors' proof of work costs, and whom the doors stop.
//!
//! A script's side: challenges from a running server, solved with ALTCHA's own crate on one
//! core, at the floor (a quiet door) and at the ceiling (a door under full pressure), each
//! proof sent with a join so that only proofs that open the door are counted. And a farm run:
//! many accounts from few networks, most of them made the day of the drop, against one queue
//! whose drop takes only older accounts, with a few real buyers beside them; every answer is
//! counted by the rule that gave it.

use std::{net::SocketAddr, time::Instant};

use altcha::{solve_challenge, Challenge, Payload, SolveChallengeOptions};
use base64::{engine::general_purpose::STANDARD, Engine};
use chrono::Utc;
use hyper::{
    header::{HeaderName, COOKIE},
    Method, StatusCode,
};
use serde_json::json;

use crate::{
    api::{post_drop, sign_in_many, Conn},
    error::{BenchError, Result},
    figures::{Farm, Solves},
    page::node_lines,
    server::ADMIN_TOKEN,
};

static PROOF: HeaderName = HeaderName::from_static("dropline-proof");
static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A queue drop whose lobby is open now, going live in an hour; `accounts_before` if given.
async fn queue_drop(addr: SocketAddr, stock: i64, accounts_before: Option<String>) -> Result<i64> {
    let now = Utc::now();
    let mut drop = json!({
        "name": "Proof of work",
        "price_cents": 18_000,
        "total_stock": stock,
        "sale_mode": "queue",
        "starts_at": now + chrono::Duration::hours(1),
        "queue_opens_at": now - chrono::Duration::seconds(1),
    });
    if let Some(cutoff) = accounts_before {
        drop["accounts_before"] = json!(cutoff);
    }
    post_drop(addr, ADMIN_TOKEN, &drop).await
}

/// A challenge for `cookie`'s buyer to join `drop`.
async fn challenge(conn: &mut Conn, cookie: &str, drop: i64) -> Result<Challenge> {
    let path = format!("/api/v1/drops/{drop}/challenge");
    let reply = conn
        .call(Method::GET, &path, &[(COOKIE, cookie)], None)
        .await?
        .expect(StatusCode::OK, "challenge")?;
    serde_json::from_value(reply.json()?["challenge"].clone())
        .map_err(|e| BenchError::Unexpected(format!("the server asks no proof: {e}")))
}

/// Solves `challenge` on a thread of its own: the proof and the seconds it took.
async fn solve(challenge: Challenge) -> Result<(String, u32, f64)> {
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let solution = solve_challenge(SolveChallengeOptions::new(&challenge))
            .map_err(|e| BenchError::Unexpected(format!("solve: {e}")))?
            .ok_or_else(|| BenchError::Unexpected("no solution within 90 s".into()))?;
        let seconds = started.elapsed().as_secs_f64();
        let counter = solution.counter;
        let payload = Payload {
            challenge,
            solution,
        };
        let proof = STANDARD.encode(serde_json::to_vec(&payload)?);
        Ok((proof, counter, seconds))
    })
    .await?
}

/// `solves` buyers each fetch a challenge from the server at `addr`, solve it and join with
/// it; answers the solves (every join must have been let in).
pub async fn script_cost(
    addr: SocketAddr,
    solves: usize,
    mean_tries: u32,
    cost: u32,
) -> Result<Solves> {
    let cookies = sign_in_many(addr, 0, solves, 4, "solver").await?;
    let drop = queue_drop(addr, 10, None).await?;
    let mut conn = Conn::open(addr).await?;
    let mut measured = Solves {
        mean_tries,
        cost,
        ..Solves::default()
    };
    for cookie in &cookies {
        let (proof, counter, seconds) = solve(challenge(&mut conn, cookie, drop).await?).await?;
        let path = format!("/api/v1/drops/{drop}/queue");
        conn.call(
            Method::POST,
            &path,
            &[(COOKIE, cookie), (PROOF.clone(), &proof)],
            None,
        )
        .await?
        .expect(StatusCode::CREATED, "join with a proof")?;
        measured.counters.push(counter);
        measured.seconds.push(seconds);
    }
    Ok(measured)
}

/// The code of a refusal, or `joined`.
fn outcome(status: StatusCode, body: &[u8]) -> String {
    if status.is_success() {
        return "joined".into();
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// The farm run on a server that trusts this machine's `X-Forwarded-For` (so each try names
/// its network) and caps a drop at `cap` tickets per /24: `accounts` farm accounts spread over
/// `networks` /24s, `aged` of them made before the cutoff, each trying without a proof, with
/// another account's proof, then with its own; `real` buyers, each from a network of their
/// own and made before the cutoff, joining once with their own proof.
pub async fn farm_run(
    addr: SocketAddr,
    accounts: usize,
    aged: usize,
    networks: usize,
    cap: u32,
    real: usize,
) -> Result<Farm> {
    let real_cookies = sign_in_many(addr, 0, real, 8, "real buyer").await?;
    let aged_cookies = sign_in_many(addr, 0, aged, 8, "aged farm account").await?;
    // Account times are the database's milliseconds: a cutoff a little after the last old one.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let cutoff = Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let fresh = sign_in_many(addr, 0, accounts - aged, 8, "fresh farm account").await?;
    let farm: Vec<String> = aged_cookies.into_iter().chain(fresh).collect();
    let drop = queue_drop(addr, real as i64, Some(cutoff)).await?;
    let path = format!("/api/v1/drops/{drop}/queue");
    let mut conn = Conn::open(addr).await?;
    let mut report = Farm {
        accounts,
        aged,
        networks,
        cap,
        real_buyers: real,
        ..Farm::default()
    };
    let mut previous: Option<String> = None;
    for (i, cookie) in farm.iter().enumerate() {
        let from = format!("203.0.{}.{}", i % networks, 1 + i % 250);
        let base = [
            (COOKIE, cookie.as_str()),
            (FORWARDED_FOR.clone(), from.as_str()),
        ];
        let bare = conn.call(Method::POST, &path, &base, None).await?;
        *report
            .without_proof
            .entry(outcome(bare.status, &bare.body))
            .or_default() += 1;
        let (own, _, _) = solve(challenge(&mut conn, cookie, drop).await?).await?;
        if let Some(borrowed) = previous.as_deref() {
            let mut headers = base.to_vec();
            headers.push((PROOF.clone(), borrowed));
            let lent = conn.call(Method::POST, &path, &headers, None).await?;
            *report
                .with_anothers_proof
                .entry(outcome(lent.status, &lent.body))
                .or_default() += 1;
        }
        let mut headers = base.to_vec();
        headers.push((PROOF.clone(), own.as_str()));
        let tried = conn.call(Method::POST, &path, &headers, None).await?;
        *report
            .with_own_proof
            .entry(outcome(tried.status, &tried.body))
            .or_default() += 1;
        previous = Some(own);
    }
    for (i, cookie) in real_cookies.iter().enumerate() {
        let from = format!("198.18.{}.7", i % 250);
        let (own, _, _) = solve(challenge(&mut conn, cookie, drop).await?).await?;
        let headers = [
            (COOKIE, cookie.as_str()),
            (FORWARDED_FOR.clone(), from.as_str()),
            (PROOF.clone(), own.as_str()),
        ];
        let reply = conn.call(Method::POST, &path, &headers, None).await?;
        if reply.status.is_success() {
            report.real_joined += 1;
        }
    }
    Ok(report)
}

/// `solves` solves of the server's challenges in a throttled phone's browser, by the page's own
/// worker (`end2end/perf/solve.mjs`): seconds each.
pub fn phone_solves(url: &str, solves: usize) -> std::result::Result<Vec<f64>, String> {
    #[derive(serde::Deserialize)]
    struct Solve {
        seconds: f64,
    }
    let solves: Vec<Solve> = node_lines("perf/solve.mjs", &[url, &solves.to_string()])?;
    Ok(solves.into_iter().map(|s| s.seconds).collect())
}
