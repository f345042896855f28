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
        .call_with(
            "POST",
            "/rpc/cancel_hold",
            Some("reservation_id=900001"),
            Auth::Cookie(&bob),
            &[("content-type", "application/x-www-form-urlencoded")],
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
);
