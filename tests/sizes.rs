//! Sizes: a drop sold by size keeps every size's stock on its own. A reserve takes from the
//! size it names and a rush never takes more of a size than it has, on either database and
//! across instances; a hold given back or run out returns to its own size; every size moves
//! its own version; a drop without sizes is one size; the migration moves every drop made
//! before sizes to one size without losing a unit.

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::http::StatusCode;
use common::{wait_until, Api, Backend, TestDb};
use dropline::{
    model::{DropId, ErrorCode, UserId},
    server::store::{Reserve, StockAudit},
};
use serde_json::{json, Value};

/// A drop with these sizes (label, units), created through the admin API; answers its JSON.
async fn sized_drop(api: &Api, sizes: &[(&str, i64)]) -> Value {
    let sizes: Vec<Value> = sizes
        .iter()
        .map(|(label, stock)| json!({ "label": label, "stock": stock }))
        .collect();
    let reply = api
        .create_drop(json!({ "name": "Sized Runner", "price_cents": 100, "sizes": sizes }))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["drop"].clone()
}

async fn audit(api: &Api, drop: i64) -> StockAudit {
    let audit = api.state.inventory.audit(DropId(drop)).await.unwrap();
    assert!(audit.holds(), "stock invariant, per size: {audit:?}");
    audit
}

/// Each size's units available, in the drop's order.
fn available(audit: &StockAudit) -> Vec<(String, i64)> {
    audit
        .sizes
        .iter()
        .map(|size| (size.label.clone(), size.available))
        .collect()
}

const SIZES: [&str; 5] = ["US 8", "US 9", "US 10", "US 11", "US 12"];

/// 500 buyers over 5 sizes of 20 units, through two instances; a hundred of them also click a
/// second size at the same moment. Exactly 100 holds, exactly 20 of each size, nobody two.
async fn five_hundred_buyers_over_five_sizes_of_twenty(backend: Backend) {
    let db = Arc::new(TestDb::new(backend).await);
    let a = Api::on(db.clone()).await;
    let b = Api::on(db).await;
    let run: Vec<(&str, i64)> = SIZES.iter().map(|label| (*label, 20)).collect();
    let drop = sized_drop(&a, &run).await["id"].as_i64().unwrap();
    let mut buyers = Vec::new();
    for i in 0..500 {
        let (user, _) = a
            .state
            .sessions
            .sign_up(&format!("buyer {i}"))
            .await
            .unwrap();
        buyers.push(user.id);
    }
    let mut asks = Vec::new();
    for (i, &user) in buyers.iter().enumerate() {
        asks.push((user, SIZES[i % 5]));
        if i < 100 {
            asks.push((user, SIZES[(i + 1) % 5]));
        }
    }
    let tasks: Vec<_> = asks
        .into_iter()
        .enumerate()
        .map(|(i, (user, size))| {
            let inventory = if i % 2 == 0 { &a } else { &b }.state.inventory.clone();
            tokio::spawn(async move {
                let ask = Reserve {
                    user,
                    size: Some(size.into()),
                };
                (user, size, inventory.reserve(DropId(drop), ask).await)
            })
        })
        .collect();
    let mut per_size: HashMap<String, i64> = HashMap::new();
    let mut per_buyer: HashMap<UserId, i64> = HashMap::new();
    for task in tasks {
        let (user, size, outcome) = task.await.unwrap();
        match outcome {
            Ok(held) => {
                assert_eq!(
                    held.reservation.size, size,
                    "the hold names the size asked for"
                );
                *per_size.entry(held.reservation.size).or_default() += 1;
                *per_buyer.entry(user).or_default() += 1;
            }
            Err(e) if matches!(e.code, ErrorCode::OutOfStock | ErrorCode::AlreadyReserved) => {}
            Err(other) => panic!("unexpected outcome: {other:?}"),
        }
    }
    for size in SIZES {
        assert_eq!(per_size.get(size), Some(&20), "{size}: {per_size:?}");
    }
    assert!(per_buyer.values().all(|&n| n == 1), "a buyer got two holds");
    assert_eq!(per_buyer.len(), 100);
    let audit = audit(&b, drop).await;
    assert_eq!((audit.available, audit.active_holds), (0, 100));
    assert!(audit
        .sizes
        .iter()
        .all(|s| (s.available, s.active_holds) == (0, 20)));
}

/// A reserve names a size the drop has; one without a size is for a drop of one size; a
/// sold-out size refuses while another still sells.
async fn a_reserve_names_a_size_the_drop_has(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = sized_drop(&api, &[("EU 42", 1), ("EU 43", 3)]).await;
    let id = drop["id"].as_i64().unwrap();
    assert_eq!(drop["total_stock"], 4);
    let labels: Vec<&str> = drop["sizes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["EU 42", "EU 43"]);

    let ann = api.sign_in("Ann").await;
    let bob = api.sign_in("Bob").await;
    let code = |reply: &common::Reply| reply.body["error"]["code"].clone();
    let none = api.reserve(&ann, id).await;
    assert_eq!(
        (none.status, code(&none)),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("SIZE_REQUIRED"))
    );
    let wrong = api.reserve_size(&ann, id, "EU 99").await;
    assert_eq!(
        (wrong.status, code(&wrong)),
        (StatusCode::NOT_FOUND, json!("SIZE_NOT_FOUND"))
    );
    let held = api.reserve_size(&ann, id, "EU 42").await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    assert_eq!(held.body["reservation"]["size"], "EU 42");
    let sizes = &held.body["drop"]["sizes"];
    assert_eq!(
        (
            sizes[0]["available_stock"].clone(),
            sizes[1]["available_stock"].clone()
        ),
        (json!(0), json!(3))
    );
    let out = api.reserve_size(&bob, id, "EU 42").await;
    assert_eq!(
        (out.status, code(&out)),
        (StatusCode::CONFLICT, json!("OUT_OF_STOCK"))
    );
    // Named as a person types it: spaces and case are not the point.
    let typed = api.reserve_size(&bob, id, " eu 43 ").await;
    assert_eq!(typed.status, StatusCode::CREATED, "{}", typed.body);
    assert_eq!(typed.body["reservation"]["size"], "EU 43");
    // Bad bodies are refused as such, and take nothing.
    for body in [
        r#"{"size": 42}"#,
        r#"{"size": "EU 43", "colour": "red"}"#,
        "{",
    ] {
        let reply = api
            .call(
                "POST",
                &format!("/api/v1/drops/{id}/reservations"),
                Some(body),
                common::Auth::Cookie(&api.sign_in("Cy").await),
            )
            .await;
        assert!(reply.status.is_client_error(), "{body}: {}", reply.status);
        assert_ne!(reply.status, StatusCode::CREATED);
    }
    assert_eq!(
        available(&audit(&api, id).await),
        [("EU 42".to_string(), 0), ("EU 43".to_string(), 2)]
    );

    // A drop without sizes is one size, reserved without naming it: no body, an empty one
    // sent as JSON, or a blank size.
    let plain = api.new_drop(3).await;
    let held = api.reserve(&ann, plain).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    assert_eq!(held.body["reservation"]["size"], "One size");
    let path = format!("/api/v1/drops/{plain}/reservations");
    let empty = api
        .call("POST", &path, Some(""), common::Auth::Cookie(&bob))
        .await;
    assert_eq!(empty.status, StatusCode::CREATED, "{}", empty.body);
    let blank = api
        .reserve_size(&api.sign_in("Dee").await, plain, " ")
        .await;
    assert_eq!(blank.status, StatusCode::CREATED, "{}", blank.body);
}

/// A hold that names a size its drop lacks (a bug, or a hand in the database) moves no stock:
/// the write that would give it back fails whole, and no stock moves.
async fn a_hold_of_a_size_the_drop_lacks_moves_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    let id = sized_drop(&api, &[("S", 1), ("M", 1)]).await["id"]
        .as_i64()
        .unwrap();
    let ann = api.sign_in("Ann").await;
    let held = api.reserve_size(&ann, id, "S").await;
    let hold = held.body["reservation"]["id"].as_i64().unwrap();
    api.db
        .execute(&format!(
            "UPDATE reservations SET size = 'XL' WHERE id = {hold}"
        ))
        .await;
    let cancelled = api.cancel(&ann, hold).await;
    assert!(cancelled.status.is_server_error(), "{}", cancelled.status);
    let audit = api.state.inventory.audit(DropId(id)).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds),
        (1, 1),
        "nothing moved"
    );
    assert_eq!(available(&audit), [("S".into(), 0), ("M".into(), 1)]);
}

/// A cancelled hold goes back to its own size, and an expired one too; each change moves only
/// the versions of the sizes it touched.
async fn a_unit_given_back_returns_to_its_own_size(backend: Backend) {
    let api = Api::configured(backend, |settings| {
        settings.reservation_ttl_seconds = 2;
    })
    .await;
    let drop = sized_drop(&api, &[("S", 2), ("M", 2), ("L", 2)]).await;
    let id = drop["id"].as_i64().unwrap();
    let version_of = |drop: &Value, at: usize| drop["sizes"][at]["version"].as_i64().unwrap();
    let ann = api.sign_in("Ann").await;
    let held = api.reserve_size(&ann, id, "M").await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    let after = &held.body["drop"];
    assert_eq!(version_of(after, 1), version_of(&drop, 1) + 1);
    assert_eq!(
        version_of(after, 0),
        version_of(&drop, 0),
        "S did not change"
    );
    let hold = held.body["reservation"]["id"].as_i64().unwrap();
    let cancelled = api.cancel(&ann, hold).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(
        available(&audit(&api, id).await),
        [("S".into(), 2), ("M".into(), 2), ("L".into(), 2)]
    );

    let bob = api.sign_in("Bob").await;
    assert_eq!(
        api.reserve_size(&bob, id, "L").await.status,
        StatusCode::CREATED
    );
    assert_eq!(audit(&api, id).await.sizes[2].available, 1);
    let back = wait_until(Duration::from_secs(10), || async {
        api.state.inventory.audit(DropId(id)).await.unwrap().sizes[2].available == 2
    })
    .await;
    assert!(back, "the expired L came back to L");
    let audit = audit(&api, id).await;
    assert_eq!(
        available(&audit),
        [("S".into(), 2), ("M".into(), 2), ("L".into(), 2)]
    );
}

on_both_databases!(
    five_hundred_buyers_over_five_sizes_of_twenty,
    a_reserve_names_a_size_the_drop_has,
    a_unit_given_back_returns_to_its_own_size,
    a_hold_of_a_size_the_drop_lacks_moves_nothing,
    drops_made_before_sizes_become_one_size_with_nothing_lost,
);

/// Every drop made before sizes becomes one size, `One size`, with its stock as it stood, its
/// version, and every hold naming it: the migration applied to a database with a drop part
/// held and part sold.
async fn drops_made_before_sizes_become_one_size_with_nothing_lost(backend: Backend) {
    let db = TestDb::new(backend).await;
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let (before, sizes): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|path| path.file_name().unwrap().to_string_lossy().as_ref() < "0019");
    for file in &before {
        db.execute(&std::fs::read_to_string(file).unwrap()).await;
    }
    db.execute(
        "INSERT INTO users (id, name, created_at) VALUES (1, 'Ann', 0), (2, 'Bob', 0); \
         INSERT INTO drops (id, name, price_cents, total_stock, available_stock, starts_at, \
           created_at, version) VALUES (7, 'Old Runner', 100, 10, 8, 0, 0, 5); \
         INSERT INTO reservations (id, drop_id, user_id, status, created_at, expires_at) \
           VALUES (1, 7, 1, 'ACTIVE', 0, 9999999999999), (2, 7, 2, 'PURCHASED', 0, 1); \
         INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, created_at) \
           VALUES (2, 7, 2, 100, 1);",
    )
    .await;
    db.execute(&std::fs::read_to_string(&sizes[0]).unwrap())
        .await;
    db.execute(
        "CREATE TABLE migrated AS SELECT s.label, s.total_stock, s.available_stock, s.version, \
           (SELECT COUNT(*) FROM reservations r WHERE r.drop_id = s.drop_id \
             AND r.size = s.label) AS holds \
         FROM drop_sizes s WHERE s.drop_id = 7",
    )
    .await;
    let row: (String, i64, i64, i64, i64) = match backend {
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query_as("SELECT * FROM migrated")
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query_as("SELECT * FROM migrated")
                .fetch_one(&mut conn)
                .await
                .unwrap()
        }
    };
    assert_eq!(row, ("One size".into(), 10, 8, 5, 2));
}
