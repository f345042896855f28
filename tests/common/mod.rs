//! Test databases: a temporary SQLite file, or a throwaway PostgreSQL database per test.
#![allow(dead_code)]

use std::sync::Arc;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
    Router,
};
use dropline::server::{self, events::EventBus, settings::Settings, store, store::Store, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
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
        store::connect(&self.url, 32, bus)
            .await
            .expect("open store")
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
            ..Settings::default()
        }
    }
}

/// The admin token test servers use.
pub const ADMIN_TOKEN: &str = "test-admin-token";

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

    /// Another server instance on the same database.
    pub async fn on(db: Arc<TestDb>) -> Self {
        let state = server::start(&db.settings()).await.unwrap();
        Self {
            router: server::router(state.clone()),
            state,
            db,
        }
    }

    /// Serves this instance on an ephemeral loopback port; answers its address.
    pub async fn listen(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.router.clone();
        tokio::spawn(async move { axum::serve(listener, router).await });
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

    pub async fn sign_in(&self, name: &str) -> String {
        let reply = self
            .call(
                "POST",
                "/api/v1/session",
                Some(&json!({ "name": name }).to_string()),
                Auth::None,
            )
            .await;
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

    pub async fn drop_count(&self) -> usize {
        let reply = self.call("GET", "/api/v1/drops", None, Auth::None).await;
        reply.body["drops"].as_array().unwrap().len()
    }
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
