//! Beacon mode: a queue's lobby and a draw's entries ordered by a public drand round that is
//! published only after the entry list is sealed. The attacker here reads the whole database
//! before go-live and grinds ticket ids as the seed would let them; with a beacon the ids they
//! keep take no better places than anyone's. The beacon is a local one: a test key that signs
//! rounds in quicknet's exact scheme (unchained BLS, signature on G1), served over HTTP as a
//! drand endpoint serves them; the same verifier code accepts real quicknet rounds (see
//! `server::beacon`'s tests).

mod common;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::get,
    Json, Router,
};
use bls12_381::{
    hash_to_curve::{ExpandMsgXmd, HashToCurve},
    G1Affine, G1Projective, G2Affine, Scalar,
};
use chrono::Utc;
use common::{verified, verify_audit, wait_until, Api, Auth, Backend};
use dropline::server::{beacon, rules, settings::Settings};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// quicknet's domain separation tag (RFC 9380 hash to G1).
const DST: &[u8] = b"BLS_SIG_BLS12381G1_XMD:SHA-256_SSWU_RO_NUL_";
const CHAIN_HASH: &str = "0d1ce5ed0d1ce5ed0d1ce5ed0d1ce5ed0d1ce5ed0d1ce5ed0d1ce5ed0d1ce5ed";

/// A drand network of one, a round a second: signs with `secret`, and serves a round only
/// from its time on (404 before, as drand does), noting when it first served each.
struct LocalBeacon {
    secret: Scalar,
    genesis_seconds: i64,
    first_served_ms: Mutex<HashMap<u64, i64>>,
}

impl LocalBeacon {
    fn new(secret: u64) -> Arc<Self> {
        Arc::new(Self {
            secret: Scalar::from(secret),
            genesis_seconds: Utc::now().timestamp() - 100,
            first_served_ms: Mutex::default(),
        })
    }

    fn public_key(&self) -> [u8; 96] {
        G2Affine::from(G2Affine::generator() * self.secret).to_compressed()
    }

    /// Round `round`'s signature: the secret times the hash to G1 of SHA-256(round, 8 bytes
    /// big-endian).
    fn sign(&self, round: u64) -> [u8; 48] {
        let message = <sha2_09::Sha256 as sha2_09::Digest>::digest(&round.to_be_bytes());
        let point = <G1Projective as HashToCurve<ExpandMsgXmd<sha2_09::Sha256>>>::hash_to_curve(
            message.as_slice(),
            DST,
        );
        G1Affine::from(point * self.secret).to_compressed()
    }

    fn round_ms(&self, round: u64) -> i64 {
        (self.genesis_seconds + round as i64 - 1) * 1000
    }

    /// Serves `/{chain}/public/{round}` on a loopback port.
    async fn serve(self: &Arc<Self>) -> SocketAddr {
        async fn round(
            State(beacon): State<Arc<LocalBeacon>>,
            Path((chain, round)): Path<(String, u64)>,
        ) -> Result<Json<Value>, StatusCode> {
            let now = Utc::now().timestamp_millis();
            if chain != CHAIN_HASH || now < beacon.round_ms(round) {
                return Err(StatusCode::NOT_FOUND);
            }
            beacon
                .first_served_ms
                .lock()
                .unwrap()
                .entry(round)
                .or_insert(now);
            let signature = beacon.sign(round);
            Ok(Json(json!({
                "round": round,
                "randomness": hex::encode(Sha256::digest(signature)),
                "signature": hex::encode(signature),
            })))
        }
        let app = Router::new()
            .route("/{chain}/public/{round}", get(round))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }
}

/// Settings for a server that reads rounds from `addr`, checked against `trusted`'s key,
/// a round coming at least `MARGIN` seconds after go-live; test crowds are let through.
const MARGIN: u64 = 3;
fn beacon_settings(trusted: &LocalBeacon, addr: SocketAddr) -> impl FnOnce(&mut Settings) {
    let key = hex::encode(trusted.public_key());
    let genesis = trusted.genesis_seconds;
    move |settings: &mut Settings| {
        crowd(settings);
        settings.beacon_url = format!("http://{addr}");
        settings.beacon_chain_hash = CHAIN_HASH.into();
        settings.beacon_public_key = key;
        settings.beacon_genesis_seconds = genesis;
        settings.beacon_period_seconds = 1;
        settings.beacon_margin_seconds = MARGIN;
    }
}

/// A server ordering by a local beacon of its own (signing with `secret`), and the beacon.
async fn on_beacon(backend: Backend, secret: u64) -> (Arc<LocalBeacon>, SocketAddr, Api) {
    let beacon = LocalBeacon::new(secret);
    let addr = beacon.serve().await;
    let api = Api::configured(backend, beacon_settings(&beacon, addr)).await;
    (beacon, addr, api)
}

fn crowd(settings: &mut Settings) {
    settings.rate_limit_ip_per_second = 1_000_000;
    settings.rate_limit_ip_burst = 1_000_000;
    settings.rate_limit_session_per_second = 1_000;
    settings.rate_limit_session_burst = 1_000;
}

/// A drop sold as `mode` ("queue" or "draw") of `stock` units, open now, going live in an
/// hour; answers its JSON.
async fn sale(api: &Api, mode: &str, stock: i64) -> Value {
    let now = Utc::now();
    let reply = api
        .create_drop(json!({
            "name": "Beacon Runner",
            "price_cents": 100,
            "total_stock": stock,
            "sale_mode": mode,
            "starts_at": now + chrono::Duration::hours(1),
            "queue_opens_at": if mode == "queue" { json!(now - chrono::Duration::seconds(1)) } else { Value::Null },
        }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["drop"].clone()
}

/// Brings go-live to now, as if the hour had passed. A beacon drop's round moves with it to the
/// one creation would have named for this go-live (`beacon::round_for`): the first published
/// `MARGIN` seconds after it.
async fn go_live(api: &Api, drop: i64) {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now_ms = Utc::now().timestamp_millis();
    let round = match api.state.settings.beacon() {
        Some(chain) => {
            let (round, at) = beacon::round_for(&chain, now_ms);
            format!(", beacon_round = {round}, beacon_round_at = {at}")
        }
        None => String::new(),
    };
    api.db
        .execute(&format!(
            "UPDATE drops SET starts_at = {now_ms}{round} WHERE id = {drop}"
        ))
        .await;
}

async fn call(api: &Api, method: &str, path: String, cookie: &str) -> common::Reply {
    api.call(method, &path, None, Auth::Cookie(cookie)).await
}

/// Joins `cookie`'s buyer to the queue; answers the ticket id.
async fn join(api: &Api, cookie: &str, drop: i64) -> String {
    let reply = call(api, "POST", format!("/api/v1/drops/{drop}/queue"), cookie).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["ticket"]["id"].as_str().unwrap().to_string()
}

async fn place(api: &Api, cookie: &str, drop: i64) -> Option<i64> {
    let reply = call(api, "GET", format!("/api/v1/drops/{drop}/queue/me"), cookie).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["ticket"]["place"].as_i64()
}

/// A drop's column as text, read straight from the database as its reader would.
async fn column(api: &Api, drop: i64, expr: &str) -> Option<String> {
    use sqlx::Connection;
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT CAST({expr} AS TEXT) FROM drops WHERE id = $1"
    ));
    match api.db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&api.db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(drop)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&api.db.url).await.unwrap();
            sqlx::query_scalar(sql)
                .bind(drop)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    }
}

/// `n` buyers join the queue, it goes live, and the line is put in order; answers their
/// cookies.
async fn lined_up(api: &Api, id: i64, n: usize) -> Vec<String> {
    let mut cookies = Vec::new();
    for i in 0..n {
        let cookie = api.sign_in(&format!("buyer {i}")).await;
        join(api, &cookie, id).await;
        cookies.push(cookie);
    }
    go_live(api, id).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            place(api, &cookies[0], id).await.is_some()
        })
        .await,
        "the line was never put in order"
    );
    cookies
}

/// The drop's final audit, as anyone gets it.
async fn audit(api: &Api, drop: i64) -> common::Reply {
    let path = format!("/api/v1/drops/{drop}/audit");
    api.call("GET", &path, None, Auth::None).await
}

/// A drop's integer column, read straight from the database.
async fn number(api: &Api, drop: i64, expr: &str) -> i64 {
    let text = column(api, drop, expr).await.expect("set");
    text.parse().unwrap()
}

/// The attack the seed allowed. 40 honest buyers join a queue of 5 units; then an attacker
/// who reads the database (the seed is in it from creation, with every ticket id) joins 200
/// sybils, keeps the five whose keys `sha256(seed:id)` are lowest and has the rest leave, and
/// works out the places the five will take. Answers the places they took at go-live and the
/// places the attacker predicted.
async fn grind(api: &Api) -> (Vec<i64>, Vec<i64>) {
    let id = sale(api, "queue", 5).await["id"].as_i64().unwrap();
    let seed = column(api, id, "seed").await.unwrap_or_default();
    let key = |ticket: &str| rules::lobby_key(&seed, ticket);
    let mut honest = Vec::new();
    for i in 0..40 {
        let cookie = api.sign_in(&format!("honest {i}")).await;
        honest.push(key(&join(api, &cookie, id).await));
    }
    let mut sybils = Vec::new();
    for i in 0..200 {
        let cookie = api.sign_in(&format!("sybil {i}")).await;
        let ticket = join(api, &cookie, id).await;
        sybils.push((key(&ticket), cookie));
    }
    sybils.sort();
    for (_, cookie) in &sybils[5..] {
        let left = call(
            api,
            "DELETE",
            format!("/api/v1/drops/{id}/queue/me"),
            cookie,
        )
        .await;
        assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    }
    let kept = &sybils[..5];
    let predicted: Vec<i64> = kept
        .iter()
        .map(|(mine, _)| 1 + honest.iter().filter(|k| *k < mine).count() as i64)
        .zip(0..)
        .map(|(place, ahead_of_it)| place + ahead_of_it)
        .collect();
    go_live(api, id).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            place(api, &kept[0].1, id).await.is_some()
        })
        .await,
        "go-live never put the line in order"
    );
    let mut places = Vec::new();
    for (_, cookie) in kept {
        places.push(place(api, cookie, id).await.unwrap());
    }
    (places, predicted)
}

/// Without a beacon the seed is in the database from creation: the attacker knows exactly
/// where the five will stand, and they stand ahead of nearly every honest buyer.
async fn a_database_reader_grinds_a_seed_order(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let (places, predicted) = grind(&api).await;
    assert_eq!(places, predicted);
    assert!(places[4] <= 15, "the ground ids stand at {places:?}");
}

/// With a beacon, the same attacker with the same database predicts nothing: the order comes
/// from a round published after the list was sealed (the five standing exactly where
/// predicted by chance: about one in 150 million).
async fn grinding_gets_nothing_once_a_beacon_orders_the_line(backend: Backend) {
    let (_, _, api) = on_beacon(backend, 0x5eed_cafe).await;
    let (places, predicted) = grind(&api).await;
    assert_ne!(
        places, predicted,
        "the ground ids stood where the attacker said"
    );
}

/// A beacon queue, end to end: the drop names its round at creation, the list is sealed at
/// go-live before the round exists, the round is fetched only once published, checked, and
/// the audit — beacon, root, every place — passes the verifier.
async fn a_beacon_queue_is_sealed_before_its_round_and_recomputes(backend: Backend) {
    let (beacon, _, api) = on_beacon(backend, 77).await;
    let drop = sale(&api, "queue", 3).await;
    let id = drop["id"].as_i64().unwrap();
    assert!(drop["beacon_round"].as_u64().is_some(), "{drop}");
    assert!(
        drop.get("seed_sha256").is_none(),
        "no seed in beacon mode: {drop}"
    );
    assert_eq!(column(&api, id, "seed").await, None);
    let cookies = lined_up(&api, id, 30).await;
    // A buyer who joins now is behind the sealed lobby.
    let late = api.sign_in("late").await;
    join(&api, &late, id).await;
    assert_eq!(place(&api, &late, id).await, Some(31));
    // Each buyer's ticket says whether it is in the sealed list, and so does their page.
    let sealed = |cookie: String| {
        let api = &api;
        async move {
            let path = format!("/api/v1/drops/{id}/queue/me");
            call(api, "GET", path, &cookie).await.body["ticket"]["sealed"] == true
        }
    };
    assert!(sealed(cookies[0].clone()).await);
    assert!(!sealed(late.clone()).await);
    let marker = "Your entry is in the sealed list.";
    assert!(api.page("/", Some(&cookies[0])).await.contains(marker));
    assert!(!api.page("/", Some(&late)).await.contains(marker));

    let round = number(&api, id, "beacon_round").await as u64;
    let sealed_at = number(&api, id, "sealed_at").await;
    let served = beacon.first_served_ms.lock().unwrap()[&round];
    assert!(
        served > sealed_at,
        "round {round} was out at {served}, before the list was sealed at {sealed_at}"
    );
    let reply = audit(&api, id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let audit = &reply.body["audit"];
    assert_eq!(audit["order"], "beacon");
    assert_eq!(audit["beacon"]["round"], round);
    assert_eq!(audit["entries"]["count"], 30);
    let ids: HashSet<&str> = audit["entries"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 30);
    // The signature verifies as a round of the chain the audit names.
    let chain = api.state.settings.beacon().unwrap();
    let signature = audit["beacon"]["signature"].as_str().unwrap();
    let checked = beacon::check(&chain, round, signature).expect("the audit's round verifies");
    assert_eq!(audit["beacon"]["randomness"], checked.randomness.as_str());
    let printed = verified(&api, id).await;
    assert!(
        printed.starts_with("ok: 30 drawn in the lobby, 1 joined later"),
        "{printed}"
    );

    // Each sealed ticket has a proof of being in the list under the published root; a path
    // with a changed byte, or another id, proves nothing; a ticket not sealed has none.
    let mine = call(
        &api,
        "GET",
        format!("/api/v1/drops/{id}/queue/me"),
        &cookies[0],
    )
    .await;
    let ticket = mine.body["ticket"]["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/drops/{id}/entries/{ticket}/proof");
    let reply = api.call("GET", &path, None, Auth::None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let proof: dropline_verify::EntryProof =
        serde_json::from_value(reply.body["proof"].clone()).unwrap();
    assert_eq!(proof.root, audit["entries"]["root"].as_str().unwrap());
    assert_eq!(proof.count, 30);
    assert!(dropline_verify::proves(&proof));
    let mut bent = proof.clone();
    let first = bent.path[0].clone();
    bent.path[0] = format!(
        "{}{}",
        if &first[..1] == "0" { "1" } else { "0" },
        &first[1..]
    );
    assert!(!dropline_verify::proves(&bent));
    let mut other = proof.clone();
    other.ticket = "f".repeat(32);
    assert!(!dropline_verify::proves(&other));
    let theirs = call(&api, "GET", format!("/api/v1/drops/{id}/queue/me"), &late).await;
    let late_ticket = theirs.body["ticket"]["id"].as_str().unwrap();
    let path = format!("/api/v1/drops/{id}/entries/{late_ticket}/proof");
    let reply = api.call("GET", &path, None, Auth::None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], "TICKET_NOT_FOUND");
}

/// A draw in beacon mode: its winners are the first places by the round's randomness, and
/// the verifier agrees.
async fn a_beacon_draw_recomputes(backend: Backend) {
    let (_, _, api) = on_beacon(backend, 1234).await;
    let id = sale(&api, "draw", 4).await["id"].as_i64().unwrap();
    let mut cookies = Vec::new();
    for i in 0..20 {
        let cookie = api.sign_in(&format!("entrant {i}")).await;
        let reply = call(&api, "POST", format!("/api/v1/drops/{id}/entry"), &cookie).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        cookies.push(cookie);
    }
    go_live(&api, id).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            let path = format!("/api/v1/drops/{id}/entry");
            call(&api, "GET", path, &cookies[0]).await.body["entry"]["state"] != "entered"
        })
        .await,
        "the draw was never made"
    );
    let printed = verified(&api, id).await;
    assert!(printed.starts_with("ok: 20 entries, 4 won"), "{printed}");
}

/// A forged round — signed by a key other than the chain's — is never kept: the line stays
/// unordered past the round's time, and there is no audit to show.
async fn a_forged_round_orders_nothing(backend: Backend) {
    let chain = LocalBeacon::new(42);
    let forger = LocalBeacon::new(43);
    let addr = forger.serve().await;
    let api = Api::configured(backend, beacon_settings(&chain, addr)).await;
    let id = sale(&api, "queue", 1).await["id"].as_i64().unwrap();
    let cookie = api.sign_in("buyer").await;
    join(&api, &cookie, id).await;
    go_live(&api, id).await;
    let round = number(&api, id, "beacon_round").await as u64;
    // Past the round's time, with the forger serving it every pass.
    assert!(
        wait_until(Duration::from_secs(20), || async {
            forger.first_served_ms.lock().unwrap().contains_key(&round)
        })
        .await,
        "the server never asked for its round"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(place(&api, &cookie, id).await, None);
    assert_eq!(column(&api, id, "beacon_randomness").await, None);
    let audit = audit(&api, id).await;
    assert_eq!(audit.status, StatusCode::CONFLICT, "{}", audit.body);
}

/// The operator reconfigures the server with a key of their own (same chain hash) and serves
/// rounds signed with it: a drop created under the chain's real key is checked against that
/// key, so the operator's round is never kept and decides nothing.
async fn a_reconfigured_key_cannot_decide_a_drop_made_under_another(backend: Backend) {
    let chain = LocalBeacon::new(5);
    let (operator, _, api) = on_beacon(backend, 6).await;
    let id = sale(&api, "queue", 1).await["id"].as_i64().unwrap();
    // As if created before the reconfiguration: under the chain's key.
    let real_key = hex::encode(chain.public_key());
    api.db
        .execute(&format!(
            "UPDATE drops SET beacon_public_key = '{real_key}' WHERE id = {id}"
        ))
        .await;
    let cookie = api.sign_in("buyer").await;
    join(&api, &cookie, id).await;
    go_live(&api, id).await;
    let round = number(&api, id, "beacon_round").await as u64;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            operator
                .first_served_ms
                .lock()
                .unwrap()
                .contains_key(&round)
        })
        .await,
        "the server never asked for its round"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(place(&api, &cookie, id).await, None);
    assert_eq!(column(&api, id, "beacon_randomness").await, None);
}

/// The operator rewrites the stored audit after go-live — re-signs the round with a key of
/// their own, drops a ticket from the sealed list, publishes another root, swaps two places —
/// and the verifier refuses each (served by a fresh instance, so no cached copy hides it).
async fn a_rewritten_audit_fails_the_public_check(backend: Backend) {
    let (beacon, addr, api) = on_beacon(backend, 99).await;
    let id = sale(&api, "queue", 2).await["id"].as_i64().unwrap();
    lined_up(&api, id, 12).await;
    let honest = audit(&api, id).await.body;
    type Tamper = Box<dyn Fn(&mut Value)>;
    // A key of the operator's own, re-signing the round: a signature that verifies, but not
    // under the chain's key.
    let own = LocalBeacon::new(1234);
    let tampers: [(&str, Tamper, &str); 4] = [
        (
            "the round signed with the operator's own key",
            Box::new(move |doc| {
                let beacon = &mut doc["audit"]["beacon"];
                let signature = own.sign(beacon["round"].as_u64().unwrap());
                beacon["public_key"] = json!(hex::encode(own.public_key()));
                beacon["signature"] = json!(hex::encode(signature));
                beacon["randomness"] = json!(hex::encode(Sha256::digest(signature)));
            }),
            "not the chain the order must come from",
        ),
        (
            "a sealed ticket dropped",
            Box::new(|doc| {
                doc["audit"]["entries"]["ids"].as_array_mut().unwrap().pop();
            }),
            "the sealed list's root is not the root of its ids",
        ),
        (
            "another root",
            Box::new(|doc| doc["audit"]["entries"]["root"] = json!("00".repeat(32))),
            "the sealed list's root is not the root of its ids",
        ),
        (
            "two places swapped",
            Box::new(|doc| {
                let tickets = doc["audit"]["tickets"].as_array_mut().unwrap();
                let first = tickets[0]["place"].clone();
                tickets[0]["place"] = tickets[1]["place"].clone();
                tickets[1]["place"] = first;
            }),
            "in the final audit but at",
        ),
    ];
    for (what, tamper, refusal) in tampers {
        let mut doc = honest.clone();
        tamper(&mut doc);
        let text = doc.to_string().replace('\'', "''");
        api.db
            .execute(&format!(
                "UPDATE final_audits SET document = '{text}' WHERE drop_id = {id}"
            ))
            .await;
        let fresh = Api::on_with(api.db.clone(), beacon_settings(&beacon, addr)).await;
        let checked = verify_audit(&fresh, id, &[]).await;
        assert!(
            checked.as_ref().is_err_and(|e| e.contains(refusal)),
            "{what}: the check answered {checked:?}"
        );
    }
}

/// The server was down past its go-live: when it seals the list, the round the drop named is
/// already published, so whoever sealed could have known the order first. It names the next
/// round the margin allows instead, and the audit says so and passes the verifier (it failed:
/// "published before the list was sealed").
async fn a_late_seal_names_a_later_round(backend: Backend) {
    let (_, _, api) = on_beacon(backend, 8).await;
    let id = sale(&api, "queue", 2).await["id"].as_i64().unwrap();
    let mut cookies = Vec::new();
    for i in 0..5 {
        let cookie = api.sign_in(&format!("buyer {i}")).await;
        join(&api, &cookie, id).await;
        cookies.push(cookie);
    }
    // Go-live and its round both in the past: the outage.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now_ms = Utc::now().timestamp_millis();
    let chain = api.state.settings.beacon().unwrap();
    let (stale, stale_at) = beacon::round_for(&chain, now_ms - 20_000);
    assert!(stale_at < now_ms - 5_000);
    api.db
        .execute(&format!(
            "UPDATE drops SET starts_at = {now_ms}, beacon_round = {stale}, \
             beacon_round_at = {stale_at} WHERE id = {id}"
        ))
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            place(&api, &cookies[0], id).await.is_some()
        })
        .await,
        "the line was never put in order"
    );
    let round = number(&api, id, "beacon_round").await as u64;
    assert!(round > stale, "the stale round {stale} still decides");
    let sealed_at = number(&api, id, "sealed_at").await;
    assert!(number(&api, id, "beacon_round_at").await > sealed_at);
    let printed = verified(&api, id).await;
    assert!(
        printed.contains(&format!("ordered by drand round {round}")),
        "{printed}"
    );
    // The audit keeps the round named at creation: a watcher who noted it still agrees, and
    // a replacement the seal did not force is refused.
    let (mut audit, tickets) = common::fetch_audit(&api, id).await;
    assert_eq!(audit.beacon.as_ref().unwrap().named_round, Some(stale));
    let noted = dropline_verify::Evidence {
        beacon_round: Some(stale),
        ..Default::default()
    };
    let chain = common::chain_of(&api);
    assert!(dropline_verify::verify(id, &audit, &tickets, &chain, &noted).is_ok());
    audit.beacon.as_mut().unwrap().named_round = Some(round + 20);
    let refused = dropline_verify::verify(id, &audit, &tickets, &chain, &Default::default());
    let faults = refused.unwrap_err();
    assert!(
        faults[0].0.contains("was not out when the list was sealed"),
        "{faults:?}"
    );
}

/// A server that cannot reach any drand endpoint: the operator pastes the round. Before the
/// seal, and a signature by another key or for another round, are refused; the round that
/// verifies is kept once, orders the line, and the verifier accepts the audit.
async fn an_operator_pastes_the_round_a_server_cannot_fetch(backend: Backend) {
    let chain = LocalBeacon::new(41);
    // Rounds are asked of a port where nothing answers.
    let unreachable: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let api = Api::configured(backend, beacon_settings(&chain, unreachable)).await;
    let id = sale(&api, "queue", 2).await["id"].as_i64().unwrap();
    let paste = |signature: String| {
        let api = &api;
        async move {
            let body = json!({ "signature": signature }).to_string();
            let path = format!("/api/v1/drops/{id}/beacon");
            api.call(
                "POST",
                &path,
                Some(&body),
                Auth::Bearer(common::ADMIN_TOKEN),
            )
            .await
        }
    };
    let early = paste(hex::encode(chain.sign(1))).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);
    assert_eq!(early.body["error"]["code"], "BEACON_NOT_DUE");

    let mut cookies = Vec::new();
    for i in 0..6 {
        let cookie = api.sign_in(&format!("buyer {i}")).await;
        join(&api, &cookie, id).await;
        cookies.push(cookie);
    }
    go_live(&api, id).await;
    let round = number(&api, id, "beacon_round").await as u64;
    let published = number(&api, id, "beacon_round_at").await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            column(&api, id, "sealed_at").await.is_some()
                && Utc::now().timestamp_millis() > published + 200
        })
        .await,
        "the list was never sealed"
    );
    let forged = LocalBeacon::new(42);
    for wrong in [
        hex::encode(forged.sign(round)),
        hex::encode(chain.sign(round + 1)),
        "zz".into(),
    ] {
        let refused = paste(wrong).await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        assert_eq!(
            refused.body["error"]["field"], "signature",
            "{}",
            refused.body
        );
    }
    assert_eq!(column(&api, id, "beacon_randomness").await, None);

    let kept = paste(hex::encode(chain.sign(round))).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(kept.body["round"], round);
    let again = paste(hex::encode(chain.sign(round))).await;
    assert_eq!(again.body["error"]["code"], "BEACON_NOT_DUE", "kept once");
    assert!(
        wait_until(Duration::from_secs(20), || async {
            place(&api, &cookies[0], id).await.is_some()
        })
        .await,
        "the pasted round never ordered the line"
    );
    let printed = verified(&api, id).await;
    assert!(
        printed.starts_with("ok: 6 drawn in the lobby")
            && printed.contains(&format!("ordered by drand round {round}")),
        "{printed}"
    );
}

on_both_databases!(
    a_reconfigured_key_cannot_decide_a_drop_made_under_another,
    a_rewritten_audit_fails_the_public_check,
    a_database_reader_grinds_a_seed_order,
    grinding_gets_nothing_once_a_beacon_orders_the_line,
    a_beacon_queue_is_sealed_before_its_round_and_recomputes,
    a_beacon_draw_recomputes,
    a_forged_round_orders_nothing,
    an_operator_pastes_the_round_a_server_cannot_fetch,
    a_late_seal_names_a_later_round,
);
