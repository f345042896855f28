//! Proof of work at the doors, played as a bot farm would: a join or an entry without a
//! solution, with one used already (here or on another instance), with one issued for another
//! drop or another buyer, or with an expired one is refused — and a buyer who solved their
//! own fresh challenge gets in, through REST and through the page's server function alike.

mod common;

use std::{sync::Arc, time::Duration};

use altcha::Challenge;
use axum::http::StatusCode;
use chrono::Utc;
use common::{cheap_proofs, solve, Api, Auth, Backend, TestDb};
use serde_json::{json, Value};

/// A drop sold through a queue (`door` "queue") or by draw ("entry"), open to joins now.
async fn drop_for(api: &Api, door: &str) -> i64 {
    let now = Utc::now();
    let mode = if door == "queue" { "queue" } else { "draw" };
    let reply = api
        .create_drop(json!({
            "name": "Proof Runner",
            "price_cents": 100,
            "total_stock": 3,
            "sale_mode": mode,
            "starts_at": now + chrono::Duration::hours(1),
            "queue_opens_at": (mode == "queue").then(|| now - chrono::Duration::seconds(1)),
        }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["drop"]["id"].as_i64().unwrap()
}

/// The challenge `GET /drops/{id}/challenge` issues to `cookie`'s buyer.
async fn challenge(api: &Api, cookie: &str, drop: i64) -> Challenge {
    let reply = api
        .call(
            "GET",
            &format!("/api/v1/drops/{drop}/challenge"),
            None,
            Auth::Cookie(cookie),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    serde_json::from_value(reply.body["challenge"].clone()).unwrap()
}

/// A fresh proof for `cookie`'s buyer to open `drop`'s door.
async fn proof(api: &Api, cookie: &str, drop: i64) -> String {
    solve(challenge(api, cookie, drop).await)
}

/// Joins (`door` "queue") or enters ("entry") with `proof` in the `Dropline-Proof` header.
async fn open(
    api: &Api,
    cookie: &str,
    door: &str,
    drop: i64,
    proof: Option<&str>,
) -> common::Reply {
    let path = format!("/api/v1/drops/{drop}/{door}");
    let headers: Vec<(&str, &str)> = proof.map(|p| ("dropline-proof", p)).into_iter().collect();
    api.call_with("POST", &path, None, Auth::Cookie(cookie), &headers)
        .await
}

fn refused(reply: &common::Reply) -> (StatusCode, Value) {
    (reply.status, reply.body["error"]["code"].clone())
}

/// A queue's door: nothing, garbage, another drop's proof and another buyer's proof are
/// refused; the buyer's own proof lets them in; the same proof again — after leaving, and on
/// another instance of the same deployment — is refused as used; a fresh one lets them back.
async fn a_join_takes_a_fresh_proof_of_its_own_buyer_and_drop(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let api = Api::on_with(db.clone(), cheap_proofs).await;
    let other_instance = Api::on_with(db.clone(), cheap_proofs).await;
    let drop = drop_for(&api, "queue").await;
    let elsewhere = drop_for(&api, "queue").await;
    let farm = api.sign_in("farm account 1").await;
    let buyer = api.sign_in("real buyer").await;
    let required = (StatusCode::FORBIDDEN, json!("PROOF_REQUIRED"));
    let invalid = (StatusCode::FORBIDDEN, json!("PROOF_INVALID"));
    assert_eq!(
        refused(&open(&api, &buyer, "queue", drop, None).await),
        required
    );
    let garbage = open(&api, &buyer, "queue", drop, Some("bm90IGEgcHJvb2Y=")).await;
    assert_eq!(refused(&garbage), invalid);
    let for_elsewhere = proof(&api, &buyer, elsewhere).await;
    let moved = open(&api, &buyer, "queue", drop, Some(&for_elsewhere)).await;
    assert_eq!(refused(&moved), invalid);
    let farms_own = proof(&api, &farm, drop).await;
    let lent = open(&api, &buyer, "queue", drop, Some(&farms_own)).await;
    assert_eq!(refused(&lent), invalid);
    assert!(
        lent.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another drop or another buyer"),
        "{}",
        lent.body
    );
    // Nothing refused made a ticket.
    let none = api
        .call(
            "GET",
            &format!("/api/v1/drops/{drop}/queue/me"),
            None,
            Auth::Cookie(&buyer),
        )
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    let own = proof(&api, &buyer, drop).await;
    let joined = open(&api, &buyer, "queue", drop, Some(&own)).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    let left = api
        .call(
            "DELETE",
            &format!("/api/v1/drops/{drop}/queue/me"),
            None,
            Auth::Cookie(&buyer),
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    assert_eq!(
        refused(&open(&api, &buyer, "queue", drop, Some(&own)).await),
        invalid
    );
    let there = open(&other_instance, &buyer, "queue", drop, Some(&own)).await;
    assert_eq!(refused(&there), invalid);
    let fresh = proof(&other_instance, &buyer, drop).await;
    let back = open(&other_instance, &buyer, "queue", drop, Some(&fresh)).await;
    assert_eq!(back.status, StatusCode::CREATED, "{}", back.body);
    // The farm's own proof still opens the farm's own door, once.
    let farm_in = open(&api, &farm, "queue", drop, Some(&farms_own)).await;
    assert_eq!(farm_in.status, StatusCode::CREATED, "{}", farm_in.body);
}

/// A challenge is good for `proof_seconds`: solved and sent later, it is refused.
async fn an_expired_proof_is_refused(backend: Backend) {
    let api = Api::configured(backend, |s| {
        cheap_proofs(s);
        s.proof_seconds = 1;
    })
    .await;
    let drop = drop_for(&api, "entry").await;
    let buyer = api.sign_in("slow buyer").await;
    let late = proof(&api, &buyer, drop).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let reply = open(&api, &buyer, "entry", drop, Some(&late)).await;
    assert_eq!(
        refused(&reply),
        (StatusCode::FORBIDDEN, json!("PROOF_INVALID"))
    );
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        reply.body
    );
    let in_time = proof(&api, &buyer, drop).await;
    let entered = open(&api, &buyer, "entry", drop, Some(&in_time)).await;
    assert_eq!(entered.status, StatusCode::CREATED, "{}", entered.body);
}

/// The page's server function is the same door: no proof, no entry; its own proof, in.
async fn the_pages_server_function_takes_the_same_proof(backend: Backend) {
    let api = Api::configured(backend, cheap_proofs).await;
    let drop = drop_for(&api, "entry").await;
    let buyer = api.sign_in("page buyer").await;
    let form = |extra: &str| format!("drop_id={drop}&mode=draw{extra}");
    let send = |body: String| {
        let api = &api;
        let buyer = buyer.clone();
        async move {
            api.form("/rpc/join_queue", &body, Auth::Cookie(&buyer))
                .await
        }
    };
    let bare = send(form("")).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN, "{}", bare.body);
    assert_eq!(bare.body["code"], "PROOF_REQUIRED", "{}", bare.body);
    let rpc = api
        .form(
            "/rpc/proof_challenge",
            &format!("drop_id={drop}"),
            Auth::Cookie(&buyer),
        )
        .await;
    assert_eq!(rpc.status, StatusCode::OK, "{}", rpc.body);
    let issued: Challenge = serde_json::from_str(rpc.body.as_str().unwrap()).unwrap();
    let proof = solve(issued);
    let encoded: String = form_urlencoded::byte_serialize(proof.as_bytes()).collect();
    let entered = send(form(&format!("&proof={encoded}"))).await;
    assert_eq!(entered.status, StatusCode::OK, "{}", entered.body);
    assert_eq!(entered.body["state"], "entered", "{}", entered.body);
}

/// A shop that asks no proof issues no challenge, and its doors open without one.
async fn no_floor_no_proof(backend: Backend) {
    let api = Api::configured(backend, |s| {
        cheap_proofs(s);
        s.proof_floor = 0;
    })
    .await;
    let drop = drop_for(&api, "queue").await;
    let buyer = api.sign_in("buyer").await;
    let reply = api
        .call(
            "GET",
            &format!("/api/v1/drops/{drop}/challenge"),
            None,
            Auth::Cookie(&buyer),
        )
        .await;
    assert_eq!(reply.body, json!({ "challenge": null }));
    let joined = open(&api, &buyer, "queue", drop, None).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
}

on_both_databases!(
    a_join_takes_a_fresh_proof_of_its_own_buyer_and_drop,
    an_expired_proof_is_refused,
    the_pages_server_function_takes_the_same_proof,
    no_floor_no_proof,
);
