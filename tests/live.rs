//! Live events over `/ws`: what a connected browser receives, on both databases, and across
//! two server instances on one PostgreSQL.

mod common;

use std::{sync::Arc, time::Duration};

use axum::{extract::ws::Message as WsMessage, http::StatusCode};
use common::{Api, Auth, Backend, Client};
use dropline::{
    model::{DropId, LiveEvent},
    server::ws::{serve_socket, Feed},
};
use futures::StreamExt;

async fn new_drop(api: &Api, stock: i64) -> DropId {
    DropId(api.new_drop(stock).await)
}

async fn a_reserve_moves_stock_on_every_socket_and_a_refusal_moves_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = new_drop(&api, 1).await;
    let addr = api.listen().await;
    let mut watcher = Client::connect(addr, None).await;
    let snapshot = watcher.snapshot().await;
    assert_eq!(
        snapshot
            .iter()
            .find(|d| d.id == drop)
            .unwrap()
            .available_stock,
        1
    );

    let ann = api.sign_in("Ann").await;
    assert_eq!(api.reserve(&ann, drop).await.status, StatusCode::CREATED);
    match watcher.next_after_echo_of(drop).await {
        LiveEvent::StockUpdated {
            drop_id,
            available,
            total,
            version,
            sizes,
        } => {
            assert_eq!((drop_id, available, total), (drop, 0, 1));
            assert!(version > 0);
            // A drop without sizes is one size, and the event carries it.
            assert_eq!(sizes.len(), 1);
            assert_eq!((sizes[0].available_stock, sizes[0].total_stock), (0, 1));
            assert!(sizes[0].version > 0);
        }
        other => panic!("expected STOCK_UPDATED, got {other:?}"),
    }

    let bob = api.sign_in("Bob").await;
    assert_eq!(api.reserve(&bob, drop).await.status, StatusCode::CONFLICT);
    // The refused reserve published nothing: the next event is the drop created after it.
    let second = new_drop(&api, 3).await;
    match watcher.next_after_echo_of(drop).await {
        LiveEvent::DropCreated { drop } => assert_eq!(drop.id, second),
        other => panic!("a refused reserve published {other:?}"),
    }
}

async fn stock_versions_rise_strictly_per_drop(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = new_drop(&api, 40).await;
    let addr = api.listen().await;
    let mut watcher = Client::connect(addr, None).await;
    watcher.snapshot().await;

    let mut cookies = Vec::new();
    for i in 0..30 {
        cookies.push(api.sign_in(&format!("buyer {i}")).await);
    }
    let api = Arc::new(api);
    let tasks: Vec<_> = cookies
        .into_iter()
        .map(|cookie| {
            let api = api.clone();
            tokio::spawn(async move { api.reserve(&cookie, drop).await.status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
    }
    // Reserves that share a transaction share one event: wait for the stock, not a count.
    // Coalescing may skip versions the socket had no time to send, but what it shows never
    // goes back and ends at the stock as it stands.
    let mut versions = Vec::new();
    loop {
        if let LiveEvent::StockUpdated {
            version,
            drop_id,
            available,
            ..
        } = watcher.next().await
        {
            assert_eq!(drop_id, drop);
            versions.push(version);
            if available == 10 {
                break;
            }
        }
    }
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "versions arrived out of order: {versions:?}"
    );
}

/// The next event a socket under test was handed, within ten seconds.
async fn next_frame(frames: &mut futures::channel::mpsc::Receiver<WsMessage>) -> LiveEvent {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), frames.next())
            .await
            .expect("a frame arrives")
            .expect("the socket stays open");
        if let WsMessage::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("events parse");
        }
    }
}

/// A socket of this instance's whose client reads only what the test takes from the frames
/// answered: the server can hand it one frame more, then its writes stay pending, as on a
/// stalled connection. Answers once the client has read its snapshot.
async fn stalled_socket(
    api: &Api,
    write_timeout: Duration,
) -> (
    tokio::task::JoinHandle<()>,
    futures::channel::mpsc::Receiver<WsMessage>,
) {
    let (sink, mut frames) = futures::channel::mpsc::channel::<WsMessage>(0);
    let socket = tokio::spawn(serve_socket(
        sink,
        futures::stream::pending::<Result<WsMessage, axum::Error>>(),
        Feed {
            snapshots: api.state.snapshots.clone(),
            bus: api.state.bus.clone(),
            shutdown: api.state.shutdown.clone(),
            ping_interval: Duration::from_secs(20),
            write_timeout,
        },
        None,
    ));
    assert!(matches!(
        next_frame(&mut frames).await,
        LiveEvent::Snapshot { .. }
    ));
    (socket, frames)
}

/// A phone whose connection stalls while a drop is hot shows the stock as it stands as soon as
/// it catches up, without first replaying every change it missed, and still gets the other
/// events: the server keeps only the newest stock per drop for it, not a backlog.
async fn a_stalled_client_catches_up_on_the_latest_stock_not_a_backlog(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = new_drop(&api, 300).await;
    let mut cookies = Vec::new();
    for i in 0..200 {
        cookies.push(api.sign_in(&format!("buyer {i}")).await);
    }
    let (_socket, mut frames) = stalled_socket(&api, Duration::from_secs(120)).await;

    for cookie in &cookies {
        assert_eq!(api.reserve(cookie, drop).await.status, StatusCode::CREATED);
    }
    let other = new_drop(&api, 1).await;

    let mut stock = Vec::new();
    let mut saw_other = false;
    while !(saw_other && stock.last().is_some_and(|(_, available)| *available == 100)) {
        match next_frame(&mut frames).await {
            LiveEvent::StockUpdated {
                drop_id,
                available,
                version,
                ..
            } if drop_id == drop => stock.push((version, available)),
            LiveEvent::DropCreated { drop } => saw_other |= drop.id == other,
            _ => {}
        }
    }
    assert!(
        stock.len() <= 3,
        "200 changes were replayed one by one instead of the latest: {stock:?}"
    );
    assert!(stock.windows(2).all(|w| w[0].0 < w[1].0), "{stock:?}");
    let now = api
        .call("GET", &format!("/api/v1/drops/{drop}"), None, Auth::None)
        .await;
    assert_eq!(
        stock.last().map(|(version, _)| *version),
        now.body["drop"]["version"].as_i64()
    );
    // Nothing else was left queued for it.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), frames.next())
            .await
            .is_err()
    );
}

async fn owner_events_reach_only_the_owner(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = new_drop(&api, 5).await;
    let addr = api.listen().await;
    let ann = api.sign_in("Ann").await;
    let bob = api.sign_in("Bob").await;
    let mut anns = Client::connect(addr, Some(&ann)).await;
    let mut bobs = Client::connect(addr, Some(&bob)).await;
    anns.snapshot().await;
    bobs.snapshot().await;

    let hold = api.reserve(&ann, drop).await.body["reservation"]["id"]
        .as_i64()
        .unwrap();
    let bought = api
        .call(
            "POST",
            &format!("/api/v1/reservations/{hold}/purchase"),
            None,
            Auth::Cookie(&ann),
        )
        .await;
    assert_eq!(bought.status, StatusCode::CREATED);

    let mut ann_saw_purchase = false;
    let mut ann_saw_feed = false;
    while !(ann_saw_purchase && ann_saw_feed) {
        match anns.next().await {
            LiveEvent::PurchaseCompleted { purchase } => {
                assert_eq!(purchase.reservation_id.0, hold);
                ann_saw_purchase = true;
            }
            LiveEvent::ActivityUpdated { recent, .. } => {
                assert_eq!(recent[0].name, "Ann");
                ann_saw_feed = true;
            }
            _ => {}
        }
    }
    // Bob sees the public events, then the next public one, and nothing of Ann's in between.
    let marker = new_drop(&api, 1).await;
    loop {
        match bobs.next().await {
            LiveEvent::PurchaseCompleted { .. } | LiveEvent::ReservationExpired { .. } => {
                panic!("another user's private event reached Bob")
            }
            LiveEvent::DropCreated { drop } if drop.id == marker => break,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_instances_share_events_and_survive_a_lost_listen_connection() {
    let a = Api::new(Backend::Postgres).await;
    let b = Api::on(a.db.clone()).await;
    let drop = new_drop(&a, 10).await;
    let addr_b = b.listen().await;
    let mut on_b = Client::connect(addr_b, None).await;
    on_b.snapshot().await;

    let ann = a.sign_in("Ann").await;
    assert_eq!(a.reserve(&ann, drop).await.status, StatusCode::CREATED);
    let seen_on_b = loop {
        if let LiveEvent::StockUpdated {
            drop_id, available, ..
        } = on_b.next().await
        {
            break (drop_id, available);
        }
    };
    assert_eq!(seen_on_b, (drop, 9));

    // Cut B's LISTEN connection from the database side.
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&a.db.url)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no LISTEN connection found");

    // B reconnects by itself and hands its clients a fresh snapshot...
    loop {
        if let LiveEvent::Snapshot { .. } = on_b.next().await {
            break;
        }
    }
    // ...and later changes on A still reach them.
    let bob = a.sign_in("Bob").await;
    assert_eq!(a.reserve(&bob, drop).await.status, StatusCode::CREATED);
    let seen_on_b = loop {
        if let LiveEvent::StockUpdated {
            drop_id, available, ..
        } = on_b.next().await
        {
            break (drop_id, available);
        }
    };
    assert_eq!(seen_on_b, (drop, 8));
}

async fn a_garbage_message_closes_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = new_drop(&api, 2).await;
    let addr = api.listen().await;
    let mut rude = Client::connect(addr, None).await;
    let mut polite = Client::connect(addr, None).await;
    rude.snapshot().await;
    polite.snapshot().await;
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    rude.ws
        .send(Message::Text("{not json".into()))
        .await
        .unwrap();
    rude.ws
        .send(Message::Binary(vec![0, 1, 2].into()))
        .await
        .unwrap();

    let ann = api.sign_in("Ann").await;
    api.reserve(&ann, drop).await;
    for client in [&mut rude, &mut polite] {
        assert!(matches!(
            client.next_after_echo_of(drop).await,
            LiveEvent::StockUpdated { .. }
        ));
    }
}

/// A client that stops reading (its connection stalls for good) is let go once a write has
/// waited `ws_write_timeout_ms`, instead of holding its socket and its place for ever: the
/// loop that would ping it is the one waiting on the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_let_go() {
    let api = Api::new(Backend::Sqlite).await;
    let drop = new_drop(&api, 50).await;
    let (socket, frames) = stalled_socket(&api, Duration::from_millis(300)).await;
    // Stock moves, again and again; the client reads nothing more.
    for i in 0..3 {
        let buyer = api.sign_in(&format!("buyer {i}")).await;
        assert_eq!(api.reserve(&buyer, drop).await.status, StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), socket).await;
    assert!(ended.is_ok(), "a socket nobody reads from is still served");
    // The client's end stayed open all along: the socket ended on its own deadline.
    std::mem::drop(frames);
}

/// Any PostgreSQL role that may connect can `NOTIFY` on the events channel, with no right to
/// read or write a table. What such a role forges — a drop frozen at 0 with a version far
/// ahead of the database's, a purchase "completed" for a buyer, a payload with a made-up seal —
/// reaches no screen and starts no resync, and the real updates after it arrive as ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_notification_forged_by_a_role_without_table_rights_reaches_no_screen() {
    use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};

    let api = Api::new(Backend::Postgres).await;
    let drop = new_drop(&api, 5).await;
    let addr = api.listen().await;
    let signed_in = api.sign_in_as("Ann", Auth::None).await;
    let ann = signed_in.cookie.clone().unwrap();
    let ann_id = signed_in.body["user"]["id"].as_i64().unwrap();
    let mut watcher = Client::connect(addr, None).await;
    let mut anns = Client::connect(addr, Some(&ann)).await;
    watcher.snapshot().await;
    anns.snapshot().await;

    // A role of its own, with no privileges on any table.
    let role = format!("dropline_forger_{:08x}", rand::random::<u32>());
    let mut admin = PgConnection::connect(&common::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE ROLE {role} LOGIN")))
        .execute(&mut admin)
        .await
        .unwrap();
    let options: PgConnectOptions = api.db.url.parse().unwrap();
    let mut forger = PgConnection::connect_with(&options.username(&role))
        .await
        .unwrap();
    let denied = sqlx::query("SELECT available_stock FROM drops")
        .execute(&mut forger)
        .await
        .expect_err("the forger's role reads no table");
    assert!(denied.to_string().contains("permission denied"), "{denied}");

    let stock = format!(
        r#"[{{"to":null,"event":{{"type":"STOCK_UPDATED","drop_id":{drop},"available":0,"total":5,"version":1000000000000000}}}}]"#
    );
    let purchase = format!(
        r#"[{{"to":{ann_id},"event":{{"type":"PURCHASE_COMPLETED","purchase":{{"id":999,"reservation_id":999,"drop_id":{drop},"user_id":{ann_id},"price_cents":1,"created_at":"2026-01-01T00:00:00Z"}}}}}}]"#
    );
    let sealed = format!("{}.{}", "0".repeat(64), stock);
    for payload in [&stock, &purchase, &sealed] {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(dropline::server::store::listen::PG_CHANNEL)
            .bind(payload)
            .execute(&mut forger)
            .await
            .unwrap();
    }
    forger.close().await.unwrap();

    // The real change after the forgeries: the screens show it, and nothing forged before it.
    assert_eq!(api.reserve(&ann, drop).await.status, StatusCode::CREATED);
    match watcher.next_after_echo_of(drop).await {
        LiveEvent::StockUpdated {
            drop_id,
            available,
            version,
            ..
        } => assert_eq!((drop_id, available, version), (drop, 4, 1)),
        other => panic!("the first event after the forgeries was {other:?}"),
    }
    loop {
        match anns.next_after_echo_of(drop).await {
            LiveEvent::HoldCreated { .. } => break,
            LiveEvent::StockUpdated { available, .. } => assert_eq!(available, 4),
            other => panic!("a forged event reached the buyer: {other:?}"),
        }
    }
    let metrics = api.state.metrics.render();
    let refused: f64 = metrics
        .lines()
        .filter(|line| line.starts_with("dropline_live_events_refused_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(refused, 3.0, "{metrics}");
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE {role}")))
        .execute(&mut admin)
        .await
        .unwrap();
}

on_both_databases!(
    a_reserve_moves_stock_on_every_socket_and_a_refusal_moves_nothing,
    stock_versions_rise_strictly_per_drop,
    owner_events_reach_only_the_owner,
    a_garbage_message_closes_nothing,
    a_stalled_client_catches_up_on_the_latest_stock_not_a_backlog,
);
