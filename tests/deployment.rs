//! Faults of the network and of a real deployment: a LISTEN connection that dies without a
//! word, a crowd of sockets resyncing at once over a large sales history, a database whose
//! clock is not the server's, instances that start together, a pool of one connection, and
//! a notification no instance can read.

mod common;

use std::{net::SocketAddr, time::Duration};

use axum::http::StatusCode;
use common::{Api, Auth, Backend, Client, TestDb};
use dropline::{model::LiveEvent, server};
use futures::future::join_all;
use sqlx::{Connection, PgConnection};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    time::Instant,
};

/// A TCP relay in front of PostgreSQL that can be frozen: it then stops forwarding, in both
/// directions and on every connection, without closing anything — a NAT or load balancer that
/// dropped its state, or a failover that left the old peer silent.
struct Relay {
    addr: SocketAddr,
    flowing: watch::Sender<bool>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (flowing, _) = watch::channel(true);
        let gate = flowing.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                let (from_client, to_client) = inbound.into_split();
                let (from_server, to_server) = outbound.into_split();
                tokio::spawn(pipe(from_client, to_server, gate.subscribe()));
                tokio::spawn(pipe(from_server, to_client, gate.subscribe()));
            }
        });
        Self { addr, flowing }
    }

    fn freeze(&self) {
        self.flowing.send_replace(false);
    }

    fn thaw(&self) {
        self.flowing.send_replace(true);
    }
}

/// Copies bytes one way while the gate is open; holds them (and reads nothing) while it is shut.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut gate: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if gate.wait_for(|open| *open).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            _ = gate.wait_for(|open| !*open) => continue,
        };
        let n = match read {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => n,
        };
        if gate.wait_for(|open| *open).await.is_err() || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

/// The PostgreSQL server's address, from the admin URL the tests use.
fn postgres_addr() -> SocketAddr {
    let url = common::postgres_admin_url();
    let authority = url
        .split_once('@')
        .map_or(url.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .replace("localhost", "127.0.0.1");
    let with_port = if authority.contains(':') {
        authority
    } else {
        format!("{authority}:5432")
    };
    with_port
        .parse()
        .expect("the test PostgreSQL URL names host:port")
}

/// `GET /readyz` of a listening instance; `None` when it does not answer within 5 s.
async fn readyz(addr: SocketAddr) -> Option<u16> {
    let client = reqwest::Client::new();
    let reply = client
        .get(format!("http://{addr}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(reply.status().as_u16())
}

/// Instance B's connections to PostgreSQL go through a relay that stops forwarding without
/// closing. B must notice: its socket learns the change as a snapshot, or B says it is not
/// ready. Once the relay forwards again, B recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silently_dead_database_connection_is_noticed_and_recovered() {
    let a = Api::new(Backend::Postgres).await;
    let drop = a.new_drop(10).await;
    let relay = Relay::start(postgres_addr()).await;
    let name = a.db.pg_name().unwrap().to_string();
    let through_relay = format!("postgres://postgres@{}/{name}", relay.addr);
    let b = Api::on_with(a.db.clone(), |s| {
        s.database_url = through_relay.clone();
        s.listen_heartbeat_timeout_ms = 2_000;
    })
    .await;
    let addr_b = b.listen().await;
    let mut on_b = Client::connect(addr_b, None).await;
    on_b.snapshot().await;
    assert_eq!(readyz(addr_b).await, Some(200));

    relay.freeze();
    let ann = a.sign_in("Ann").await;
    assert_eq!(a.reserve(&ann, drop).await.status, StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(30);
    let noticed = loop {
        assert!(
            Instant::now() < deadline,
            "B never noticed its dead connection"
        );
        if let Some(LiveEvent::Snapshot { drops, .. }) =
            on_b.next_within(Duration::from_millis(200)).await
        {
            if drops
                .iter()
                .any(|d| d.id.0 == drop && d.available_stock == 9)
            {
                break "a snapshot with the change";
            }
        }
        if readyz(addr_b).await == Some(503) {
            break "not ready";
        }
    };
    eprintln!("B noticed: {noticed}");

    relay.thaw();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(addr_b).await != Some(200) {
        assert!(Instant::now() < deadline, "B never became ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Live events flow to B's sockets again.
    let mut later = Client::connect(addr_b, None).await;
    later.snapshot().await;
    let bob = a.sign_in("Bob").await;
    assert_eq!(a.reserve(&bob, drop).await.status, StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "events from A no longer reach B");
        match later.next_within(Duration::from_millis(500)).await {
            Some(LiveEvent::StockUpdated { available: 8, .. }) => break,
            Some(LiveEvent::Snapshot { drops, .. })
                if drops
                    .iter()
                    .any(|d| d.id.0 == drop && d.available_stock == 8) =>
            {
                break
            }
            _ => {}
        }
    }
}

/// Sells `count` units of `drop` in one statement (users, holds and purchases), so a test can
/// start from a long sales history.
async fn seed_purchases(db: &TestDb, drop: i64, count: i64) {
    db.execute(&format!(
        "INSERT INTO users (name, created_at) SELECT 'buyer ' || g, 0 \
           FROM generate_series(1, 1000) AS g; \
         INSERT INTO reservations (drop_id, user_id, status, created_at, expires_at) \
           SELECT {drop}, (SELECT MIN(id) FROM users) + g % 1000, 'PURCHASED', g, g \
           FROM generate_series(1, {count}) AS g; \
         INSERT INTO purchases (reservation_id, drop_id, user_id, price_cents, created_at) \
           SELECT id, drop_id, user_id, 100, created_at FROM reservations WHERE drop_id = {drop}; \
         UPDATE drops SET available_stock = available_stock - {count} WHERE id = {drop}; \
         ANALYZE"
    ))
    .await;
}

/// Three hundred sockets on an instance with four database connections and 200,000 sales: when
/// its LISTEN connection is cut, every socket gets a fresh snapshot in good time and none is
/// closed — the instance reads one snapshot for all of them, through an index.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crowd_of_sockets_resyncs_on_one_snapshot() {
    let api = Api::configured(Backend::Postgres, |s| {
        s.database_max_connections = 4;
        s.ws_max_per_ip = 1_000;
        s.max_connections_per_ip = 1_000;
    })
    .await;
    let drop = api.new_drop(200_010).await;
    seed_purchases(&api.db, drop, 200_000).await;
    let addr = api.listen().await;
    let mut sockets = join_all((0..300).map(|_| async move {
        let mut client = Client::connect(addr, None).await;
        client.snapshot().await;
        client
    }))
    .await;

    let mut admin = PgConnection::connect(&api.db.url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!killed.is_empty(), "no LISTEN connection found");

    let deadline = Instant::now() + Duration::from_secs(10);
    let outcomes = join_all(sockets.iter_mut().map(|socket| async move {
        loop {
            match socket.next_within(deadline - Instant::now()).await {
                Some(LiveEvent::Snapshot { drops, .. }) => return Ok(drops.len()),
                Some(_) => {}
                None => return Err("no snapshot within 10 s, or the socket closed"),
            }
        }
    }))
    .await;
    let failed = outcomes.iter().filter(|o| o.is_err()).count();
    assert_eq!(failed, 0, "{failed} of 300 sockets got no snapshot");
    for socket in &mut sockets {
        assert!(
            socket
                .closed_within(Duration::from_millis(1))
                .await
                .is_none(),
            "a socket was closed"
        );
    }
}

/// The countdown runs on the database's clock, the same clock the deadlines come from: with a
/// database ten seconds ahead of the server, a new 60 s hold still shows 60 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_countdown_runs_on_the_database_clock() {
    let api = Api::new(Backend::Postgres).await;
    api.db
        .execute(
            "CREATE OR REPLACE FUNCTION dropline_now_ms() RETURNS BIGINT LANGUAGE sql VOLATILE \
             AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT + 10000 $$",
        )
        .await;
    let drop = api.new_drop(3).await;
    let ann = api.sign_in("Ann").await;
    let addr = api.listen().await;
    let mut socket = Client::connect(addr, Some(&ann)).await;
    let server_time = match socket.next().await {
        LiveEvent::Snapshot { server_time, .. } => server_time,
        other => panic!("expected a snapshot, got {other:?}"),
    };
    let held = api.reserve(&ann, drop).await;
    let expires_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(held.body["reservation"]["expires_at"].clone()).unwrap();
    let shown = (expires_at - server_time).num_milliseconds();
    assert!(
        (59_000..=61_000).contains(&shown),
        "a 60 s hold shows {shown} ms on the countdown"
    );
}

/// Two instances starting together on an empty database seed the demo drops once. (Several
/// instances share a PostgreSQL database; SQLite serves one process.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_together_seed_the_demo_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let settings = server::settings::Settings {
        seed_demo: true,
        ..db.settings()
    };
    let (a, b) = tokio::join!(server::start(&settings), server::start(&settings));
    let (a, _b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.inventory.list_drops().await.unwrap().len(), 3);
}

/// The LISTEN connection is the instance's own: a pool of one connection still serves buyers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pool_of_one_connection_still_serves() {
    let api = Api::configured(Backend::Postgres, |s| s.database_max_connections = 1).await;
    let listed = tokio::time::timeout(
        Duration::from_secs(3),
        api.call("GET", "/api/v1/drops", None, Auth::None),
    )
    .await
    .expect("the request waited for a connection");
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let drop = api.new_drop(2).await;
    let ann = api.sign_in("Ann").await;
    assert_eq!(api.reserve(&ann, drop).await.status, StatusCode::CREATED);
}

/// A notification sealed by the deployment that no instance can read (another version's
/// format) makes the sockets resync instead of silently missing whatever it carried. (One
/// without the deployment's seal is refused: `tests/live.rs`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreadable_notification_makes_sockets_resync() {
    let api = Api::new(Backend::Postgres).await;
    let addr = api.listen().await;
    let mut socket = Client::connect(addr, None).await;
    socket.snapshot().await;
    let key = dropline::server::events::EventKey::derive(&api.db.settings().session_secret);
    let sealed = key.seal("{\"not\": \"an event\"}");
    api.db
        .execute(&format!(
            "SELECT pg_notify('{}', '{sealed}')",
            dropline::server::store::listen::PG_CHANNEL
        ))
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match socket.next_within(deadline - Instant::now()).await {
            Some(LiveEvent::Snapshot { .. }) => break,
            Some(_) => {}
            None => panic!("no snapshot after an unreadable notification"),
        }
    }
}
