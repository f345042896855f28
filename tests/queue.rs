//! A drop sold through a queue: a lobby put in a random order at go-live that anyone can
//! recompute, buyers let in at the rate the stock absorbs and never more, reserves only on
//! one's turn, and a line that is told when it is over. A drop sold by draw: entries drawn
//! once, in an order anyone can recompute, each winner holding a unit from the draw itself and
//! an unused one passing down the waitlist, never back on sale.

mod common;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use common::{verified, wait_until, Api, Auth, Backend, Client, TestDb};
use dropline::{model::LiveEvent, server::settings::Settings};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

/// Limits that would turn a test's crowd of buyers away, lifted.
fn crowd(settings: &mut Settings) {
    settings.rate_limit_ip_per_second = 1_000_000;
    settings.rate_limit_ip_burst = 1_000_000;
    settings.rate_limit_session_per_second = 1_000;
    settings.rate_limit_session_burst = 1_000;
}

/// A queue drop of `stock` units whose lobby is open now and whose go-live is an hour away
/// (tests bring it forward with [`go_live`]); answers its JSON.
async fn queue_drop(api: &Api, stock: i64) -> Value {
    let now = Utc::now();
    let reply = api
        .create_drop(json!({
            "name": "Queue Runner",
            "price_cents": 100,
            "total_stock": stock,
            "sale_mode": "queue",
            "starts_at": now + chrono::Duration::hours(1),
            "queue_opens_at": now - chrono::Duration::seconds(1),
        }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["drop"].clone()
}

/// Brings the drop's go-live to now, as if the hour had passed: the queue worker then puts the
/// lobby in order.
async fn go_live(db: &TestDb, drop: i64) {
    // Joins answered before this have a joined_at before it (millisecond clock).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = match db.backend {
        Backend::Sqlite => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
        Backend::Postgres => "dropline_now_ms()",
    };
    db.execute(&format!(
        "UPDATE drops SET starts_at = {now} WHERE id = {drop}"
    ))
    .await;
}

async fn join(api: &Api, cookie: &str, drop: i64) -> common::Reply {
    api.call(
        "POST",
        &format!("/api/v1/drops/{drop}/queue"),
        None,
        Auth::Cookie(cookie),
    )
    .await
}

/// `GET /queue/me` for the buyer.
async fn ticket_reply(api: &Api, cookie: &str, drop: i64) -> common::Reply {
    api.call(
        "GET",
        &format!("/api/v1/drops/{drop}/queue/me"),
        None,
        Auth::Cookie(cookie),
    )
    .await
}

/// The buyer's ticket as `GET /queue/me` answers it.
async fn ticket(api: &Api, cookie: &str, drop: i64) -> Value {
    let reply = ticket_reply(api, cookie, drop).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["ticket"].clone()
}

/// The whole audit as anyone gets it: `GET /api/v1/drops/{drop}/audit` (final from go-live),
/// with every page of `GET .../audit/later` (what came after) added in: a queue's later
/// tickets to its `tickets`, a draw's moves as `waitlist_moves`.
async fn audit(api: &Api, drop: i64) -> common::Reply {
    let mut reply = api
        .call(
            "GET",
            &format!("/api/v1/drops/{drop}/audit"),
            None,
            Auth::None,
        )
        .await;
    if reply.status != StatusCode::OK {
        return reply;
    }
    let mut after = Some(0);
    let mut moves = Vec::new();
    while let Some(from) = after {
        let page = api
            .call(
                "GET",
                &format!("/api/v1/drops/{drop}/audit/later?after={from}&limit=2"),
                None,
                Auth::None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let later = &page.body["later"];
        let tickets = reply.body["audit"]["tickets"].as_array_mut().unwrap();
        tickets.extend(later["tickets"].as_array().unwrap().iter().cloned());
        moves.extend(later["waitlist_moves"].as_array().unwrap().iter().cloned());
        after = later["next_after"].as_i64();
    }
    if reply.body["audit"]["sale_mode"] == "draw" {
        reply.body["audit"]["waitlist_moves"] = Value::Array(moves);
    }
    reply
}

/// Waits until the buyer's ticket is in `state`; answers it.
async fn ticket_in(api: &Api, cookie: &str, drop: i64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = ticket(api, cookie, drop).await;
        if now["state"] == state {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "ticket never became {state}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Signs in `n` buyers.
async fn buyers(api: &Api, n: usize) -> Vec<String> {
    let mut cookies = Vec::with_capacity(n);
    for i in 0..n {
        cookies.push(api.sign_in(&format!("buyer {i}")).await);
    }
    cookies
}

fn sha256_hex(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

/// Spearman's rank correlation of two rankings of the same items (1-based, no ties).
fn spearman(a: &[i64], b: &[i64]) -> f64 {
    let n = a.len() as f64;
    let d2: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

async fn the_lobby_order_is_random_and_anyone_can_recompute_it(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let drop = queue_drop(&api, 10).await;
    let id = drop["id"].as_i64().unwrap();
    let published = drop["seed_sha256"].as_str().unwrap().to_string();
    assert_eq!(published.len(), 64);
    assert!(
        drop.get("seed").is_none(),
        "the seed is secret before go-live"
    );
    // Before go-live there is nothing to audit.
    let early = audit(&api, id).await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.body["error"]["code"], "NOT_STARTED");

    // 1,000 buyers join one after another.
    let cookies = buyers(&api, 1000).await;
    let mut joined = Vec::new();
    for cookie in &cookies {
        let reply = join(&api, cookie, id).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert!(
            reply.body["ticket"]["place"].is_null(),
            "no place before go-live"
        );
        joined.push(reply.body["ticket"]["id"].as_str().unwrap().to_string());
    }
    // Joining again is the same ticket.
    let again = join(&api, &cookies[0], id).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["ticket"]["id"], joined[0].as_str());

    go_live(&api.db, id).await;
    let first = ticket_in(&api, &cookies[0], id, "waiting").await;
    let lined_up = wait_until(Duration::from_secs(10), || async {
        !ticket(&api, &cookies[0], id).await["place"].is_null()
    })
    .await;
    assert!(lined_up, "go-live put nobody in order: {first}");
    let mut told = HashMap::new();
    for (cookie, ticket_id) in cookies.iter().zip(&joined) {
        let mine = ticket(&api, cookie, id).await;
        assert_eq!(mine["id"], ticket_id.as_str());
        told.insert(ticket_id.clone(), mine["place"].as_i64().unwrap());
    }

    // Fair: where a buyer stands has nothing to do with when they joined.
    let join_order: Vec<i64> = (1..=1000).collect();
    let places: Vec<i64> = joined.iter().map(|t| told[t]).collect();
    let rho = spearman(&join_order, &places);
    assert!(rho.abs() <= 0.1, "join order and place correlate: {rho}");

    // The audit: the seed behind the published hash, and every place as the rule gives it.
    let reply = audit(&api, id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let audit = &reply.body["audit"];
    let seed = audit["seed"].as_str().unwrap();
    assert_eq!(seed.len(), 64);
    assert_eq!(sha256_hex(seed), published);
    assert!(!reply.body.to_string().contains("buyer "), "no names");
    let tickets = audit["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 1000);
    assert!(tickets.iter().all(|t| t.get("user_id").is_none()));
    let mut recomputed: Vec<&str> = tickets.iter().map(|t| t["id"].as_str().unwrap()).collect();
    recomputed.sort_by_cached_key(|t| sha256_hex(&format!("{seed}:{t}")));
    for (place, ticket_id) in (1..).zip(recomputed) {
        assert_eq!(told[ticket_id], place, "ticket {ticket_id}");
    }
    // And the verifier README gives anyone agrees.
    let printed = verified(&api, id).await;
    assert!(printed.starts_with("ok"), "{printed}");
    // Ordered by its seed, the drop has no sealed list to prove a ticket in.
    let proof = api
        .call(
            "GET",
            &format!("/api/v1/drops/{id}/entries/{}/proof", joined[0]),
            None,
            Auth::None,
        )
        .await;
    assert_eq!(proof.status, StatusCode::CONFLICT, "{}", proof.body);
    assert_eq!(proof.body["error"]["code"], "NOT_SEALED");
    // The drop shows its seed from go-live on.
    let shown = api
        .call("GET", &format!("/api/v1/drops/{id}"), None, Auth::None)
        .await;
    assert_eq!(shown.body["drop"]["seed"], seed);
}

/// These buyers join the lobby, and the queue goes live and is put in order.
async fn live_with_lobby(api: &Api, id: i64, lobby: &[String]) {
    for cookie in lobby {
        assert_eq!(join(api, cookie, id).await.status, StatusCode::CREATED);
    }
    go_live(&api.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            !ticket(api, &lobby[0], id).await["place"].is_null()
        })
        .await
    );
}

async fn later_arrivals_join_the_back_in_arrival_order(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let id = queue_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 5).await;
    live_with_lobby(&api, id, &cookies[..3]).await;
    for cookie in &cookies[3..] {
        assert_eq!(join(&api, cookie, id).await.status, StatusCode::CREATED);
    }
    let late: Vec<i64> = futures::future::join_all(
        cookies[3..]
            .iter()
            .map(|cookie| async { ticket(&api, cookie, id).await["place"].as_i64().unwrap() }),
    )
    .await;
    assert_eq!(late, vec![4, 5]);
    assert!(verified(&api, id).await.starts_with("ok"));
}

/// A buyer who joined after go-live, leaves before their turn and joins again goes to the back
/// with a new ticket; the old one keeps its place, so the places have no gap and the
/// check of an honest server's audit passes (it failed when the rejoin moved the old ticket
/// to the back, leaving its place empty).
async fn leaving_and_joining_again_after_go_live_leaves_no_gap(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let id = queue_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 7).await;
    live_with_lobby(&api, id, &cookies[..5]).await;
    // Two arrive after go-live, sixth and seventh; one unit lets one buyer in, so both wait.
    let sixth = join(&api, &cookies[5], id).await.body["ticket"].clone();
    assert_eq!(
        join(&api, &cookies[6], id).await.status,
        StatusCode::CREATED
    );
    assert_eq!(ticket(&api, &cookies[5], id).await["place"], 6);
    let left = api
        .call(
            "DELETE",
            &format!("/api/v1/drops/{id}/queue/me"),
            None,
            Auth::Cookie(&cookies[5]),
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    let again = join(&api, &cookies[5], id).await;
    assert_eq!(ticket(&api, &cookies[5], id).await["place"], 8);
    let printed = verified(&api, id).await;
    assert!(
        printed.starts_with("ok: 5 drawn in the lobby, 3 joined later"),
        "{printed}"
    );
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let new_id = again.body["ticket"]["id"].as_str().unwrap();
    assert_ne!(
        new_id, sixth["id"],
        "a rejoin after go-live is a new ticket"
    );
    // Joining once more is the same new ticket.
    assert_eq!(
        join(&api, &cookies[5], id).await.body["ticket"]["id"],
        new_id
    );
    // The audit's later part says where the old ticket went.
    let tickets = audit(&api, id).await.body["audit"]["tickets"].clone();
    let old = tickets
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == sixth["id"])
        .expect("the old ticket stays in the audit")
        .clone();
    assert_eq!(old["place"], 6);
    assert_eq!(old["rejoined_as"], new_id);
}

/// Whether `receipt` is signed by the hex Ed25519 key `key` over the message README documents.
fn receipt_verifies(receipt: &Value, key: &str) -> bool {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    let bytes = |hex_text: &Value| hex::decode(hex_text.as_str().unwrap()).unwrap();
    let Ok(key) = <[u8; 32]>::try_from(hex::decode(key).unwrap()) else {
        return false;
    };
    let Ok(signature) = <[u8; 64]>::try_from(bytes(&receipt["signature"])) else {
        return false;
    };
    let message = format!(
        "dropline receipt v1\ndrop {}\nticket {}\nissued_at {}",
        receipt["drop_id"],
        receipt["ticket"].as_str().unwrap(),
        receipt["issued_at_ms"]
    );
    VerifyingKey::from_bytes(&key).is_ok_and(|key| {
        key.verify(message.as_bytes(), &Signature::from_bytes(&signature))
            .is_ok()
    })
}

/// Joining answers a receipt signed with the key the audit names. When the operator rewrites
/// the stored audit to leave a ticket out, its buyer's receipt still verifies under the
/// published key and names a ticket the audit lacks: the proof that it was issued. A receipt
/// whose ticket is changed does not verify.
async fn a_receipt_proves_a_ticket_the_audit_left_out(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let id = queue_drop(&api, 2).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 3).await;
    let mut receipts = Vec::new();
    for cookie in &cookies {
        let reply = join(&api, cookie, id).await;
        assert_eq!(reply.body["receipt"]["ticket"], reply.body["ticket"]["id"]);
        receipts.push(reply.body["receipt"].clone());
    }
    go_live(&api.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            audit(&api, id).await.status == StatusCode::OK
        })
        .await
    );
    let honest = audit(&api, id).await.body;
    let key = honest["audit"]["receipt_key"].as_str().unwrap().to_string();
    assert!(receipts.iter().all(|r| r["public_key"] == key.as_str()));
    assert!(receipts.iter().all(|r| receipt_verifies(r, &key)));
    let mut forged = receipts[0].clone();
    forged["ticket"] = receipts[1]["ticket"].clone();
    assert!(!receipt_verifies(&forged, &key));

    // The operator leaves the first ticket out of the stored audit.
    let left_out = receipts[0]["ticket"].as_str().unwrap();
    let mut doc = honest.clone();
    doc["audit"]["tickets"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["id"] != left_out);
    api.db
        .execute(&format!(
            "UPDATE final_audits SET document = '{doc}' WHERE drop_id = {id}"
        ))
        .await;
    let fresh = Api::on_with(api.db.clone(), crowd).await;
    let shown = audit(&fresh, id).await.body;
    let ids: Vec<&str> = shown["audit"]["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(!ids.contains(&left_out), "the rewrite did not take");
    let published = shown["audit"]["receipt_key"].as_str().unwrap();
    assert!(
        receipt_verifies(&receipts[0], published),
        "the receipt proves it was issued"
    );
    // The verifier, given the buyers' receipts, refuses the rewritten audit; it accepts the
    // receipts themselves, and refuses the forged one.
    let held: Vec<dropline_verify::Receipt> = receipts
        .iter()
        .map(|r| serde_json::from_value(r.clone()).unwrap())
        .collect();
    let refused = common::verify_audit(&fresh, id, &held).await.unwrap_err();
    assert!(
        refused.contains("the final audit leaves it out"),
        "{refused}"
    );
    assert!(!refused.contains("receipt"), "{refused}");
    let forged: dropline_verify::Receipt = serde_json::from_value(forged).unwrap();
    let refused = common::verify_audit(&fresh, id, &[forged])
        .await
        .unwrap_err();
    assert!(
        refused.contains("is not one this server signed"),
        "{refused}"
    );
}

/// A queue whose lobby of five and two later arrivals are in line, one unit's admission done,
/// and whose sixth buyer left after go-live and joined again (a new ticket, at place 8):
/// answers the drop, with the buyers' receipts. Its audit is an honest server's.
async fn rejoined_line(api: &Api) -> (i64, Vec<dropline_verify::Receipt>) {
    let id = queue_drop(api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(api, 7).await;
    let mut receipts = Vec::new();
    let mut receipt = |reply: common::Reply| {
        assert!(reply.status.is_success(), "{}", reply.body);
        receipts.push(serde_json::from_value(reply.body["receipt"].clone()).unwrap());
    };
    for cookie in &cookies[..5] {
        receipt(join(api, cookie, id).await);
    }
    go_live(&api.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            for cookie in &cookies[..5] {
                if ticket(api, cookie, id).await["state"] == "admitted" {
                    return true;
                }
            }
            false
        })
        .await,
        "nobody was admitted"
    );
    for cookie in &cookies[5..] {
        receipt(join(api, cookie, id).await);
    }
    let left = api
        .call(
            "DELETE",
            &format!("/api/v1/drops/{id}/queue/me"),
            None,
            Auth::Cookie(&cookies[5]),
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    receipt(join(api, &cookies[5], id).await);
    assert_eq!(ticket(api, &cookies[5], id).await["place"], 8);
    (id, receipts)
}

/// The verifier checks an honest queue's whole audit — the committed seed, every place, the
/// admission, the leave and the rejoin after go-live, every receipt — and accepts it.
async fn the_verifier_accepts_an_honest_queue_with_a_rejoin(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let (id, receipts) = rejoined_line(&api).await;
    let printed = common::verify_audit(&api, id, &receipts).await;
    let printed = printed.unwrap_or_else(|faults| panic!("{faults}"));
    assert!(
        printed.starts_with("ok: 5 drawn in the lobby, 3 joined later, 1 admitted in place order"),
        "{printed}"
    );
    assert!(
        printed.contains("8 tickets issued; 8 receipts match"),
        "{printed}"
    );
}

/// A buyer who joined from the web page (no receipt in its answer) fetches one for their
/// ticket; the verifier accepts it with the audit. A buyer without a ticket, or signed out,
/// gets none.
async fn a_buyer_fetches_a_receipt_for_their_ticket(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let id = queue_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 3).await;
    live_with_lobby(&api, id, &cookies[..2]).await;
    let path = format!("/api/v1/drops/{id}/receipt");
    let reply = api
        .call("GET", &path, None, Auth::Cookie(&cookies[0]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body["ticket"],
        ticket(&api, &cookies[0], id).await["id"]
    );
    let receipt: dropline_verify::Receipt = serde_json::from_value(reply.body).unwrap();
    let printed = common::verify_audit(&api, id, &[receipt]).await;
    assert!(
        printed
            .as_ref()
            .is_ok_and(|p| p.contains("1 receipts match")),
        "{printed:?}"
    );
    let none = api
        .call("GET", &path, None, Auth::Cookie(&cookies[2]))
        .await;
    assert_eq!(none.status, StatusCode::NOT_FOUND, "{}", none.body);
    assert_eq!(none.body["error"]["code"], "TICKET_NOT_FOUND");
    let signed_out = api.call("GET", &path, None, Auth::None).await;
    assert_eq!(
        signed_out.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        signed_out.body
    );
}

/// A lone SQLite server without a session secret keeps the key it signs receipts with in its
/// database: a receipt from before a restart still verifies under the audit made after it
/// (it failed when each start drew a new key: an honest server's audit was refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_outlives_a_restart_without_a_secret() {
    let unkeyed = |s: &mut Settings| {
        crowd(s);
        s.session_secret = String::new();
    };
    let api = Api::configured(Backend::Sqlite, unkeyed).await;
    let id = queue_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookie = api.sign_in("buyer").await;
    let reply = join(&api, &cookie, id).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let receipt: dropline_verify::Receipt =
        serde_json::from_value(reply.body["receipt"].clone()).unwrap();
    let restarted = Api::on_with(api.db.clone(), unkeyed).await;
    assert_eq!(
        restarted.state.receipts.public_hex(),
        receipt.public_key,
        "the restarted server signs with another key"
    );
    go_live(&restarted.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            audit(&restarted, id).await.status == StatusCode::OK
        })
        .await
    );
    let printed = common::verify_audit(&restarted, id, &[receipt]).await;
    assert!(
        printed
            .as_ref()
            .is_ok_and(|p| p.contains("1 receipts match")),
        "{printed:?}"
    );
}

/// The operator drops a ticket from the published stories: from the middle of the line, the
/// places have a gap; renumbered to hide it, the buyer's receipt names a ticket the audit
/// leaves out. The verifier refuses both.
async fn a_dropped_ticket_fails_the_verifier(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let (id, receipts) = rejoined_line(&api).await;
    let (audit, honest) = common::fetch_audit(&api, id).await;
    assert!(common::checked(id, &audit, &honest, &receipts).is_ok());
    let mut tickets = honest.clone();
    let dropped = tickets
        .iter()
        .position(|t| t.place == Some(7))
        .expect("a ticket at place 7");
    let gone = tickets.remove(dropped);
    let refused = common::checked(id, &audit, &tickets, &[]).unwrap_err();
    assert!(refused.contains("place 7 is missing"), "{refused}");
    for ticket in &mut tickets {
        if ticket.place == Some(8) {
            ticket.place = Some(7);
        }
    }
    assert!(
        common::checked(id, &audit, &tickets, &[]).is_ok(),
        "without the receipt the hiding is complete"
    );
    let refused = common::checked(id, &audit, &tickets, &receipts).unwrap_err();
    assert_eq!(
        refused,
        format!(
            "the server signed a receipt for ticket {}, which its audit leaves out",
            gone.id
        )
    );
}

/// The operator lets the second in line in before the first: the stories show the first
/// still waiting when the second's turn came, and the verifier refuses it.
async fn an_admission_out_of_order_fails_the_verifier(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let (id, _) = rejoined_line(&api).await;
    let (audit, mut tickets) = common::fetch_audit(&api, id).await;
    let at = |tickets: &[dropline_verify::History], place| {
        tickets.iter().position(|t| t.place == Some(place)).unwrap()
    };
    let (first, second) = (at(&tickets, 1), at(&tickets, 2));
    assert!(tickets[first].admitted_at.is_some() && tickets[second].admitted_at.is_none());
    tickets[second].admitted_at = tickets[first].admitted_at.take();
    let refused = common::checked(id, &audit, &tickets, &[]).unwrap_err();
    assert_eq!(
        refused,
        format!(
            "admitted ticket {} (place Some(2)) at {} while ticket {} (place Some(1)) ahead of it \
             still waited",
            tickets[second].id,
            tickets[second].admitted_at.unwrap(),
            tickets[first].id
        )
    );
}

/// A draw for one unit among four: the winner gives theirs back after the second withdrew
/// from the waitlist, so it passes to the third. The verifier accepts the honest audit, and
/// refuses it when the stories hide the withdrawal: a unit passed over an entry still waiting.
async fn a_skipped_waitlist_entry_fails_the_verifier(backend: Backend) {
    let api = Api::configured(backend, |s| {
        crowd(s);
        s.queue_tick_ms = 50;
    })
    .await;
    let id = draw_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 4).await;
    for cookie in &cookies {
        entry_call(&api, "POST", cookie, id).await;
    }
    draw_now(&api, id, &cookies[0]).await;
    let mut by_place = Vec::new();
    for cookie in &cookies {
        let place = entry(&api, cookie, id).await["place"].as_i64().unwrap();
        by_place.push((place, cookie.clone()));
    }
    by_place.sort();
    let [first, second, third] = [&by_place[0].1, &by_place[1].1, &by_place[2].1];
    let withdrawn = entry_call(&api, "DELETE", second, id).await;
    assert_eq!(withdrawn.status, StatusCode::OK, "{}", withdrawn.body);
    let hold = live_holds(&api, first, id).await[0]["id"].as_i64().unwrap();
    assert_eq!(api.cancel(first, hold).await.status, StatusCode::OK);
    entry_in(&api, third, id, "won").await;
    let printed = verified(&api, id).await;
    assert!(
        printed.starts_with("ok: 4 entries, 1 won, 1 passed down the waitlist"),
        "{printed}"
    );

    let (audit, mut tickets) = common::fetch_audit(&api, id).await;
    let second = tickets.iter().position(|t| t.place == Some(2)).unwrap();
    assert_eq!(tickets[second].state, "withdrawn");
    tickets[second].left_at = None;
    tickets[second].state = "waitlisted".into();
    let refused = common::checked(id, &audit, &tickets, &[]).unwrap_err();
    assert!(
        refused.starts_with("a unit passed to ticket ")
            && refused.contains(&format!(
                "while ticket {} (place Some(2))",
                tickets[second].id
            )),
        "{refused}"
    );
}

/// Joins `cookie`'s buyer to drop `drop`'s queue (`/queue`) or draw (`/entry`) from `from`.
async fn join_from(api: &Api, from: &str, door: &str, cookie: &str, drop: i64) -> common::Reply {
    let peer: std::net::SocketAddr = from.parse().unwrap();
    let path = format!("/api/v1/drops/{drop}/{door}");
    api.call_from(peer, "POST", &path, None, Auth::Cookie(cookie), &[])
        .await
}

/// A bot farm has many accounts and few networks. With caps of 3 tickets per IPv4 /24 and 1
/// per IPv6 /64, one /24 gets 3 places and the rest of it `NETWORK_CAP_REACHED`; another
/// network still gets in; a /64 gets one; a buyer who leaves and joins again takes no second
/// share; a draw's entries count the same.
async fn a_network_gets_at_most_its_cap_of_tickets(backend: Backend) {
    let api = Api::configured(backend, |s| {
        crowd(s);
        s.join_cap_per_ipv4_24 = 3;
        s.join_cap_per_ipv6_64 = 1;
    })
    .await;
    let id = queue_drop(&api, 5).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 9).await;
    let mut statuses = Vec::new();
    for (i, cookie) in cookies[..5].iter().enumerate() {
        let reply = join_from(
            &api,
            &format!("203.0.113.{}:4000", i + 1),
            "queue",
            cookie,
            id,
        )
        .await;
        statuses.push((reply.status, reply.body["error"]["code"].clone()));
    }
    let refused = (StatusCode::CONFLICT, json!("NETWORK_CAP_REACHED"));
    let joined = (StatusCode::CREATED, Value::Null);
    assert_eq!(
        statuses,
        [
            joined.clone(),
            joined.clone(),
            joined.clone(),
            refused.clone(),
            refused.clone()
        ]
    );
    assert_eq!(
        ticket_reply(&api, &cookies[3], id).await.status,
        StatusCode::NOT_FOUND
    );
    let other = join_from(&api, "198.51.100.7:4000", "queue", &cookies[5], id).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    let v6 = |addr: &str| format!("[{addr}]:4000");
    let first = join_from(&api, &v6("2001:db8::1"), "queue", &cookies[6], id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let same = join_from(&api, &v6("2001:db8::ffff:1"), "queue", &cookies[7], id).await;
    assert_eq!(
        same.body["error"]["code"], "NETWORK_CAP_REACHED",
        "{}",
        same.body
    );
    let next = join_from(&api, &v6("2001:db8:0:1::1"), "queue", &cookies[7], id).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);

    // Leaving and joining again from the /24: a new ticket, the same share.
    let left = api
        .call(
            "DELETE",
            &format!("/api/v1/drops/{id}/queue/me"),
            None,
            Auth::Cookie(&cookies[0]),
        )
        .await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    let back = join_from(&api, "203.0.113.1:4000", "queue", &cookies[0], id).await;
    assert_eq!(back.status, StatusCode::CREATED, "{}", back.body);
    let still = join_from(&api, "203.0.113.9:4000", "queue", &cookies[3], id).await;
    assert_eq!(
        still.body["error"]["code"], "NETWORK_CAP_REACHED",
        "{}",
        still.body
    );

    // A draw counts its entries the same way.
    let draw = draw_drop(&api, 1).await["id"].as_i64().unwrap();
    for (i, cookie) in cookies[..4].iter().enumerate() {
        let reply = join_from(
            &api,
            &format!("192.0.2.{}:4000", i + 1),
            "entry",
            cookie,
            draw,
        )
        .await;
        let expected = if i < 3 {
            StatusCode::CREATED
        } else {
            StatusCode::CONFLICT
        };
        assert_eq!(reply.status, expected, "{}", reply.body);
    }
}

/// `accounts_before`: accounts made for the drop after its cutoff are refused
/// `ACCOUNT_TOO_NEW` at the queue and the draw; one made before gets in; a first-come drop
/// takes no cutoff.
async fn an_account_made_after_the_cutoff_cannot_join(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let old = api.sign_in("old hand").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cutoff = Utc::now();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = api.sign_in("fresh face").await;
    let now = Utc::now();
    let mut ids = Vec::new();
    for mode in ["queue", "draw"] {
        let reply = api
            .create_drop(json!({
                "name": "Members Only",
                "price_cents": 100,
                "total_stock": 2,
                "sale_mode": mode,
                "starts_at": now + chrono::Duration::hours(1),
                "queue_opens_at": if mode == "queue" { json!(now - chrono::Duration::seconds(1)) } else { Value::Null },
                "accounts_before": cutoff,
            }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        ids.push(reply.body["drop"]["id"].as_i64().unwrap());
    }
    for (id, door) in ids.iter().zip(["queue", "entry"]) {
        let path = format!("/api/v1/drops/{id}/{door}");
        let refused = api.call("POST", &path, None, Auth::Cookie(&fresh)).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
        assert_eq!(refused.body["error"]["code"], "ACCOUNT_TOO_NEW");
        let welcome = api.call("POST", &path, None, Auth::Cookie(&old)).await;
        assert_eq!(welcome.status, StatusCode::CREATED, "{}", welcome.body);
    }
    let first_come = api
        .create_drop(json!({
            "name": "Anyone",
            "price_cents": 100,
            "total_stock": 2,
            "accounts_before": cutoff,
        }))
        .await;
    assert_eq!(
        first_come.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        first_come.body
    );
    assert_eq!(first_come.body["error"]["field"], "accounts_before");
}

async fn joins_at_once_give_each_buyer_one_ticket_and_one_place(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let id = queue_drop(&api, 5).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 60).await;
    // Every buyer joins twice at the same moment: they share batches.
    let replies = futures::future::join_all(
        cookies[..40]
            .iter()
            .flat_map(|cookie| [cookie, cookie])
            .map(|cookie| join(&api, cookie, id)),
    )
    .await;
    let mut tickets = std::collections::HashSet::new();
    for pair in replies.chunks(2) {
        let mut statuses = [pair[0].status, pair[1].status];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CREATED]);
        assert_eq!(pair[0].body["ticket"]["id"], pair[1].body["ticket"]["id"]);
        assert!(tickets.insert(pair[0].body["ticket"]["id"].to_string()));
    }
    go_live(&api.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            !ticket(&api, &cookies[0], id).await["place"].is_null()
        })
        .await
    );
    // Latecomers at once: the back of the line, one place each.
    let late =
        futures::future::join_all(cookies[40..].iter().map(|cookie| join(&api, cookie, id))).await;
    let mut places: Vec<i64> = late
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            reply.body["ticket"]["place"].as_i64().unwrap()
        })
        .collect();
    places.sort_unstable();
    assert_eq!(places, (41..=60).collect::<Vec<_>>());
}

async fn a_reserve_needs_the_buyers_turn(backend: Backend) {
    let api = Api::configured(backend, |s| {
        crowd(s);
        s.queue_admission_seconds = 1;
    })
    .await;
    let id = queue_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 3).await;
    let (a, b, outsider) = (&cookies[0], &cookies[1], &cookies[2]);
    join(&api, a, id).await;
    join(&api, b, id).await;
    // Before go-live nobody may reserve a queue drop; after it, not without a turn.
    go_live(&api.db, id).await;
    let refused = api.reserve(outsider, id).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "NOT_ADMITTED");
    // One unit: one buyer in (1 x 1.5 rounds down to 1), the other waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (admitted, waiting) = loop {
        let (ta, tb) = (ticket(&api, a, id).await, ticket(&api, b, id).await);
        match (ta["state"].as_str(), tb["state"].as_str()) {
            (Some("admitted"), _) => break (a, b),
            (_, Some("admitted")) => break (b, a),
            _ => {}
        }
        assert!(Instant::now() < deadline, "nobody admitted: {ta} {tb}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let waiting_ticket = ticket(&api, waiting, id).await;
    assert_eq!(waiting_ticket["state"], "waiting");
    assert_eq!(waiting_ticket["place"], 2);
    assert_eq!(waiting_ticket["ahead"], 0);
    let not_yet = api.reserve(waiting, id).await;
    assert_eq!(not_yet.body["error"]["code"], "NOT_ADMITTED");
    // The server function path is held to the same rule.
    let rpc = api
        .form(
            "/rpc/reserve_unit",
            &format!("drop_id={id}"),
            Auth::Cookie(waiting),
        )
        .await;
    assert_eq!(rpc.status, StatusCode::CONFLICT, "{}", rpc.body);
    assert_eq!(rpc.body["code"], "NOT_ADMITTED", "{}", rpc.body);
    // Let the admitted buyer's turn lapse: then they are refused too, and the next one is in.
    let lapsed = ticket_in(&api, admitted, id, "lapsed").await;
    assert!(lapsed["admitted_until"].is_string());
    assert_eq!(
        api.reserve(admitted, id).await.body["error"]["code"],
        "NOT_ADMITTED"
    );
    ticket_in(&api, waiting, id, "admitted").await;
    let held = api.reserve(waiting, id).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    // A reserve uses the turn: cancelling and reserving again is refused.
    assert_eq!(ticket(&api, waiting, id).await["state"], "used");
    let hold = held.body["reservation"]["id"].as_i64().unwrap();
    let cancel = api.cancel(waiting, hold).await;
    assert_eq!(cancel.status, StatusCode::OK);
    assert_eq!(
        api.reserve(waiting, id).await.body["error"]["code"],
        "NOT_ADMITTED"
    );
}

async fn selling_the_last_unit_tells_the_line_it_is_over(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let addr = api.listen().await;
    let id = queue_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 3).await;
    for cookie in &cookies {
        join(&api, cookie, id).await;
    }
    go_live(&api.db, id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (winner, others) = loop {
        let mut states = Vec::new();
        for cookie in &cookies {
            states.push(ticket(&api, cookie, id).await["state"].clone());
        }
        if let Some(i) = states.iter().position(|s| s == "admitted") {
            let others: Vec<&String> = (0..3).filter(|j| *j != i).map(|j| &cookies[j]).collect();
            break (&cookies[i], others);
        }
        assert!(Instant::now() < deadline, "nobody admitted: {states:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut sockets = Vec::new();
    for cookie in &others {
        let mut socket = Client::connect(addr, Some(cookie)).await;
        let drops = socket.snapshot().await;
        let line = drops.iter().find(|d| d.id.0 == id).unwrap().queue.unwrap();
        assert!(line.live && !line.closed);
        sockets.push(socket);
    }
    let held = api.reserve(winner, id).await;
    let hold = held.body["reservation"]["id"].as_i64().unwrap();
    let bought = api.purchase(winner, hold).await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);
    let sold = Instant::now();
    for socket in &mut sockets {
        let told = loop {
            let wait = Duration::from_secs(2).saturating_sub(sold.elapsed());
            match socket.next_within(wait).await {
                Some(LiveEvent::QueueMoved { drop_id, line, .. })
                    if drop_id.0 == id && line.closed =>
                {
                    break true
                }
                Some(_) => {}
                None => break false,
            }
        };
        assert!(told, "a waiting buyer was not told 'sold out' within 2 s");
    }
    for cookie in &others {
        assert_eq!(ticket(&api, cookie, id).await["state"], "closed");
    }
    let late = api.sign_in("late").await;
    let refused = join(&api, &late, id).await;
    assert_eq!(refused.body["error"]["code"], "OUT_OF_STOCK");
}

/// A queue drop sold by size: the line is let in against the units of every size, an admitted
/// buyer picks a size when reserving (a size gone is refused while another still sells), and
/// when every size is sold the line closes, as with one size.
async fn a_queue_sold_by_size_admits_against_every_size(backend: Backend) {
    let api = Api::configured(backend, |s| {
        crowd(s);
        s.queue_over_admission = 1.0;
    })
    .await;
    let now = Utc::now();
    let reply = api
        .create_drop(json!({
            "name": "Sized Queue Runner",
            "price_cents": 100,
            "sizes": [{ "label": "US 9", "stock": 1 }, { "label": "US 10", "stock": 1 }],
            "sale_mode": "queue",
            "starts_at": now + chrono::Duration::hours(1),
            "queue_opens_at": now - chrono::Duration::seconds(1),
        }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let id = reply.body["drop"]["id"].as_i64().unwrap();
    let cookies = buyers(&api, 3).await;
    for cookie in &cookies {
        assert_eq!(join(&api, cookie, id).await.status, StatusCode::CREATED);
    }
    go_live(&api.db, id).await;
    // Two units in all, of two sizes: two buyers in (1.0 x 2), the third waits.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (first, second, last) = loop {
        let mut admitted = Vec::new();
        let mut waiting = Vec::new();
        for cookie in &cookies {
            match ticket(&api, cookie, id).await["state"].as_str() {
                Some("admitted") => admitted.push(cookie),
                _ => waiting.push(cookie),
            }
        }
        if admitted.len() == 2 {
            break (admitted[0], admitted[1], waiting[0]);
        }
        assert!(admitted.len() < 2, "over-admitted: {admitted:?}");
        assert!(Instant::now() < deadline, "not admitted in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ticket(&api, last, id).await["state"], "waiting");
    let a = api.reserve_size(first, id, "US 9").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let gone = api.reserve_size(second, id, "US 9").await;
    assert_eq!(gone.body["error"]["code"], "OUT_OF_STOCK", "{}", gone.body);
    // The refusal did not use the turn: the other size is still theirs to take.
    let b = api.reserve_size(second, id, "US 10").await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    for (cookie, held) in [(first, &a), (second, &b)] {
        let hold = held.body["reservation"]["id"].as_i64().unwrap();
        assert_eq!(api.purchase(cookie, hold).await.status, StatusCode::CREATED);
    }
    // Every size sold: the line closes, and the one still waiting is told so.
    ticket_in(&api, last, id, "closed").await;
    let audit = invariant(&api, id).await;
    assert!(audit
        .sizes
        .iter()
        .all(|s| (s.available, s.purchases) == (0, 1)));
}

async fn a_queue_drop_is_checked_field_by_field(backend: Backend) {
    let api = Api::new(backend).await;
    let now = Utc::now();
    for (body, field) in [
        (
            json!({"name": "Q", "price_cents": 1, "total_stock": 1, "sale_mode": "raffle"}),
            "sale_mode",
        ),
        (
            json!({"name": "Q", "price_cents": 1, "total_stock": 1, "sale_mode": "queue",
                "starts_at": now, "queue_opens_at": now + chrono::Duration::minutes(1)}),
            "queue_opens_at",
        ),
        (
            json!({"name": "Q", "price_cents": 1, "total_stock": 1,
                "queue_opens_at": now}),
            "queue_opens_at",
        ),
        // A draw needs its time, and its entries open before it.
        (
            json!({"name": "D", "price_cents": 1, "total_stock": 1, "sale_mode": "draw"}),
            "starts_at",
        ),
        (
            json!({"name": "D", "price_cents": 1, "total_stock": 1, "sale_mode": "draw",
                "starts_at": now, "entries_open_at": now}),
            "entries_open_at",
        ),
        (
            json!({"name": "Q", "price_cents": 1, "total_stock": 1, "sale_mode": "queue",
                "starts_at": now, "entries_open_at": now}),
            "entries_open_at",
        ),
    ] {
        let reply = api.create_drop(body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.body["error"]["field"], field, "{}", reply.body);
    }
    // Left out, the lobby opens 15 minutes before go-live.
    let starts: DateTime<Utc> = now + chrono::Duration::hours(2);
    let reply = api
        .create_drop(json!({"name": "Q", "price_cents": 1, "total_stock": 1,
            "sale_mode": "queue", "starts_at": starts}))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let opens: DateTime<Utc> = serde_json::from_value(reply.body["drop"]["queue_opens_at"].clone())
        .expect("queue_opens_at");
    assert_eq!(
        (starts - opens).num_seconds(),
        15 * 60,
        "{}",
        reply.body["drop"]
    );
    // Joining before the lobby opens is refused, and a first-come drop has no queue.
    let buyer = api.sign_in("early").await;
    let id = reply.body["drop"]["id"].as_i64().unwrap();
    assert_eq!(
        join(&api, &buyer, id).await.body["error"]["code"],
        "QUEUE_NOT_OPEN"
    );
    let plain = api.new_drop(3).await;
    assert_eq!(
        join(&api, &buyer, plain).await.body["error"]["code"],
        "NOT_A_QUEUE"
    );
}

/// What the test's sampler reads of a drop, in one consistent moment.
#[derive(sqlx::FromRow, Debug)]
struct Moment {
    unused: i64,
    holds: i64,
    sold: i64,
    total: i64,
}

const MOMENT: &str = "SELECT \
    (SELECT COUNT(*) FROM tickets WHERE drop_id = $1 AND state = 'admitted') AS unused, \
    (SELECT COUNT(*) FROM reservations WHERE drop_id = $1 AND status = 'ACTIVE') AS holds, \
    (SELECT COUNT(*) FROM purchases WHERE drop_id = $1) AS sold, \
    (SELECT total_stock FROM drops WHERE id = $1) AS total";

/// Reads one moment of the drop (a consistent snapshot on either database).
async fn moment(db: &TestDb, drop: i64) -> Moment {
    fetch_one(db, sqlx::AssertSqlSafe(MOMENT.to_string()), drop).await
}

/// One row of `sql` (with `$1` bound to `bind`) on the test database, outside any server.
async fn fetch_one<T>(db: &TestDb, sql: sqlx::AssertSqlSafe<String>, bind: i64) -> T
where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin,
{
    use sqlx::Connection;
    match db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(sql)
                .bind(bind)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_as(sql)
                .bind(bind)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    }
}

/// Buyers join, go-live, and then every admitted buyer does one of: buy, cancel, let the hold
/// expire, let the turn lapse, or leave — all at once, on `instances` servers sharing the
/// database — while a sampler checks the rule at every moment it looks.
async fn never_over_admitted(backend: Backend, instances: usize) {
    let db = Arc::new(TestDb::new(backend).await);
    let fast = |s: &mut Settings| {
        crowd(s);
        s.queue_admission_seconds = 1;
        s.reservation_ttl_seconds = 1;
        s.expiry_sweep_ms = 100;
        s.queue_admit_per_second = 1_000;
        // Passes back to back on every instance, so they contend for the drop all the time.
        s.queue_tick_ms = 5;
    };
    let mut servers = Vec::new();
    for _ in 0..instances {
        servers.push(Arc::new(Api::on_with(db.clone(), fast).await));
    }
    let stock = 20;
    let id = queue_drop(&servers[0], stock).await["id"].as_i64().unwrap();
    let cookies = buyers(&servers[0], 120).await;
    for (i, cookie) in cookies.iter().enumerate() {
        let api = &servers[i % instances];
        assert_eq!(join(api, cookie, id).await.status, StatusCode::CREATED);
    }

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (db, done) = (db.clone(), done.clone());
        tokio::spawn(async move {
            let mut worst = 0;
            let mut samples = 0;
            while !done.load(Ordering::Acquire) {
                let m = moment(&db, id).await;
                // In the shop (admitted-unused plus holding) plus sold never passes 1.5 x the
                // stock: the rule at each admission, carried through every reserve and sale.
                let in_shop = m.unused + m.holds + m.sold;
                assert!(
                    in_shop <= m.total * 3 / 2,
                    "over-admitted at a moment: {m:?}"
                );
                worst = worst.max(in_shop);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (worst, samples)
        })
    };
    go_live(&db, id).await;

    let shoppers = cookies.iter().enumerate().map(|(i, cookie)| {
        let api = servers[i % instances].clone();
        let cookie = cookie.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(40);
            loop {
                let mine = ticket(&api, &cookie, id).await;
                match mine["state"].as_str().unwrap() {
                    "admitted" => break,
                    "waiting" if i % 9 == 8 && !mine["place"].is_null() => {
                        let left = api
                            .call(
                                "DELETE",
                                &format!("/api/v1/drops/{id}/queue/me"),
                                None,
                                Auth::Cookie(&cookie),
                            )
                            .await;
                        assert_eq!(left.status, StatusCode::OK);
                        return;
                    }
                    "waiting" => {}
                    _ => return,
                }
                if Instant::now() > deadline {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if i % 4 == 3 {
                return; // The turn lapses.
            }
            let held = api.reserve(&cookie, id).await;
            if held.status != StatusCode::CREATED {
                return;
            }
            let hold = held.body["reservation"]["id"].as_i64().unwrap();
            match i % 4 {
                0 => {
                    api.purchase(&cookie, hold).await;
                }
                1 => {
                    api.cancel(&cookie, hold).await;
                }
                _ => {} // The hold expires.
            }
        }
    });
    futures::future::join_all(shoppers).await;
    // Let the last holds and turns run out, then stop looking.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    done.store(true, Ordering::Release);
    let (worst, samples) = sampler.await.expect("no moment broke the rule");
    assert!(samples > 20, "the sampler looked only {samples} times");
    assert!(worst > stock, "the line never filled the shop ({worst})");

    // No ticket was let in twice: the admissions counted by every instance are the tickets
    // that ever had a turn.
    let admissions: u64 = servers
        .iter()
        .map(|api| api.state.metrics.queue_admissions.get())
        .sum();
    let (had_turn,): (i64,) = fetch_one(
        &db,
        sqlx::AssertSqlSafe(
            "SELECT COUNT(*) FROM tickets WHERE drop_id = $1 AND admitted_until IS NOT NULL"
                .to_string(),
        ),
        id,
    )
    .await;
    assert_eq!(admissions, had_turn as u64);
    assert!(
        had_turn > stock,
        "over-admission let in more than the stock"
    );
    let audit = servers[0]
        .state
        .inventory
        .audit(dropline::model::DropId(id))
        .await
        .unwrap();
    assert!(audit.holds(), "stock invariant: {audit:?}");
}

async fn a_crowd_never_over_admits(backend: Backend) {
    never_over_admitted(backend, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_over_admit() {
    never_over_admitted(Backend::Postgres, 2).await;
}

/// A draw drop of `stock` units whose entries are open now and whose draw is an hour away
/// (tests bring it forward with [`go_live`]); answers its JSON.
/// Brings the draw forward to now and waits until it is made (the entry of `cookie` has left
/// `entered`).
async fn draw_now(api: &Api, id: i64, cookie: &str) {
    go_live(&api.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            entry(api, cookie, id).await["state"] != "entered"
        })
        .await,
        "the draw was never made"
    );
}

async fn draw_drop(api: &Api, stock: i64) -> Value {
    let now = Utc::now();
    let reply = api
        .create_drop(json!({
            "name": "Draw Runner",
            "price_cents": 100,
            "total_stock": stock,
            "sale_mode": "draw",
            "starts_at": now + chrono::Duration::hours(1),
        }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["drop"].clone()
}

async fn entry_call(api: &Api, method: &str, cookie: &str, drop: i64) -> common::Reply {
    api.call(
        method,
        &format!("/api/v1/drops/{drop}/entry"),
        None,
        Auth::Cookie(cookie),
    )
    .await
}

/// The buyer's entry as `GET /entry` answers it.
async fn entry(api: &Api, cookie: &str, drop: i64) -> Value {
    let reply = entry_call(api, "GET", cookie, drop).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["entry"].clone()
}

/// Waits until the buyer's entry is in `state`; answers it.
async fn entry_in(api: &Api, cookie: &str, drop: i64, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = entry(api, cookie, drop).await;
        if now["state"] == state {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "entry never became {state}: {now}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The buyer's live holds on the drop.
async fn live_holds(api: &Api, cookie: &str, drop: i64) -> Vec<Value> {
    let reply = api
        .call("GET", "/api/v1/me/reservations", None, Auth::Cookie(cookie))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["reservations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["drop_id"] == drop && r["status"] == "ACTIVE")
        .cloned()
        .collect()
}

/// Available + held + sold = total, and answers the drop's counts.
async fn invariant(api: &Api, drop: i64) -> dropline::server::store::StockAudit {
    let audit = api
        .state
        .inventory
        .audit(dropline::model::DropId(drop))
        .await
        .unwrap();
    assert!(audit.holds(), "stock invariant: {audit:?}");
    audit
}

async fn a_draw_is_reproducible_and_each_winner_holds_one_unit(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let drop = draw_drop(&api, 3).await;
    let id = drop["id"].as_i64().unwrap();
    assert_eq!(drop["sale_mode"], "draw");
    let published = drop["seed_sha256"].as_str().unwrap().to_string();
    assert!(
        drop.get("seed").is_none(),
        "the seed is secret before the draw"
    );
    let cookies = buyers(&api, 12).await;
    let mut entered = Vec::new();
    for cookie in &cookies {
        let reply = entry_call(&api, "POST", cookie, id).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert_eq!(reply.body["entry"]["state"], "entered");
        assert!(
            reply.body["entry"]["place"].is_null(),
            "no place before the draw"
        );
        entered.push(reply.body["entry"]["id"].as_str().unwrap().to_string());
    }
    let again = entry_call(&api, "POST", &cookies[0], id).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["entry"]["id"], entered[0].as_str());
    // The last buyer withdraws; another withdraws and enters again.
    let withdrawn = entry_call(&api, "DELETE", &cookies[11], id).await;
    assert_eq!(
        withdrawn.body["entry"]["state"], "withdrawn",
        "{}",
        withdrawn.body
    );
    entry_call(&api, "DELETE", &cookies[10], id).await;
    let back = entry_call(&api, "POST", &cookies[10], id).await;
    assert_eq!(back.body["entry"]["state"], "entered", "{}", back.body);
    // Back is a new entry; the withdrawn one stays, with its story, in the audit.
    let back_id = back.body["entry"]["id"].as_str().unwrap().to_string();
    assert_ne!(back_id, entered[10]);
    entered[10] = back_id;
    // A draw takes no reserve, and its door is not a queue's.
    let refused = api.reserve(&cookies[0], id).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "SOLD_BY_DRAW");
    assert_eq!(
        join(&api, &cookies[0], id).await.body["error"]["code"],
        "NOT_A_QUEUE"
    );
    assert_eq!(audit(&api, id).await.body["error"]["code"], "NOT_STARTED");

    draw_now(&api, id, &cookies[0]).await;
    let late = entry_call(&api, "POST", &cookies[11], id).await;
    assert_eq!(
        late.body["error"]["code"], "ENTRIES_CLOSED",
        "{}",
        late.body
    );

    // The audit: the seed behind the published hash; the order, the winners, recomputed.
    let reply = audit(&api, id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let audit = &reply.body["audit"];
    let seed = audit["seed"].as_str().unwrap();
    assert_eq!(sha256_hex(seed), published);
    let mut order: Vec<&str> = audit["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(order.len(), 11, "the withdrawn entry takes no part");
    assert!(!order.contains(&entered[11].as_str()));
    order.sort_by_cached_key(|t| sha256_hex(&format!("{seed}:{t}")));
    let winners: Vec<&str> = audit["winners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(winners, order[..3], "the winners are the first three drawn");
    assert!(verified(&api, id)
        .await
        .starts_with("ok: 11 entries, 3 won, 0 passed"));

    // Every entrant is told where they stand; each winner holds exactly one unit.
    for (cookie, entry_id) in cookies[..11].iter().zip(&entered) {
        let mine = entry(&api, cookie, id).await;
        let place = order.iter().position(|t| t == entry_id).unwrap() as i64 + 1;
        assert_eq!(mine["place"], place, "{mine}");
        let holds = live_holds(&api, cookie, id).await;
        if place <= 3 {
            assert_eq!(mine["state"], "won");
            assert_eq!(holds.len(), 1, "a winner holds one unit");
        } else {
            assert_eq!(mine["state"], "waitlisted");
            assert_eq!(mine["ahead"], place - 4, "{mine}");
            assert!(holds.is_empty());
        }
    }
    let gone = entry(&api, &cookies[11], id).await;
    assert_eq!(gone["state"], "withdrawn");
    assert!(gone["place"].is_null());
    let counts = invariant(&api, id).await;
    assert_eq!((counts.available, counts.active_holds), (0, 3));
}

async fn an_unused_win_passes_down_the_waitlist_and_never_back_on_sale(backend: Backend) {
    let api = Api::configured(backend, |s| {
        crowd(s);
        s.draw_claim_seconds = 1;
        s.expiry_sweep_ms = 100;
        s.queue_tick_ms = 50;
    })
    .await;
    let id = draw_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 3).await;
    for cookie in &cookies {
        entry_call(&api, "POST", cookie, id).await;
    }
    go_live(&api.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            entry(&api, &cookies[0], id).await["state"] != "entered"
        })
        .await
    );
    let mut by_place = Vec::new();
    for cookie in &cookies {
        let place = entry(&api, cookie, id).await["place"].as_i64().unwrap();
        by_place.push((place, cookie.clone()));
    }
    by_place.sort();
    let [first, second, third] = [&by_place[0].1, &by_place[1].1, &by_place[2].1];
    assert_eq!(entry(&api, first, id).await["state"], "won");
    assert_eq!(entry(&api, second, id).await["ahead"], 0);
    invariant(&api, id).await;

    // The winner cancels: the pair goes to the first on the waitlist, not back on sale.
    let hold = live_holds(&api, first, id).await[0]["id"].as_i64().unwrap();
    assert_eq!(api.cancel(first, hold).await.status, StatusCode::OK);
    invariant(&api, id).await;
    assert_eq!(
        api.reserve(&api.sign_in("fast finger").await, id)
            .await
            .body["error"]["code"],
        "SOLD_BY_DRAW"
    );
    entry_in(&api, second, id, "won").await;
    assert_eq!(live_holds(&api, second, id).await.len(), 1);
    assert_eq!(entry(&api, third, id).await["ahead"], 0);
    let counts = invariant(&api, id).await;
    assert_eq!((counts.available, counts.active_holds), (0, 1));

    // The next winner lets the claim run out: the last on the waitlist gets it.
    entry_in(&api, third, id, "won").await;
    assert_eq!(live_holds(&api, second, id).await.len(), 0);
    let counts = invariant(&api, id).await;
    assert_eq!((counts.available, counts.active_holds), (0, 1));

    // And cancels: nobody is left to give it to, so it stays unsold and the draw is over.
    let hold = live_holds(&api, third, id).await[0]["id"].as_i64().unwrap();
    assert_eq!(api.cancel(third, hold).await.status, StatusCode::OK);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            let shown = api
                .call("GET", &format!("/api/v1/drops/{id}"), None, Auth::None)
                .await;
            shown.body["drop"]["queue"]["closed"] == true
        })
        .await,
        "the draw never closed"
    );
    let counts = invariant(&api, id).await;
    assert_eq!(
        (counts.available, counts.active_holds, counts.purchases),
        (1, 0, 0)
    );
    let reply = audit(&api, id).await;
    let moves: Vec<i64> = reply.body["audit"]["waitlist_moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["place"].as_i64().unwrap())
        .collect();
    assert_eq!(moves, [2, 3]);
    assert!(verified(&api, id)
        .await
        .starts_with("ok: 3 entries, 1 won, 2 passed"));
}

/// A draw's audit is final once the draw is made: it is served as one document built then,
/// the same bytes for everyone (a strong `ETag`, `Cache-Control: public, immutable`, a 304 for
/// a copy already held, brotli or gzip as the client takes), unchanged by what happens after
/// (an entry leaving the waitlist), and the route is rate limited per address.
async fn a_final_audit_is_one_immutable_document(backend: Backend) {
    let api = Api::new(backend).await;
    let id = draw_drop(&api, 1).await["id"].as_i64().unwrap();
    let cookies = buyers(&api, 4).await;
    for cookie in &cookies {
        let reply = entry_call(&api, "POST", cookie, id).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    draw_now(&api, id, &cookies[0]).await;
    let path = format!("/api/v1/drops/{id}/audit");
    let first = api.call("GET", &path, None, Auth::None).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let etag = first.headers["etag"].to_str().unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.len() > 20,
        "a strong ETag: {etag}"
    );
    let cache = first.headers["cache-control"].to_str().unwrap();
    assert!(
        cache.contains("public") && cache.contains("immutable"),
        "{cache}"
    );
    let held = api
        .call_with("GET", &path, None, Auth::None, &[("if-none-match", &etag)])
        .await;
    assert_eq!(held.status, StatusCode::NOT_MODIFIED);
    for encoding in ["br", "gzip"] {
        let accepts = [("accept-encoding", encoding)];
        let packed = api
            .call_with("GET", &path, None, Auth::None, &accepts)
            .await;
        assert_eq!(packed.headers["content-encoding"], encoding);
        // Its own representation, its own tag: the document's hash with the coding.
        let tag = packed.headers["etag"].to_str().unwrap();
        assert_eq!(tag, format!("{}-{encoding}\"", etag.trim_end_matches('"')));
        let held = [("accept-encoding", encoding), ("if-none-match", tag)];
        let again = api.call_with("GET", &path, None, Auth::None, &held).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    }
    // A waitlisted entry withdraws: the final document does not move.
    let mut withdrew = false;
    for cookie in &cookies {
        if entry(&api, cookie, id).await["state"] == "waitlisted" {
            entry_call(&api, "DELETE", cookie, id).await;
            withdrew = true;
            break;
        }
    }
    assert!(withdrew);
    let after = api.call("GET", &path, None, Auth::None).await;
    assert_eq!(after.headers["etag"].to_str().unwrap(), etag);
    assert_eq!(after.body, first.body);
    // Signed by the key it names, the same signature from every instance (the verifier checks
    // it on every audit it fetches).
    let signature = first.headers["dropline-signature"].to_str().unwrap();
    assert_eq!(signature.len(), 128, "{signature}");
    let other = Api::on(api.db.clone()).await;
    let again = other.call("GET", &path, None, Auth::None).await;
    assert_eq!(again.headers["dropline-signature"], signature);
    assert!(verified(&other, id).await.starts_with("ok"));
    // One address asking again and again is slowed down.
    let peer = std::net::SocketAddr::from(([198, 51, 100, 77], 40_000));
    let mut limited = 0;
    for _ in 0..150 {
        let reply = api
            .call_from(peer, "GET", &path, None, Auth::None, &[])
            .await;
        limited += usize::from(reply.status == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(
        limited > 0,
        "150 audits in a row from one address were never limited"
    );
}

/// A queue that went live under an earlier version (which kept no final audit) gets one when
/// the server starts, so its audit can still be fetched and checked.
async fn an_audit_from_before_the_upgrade_is_kept_at_start(backend: Backend) {
    let api = Api::configured(backend, crowd).await;
    let id = queue_drop(&api, 2).await["id"].as_i64().unwrap();
    for cookie in &buyers(&api, 4).await {
        assert_eq!(join(&api, cookie, id).await.status, StatusCode::CREATED);
    }
    go_live(&api.db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            audit(&api, id).await.status == StatusCode::OK
        })
        .await
    );
    api.db.execute("DELETE FROM final_audits").await;
    // What an earlier version left: no audit to serve (this instance has not encoded one yet).
    let restarted = Api::on_with(api.db.clone(), crowd).await;
    let reply = audit(&restarted, id).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["audit"]["tickets"].as_array().unwrap().len(), 4);
    assert!(verified(&restarted, id)
        .await
        .starts_with("ok: 4 drawn in the lobby"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_make_one_draw() {
    let db = Arc::new(TestDb::new(Backend::Postgres).await);
    let fast = |s: &mut Settings| {
        crowd(s);
        s.queue_tick_ms = 5;
    };
    let servers = [
        Api::on_with(db.clone(), fast).await,
        Api::on_with(db.clone(), fast).await,
    ];
    let id = draw_drop(&servers[0], 7).await["id"].as_i64().unwrap();
    let cookies = buyers(&servers[0], 40).await;
    futures::future::join_all(
        cookies
            .iter()
            .enumerate()
            .map(|(i, cookie)| entry_call(&servers[i % 2], "POST", cookie, id)),
    )
    .await;
    go_live(&db, id).await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            entry(&servers[1], &cookies[0], id).await["state"] != "entered"
        })
        .await
    );
    // Let both workers run many more passes over it: one of them drew, once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let draws: u64 = servers
        .iter()
        .map(|api| api.state.metrics.draws.get())
        .sum();
    assert_eq!(draws, 1, "the instances drew {draws} times");
    let (holds, won, places, top): (i64, i64, i64, i64) = fetch_one(
        &db,
        sqlx::AssertSqlSafe(
            "SELECT (SELECT COUNT(*) FROM reservations WHERE drop_id = $1), \
             (SELECT COUNT(*) FROM tickets WHERE drop_id = $1 AND state = 'won'), \
             (SELECT COUNT(DISTINCT place) FROM tickets WHERE drop_id = $1), \
             (SELECT MAX(place) FROM tickets WHERE drop_id = $1)"
                .to_string(),
        ),
        id,
    )
    .await;
    assert_eq!((holds, won, places, top), (7, 7, 40, 40));
    let counts = invariant(&servers[1], id).await;
    assert_eq!((counts.available, counts.active_holds), (0, 7));
    // Both instances answer the same result.
    for cookie in &cookies[..5] {
        assert_eq!(
            entry(&servers[0], cookie, id).await,
            entry(&servers[1], cookie, id).await
        );
    }
}

on_both_databases!(
    a_draw_is_reproducible_and_each_winner_holds_one_unit,
    an_unused_win_passes_down_the_waitlist_and_never_back_on_sale,
    the_lobby_order_is_random_and_anyone_can_recompute_it,
    later_arrivals_join_the_back_in_arrival_order,
    leaving_and_joining_again_after_go_live_leaves_no_gap,
    a_receipt_proves_a_ticket_the_audit_left_out,
    the_verifier_accepts_an_honest_queue_with_a_rejoin,
    a_buyer_fetches_a_receipt_for_their_ticket,
    a_network_gets_at_most_its_cap_of_tickets,
    an_account_made_after_the_cutoff_cannot_join,
    a_dropped_ticket_fails_the_verifier,
    an_admission_out_of_order_fails_the_verifier,
    a_skipped_waitlist_entry_fails_the_verifier,
    joins_at_once_give_each_buyer_one_ticket_and_one_place,
    a_reserve_needs_the_buyers_turn,
    selling_the_last_unit_tells_the_line_it_is_over,
    a_queue_sold_by_size_admits_against_every_size,
    a_queue_drop_is_checked_field_by_field,
    a_crowd_never_over_admits,
    a_final_audit_is_one_immutable_document,
    an_audit_from_before_the_upgrade_is_kept_at_start,
);
