//! Test databases: a temporary SQLite file, or a throwaway PostgreSQL database per test.
#![allow(dead_code)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{header, Request, StatusCode},
    Router,
};
use dropline::model::LiveEvent;
use dropline::server::{self, events::EventBus, settings::Settings, store, store::Store, AppState};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{self, client::IntoClientRequest, Message},
    MaybeTlsStream, WebSocketStream,
};
use tower::ServiceExt;

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("DROPLINE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test and is removed after it.
pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("dropline_test_{:016x}", rand_u64());
                let mut conn = PgConnection::connect(&admin).await.expect(
                    "PostgreSQL must be reachable for the tests (DROPLINE_TEST_POSTGRES_URL)",
                );
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(base, _)| base)
                    .unwrap_or(&admin);
                Self {
                    url: format!("{base}/{name}"),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }

    /// Opens the store on this database (running migrations).
    pub async fn store(&self, bus: EventBus) -> Arc<dyn Store> {
        let settings = Settings {
            database_max_connections: 32,
            ..self.settings()
        };
        store::connect(&settings, bus, None)
            .await
            .expect("open store")
    }

    /// Runs one statement of SQL on this database, outside any server.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// The PostgreSQL database's name (`None` on SQLite).
    pub fn pg_name(&self) -> Option<&str> {
        self.pg_name.as_deref()
    }

    /// Settings for a whole server on this database, without demo drops.
    pub fn settings(&self) -> Settings {
        Settings {
            database_url: self.url.clone(),
            seed_demo: false,
            admin_token: ADMIN_TOKEN.into(),
            session_secret: "test-secret-test-secret-test-secret!".into(),
            site_addr: "127.0.0.1:0".into(),
            // The doors' proof of work has tests of its own (`tests/proof.rs`), and so have
            // accounts with passwords (`tests/accounts.rs`): the rest sign in by name.
            proof_floor: 0,
            demo_sign_in: true,
            ..Settings::default()
        }
    }
}

/// The admin token test servers use.
pub const ADMIN_TOKEN: &str = "test-admin-token-test-admin-token";

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin = postgres_admin_url();
        // Async drop is not a thing: remove the database from a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

/// A whole server instance driven through its router.
pub struct Api {
    pub router: Router,
    pub state: AppState,
    pub db: Arc<TestDb>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub cookie: Option<String>,
    pub body: Value,
}

impl Api {
    pub async fn new(backend: Backend) -> Self {
        Self::on(Arc::new(TestDb::new(backend).await)).await
    }

    /// A server whose settings `adjust` changes first.
    pub async fn configured(backend: Backend, adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = Arc::new(TestDb::new(backend).await);
        let mut settings = db.settings();
        adjust(&mut settings);
        let state = server::start(&settings).await.unwrap();
        Self {
            router: server::router(state.clone()),
            state,
            db,
        }
    }

    /// Another server instance on the same database, whose settings `adjust` changes first.
    pub async fn on_with(db: Arc<TestDb>, adjust: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = db.settings();
        adjust(&mut settings);
        let state = server::start(&settings).await.unwrap();
        Self {
            router: server::router(state.clone()),
            state,
            db,
        }
    }

    /// Another server instance on the same database.
    pub async fn on(db: Arc<TestDb>) -> Self {
        let state = server::start(&db.settings()).await.unwrap();
        Self {
            router: server::router(state.clone()),
            state,
            db,
        }
    }

    /// Serves this instance on an ephemeral loopback port, as the binary does (each request
    /// knows its peer's address); answers its address.
    pub async fn listen(&self) -> SocketAddr {
        use dropline::server::http::serve::{bind, Connections};
        let (addr, _) = bind(
            "127.0.0.1:0".parse().unwrap(),
            self.router.clone(),
            Connections::new(&self.state),
            self.state.shutdown.clone(),
        )
        .await
        .unwrap();
        addr
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        auth: Auth<'_>,
    ) -> Reply {
        self.call_with(method, path, body, auth, &[]).await
    }

    /// [`Api::call`] with extra request headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send(None, method, path, body, auth, headers).await
    }

    /// A form post to a server function under `/rpc`, as the page's forms send one.
    pub async fn form(&self, path: &str, body: &str, auth: Auth<'_>) -> Reply {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        self.call_with("POST", path, Some(body), auth, &form).await
    }

    /// [`Api::call_with`] from a socket peer at `peer`, as a request the server accepted.
    pub async fn call_from(
        &self,
        peer: SocketAddr,
        method: &str,
        path: &str,
        body: Option<&str>,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send(Some(peer), method, path, body, auth, headers)
            .await
    }

    async fn send(
        &self,
        peer: Option<SocketAddr>,
        method: &str,
        path: &str,
        body: Option<&str>,
        auth: Auth<'_>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            // JSON unless the caller names its own content type (a form post, say).
            if !headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
            {
                request = request.header(header::CONTENT_TYPE, "application/json");
            }
            request = request.header(header::CONTENT_LENGTH, body.len());
        }
        match auth {
            Auth::None => {}
            Auth::Cookie(cookie) => request = request.header(header::COOKIE, cookie),
            Auth::Bearer(token) => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"))
            }
        }
        if let Some(peer) = peer {
            request = request.extension(ConnectInfo(peer));
        }
        let request = request
            .body(Body::from(body.unwrap_or_default().to_string()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            cookie,
            body,
        }
    }

    /// The HTML of a page, as a browser with `cookie` gets it.
    pub async fn page(&self, path: &str, cookie: Option<&str>) -> String {
        let mut request = Request::builder()
            .uri(path)
            .header(header::ACCEPT, "text/html");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// `POST /api/v1/session` with a display name, sending `auth` along.
    pub async fn sign_in_as(&self, name: &str, auth: Auth<'_>) -> Reply {
        self.call(
            "POST",
            "/api/v1/session",
            Some(&json!({ "name": name }).to_string()),
            auth,
        )
        .await
    }

    pub async fn sign_in(&self, name: &str) -> String {
        let reply = self.sign_in_as(name, Auth::None).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.cookie.expect("session cookie")
    }

    pub async fn create_drop(&self, body: Value) -> Reply {
        self.call(
            "POST",
            "/api/v1/drops",
            Some(&body.to_string()),
            Auth::Bearer(ADMIN_TOKEN),
        )
        .await
    }

    /// A drop of `stock` units, created through the admin API; answers its id.
    pub async fn new_drop(&self, stock: i64) -> i64 {
        let reply = self
            .create_drop(json!({ "name": "Test Runner", "price_cents": 100, "total_stock": stock }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["drop"]["id"].as_i64().unwrap()
    }

    /// `POST /api/v1/drops/{drop}/reservations` as the buyer whose session `cookie` is.
    pub async fn reserve(&self, cookie: &str, drop: impl std::fmt::Display) -> Reply {
        self.call(
            "POST",
            &format!("/api/v1/drops/{drop}/reservations"),
            None,
            Auth::Cookie(cookie),
        )
        .await
    }

    /// `POST /api/v1/drops/{drop}/reservations {"size"}` as the buyer whose session `cookie`
    /// is.
    pub async fn reserve_size(
        &self,
        cookie: &str,
        drop: impl std::fmt::Display,
        size: &str,
    ) -> Reply {
        self.call(
            "POST",
            &format!("/api/v1/drops/{drop}/reservations"),
            Some(&json!({ "size": size }).to_string()),
            Auth::Cookie(cookie),
        )
        .await
    }

    /// `POST /api/v1/reservations/{hold}/purchase` as the buyer whose session `cookie` is.
    pub async fn purchase(&self, cookie: &str, hold: impl std::fmt::Display) -> Reply {
        self.call(
            "POST",
            &format!("/api/v1/reservations/{hold}/purchase"),
            None,
            Auth::Cookie(cookie),
        )
        .await
    }

    /// `DELETE /api/v1/reservations/{hold}` as the buyer whose session `cookie` is.
    pub async fn cancel(&self, cookie: &str, hold: impl std::fmt::Display) -> Reply {
        self.call(
            "DELETE",
            &format!("/api/v1/reservations/{hold}"),
            None,
            Auth::Cookie(cookie),
        )
        .await
    }

    pub async fn drop_count(&self) -> usize {
        let reply = self.call("GET", "/api/v1/drops", None, Auth::None).await;
        reply.body["drops"].as_array().unwrap().len()
    }
}

/// Polls `check` until it holds or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Cookie(&'a str),
    Bearer(&'a str),
}

/// Runs each listed async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A browser's socket, reduced to the events it reads.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, cookie: Option<&str>) -> Self {
        let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
        Self::try_connect(addr, &headers)
            .await
            .expect("websocket connects")
    }

    /// Opens `/ws` with these request headers; the refusal, if the server refuses.
    pub async fn try_connect(
        addr: SocketAddr,
        headers: &[(&str, &str)],
    ) -> Result<Self, tungstenite::Error> {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        for (name, value) in headers {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let (ws, _) = connect_async(request).await?;
        Ok(Self { ws })
    }

    /// The next event, or `None` when nothing arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<LiveEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            if let Message::Text(text) = message.expect("socket stays healthy") {
                return Some(serde_json::from_str(&text).expect("events parse"));
            }
        }
    }

    pub async fn next(&mut self) -> LiveEvent {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event arrives")
    }

    /// The next event, past a late `DROP_CREATED` of `known`: on PostgreSQL the creation of a
    /// drop made before the socket connected can still be on its way through LISTEN/NOTIFY
    /// when the snapshot (which already shows it) arrives.
    pub async fn next_after_echo_of(&mut self, known: dropline::model::DropId) -> LiveEvent {
        loop {
            match self.next().await {
                LiveEvent::DropCreated { drop } if drop.id == known => {}
                other => return other,
            }
        }
    }

    /// Reads until the server ends the socket: `Some(code)` with the close code it sent (`None`
    /// inside when it just hung up), or `None` when the socket is still open after `wait`.
    pub async fn closed_within(&mut self, wait: Duration) -> Option<Option<u16>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None | Some(Err(_))) => return Some(None),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Some(frame.map(|frame| u16::from(frame.code)))
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    pub async fn snapshot(&mut self) -> Vec<dropline::model::ProductDrop> {
        match self.next().await {
            LiveEvent::Snapshot { drops, .. } => drops,
            other => panic!("expected a snapshot, got {other:?}"),
        }
    }
}

/// Drop `drop`'s audit as anyone fetches it from this server (over HTTP): the final document
/// and every ticket's story.
pub async fn fetch_audit(
    api: &Api,
    drop: i64,
) -> (dropline_verify::Audit, Vec<dropline_verify::History>) {
    let addr = api.listen().await;
    dropline_verify::fetch(&format!("http://{addr}"), drop)
        .await
        .expect("the audit can be fetched")
}

/// The drand chain this server's settings name (quicknet unless a test's beacon is set), as
/// its operators would publish it.
pub fn chain_of(api: &Api) -> dropline_verify::Chain {
    let settings = &api.state.settings;
    dropline_verify::Chain {
        chain_hash: settings.beacon_chain_hash.clone(),
        public_key: settings.beacon_public_key.clone(),
        genesis_seconds: settings.beacon_genesis_seconds,
        period_seconds: i64::try_from(settings.beacon_period_seconds).unwrap(),
    }
}

/// The independent verifier (`verify/`, what README.md tells anyone to run) on drop `drop`'s
/// audit as this server publishes it, with `receipts`: answers what it printed, or every
/// fault it found, one per line.
pub async fn verify_audit(
    api: &Api,
    drop: i64,
    receipts: &[dropline_verify::Receipt],
) -> Result<String, String> {
    let (audit, tickets) = fetch_audit(api, drop).await;
    let evidence = dropline_verify::Evidence {
        receipts: receipts.to_vec(),
        ..Default::default()
    };
    outcome(dropline_verify::verify(
        drop,
        &audit,
        &tickets,
        &chain_of(api),
        &evidence,
    ))
}

/// [`verify_audit`] on a seed-mode audit already fetched (and maybe tampered with).
pub fn checked(
    drop: i64,
    audit: &dropline_verify::Audit,
    tickets: &[dropline_verify::History],
    receipts: &[dropline_verify::Receipt],
) -> Result<String, String> {
    let evidence = dropline_verify::Evidence {
        receipts: receipts.to_vec(),
        ..Default::default()
    };
    let chain = dropline_verify::Chain::quicknet();
    outcome(dropline_verify::verify(
        drop, audit, tickets, &chain, &evidence,
    ))
}

/// What the verifier printed, or its faults, one per line.
fn outcome(
    verdict: Result<dropline_verify::Summary, Vec<dropline_verify::Fault>>,
) -> Result<String, String> {
    verdict
        .map(|summary| summary.to_string())
        .map_err(|faults| {
            faults
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
}

/// [`verify_audit`], which must accept the audit; answers what it printed.
pub async fn verified(api: &Api, drop: i64) -> String {
    verify_audit(api, drop, &[])
        .await
        .unwrap_or_else(|faults| panic!("the verifier rejected the audit:\n{faults}"))
}

/// A proof-of-work challenge solved as a script solves it (ALTCHA's own crate): the value of a
/// `Dropline-Proof` header.
pub fn solve(challenge: altcha::Challenge) -> String {
    use base64::Engine;
    let solution = altcha::solve_challenge(altcha::SolveChallengeOptions::new(&challenge))
        .unwrap()
        .expect("a cheap challenge is solved at once");
    let payload = altcha::Payload {
        challenge,
        solution,
    };
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&payload).unwrap())
}

/// Doors that ask a cheap proof of work, so tests solve in milliseconds, and no rate limit a
/// test's requests would meet.
pub fn cheap_proofs(settings: &mut Settings) {
    settings.proof_floor = 20;
    settings.proof_ceiling = 40;
    settings.proof_cost = 10;
    settings.rate_limit_session_per_second = 1_000;
    settings.rate_limit_session_burst = 1_000;
    settings.rate_limit_ip_per_second = 1_000;
    settings.rate_limit_ip_burst = 1_000;
}
