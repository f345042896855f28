//! The HTTP side of the generator: one keep-alive HTTP/1.1 connection per simulated buyer (so
//! a run with C buyers holds exactly C connections), and the few REST calls the scenarios make.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use http_body_util::{BodyExt, Full};
use hyper::{
    body::Bytes,
    client::conn::http1::SendRequest,
    header::{HeaderName, AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, SET_COOKIE},
    Method, Request, StatusCode,
};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

use crate::error::{BenchError, Result};

/// One HTTP/1.1 connection to the server, kept alive between requests.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A whole response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// Fails with the status and body unless the status is `expected`.
    pub fn expect(self, expected: StatusCode, what: &str) -> Result<Self> {
        if self.status == expected {
            Ok(self)
        } else {
            Err(BenchError::Unexpected(format!(
                "{what}: HTTP {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )))
        }
    }
}

impl Conn {
    /// Connects (Nagle off, as a browser's connection would be).
    pub async fn open(addr: SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the server or this side closes; a failure shows up on the next request.
            let _ = connection.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole response; a body is JSON unless `headers` name
    /// its type.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(HeaderName, &str)],
        body: Option<String>,
    ) -> Result<Reply> {
        self.sender.ready().await?;
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host);
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        let body = match body {
            Some(body) => {
                if !headers.iter().any(|(name, _)| name == CONTENT_TYPE) {
                    request = request.header(CONTENT_TYPE, "application/json");
                }
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let response = self.sender.send_request(request.body(body)?).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `POST /api/v1/drops/{drop}/reservations` as the buyer whose session `cookie` is.
    pub async fn reserve(&mut self, drop: i64, cookie: &str) -> Result<Reply> {
        self.reserve_via(Route::Rest, drop, cookie, 0).await
    }

    /// A reserve as the buyer whose session `cookie` is, by `route`, as the cell's `n`th
    /// request: `n` makes the idempotency key of the routes that send one, and picks the size
    /// of the route that names one.
    pub async fn reserve_via(
        &mut self,
        route: Route,
        drop: i64,
        cookie: &str,
        n: usize,
    ) -> Result<Reply> {
        let key = &format!("hot-{drop}-{n}");
        match route {
            Route::Rest => {
                let path = format!("/api/v1/drops/{drop}/reservations");
                self.call(Method::POST, &path, &[(COOKIE, cookie)], None)
                    .await
            }
            Route::RestIdempotent => {
                let path = format!("/api/v1/drops/{drop}/reservations");
                let headers = [(COOKIE, cookie), (IDEMPOTENCY_KEY.clone(), key)];
                self.call(Method::POST, &path, &headers, None).await
            }
            Route::RestSized => {
                let path = format!("/api/v1/drops/{drop}/reservations");
                // The buyers spread over the sizes in turn.
                let body = json!({ "size": size_label(n % HOT_SIZES) }).to_string();
                self.call(Method::POST, &path, &[(COOKIE, cookie)], Some(body))
                    .await
            }
            Route::Rpc => {
                let form = format!("drop_id={drop}&idempotency_key={key}");
                let headers = [
                    (COOKIE, cookie),
                    (CONTENT_TYPE, "application/x-www-form-urlencoded"),
                ];
                self.call(Method::POST, "/rpc/reserve_unit", &headers, Some(form))
                    .await
            }
        }
    }
}

/// The `Idempotency-Key` request header.
static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// The ways a buyer can reserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/v1/drops/{id}/reservations`, as a script would.
    Rest,
    /// The same with an `Idempotency-Key` on every request, as a careful client would.
    RestIdempotent,
    /// `POST /rpc/reserve_unit` with a form and an `idempotency_key`, as the web app does.
    Rpc,
    /// Plain REST on a drop of [`HOT_SIZES`] sizes, each request naming one of them in turn.
    RestSized,
}

/// How many sizes the sized hot drop has.
pub const HOT_SIZES: usize = 10;

/// The label of the sized hot drop's `n`th size.
pub fn size_label(n: usize) -> String {
    format!("S{n}")
}

impl Route {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Rest => "REST",
            Self::RestIdempotent => "REST + Idempotency-Key",
            Self::Rpc => "/rpc/reserve_unit (the web app's form)",
            Self::RestSized => "REST, spread over 10 sizes",
        }
    }

    /// The status of a successful reserve.
    pub fn held(self) -> StatusCode {
        match self {
            Self::Rpc => StatusCode::OK,
            _ => StatusCode::CREATED,
        }
    }
}

/// Signs in `count` distinct buyers (numbered from `first`) over `connections` connections;
/// answers their session cookies (`name=value`), in order.
pub async fn sign_in_many(
    addr: SocketAddr,
    first: usize,
    count: usize,
    connections: usize,
    prefix: &str,
) -> Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.min(count).max(1) {
        let next = next.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, BenchError>(mine);
                }
                let body = json!({ "name": format!("{prefix} {}", first + i) }).to_string();
                let reply = conn
                    .call(Method::POST, "/api/v1/session", &[], Some(body))
                    .await?
                    .expect(StatusCode::CREATED, "sign-in")?;
                let cookie = reply
                    .headers
                    .get(SET_COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(';').next())
                    .ok_or_else(|| BenchError::Unexpected("sign-in set no cookie".into()))?;
                mine.push((i, cookie.to_string()));
            }
        }));
    }
    let mut cookies = vec![String::new(); count];
    for task in tasks {
        for (i, cookie) in task.await?? {
            cookies[i] = cookie;
        }
    }
    Ok(cookies)
}

/// Creates a drop on sale now with `stock` units, one per buyer; answers its id.
pub async fn create_drop(
    addr: SocketAddr,
    admin_token: &str,
    name: &str,
    stock: i64,
) -> Result<i64> {
    let drop = json!({ "name": name, "price_cents": 18_000, "total_stock": stock });
    post_drop(addr, admin_token, &drop).await
}

/// Creates a drop of [`HOT_SIZES`] sizes with `stock` units in all (at least as many), evenly
/// spread, through the admin API; answers its id.
pub async fn create_sized_drop(
    addr: SocketAddr,
    admin_token: &str,
    name: &str,
    stock: i64,
) -> Result<i64> {
    let each = (stock + HOT_SIZES as i64 - 1) / HOT_SIZES as i64;
    let sizes: Vec<Value> = (0..HOT_SIZES)
        .map(|n| json!({ "label": size_label(n), "stock": each }))
        .collect();
    let drop = json!({ "name": name, "price_cents": 18_000, "sizes": sizes });
    post_drop(addr, admin_token, &drop).await
}

/// `POST /api/v1/drops` with `drop` as its body, expecting 201; answers the new drop's id.
pub async fn post_drop(addr: SocketAddr, admin_token: &str, drop: &Value) -> Result<i64> {
    let mut conn = Conn::open(addr).await?;
    let bearer = format!("Bearer {admin_token}");
    let body = drop.to_string();
    let reply = conn
        .call(
            Method::POST,
            "/api/v1/drops",
            &[(AUTHORIZATION, &bearer)],
            Some(body),
        )
        .await?
        .expect(StatusCode::CREATED, "create drop")?;
    reply.json()?["drop"]["id"]
        .as_i64()
        .ok_or_else(|| BenchError::Unexpected("create drop answered no id".into()))
}

/// `GET path`, expecting 200.
pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply> {
    Conn::open(addr)
        .await?
        .call(Method::GET, path, &[], None)
        .await?
        .expect(StatusCode::OK, path)
}
