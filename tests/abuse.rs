//! What one buyer or one bad client may not do to everyone else: hold up the hot drop with
//! requests that can only be refused, tie up server memory through `/ws`, read another buyer's
//! events from another site, guess the admin token, or slip past a limit without an address;
//! and what a signed-out session can still do (nothing). On both databases.

mod common;

use std::{net::SocketAddr, time::Duration};

use axum::http::StatusCode;
use common::{wait_until, Api, Auth, Backend, Client, Reply, ADMIN_TOKEN};
use dropline::model::LiveEvent;
use serde_json::json;
use sqlx::Connection;
use tokio::{io::AsyncWriteExt, time::Instant};

fn error_code(reply: &Reply) -> &str {
    reply.body["error"]["code"].as_str().unwrap_or_default()
}

async fn hold_of(api: &Api, cookie: &str, drop: i64) -> i64 {
    let reply = api.reserve(cookie, drop).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body["reservation"]["id"].as_i64().unwrap()
}

/// Something that holds the drop's write lock for as long as it lives, as a long batch would:
/// the drop row's lock on PostgreSQL, the database's write lock on SQLite.
enum LockHolder {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl LockHolder {
    async fn take(api: &Api, drop: i64) -> Self {
        match api.db.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&api.db.url).await.unwrap();
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Self::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&api.db.url).await.unwrap();
                sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
                sqlx::query("SELECT id FROM drops WHERE id = $1 FOR UPDATE")
                    .bind(drop)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                Self::Postgres(conn)
            }
        }
    }

    async fn release(self) {
        match self {
            Self::Sqlite(mut conn) => drop(sqlx::query("ROLLBACK").execute(&mut conn).await),
            Self::Postgres(mut conn) => drop(sqlx::query("ROLLBACK").execute(&mut conn).await),
        }
    }
}

/// A script looping over other buyers' holds gets its refusals at once, without waiting for
/// the drop's lock that real buyers' reserves take.
async fn someone_elses_or_a_missing_hold_is_refused_without_waiting_for_the_drop(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = api.new_drop(5).await;
    let ann = api.sign_in("Ann").await;
    let bob = api.sign_in("Bob").await;
    let hold = hold_of(&api, &ann, drop).await;

    let lock = LockHolder::take(&api, drop).await;
    let attempts = [
        ("DELETE", format!("/api/v1/reservations/{hold}"), 403),
        ("POST", format!("/api/v1/reservations/{hold}/purchase"), 403),
        (
            "DELETE",
            format!("/api/v1/reservations/{}", hold + 1000),
            404,
        ),
        (
            "POST",
            format!("/api/v1/reservations/{}/purchase", hold + 1000),
            404,
        ),
    ];
    for (method, path, status) in attempts {
        let started = Instant::now();
        let reply = tokio::time::timeout(
            Duration::from_millis(300),
            api.call(method, &path, None, Auth::Cookie(&bob)),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {path} waited for the drop's lock"));
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{method} {path}: {}",
            reply.body
        );
        assert!(started.elapsed() < Duration::from_millis(300));
    }
    lock.release().await;

    // The owner's own cancel still works once the lock is free.
    let mine = api
        .call(
            "DELETE",
            &format!("/api/v1/reservations/{hold}"),
            None,
            Auth::Cookie(&ann),
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
}

/// Cancel is rate limited like purchase: a loop of cancels from one session ends in 429s.
async fn a_loop_of_cancels_is_slowed_down(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.rate_limit_session_per_second = 1;
        s.rate_limit_session_burst = 10;
    })
    .await;
    let bob = api.sign_in("Bob").await;
    let mut statuses = Vec::new();
    for id in 0..200 {
        let reply = api
            .call(
                "DELETE",
                &format!("/api/v1/reservations/{}", 900_000 + id),
                None,
                Auth::Cookie(&bob),
            )
            .await;
        statuses.push(reply.status.as_u16());
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited >= 180, "only {limited} of 200 cancels were limited");
    assert_eq!(statuses.last(), Some(&429));

    // The same through the web app's server function.
    let reply = api
        .form(
            "/rpc/cancel_hold",
            "reservation_id=900001",
            Auth::Cookie(&bob),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        reply.body
    );
}

/// One peer address, as a request the server accepted from it.
fn peer(last: u8) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, last], 40_000))
}

/// Guessing the admin token is slowed down per address, on the API and in the panel alike;
/// once over the limit even the right token waits, so a guess cannot be confirmed.
async fn admin_token_guesses_are_slowed_down(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.rate_limit_admin_failures_per_minute = 3;
    })
    .await;
    let body = json!({ "name": "Guess", "price_cents": 100, "total_stock": 1 }).to_string();
    let mut statuses = Vec::new();
    for guess in 0..5 {
        let token = format!("guess-{guess}");
        let reply = api
            .call_from(
                peer(7),
                "POST",
                "/api/v1/drops",
                Some(&body),
                Auth::Bearer(&token),
                &[],
            )
            .await;
        statuses.push(reply.status.as_u16());
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(reply.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(statuses, [403, 403, 403, 429, 429]);
    let right = api
        .call_from(
            peer(7),
            "POST",
            "/api/v1/drops",
            Some(&body),
            Auth::Bearer(ADMIN_TOKEN),
            &[],
        )
        .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    // The panel's form counts against the same address.
    let form = "admin_token=guess&name=Guess&price=1&total_stock=1";
    let panel = api
        .call_from(
            peer(7),
            "POST",
            "/rpc/create_drop",
            Some(form),
            Auth::None,
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(
        panel.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        panel.body
    );
    // Another address is not held back, and the right token works there.
    let elsewhere = api
        .call_from(
            peer(8),
            "POST",
            "/api/v1/drops",
            Some(&body),
            Auth::Bearer(ADMIN_TOKEN),
            &[],
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::CREATED, "{}", elsewhere.body);
}

/// With a proxy header as the address source and the header missing, the per-address limit
/// still counts: against the socket peer.
async fn a_missing_proxy_header_still_counts_against_the_peer(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.client_ip_source = axum_client_ip::ClientIpSource::RightmostXForwardedFor;
        s.rate_limit_ip_per_second = 1;
        s.rate_limit_ip_burst = 2;
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let reply = api
            .call_from(
                peer(9),
                "POST",
                "/api/v1/session",
                Some(r#"{"name":"Ann"}"#),
                Auth::None,
                &[],
            )
            .await;
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, [201, 201, 429]);
}

/// A signed-out cookie is worth nothing: not on the API, not on `/ws`, not on the page.
async fn a_signed_out_cookie_is_revoked_everywhere(backend: Backend) {
    let api = Api::configured(backend, |s| s.reservation_ttl_seconds = 1).await;
    let drop = api.new_drop(3).await;
    let ann = api.sign_in("Ann").await;
    hold_of(&api, &ann, drop).await;
    let out = api
        .call("DELETE", "/api/v1/session", None, Auth::Cookie(&ann))
        .await;
    assert_eq!(out.status, StatusCode::OK);

    let mine = api
        .call("GET", "/api/v1/me/reservations", None, Auth::Cookie(&ann))
        .await;
    assert_eq!(mine.status, StatusCode::UNAUTHORIZED, "{}", mine.body);
    assert_eq!(error_code(&mine), "UNAUTHENTICATED");
    let reserve = api.reserve(&ann, drop).await;
    assert_eq!(reserve.status, StatusCode::UNAUTHORIZED);

    // The page greets nobody.
    let page = api.page("/", Some(&ann)).await;
    assert!(page.contains("Sign in"), "no sign-in form on the page");
    assert!(!page.contains("Signed in as"), "the page still greets Ann");

    // The socket is anonymous: Ann's hold running out is not told to it, though the unit it
    // gives back is.
    let addr = api.listen().await;
    let mut socket = Client::connect(addr, Some(&ann)).await;
    socket.snapshot().await;
    let mut events = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while let Some(event) = socket.next_within(until - Instant::now()).await {
        events.push(event);
    }
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, LiveEvent::ReservationExpired { .. })),
        "a signed-out cookie still receives its owner's events: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, LiveEvent::StockUpdated { available: 3, .. })),
        "the expiry never reached the socket: {events:?}"
    );
}

/// What `GET /api/v1/me/reservations` answers `cookie` on `api`.
async fn my_reservations_status(api: &Api, cookie: &str) -> StatusCode {
    api.call("GET", "/api/v1/me/reservations", None, Auth::Cookie(cookie))
        .await
        .status
}

/// A sign-out on one instance reaches another that has the session in memory, within
/// `session_cache_seconds`.
async fn a_sign_out_reaches_every_instance(backend: Backend) {
    let a = Api::configured(backend, |s| s.session_cache_seconds = 1).await;
    let b = Api::on_with(a.db.clone(), |s| s.session_cache_seconds = 1).await;
    let ann = a.sign_in("Ann").await;
    assert_eq!(my_reservations_status(&b, &ann).await, StatusCode::OK);
    let out = a
        .call("DELETE", "/api/v1/session", None, Auth::Cookie(&ann))
        .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        my_reservations_status(&a, &ann).await,
        StatusCode::UNAUTHORIZED
    );
    let deadline = Instant::now() + Duration::from_secs(4);
    while my_reservations_status(&b, &ann).await != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "B still lets the signed-out session in"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A session ends at its expiry, on every instance.
async fn an_expired_session_is_anonymous(backend: Backend) {
    let api = Api::new(backend).await;
    let ann = api.sign_in("Ann").await;
    assert_eq!(
        api.call("GET", "/api/v1/me/reservations", None, Auth::Cookie(&ann))
            .await
            .status,
        StatusCode::OK
    );
    api.db
        .execute("UPDATE sessions SET expires_at = created_at")
        .await;
    // A fresh instance reads the session from the database, not from a cache.
    let other = Api::on(api.db.clone()).await;
    let reply = other
        .call("GET", "/api/v1/me/reservations", None, Auth::Cookie(&ann))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.body);
}

/// `/ws` holds no one else's memory hostage: a frame larger than the message cap is refused
/// as its header arrives, a peer that stops answering pings is let go, and one address can
/// open only so many sockets.
async fn a_huge_frame_closes_the_socket_at_once(backend: Backend) {
    let api = Api::new(backend).await;
    let addr = api.listen().await;
    let mut client = Client::connect(addr, None).await;
    client.snapshot().await;
    // A masked binary frame whose header declares 1 MiB; no payload follows.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    client.ws.get_mut().write_all(&header).await.unwrap();
    let closed = client.closed_within(Duration::from_secs(1)).await;
    assert_eq!(
        closed,
        Some(Some(1009)),
        "the socket was not closed with 1009"
    );
}

async fn a_peer_that_never_answers_pings_is_let_go(backend: Backend) {
    let interval = Duration::from_millis(300);
    let api = Api::configured(backend, |s| {
        s.ws_ping_interval_ms = interval.as_millis() as u64;
    })
    .await;
    let addr = api.listen().await;
    let mut silent = Client::connect(addr, None).await;
    let mut awake = Client::connect(addr, None).await;
    // Reading answers pings: the awake client reads all along; the silent one reads nothing
    // for two ping intervals.
    let until = Instant::now() + interval * 2 + Duration::from_millis(150);
    while Instant::now() < until {
        let _ = awake.next_within(Duration::from_millis(50)).await;
    }
    assert!(
        silent
            .closed_within(Duration::from_millis(100))
            .await
            .is_some(),
        "a peer that answered no ping is still connected"
    );
    assert!(
        awake.closed_within(interval * 3).await.is_none(),
        "a peer that answers pings was closed"
    );
}

async fn one_address_opens_only_so_many_sockets(backend: Backend) {
    let api = Api::new(backend).await;
    let addr = api.listen().await;
    let mut open = Vec::new();
    for _ in 0..64 {
        let mut client = Client::connect(addr, None).await;
        client.snapshot().await;
        open.push(client);
    }
    match Client::try_connect(addr, &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        Err(other) => panic!("the 65th socket failed otherwise: {other}"),
        Ok(_) => panic!("the 65th socket from one address was accepted"),
    }
    // A closed socket frees its place.
    open.pop();
    let again = wait_until(Duration::from_secs(5), || async {
        Client::try_connect(addr, &[]).await.is_ok()
    })
    .await;
    assert!(again, "a freed place was never given back");
}

/// A page on another site (a sibling subdomain) cannot open a buyer's socket with their
/// cookie; the site's own pages and clients that send no `Origin` can.
async fn another_sites_page_cannot_open_a_buyers_socket(backend: Backend) {
    let api = Api::new(backend).await;
    let ann = api.sign_in("Ann").await;
    let addr = api.listen().await;
    let refused = Client::try_connect(
        addr,
        &[("cookie", &ann), ("origin", "https://evil.example")],
    )
    .await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        Err(other) => panic!("refused otherwise: {other}"),
        Ok(_) => panic!("a cross-site page opened a buyer's socket"),
    }
    let own = format!("http://{addr}");
    let mut same_site = Client::try_connect(addr, &[("cookie", &ann), ("origin", &own)])
        .await
        .expect("the site's own page connects");
    same_site.snapshot().await;
    let mut tool = Client::connect(addr, Some(&ann)).await;
    tool.snapshot().await;
}

/// Counts the rows `sql` (a `SELECT COUNT(*)`) finds in the test's database.
async fn count_rows(api: &Api, sql: &'static str) -> i64 {
    match api.db.backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&api.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&api.db.url).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
        }
    }
}

/// A buyer cannot keep a unit to themselves by giving it back and taking it again at once:
/// after a cancel, and after a hold runs out, the same buyer waits before reserving that drop
/// again (`COOLING_DOWN`, with `Retry-After`), while anyone else may take the unit meanwhile.
async fn a_hold_cannot_be_kept_by_giving_it_back_and_taking_it_again(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.reservation_ttl_seconds = 1;
        s.expiry_sweep_ms = 50;
    })
    .await;
    let drop = api.new_drop(1).await;
    let ann = api.sign_in("Ann").await;
    let bob = api.sign_in("Bob").await;
    let cooling = |reply: &Reply| {
        assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
        assert_eq!(error_code(reply), "COOLING_DOWN", "{}", reply.body);
        let wait: u64 = reply.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "Retry-After: {wait}");
    };

    let hold = hold_of(&api, &ann, drop).await;
    assert_eq!(api.cancel(&ann, hold).await.status, StatusCode::OK);
    cooling(&api.reserve(&ann, drop).await);
    // The unit is back on sale for everyone else.
    hold_of(&api, &bob, drop).await;
    // Bob lets his hold run out; the moment it is back, he cannot take it again either.
    let back = wait_until(Duration::from_secs(5), || async {
        let shown = api
            .call("GET", &format!("/api/v1/drops/{drop}"), None, Auth::None)
            .await;
        shown.body["drop"]["available_stock"] == 1
    })
    .await;
    assert!(back, "the hold never expired");
    cooling(&api.reserve(&bob, drop).await);
    cooling(&api.reserve(&ann, drop).await);

    // After the cooldown the buyer may hold again, but may give back only so many holds.
    let api = Api::configured(backend, |s| {
        s.hold_cooldown_seconds = 1;
        s.max_released_holds = 2;
    })
    .await;
    let drop = api.new_drop(1).await;
    let ann = api.sign_in("Ann").await;
    for _ in 0..2 {
        let hold = hold_of(&api, &ann, drop).await;
        assert_eq!(api.cancel(&ann, hold).await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let spent = api.reserve(&ann, drop).await;
    assert_eq!(spent.status, StatusCode::CONFLICT, "{}", spent.body);
    assert_eq!(error_code(&spent), "HOLD_LIMIT_REACHED", "{}", spent.body);
    let bob = api.sign_in("Bob").await;
    hold_of(&api, &bob, drop).await;
}

/// A client that sends half a request head (or nothing at all), or trickles its body a byte at
/// a time, is cut off instead of holding its connection (and the server's memory) for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_sent_heads_and_trickled_bodies_are_cut_off() {
    use tokio::io::AsyncReadExt;
    let api = Api::configured(Backend::Sqlite, |s| {
        s.header_read_timeout_ms = 1_000;
        s.request_body_timeout_ms = 1_500;
        s.request_timeout_ms = 3_000;
    })
    .await;
    let addr = api.listen().await;
    let mut heads = Vec::new();
    for _ in 0..200 {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: dropline\r\nX-Slow: ")
            .await
            .unwrap();
        heads.push(conn);
    }
    // And some that never send a byte.
    for _ in 0..20 {
        heads.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut trickle = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickle
        .write_all(
            b"POST /api/v1/session HTTP/1.1\r\nHost: dropline\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    // The trickle goes on: a byte a second, each well within the body's idle timeout.
    let until = Instant::now() + Duration::from_secs(8);
    let mut answer = Vec::new();
    while Instant::now() < until {
        let mut buf = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(1), trickle.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {
                if trickle.write_all(b" ").await.is_err() {
                    break;
                }
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the trickled body was answered {answer:?}"
    );
    let mut open = 0;
    for conn in &mut heads {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_millis(50), conn.read(&mut buf)).await;
        open += usize::from(read.is_err());
    }
    assert_eq!(
        open, 0,
        "{open} of 220 silent or half-sent heads still hold a connection"
    );
}

/// One address holds only so many connections at once; the next is told so and closed, and a
/// place frees when a connection ends. A trusted proxy, which carries many buyers, is not held
/// to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_holds_only_so_many_connections() {
    use tokio::io::AsyncReadExt;
    let api = Api::configured(Backend::Sqlite, |s| s.max_connections_per_ip = 3).await;
    let addr = api.listen().await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(served_connection(addr).await);
    }
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), fourth.read_to_end(&mut answer))
        .await
        .expect("the fourth connection is closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("RATE_LIMITED"), "{answer}");
    held.pop();
    let again = wait_until(Duration::from_secs(5), || async {
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(again, "a freed place was never given back");

    let proxied = Api::configured(Backend::Sqlite, |s| {
        s.max_connections_per_ip = 1;
        s.trusted_proxies = "127.0.0.1".into();
    })
    .await;
    let addr = proxied.listen().await;
    let mut through_proxy = Vec::new();
    for _ in 0..5 {
        through_proxy.push(served_connection(addr).await);
    }
}

/// A connection to `addr` that has been answered one request and is kept open.
async fn served_connection(addr: SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncReadExt;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: dropline\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    conn
}

/// With the port reachable directly, a forwarding header is the client's word, not its
/// address: naming another address in every request buys no more sign-ins, and naming the
/// admin's address does not lock the admin out.
async fn a_forged_forwarded_for_neither_dodges_limits_nor_locks_out_the_admin(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.client_ip_source = axum_client_ip::ClientIpSource::RightmostXForwardedFor;
        s.rate_limit_ip_per_second = 1;
        s.rate_limit_ip_burst = 5;
        s.rate_limit_admin_failures_per_minute = 3;
    })
    .await;
    let mut limited = 0;
    for i in 0..20 {
        let forged = format!("203.0.113.{i}");
        let reply = api
            .call_from(
                peer(20),
                "POST",
                "/api/v1/session",
                Some(r#"{"name":"Bot"}"#),
                Auth::None,
                &[("x-forwarded-for", &forged)],
            )
            .await;
        limited += usize::from(reply.status == StatusCode::TOO_MANY_REQUESTS);
    }
    assert!(
        limited >= 14,
        "only {limited} of 20 forged sign-ins were limited"
    );

    let body = json!({ "name": "Guess", "price_cents": 100, "total_stock": 1 }).to_string();
    for guess in 0..10 {
        let token = format!("guess-{guess}");
        api.call_from(
            peer(21),
            "POST",
            "/api/v1/drops",
            Some(&body),
            Auth::Bearer(&token),
            &[("x-forwarded-for", "198.51.100.30")],
        )
        .await;
    }
    let admin = api
        .call_from(
            peer(30),
            "POST",
            "/api/v1/drops",
            Some(&body),
            Auth::Bearer(ADMIN_TOKEN),
            &[],
        )
        .await;
    assert_eq!(admin.status, StatusCode::CREATED, "{}", admin.body);
    let guesser = api
        .call_from(
            peer(21),
            "POST",
            "/api/v1/drops",
            Some(&body),
            Auth::Bearer(ADMIN_TOKEN),
            &[("x-forwarded-for", "198.51.100.31")],
        )
        .await;
    assert_eq!(guesser.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Behind a trusted proxy the client is the one the proxy names: each buyer counts against
/// their own address, and the proxy's address is not held back for all of them.
async fn a_trusted_proxy_names_its_clients(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.client_ip_source = axum_client_ip::ClientIpSource::RightmostXForwardedFor;
        s.trusted_proxies = "198.51.100.40/32".into();
        s.rate_limit_ip_per_second = 1;
        s.rate_limit_ip_burst = 2;
    })
    .await;
    let sign_in = |client: &'static str| {
        let api = &api;
        async move {
            api.call_from(
                peer(40),
                "POST",
                "/api/v1/session",
                Some(r#"{"name":"Ann"}"#),
                Auth::None,
                &[("x-forwarded-for", client)],
            )
            .await
            .status
            .as_u16()
        }
    };
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(sign_in("203.0.113.1").await);
    }
    assert_eq!(first, [201, 201, 429]);
    // Another buyer behind the same proxy has a budget of their own.
    assert_eq!(sign_in("203.0.113.2").await, 201);
}

/// An idempotency key is stored only for a request that changed something: a keyed reserve of
/// a drop that does not exist leaves no row behind, and a key longer than 64 characters is
/// refused outright. A write that happened keeps its key, so its retry replays.
async fn idempotency_keys_are_kept_only_for_writes_that_happened(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.rate_limit_session_per_second = 1_000;
        s.rate_limit_session_burst = 1_000;
    })
    .await;
    let ann = api.sign_in("Ann").await;
    let keyed_reserve = |drop: i64, key: String| {
        let (api, ann) = (&api, &ann);
        async move {
            let path = format!("/api/v1/drops/{drop}/reservations");
            let key = [("idempotency-key", key.as_str())];
            api.call_with("POST", &path, None, Auth::Cookie(ann), &key)
                .await
        }
    };
    for i in 0..30 {
        let reply = keyed_reserve(999_999, format!("missing-{i}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    }
    let kept = count_rows(&api, "SELECT COUNT(*) FROM idempotency_keys").await;
    assert_eq!(kept, 0, "refused requests left {kept} keys behind");

    let reply = keyed_reserve(999_999, "k".repeat(65)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);

    let drop = api.new_drop(1).await;
    let first = keyed_reserve(drop, "ok-1".into()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let retry = keyed_reserve(drop, "ok-1".into()).await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(
        count_rows(&api, "SELECT COUNT(*) FROM idempotency_keys").await,
        1
    );
}

/// What a public name may be: no bidi overrides or invisible characters (they would let a
/// buyer pose as another in the purchases feed), stored in one normal form.
async fn a_name_cannot_hide_or_reverse_characters(backend: Backend) {
    let api = Api::new(backend).await;
    for name in [
        "\u{202e}NIMDA\u{200b}",
        "Ann\u{200d}",
        "\u{feff}Bob",
        "A\u{2066}B",
        "\u{3164}",
        "Ann\u{2028}Bob",
    ] {
        let reply = api.sign_in_as(name, Auth::None).await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name:?}: {}",
            reply.body
        );
        assert_eq!(reply.body["error"]["field"], "name");
    }
    let drop = api
        .create_drop(json!({ "name": "Air\u{200b}Max", "price_cents": 1, "total_stock": 1 }))
        .await;
    assert_eq!(
        drop.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        drop.body
    );
    // "Zoe" with a combining accent is stored as the one character é.
    let reply = api.sign_in_as("Zoe\u{301}", Auth::None).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["user"]["name"], "Zo\u{e9}");
}

/// Signing in again ends the session the browser had: its cookie, copied before, signs in
/// nobody any more.
async fn signing_in_again_ends_the_old_session(backend: Backend) {
    let api = Api::new(backend).await;
    let first = api.sign_in("Ann").await;
    assert_eq!(my_reservations_status(&api, &first).await, StatusCode::OK);
    let again = api.sign_in_as("Ann", Auth::Cookie(&first)).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let second = again.cookie.unwrap();
    assert_ne!(second, first);
    assert_eq!(my_reservations_status(&api, &second).await, StatusCode::OK);
    assert_eq!(
        my_reservations_status(&api, &first).await,
        StatusCode::UNAUTHORIZED
    );
}

/// Over HTTPS the session cookie is `__Host-` prefixed: Secure, for the whole site, and for
/// this host alone, so no sibling subdomain can plant one.
async fn a_secure_session_cookie_is_host_only(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.cookie_secure = dropline::server::settings::CookieSecure::Always;
    })
    .await;
    let reply = api.sign_in_as("Ann", Auth::None).await;
    let set = reply.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with("__Host-dropline_session="), "{set}");
    assert!(set.contains("Secure") && set.contains("Path=/"), "{set}");
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    let cookie = reply.cookie.unwrap();
    assert_eq!(my_reservations_status(&api, &cookie).await, StatusCode::OK);
}

on_both_databases!(
    someone_elses_or_a_missing_hold_is_refused_without_waiting_for_the_drop,
    a_loop_of_cancels_is_slowed_down,
    admin_token_guesses_are_slowed_down,
    a_missing_proxy_header_still_counts_against_the_peer,
    a_signed_out_cookie_is_revoked_everywhere,
    a_sign_out_reaches_every_instance,
    an_expired_session_is_anonymous,
    a_huge_frame_closes_the_socket_at_once,
    a_peer_that_never_answers_pings_is_let_go,
    one_address_opens_only_so_many_sockets,
    another_sites_page_cannot_open_a_buyers_socket,
    a_hold_cannot_be_kept_by_giving_it_back_and_taking_it_again,
    a_forged_forwarded_for_neither_dodges_limits_nor_locks_out_the_admin,
    a_trusted_proxy_names_its_clients,
    idempotency_keys_are_kept_only_for_writes_that_happened,
    a_name_cannot_hide_or_reverse_characters,
    signing_in_again_ends_the_old_session,
    a_secure_session_cookie_is_host_only,
);
