//! Faults a real drop meets: the server process killed in the middle of a rush, and the
//! database going away in the middle of one. Whatever a buyer was told succeeded must be in the
//! database afterwards, and every drop's stock must still add up.

mod common;

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use common::{Api, Backend, TestDb, ADMIN_TOKEN};
use dropline::server::events::EventBus;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

/// What the server told a buyer had happened (only 2xx answers are recorded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Told {
    Held,
    Bought,
    Cancelled,
}

/// Every confirmed outcome per reservation id, with the buyer's cookie to look it up later.
#[derive(Default)]
struct Ledger {
    told: Mutex<HashMap<i64, (Told, String)>>,
    confirmed: AtomicUsize,
    /// Buyers whose request the server never answered (it died, or was cut off).
    cut_off: AtomicUsize,
}

impl Ledger {
    fn record(&self, reservation: i64, told: Told, cookie: &str) {
        self.told
            .lock()
            .unwrap()
            .insert(reservation, (told, cookie.to_string()));
        self.confirmed.fetch_add(1, Ordering::SeqCst);
    }
}

/// The real `dropline` binary on a free port, as an operator runs it.
struct Process {
    child: tokio::process::Child,
    base: String,
}

/// A port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Process {
    async fn start(db: &TestDb) -> Self {
        Self::start_with(db, &[]).await
    }

    /// [`Process::start`] with these settings as environment variables too.
    async fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let settings = db.settings();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dropline"));
        command.envs(env.iter().copied());
        let child = command
            .env("DATABASE_URL", &db.url)
            .env("SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SESSION_SECRET", &settings.session_secret)
            .env("SEED_DEMO", "false")
            .env("DEMO_SIGN_IN", "true")
            .env("RATE_LIMIT_SESSION_PER_SECOND", "100000")
            .env("RATE_LIMIT_SESSION_BURST", "100000")
            .env("RATE_LIMIT_IP_PER_SECOND", "100000")
            .env("RATE_LIMIT_IP_BURST", "100000")
            .env("HOLD_COOLDOWN_SECONDS", "0")
            .env("MAX_RELEASED_HOLDS", "1000000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the dropline binary");
        let process = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/readyz", process.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return process;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown hook, no flush, nothing finishes.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill -9 the server");
    }
}

/// A buyer's HTTP calls against a base URL.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            base: base.to_string(),
        }
    }

    /// `Err` when no answer came back (the server is gone).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        cookie: Option<&str>,
    ) -> Result<(u16, Value), reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_string);
        let mut body: Value = response.json().await.unwrap_or(Value::Null);
        if let Some(cookie) = cookie {
            body["__cookie"] = json!(cookie);
        }
        Ok((status, body))
    }

    async fn sign_in(&self, name: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/session",
                Some(json!({ "name": name })),
                None,
            )
            .await
            .expect("sign in");
        assert_eq!(status, 201, "{body}");
        body["__cookie"].as_str().unwrap().to_string()
    }

    async fn create_drop(&self, total_stock: i64) -> i64 {
        let (status, body) = self
            .http
            .post(format!("{}/api/v1/drops", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": "Night Runner", "price_cents": 12000, "total_stock": total_stock }))
            .send()
            .await
            .map(|r| (r.status().as_u16(), r))
            .expect("create drop");
        let body: Value = body.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        body["drop"]["id"].as_i64().unwrap()
    }

    /// The buyer's holds by id, with their status.
    async fn statuses(&self, cookie: &str) -> HashMap<i64, String> {
        let (status, body) = self
            .call(
                reqwest::Method::GET,
                "/api/v1/me/reservations",
                None,
                Some(cookie),
            )
            .await
            .expect("my reservations");
        assert_eq!(status, 200, "{body}");
        body["reservations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_i64().unwrap(),
                    r["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// One buyer's rush: reserve, then buy (even buyers) or cancel (odd buyers) and go again, until
/// `stop` or until the server stops answering. Every answer's status is counted.
async fn rush(
    client: Client,
    drop_id: i64,
    buyer: usize,
    cookie: String,
    ledger: Arc<Ledger>,
    statuses: Arc<Mutex<HashMap<u16, usize>>>,
    stop: Arc<AtomicBool>,
) {
    let count = |status: u16| *statuses.lock().unwrap().entry(status).or_default() += 1;
    while !stop.load(Ordering::SeqCst) {
        let Ok((status, body)) = client
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/drops/{drop_id}/reservations"),
                None,
                Some(&cookie),
            )
            .await
        else {
            ledger.cut_off.fetch_add(1, Ordering::SeqCst);
            return;
        };
        count(status);
        if status != 201 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let hold = body["reservation"]["id"].as_i64().unwrap();
        ledger.record(hold, Told::Held, &cookie);
        let (method, path, told) = if buyer.is_multiple_of(2) {
            (
                reqwest::Method::POST,
                format!("/api/v1/reservations/{hold}/purchase"),
                Told::Bought,
            )
        } else {
            (
                reqwest::Method::DELETE,
                format!("/api/v1/reservations/{hold}"),
                Told::Cancelled,
            )
        };
        let Ok((status, _)) = client.call(method, &path, None, Some(&cookie)).await else {
            ledger.cut_off.fetch_add(1, Ordering::SeqCst);
            return;
        };
        count(status);
        if (200..300).contains(&status) {
            ledger.record(hold, told, &cookie);
        }
    }
}

/// Every buyer rushing at once, and what they were told.
struct Rush {
    ledger: Arc<Ledger>,
    statuses: Arc<Mutex<HashMap<u16, usize>>>,
    stop: Arc<AtomicBool>,
    buyers: Vec<tokio::task::JoinHandle<()>>,
}

impl Rush {
    fn start(client: &Client, drop_id: i64, cookies: &[String]) -> Self {
        let ledger = Arc::new(Ledger::default());
        let statuses = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let buyers = cookies
            .iter()
            .enumerate()
            .map(|(buyer, cookie)| {
                tokio::spawn(rush(
                    client.clone(),
                    drop_id,
                    buyer,
                    cookie.clone(),
                    ledger.clone(),
                    statuses.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Self {
            ledger,
            statuses,
            stop,
            buyers,
        }
    }

    fn confirmed(&self) -> usize {
        self.ledger.confirmed.load(Ordering::SeqCst)
    }

    /// Stops the buyers (if the server has not already) and answers the status counts.
    async fn finish(self) -> (Arc<Ledger>, HashMap<u16, usize>) {
        self.stop.store(true, Ordering::SeqCst);
        for buyer in self.buyers {
            buyer.await.unwrap();
        }
        let statuses = self.statuses.lock().unwrap().clone();
        (self.ledger, statuses)
    }
}

/// Checks that every confirmed outcome is in the database and the stock adds up.
async fn assert_nothing_lost(db: &TestDb, client: &Client, drop_id: i64, ledger: &Ledger) {
    let told = ledger.told.lock().unwrap().clone();
    let mut by_buyer: HashMap<String, HashMap<i64, String>> = HashMap::new();
    for (hold, (what, cookie)) in told {
        if !by_buyer.contains_key(&cookie) {
            let statuses = client.statuses(&cookie).await;
            by_buyer.insert(cookie.clone(), statuses);
        }
        let status = by_buyer[&cookie].get(&hold).map(String::as_str);
        match what {
            Told::Held => assert!(
                status.is_some(),
                "hold {hold} was confirmed but is not in the database"
            ),
            Told::Bought => assert_eq!(
                status,
                Some("PURCHASED"),
                "purchase of hold {hold} was confirmed"
            ),
            Told::Cancelled => assert_eq!(
                status,
                Some("CANCELLED"),
                "cancel of hold {hold} was confirmed"
            ),
        }
    }
    let audit = db
        .store(EventBus::default())
        .await
        .audit(dropline::model::DropId(drop_id))
        .await
        .unwrap();
    assert!(audit.holds(), "stock no longer adds up: {audit:?}");
}

/// `kill -9` in the middle of a rush of reserves, purchases and cancels; after a restart every
/// answered write is there and the stock adds up.
async fn a_killed_server_loses_nothing_it_confirmed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let server = Process::start(&db).await;
    let client = Client::new(&server.base);
    let drop_id = client.create_drop(40).await;
    let mut cookies = Vec::new();
    for buyer in 0..64 {
        cookies.push(client.sign_in(&format!("Buyer {buyer}")).await);
    }

    let rush = Rush::start(&client, drop_id, &cookies);
    // Kill it mid-rush: once buyers have been told of some outcomes, with requests in flight.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rush.confirmed() < 60 {
        assert!(Instant::now() < deadline, "the rush never got going");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.kill().await;
    let (ledger, _) = rush.finish().await;
    assert!(
        ledger.cut_off.load(Ordering::SeqCst) > 0,
        "no buyer was still rushing when the server died"
    );

    let server = Process::start(&db).await;
    let client = Client::new(&server.base);
    assert_nothing_lost(&db, &client, drop_id, &ledger).await;
    // And it serves again: a new buyer can still hold a unit if one is left.
    let cookie = client.sign_in("After the crash").await;
    let (status, body) = client
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/drops/{drop_id}/reservations"),
            None,
            Some(&cookie),
        )
        .await
        .unwrap();
    assert!(status == 201 || status == 409, "{status} {body}");
}

on_both_databases!(a_killed_server_loses_nothing_it_confirmed);

/// `/metrics` may be served on an address of its own (`metrics_addr`, say on a private
/// network), so the public port need not show it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_on_an_address_of_their_own() {
    let db = TestDb::new(Backend::Sqlite).await;
    let metrics = format!("127.0.0.1:{}", free_port());
    let server = Process::start_with(&db, &[("METRICS_ADDR", &metrics)]).await;
    let http = reqwest::Client::new();
    let public = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 404);
    let private = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    assert!(private
        .text()
        .await
        .unwrap()
        .contains("dropline_websockets_open"));
}

/// Takes a PostgreSQL database away from everyone (no new connections, existing ones cut) until
/// the returned guard gives it back.
async fn take_database_down(name: &str) -> PgConnection {
    let mut admin = PgConnection::connect(&common::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(name)
    .execute(&mut admin)
    .await
    .unwrap();
    admin
}

async fn bring_database_back(mut admin: PgConnection, name: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

/// PostgreSQL goes away mid-rush: buyers get a clear 503 (never a 500, never a hang), the
/// server comes back by itself once the database does, and nothing confirmed is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_outage_answers_503_and_recovers_by_itself() {
    // Rate limits are not what this test is about: out of reach.
    let api = Api::configured(Backend::Postgres, |s| {
        s.rate_limit_session_per_second = 100_000;
        s.rate_limit_session_burst = 100_000;
        s.rate_limit_ip_per_second = 100_000;
        s.rate_limit_ip_burst = 100_000;
        // Buyers who cancel take the next unit at once, as they did before cooldowns.
        s.hold_cooldown_seconds = 0;
        s.max_released_holds = 1_000_000;
        // A buyer whose cancel the outage turned away holds on until the hold runs out; soon,
        // so the rush after recovery does not hang on holds nobody will end.
        s.reservation_ttl_seconds = 2;
    })
    .await;
    let name = api.db.pg_name().unwrap().to_string();
    let addr = api.listen().await;
    let client = Client::new(&format!("http://{addr}"));
    let drop_id = client.create_drop(1_000).await;
    let mut cookies = Vec::new();
    for buyer in 0..32 {
        cookies.push(client.sign_in(&format!("Buyer {buyer}")).await);
    }
    let rush = Rush::start(&client, drop_id, &cookies);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let admin = take_database_down(&name).await;
    // While it is down, a buyer is told plainly that the service is unavailable.
    let cookie = &cookies[0];
    let (status, body) = client
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/drops/{drop_id}/reservations"),
            None,
            Some(cookie),
        )
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE");
    let (ready, _) = client
        .call(reqwest::Method::GET, "/readyz", None, None)
        .await
        .unwrap();
    assert_eq!(ready, 503, "not ready while the database is down");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    bring_database_back(admin, &name).await;

    // It recovers by itself: ready again and taking orders, with no restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ready, _) = client
            .call(reqwest::Method::GET, "/readyz", None, None)
            .await
            .unwrap();
        if ready == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never became ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = rush.confirmed();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rush.confirmed() < before + 20 {
        assert!(Instant::now() < deadline, "buyers were not served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ledger, statuses) = rush.finish().await;
    assert!(
        statuses.keys().all(|s| matches!(s, 200 | 201 | 409 | 503)),
        "only successes, refusals and 503s: {statuses:?}"
    );
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");
    assert_nothing_lost(&api.db, &client, drop_id, &ledger).await;
}
