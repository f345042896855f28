//! The `/api/v1` JSON API, driven through the whole router with `oneshot`, on both databases.

mod common;

use axum::http::StatusCode;
use common::{Api, Auth, Backend, Reply, ADMIN_TOKEN};
use dropline::model::DropId;
use serde_json::json;

fn error_code(reply: &Reply) -> &str {
    reply.body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {}", reply.body))
}

async fn sign_in_sets_a_session_and_forgeries_are_ignored(backend: Backend) {
    let api = Api::new(backend).await;
    let reply = api
        .call(
            "POST",
            "/api/v1/session",
            Some(r#"{"name":"  Ann "}"#),
            Auth::None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.body["user"]["name"], "Ann");
    assert!(reply.body["user"]["id"].is_i64());
    let cookie = reply.cookie.unwrap();

    let mine = api
        .call(
            "GET",
            "/api/v1/me/reservations",
            None,
            Auth::Cookie(&cookie),
        )
        .await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.body["reservations"], json!([]));

    for forged in ["dropline_session=1", &cookie.replace('=', "=x")] {
        let reply = api
            .call("GET", "/api/v1/me/reservations", None, Auth::Cookie(forged))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_code(&reply), "UNAUTHENTICATED");
    }

    let out = api
        .call("DELETE", "/api/v1/session", None, Auth::Cookie(&cookie))
        .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.cookie.as_deref(), Some("dropline_session="));
}

async fn only_the_admin_creates_drops_and_bad_input_writes_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    let good = json!({ "name": "Court Classic", "price_cents": 9900, "total_stock": 12 });

    let anonymous = api
        .call("POST", "/api/v1/drops", Some(&good.to_string()), Auth::None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let wrong = api
        .call(
            "POST",
            "/api/v1/drops",
            Some(&good.to_string()),
            Auth::Bearer("guess"),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(error_code(&wrong), "FORBIDDEN");

    let bad_bodies = [
        (
            json!({ "name": "x", "price_cents": 100, "total_stock": -3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "name": "", "price_cents": 100, "total_stock": 3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "name": "n".repeat(2048), "price_cents": 100, "total_stock": 3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "name": "x", "price_cents": "ten", "total_stock": 3 }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({ "name": "x" }), StatusCode::UNPROCESSABLE_ENTITY),
    ];
    for (body, status) in bad_bodies {
        let reply = api.create_drop(body.clone()).await;
        assert_eq!(reply.status, status, "{body} -> {}", reply.body);
        assert!(!reply.body["error"]["message"].as_str().unwrap().is_empty());
    }
    let malformed = api
        .call(
            "POST",
            "/api/v1/drops",
            Some("{\"name\": "),
            Auth::Bearer(ADMIN_TOKEN),
        )
        .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&malformed), "MALFORMED_REQUEST");
    assert_eq!(api.drop_count().await, 0, "a refused request wrote a drop");

    let created = api.create_drop(good).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let drop = &created.body["drop"];
    for key in [
        "id",
        "name",
        "price_cents",
        "total_stock",
        "available_stock",
        "version",
        "starts_at",
        "recent_purchasers",
    ] {
        assert!(!drop[key].is_null(), "drop lacks {key}: {drop}");
    }
    assert_eq!(drop["available_stock"], 12);
    let id = drop["id"].as_i64().unwrap();
    let fetched = api
        .call("GET", &format!("/api/v1/drops/{id}"), None, Auth::None)
        .await;
    assert_eq!(fetched.body["drop"]["name"], "Court Classic");
    assert_eq!(api.drop_count().await, 1);
}

async fn reserve_purchase_and_cancel_over_http(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = api
        .create_drop(json!({ "name": "Hi Top", "price_cents": 15000, "total_stock": 2 }))
        .await
        .body["drop"]["id"]
        .as_i64()
        .unwrap();
    let ann = api.sign_in("Ann").await;
    let bob = api.sign_in("Bob").await;
    let reserve = |cookie: String| {
        let api = &api;
        async move {
            api.call(
                "POST",
                &format!("/api/v1/drops/{drop}/reservations"),
                None,
                Auth::Cookie(&cookie),
            )
            .await
        }
    };

    let anonymous = api
        .call(
            "POST",
            &format!("/api/v1/drops/{drop}/reservations"),
            None,
            Auth::None,
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    let held = reserve(ann.clone()).await;
    assert_eq!(held.status, StatusCode::CREATED, "{}", held.body);
    assert_eq!(held.body["reservation"]["status"], "ACTIVE");
    assert_eq!(held.body["reservation"]["drop_id"], drop);
    assert!(held.body["reservation"]["expires_at"].is_string());
    assert_eq!(held.body["drop"]["available_stock"], 1);
    let hold = held.body["reservation"]["id"].as_i64().unwrap();

    let again = reserve(ann.clone()).await;
    assert_eq!(
        (again.status, error_code(&again)),
        (StatusCode::CONFLICT, "ALREADY_RESERVED")
    );

    let stolen = api
        .call(
            "POST",
            &format!("/api/v1/reservations/{hold}/purchase"),
            None,
            Auth::Cookie(&bob),
        )
        .await;
    assert_eq!(
        (stolen.status, error_code(&stolen)),
        (StatusCode::FORBIDDEN, "NOT_YOUR_RESERVATION")
    );

    let bought = api
        .call(
            "POST",
            &format!("/api/v1/reservations/{hold}/purchase"),
            None,
            Auth::Cookie(&ann),
        )
        .await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);
    assert_eq!(bought.body["purchase"]["price_cents"], 15000);

    let bobs = reserve(bob.clone()).await;
    let bob_hold = bobs.body["reservation"]["id"].as_i64().unwrap();
    let carl = api.sign_in("Carl").await;
    let sold_out = reserve(carl).await;
    assert_eq!(
        (sold_out.status, error_code(&sold_out)),
        (StatusCode::CONFLICT, "OUT_OF_STOCK")
    );

    let cancelled = api
        .call(
            "DELETE",
            &format!("/api/v1/reservations/{bob_hold}"),
            None,
            Auth::Cookie(&bob),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.body["reservation"]["status"], "CANCELLED");
    assert_eq!(cancelled.body["drop"]["available_stock"], 1);

    let listed = api
        .call("GET", &format!("/api/v1/drops/{drop}"), None, Auth::None)
        .await;
    assert_eq!(listed.body["drop"]["recent_purchasers"][0]["name"], "Ann");

    let mine = api
        .call("GET", "/api/v1/me/reservations", None, Auth::Cookie(&bob))
        .await;
    assert_eq!(mine.body["reservations"][0]["status"], "CANCELLED");
}

async fn unknown_things_and_bad_ids_get_clear_errors(backend: Backend) {
    let api = Api::new(backend).await;
    let ann = api.sign_in("Ann").await;
    let cases = [
        (
            "GET",
            "/api/v1/drops/9999",
            StatusCode::NOT_FOUND,
            "DROP_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/drops/9999/reservations",
            StatusCode::NOT_FOUND,
            "DROP_NOT_FOUND",
        ),
        (
            "POST",
            "/api/v1/reservations/9999/purchase",
            StatusCode::NOT_FOUND,
            "RESERVATION_NOT_FOUND",
        ),
        (
            "DELETE",
            "/api/v1/reservations/9999",
            StatusCode::NOT_FOUND,
            "RESERVATION_NOT_FOUND",
        ),
        (
            "GET",
            "/api/v1/drops/abc",
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
        ),
        (
            "GET",
            "/api/v1/nothing-here",
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        ),
    ];
    for (method, path, status, code) in cases {
        let reply = api.call(method, path, None, Auth::Cookie(&ann)).await;
        assert_eq!(
            (reply.status, error_code(&reply)),
            (status, code),
            "{method} {path}"
        );
    }
    let empty_name = api
        .call(
            "POST",
            "/api/v1/session",
            Some(r#"{"name":"   "}"#),
            Auth::None,
        )
        .await;
    assert_eq!(
        (empty_name.status, error_code(&empty_name)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT")
    );
    let not_json = api
        .call("POST", "/api/v1/session", Some("name=Ann"), Auth::None)
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
}

async fn browsers_cannot_write_across_sites(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = api
        .create_drop(json!({ "name": "Guarded", "price_cents": 100, "total_stock": 3 }))
        .await
        .body["drop"]["id"]
        .as_i64()
        .unwrap();
    let ann = api.sign_in("Ann").await;
    let path = format!("/api/v1/drops/{drop}/reservations");
    let host = ("host", "shop.example");

    let forged = [
        vec![host, ("origin", "https://evil.example")],
        vec![host, ("sec-fetch-site", "cross-site")],
        vec![host, ("sec-fetch-site", "same-site")],
    ];
    for headers in forged {
        let reply = api
            .call_with("POST", &path, None, Auth::Cookie(&ann), &headers)
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(error_code(&reply), "FORBIDDEN");
    }
    // Without cookies too: a cross-site sign-in form must not swap the visitor's session.
    let swap = api
        .call_with(
            "POST",
            "/api/v1/session",
            Some(r#"{"name":"Mallory"}"#),
            Auth::None,
            &[host, ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(swap.status, StatusCode::FORBIDDEN);
    assert!(swap.cookie.is_none());
    let listed = api
        .call("GET", &format!("/api/v1/drops/{drop}"), None, Auth::None)
        .await;
    assert_eq!(
        listed.body["drop"]["available_stock"], 3,
        "a forged request changed stock"
    );

    let same_site = [
        host,
        ("origin", "http://shop.example"),
        ("sec-fetch-site", "same-origin"),
    ];
    let reply = api
        .call_with("POST", &path, None, Auth::Cookie(&ann), &same_site)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);

    for name in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
    ] {
        assert!(listed.headers.contains_key(name), "missing {name}");
    }
    let huge = json!({ "name": "x".repeat(100_000) }).to_string();
    let reply = api
        .call("POST", "/api/v1/session", Some(&huge), Auth::None)
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&reply), "TOO_LARGE");

    let ready = api.call("GET", "/readyz", None, Auth::None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body["database"], true);
}

async fn a_hammering_session_is_slowed_down_and_others_are_not(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.rate_limit_session_per_second = 1;
        s.rate_limit_session_burst = 3;
    })
    .await;
    let drop = api
        .create_drop(json!({ "name": "Hot", "price_cents": 100, "total_stock": 50 }))
        .await
        .body["drop"]["id"]
        .as_i64()
        .unwrap();
    let bot = api.sign_in("Bot").await;
    let path = format!("/api/v1/drops/{drop}/reservations");
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(api.call("POST", &path, None, Auth::Cookie(&bot)).await);
    }
    // The burst of three gets its answers; past it the bot is slowed down. (Ten tries, not
    // four: a slow machine may refill one try meanwhile, but not seven.)
    let codes: Vec<_> = statuses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(codes[..3], [201, 409, 409], "{codes:?}");
    let limited = statuses[3..]
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .unwrap_or_else(|| panic!("the bot was never slowed down: {codes:?}"));
    assert_eq!(error_code(limited), "RATE_LIMITED");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);

    let person = api.sign_in("Person").await;
    assert_eq!(
        api.call("POST", &path, None, Auth::Cookie(&person))
            .await
            .status,
        StatusCode::CREATED
    );
    let audit = api.state.inventory.audit(DropId(drop)).await.unwrap();
    assert_eq!((audit.available, audit.active_holds), (48, 2));
}

async fn metrics_count_reserves_by_outcome(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = api
        .create_drop(json!({ "name": "Counted", "price_cents": 100, "total_stock": 1 }))
        .await
        .body["drop"]["id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/drops/{drop}/reservations");
    for name in ["Ann", "Bob", "Cy"] {
        let cookie = api.sign_in(name).await;
        api.call("POST", &path, None, Auth::Cookie(&cookie)).await;
    }
    let reply = api.router.clone();
    let response = tower::ServiceExt::oneshot(
        reply,
        axum::http::Request::get("/metrics")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(
        text.contains(r#"dropline_reserves_total{outcome="HELD"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"dropline_reserves_total{outcome="OUT_OF_STOCK"} 2"#),
        "{text}"
    );
    // Where each reserve batch's time went: all three took the lock and ended (one commit,
    // two rollbacks); only the one that held a unit moved the stock.
    for (step, batches) in [("lock", 3), ("commit", 3), ("stock", 1)] {
        let count = format!(
            r#"dropline_write_step_seconds_count{{step="{step}",write="reserve"}} {batches}"#
        );
        assert!(text.contains(&count), "{count} in {text}");
    }
    assert!(
        text.contains("dropline_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/api/v1/drops/{id}/reservations""#),
        "{text}"
    );
}

async fn retries_with_an_idempotency_key_change_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    let body = json!({ "name": "Once", "price_cents": 100, "total_stock": 5 }).to_string();
    let admin_key = [("idempotency-key", "create-1")];
    let created = api
        .call_with(
            "POST",
            "/api/v1/drops",
            Some(&body),
            Auth::Bearer(ADMIN_TOKEN),
            &admin_key,
        )
        .await;
    let again = api
        .call_with(
            "POST",
            "/api/v1/drops",
            Some(&body),
            Auth::Bearer(ADMIN_TOKEN),
            &admin_key,
        )
        .await;
    assert_eq!(
        (created.status, again.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(created.body, again.body);
    assert_eq!(
        api.drop_count().await,
        1,
        "a retried create made a second drop"
    );
    let drop = created.body["drop"]["id"].as_i64().unwrap();

    let ann = api.sign_in("Ann").await;
    let reserve = format!("/api/v1/drops/{drop}/reservations");
    let key = [("idempotency-key", "tap-1")];
    let first = api
        .call_with("POST", &reserve, None, Auth::Cookie(&ann), &key)
        .await;
    let retry = api
        .call_with("POST", &reserve, None, Auth::Cookie(&ann), &key)
        .await;
    assert_eq!(
        (first.status, retry.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first.body, retry.body);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    let hold = first.body["reservation"]["id"].as_i64().unwrap();

    let purchase = format!("/api/v1/reservations/{hold}/purchase");
    let pay_key = [("idempotency-key", "pay-1")];
    let paid = api
        .call_with("POST", &purchase, None, Auth::Cookie(&ann), &pay_key)
        .await;
    let paid_again = api
        .call_with("POST", &purchase, None, Auth::Cookie(&ann), &pay_key)
        .await;
    assert_eq!(
        (paid.status, paid_again.status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(
        paid.body["purchase"]["id"],
        paid_again.body["purchase"]["id"]
    );
    let audit = api.state.inventory.audit(DropId(drop)).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (4, 0, 1)
    );

    // The same key for another request is refused, and changes nothing either.
    let reused = api
        .call_with("POST", &purchase, None, Auth::Cookie(&ann), &key)
        .await;
    assert_eq!(
        (reused.status, error_code(&reused)),
        (StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT")
    );
    // Keys belong to their user: Bob's "tap-1" is his own.
    let bob = api.sign_in("Bob").await;
    let bobs = api
        .call_with("POST", &reserve, None, Auth::Cookie(&bob), &key)
        .await;
    assert_eq!(bobs.status, StatusCode::CREATED);
    assert_ne!(
        bobs.body["reservation"]["id"],
        first.body["reservation"]["id"]
    );
    let bad_key = [("idempotency-key", "")];
    let reply = api
        .call_with("POST", &reserve, None, Auth::Cookie(&bob), &bad_key)
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let audit = api.state.inventory.audit(DropId(drop)).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (3, 1, 1)
    );
}

/// The operations the README promises, as (method, path).
const PROMISED: [(&str, &str); 28] = [
    ("POST", "/api/v1/session"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/drops"),
    ("POST", "/api/v1/drops"),
    ("GET", "/api/v1/drops/{id}"),
    ("POST", "/api/v1/drops/{id}/reservations"),
    ("POST", "/api/v1/reservations/{id}/purchase"),
    ("DELETE", "/api/v1/reservations/{id}"),
    ("GET", "/api/v1/me/reservations"),
    ("POST", "/api/v1/drops/{id}/queue"),
    ("GET", "/api/v1/drops/{id}/queue/me"),
    ("DELETE", "/api/v1/drops/{id}/queue/me"),
    ("POST", "/api/v1/drops/{id}/entry"),
    ("GET", "/api/v1/drops/{id}/entry"),
    ("DELETE", "/api/v1/drops/{id}/entry"),
    ("GET", "/api/v1/drops/{id}/audit"),
    ("GET", "/api/v1/drops/{id}/audit/later"),
    ("GET", "/api/v1/drops/{id}/audit/tickets"),
    ("GET", "/api/v1/drops/{id}/entries/{ticket}/proof"),
    ("POST", "/api/v1/drops/{id}/beacon"),
    ("GET", "/api/v1/drops/{id}/receipt"),
    ("GET", "/api/v1/drops/{id}/challenge"),
    ("POST", "/api/v1/accounts"),
    ("GET", "/api/v1/accounts/challenge"),
    ("POST", "/api/v1/passkeys/sign-up"),
    ("POST", "/api/v1/passkeys/sign-up/answer"),
    ("POST", "/api/v1/passkeys/sign-in"),
    ("POST", "/api/v1/passkeys/sign-in/answer"),
];

/// Every `$ref` in a JSON document.
fn collect_refs(value: &serde_json::Value, refs: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(reference) if key == "$ref" => refs.push(reference.to_string()),
                    _ => collect_refs(value, refs),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_matches_what_the_server_answers() {
    let api = Api::new(Backend::Sqlite).await;
    let reply = api
        .call("GET", "/api/v1/openapi.json", None, Auth::None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["content-type"], "application/json");
    let doc = reply.body;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );

    // Every reference resolves, so code generators can use the document as it is.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer));
        assert!(target.is_some(), "{reference} resolves to nothing");
    }

    let paths = doc["paths"].as_object().expect("paths");
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(|method| (method.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    documented.sort();
    let mut promised: Vec<(String, String)> = PROMISED
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    promised.sort();
    assert_eq!(documented, promised);

    // Every `{name}` in a path is declared as a path parameter of each of its operations (a
    // second `params(...)` on a handler once replaced its first, and the fuzzer could not
    // fill the path).
    for (path, item) in paths {
        let names: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            let declared: Vec<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for name in &names {
                assert!(
                    declared.contains(name),
                    "{method} {path} does not declare its path parameter {name}"
                );
            }
        }
    }

    // Every documented path answers its documented methods with a documented status, and
    // every other method with 405 naming exactly the documented ones.
    let ann = api.sign_in("Ann").await;
    for (path, item) in paths {
        let url = path.replace("{id}", "424242");
        let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
        let allowed: Vec<&str> = methods
            .into_iter()
            .filter(|m| item[m.to_lowercase()].is_object())
            .collect();
        for method in methods {
            let reply = api.call(method, &url, None, Auth::Cookie(&ann)).await;
            let operation = &item[method.to_lowercase()];
            if operation.is_null() {
                assert_eq!(
                    (reply.status, error_code(&reply)),
                    (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
                    "{method} {path} is served but not documented"
                );
                let allow = reply.headers["allow"].to_str().unwrap().to_string();
                let mut allow: Vec<&str> = allow
                    .split(',')
                    .map(str::trim)
                    .filter(|m| *m != "HEAD")
                    .collect();
                allow.sort_by_key(|m| methods.iter().position(|x| x == m));
                assert_eq!(allow, allowed, "{path}: Allow differs from the document");
            } else {
                let status = reply.status.as_str();
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} answered {status}, which the document does not list"
                );
            }
        }
    }

    // The error shape and the codes clients branch on.
    let schemas = &doc["components"]["schemas"];
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode is an enum")
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "OUT_OF_STOCK",
        "ALREADY_RESERVED",
        "NOT_STARTED",
        "RESERVATION_EXPIRED",
        "NOT_YOUR_RESERVATION",
        "RATE_LIMITED",
        "INVALID_INPUT",
    ] {
        assert!(codes.contains(&code), "{code} missing from {codes:?}");
    }
    let required = |name: &str| schemas[name]["required"].clone();
    assert_eq!(required("ErrorBody"), json!(["error"]));
    assert_eq!(required("ApiError"), json!(["code", "message"]));

    // Who may call what, and what the layers in front of the handlers answer.
    let op = |method: &str, path: &str| &doc["paths"][path][method];
    let reserve = op("post", "/api/v1/drops/{id}/reservations");
    assert_eq!(reserve["security"], json!([{ "session": [] }]));
    assert_eq!(
        op("post", "/api/v1/drops")["security"],
        json!([{ "admin_token": [] }])
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["name"],
        "dropline_session"
    );
    assert!(reserve["responses"]["429"]["headers"]["Retry-After"].is_object());
    assert!(reserve["responses"]["409"].is_object());
    let params = reserve["parameters"].as_array().unwrap();
    assert!(
        params
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{params:?}"
    );
    for (method, path) in PROMISED {
        let operation = op(&method.to_lowercase(), path);
        for (status, response) in operation["responses"].as_object().unwrap() {
            // 2xx carry their own bodies, a 304 none at all.
            if !status.starts_with('2') && !status.starts_with('3') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

/// A form post to a server function with an `idempotency_key` (a retry after a network error,
/// a reload of the POST) reserves and buys once, and the next key is judged afresh.
async fn a_resubmitted_form_reserves_and_buys_once(backend: Backend) {
    let api = Api::new(backend).await;
    let drop = api
        .create_drop(json!({ "name": "Form", "price_cents": 100, "total_stock": 5 }))
        .await
        .body["drop"]["id"]
        .as_i64()
        .unwrap();
    let ann = api.sign_in("Ann").await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let post = |path: &'static str, body: String| {
        let ann = ann.clone();
        let api = &api;
        async move {
            api.call_with("POST", path, Some(&body), Auth::Cookie(&ann), &form)
                .await
        }
    };
    let reserve = format!("drop_id={drop}&idempotency_key=attempt-1");
    let first = post("/rpc/reserve_unit", reserve.clone()).await;
    let again = post("/rpc/reserve_unit", reserve).await;
    assert_eq!(
        (first.status, again.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(first.body["id"].is_i64(), "{}", first.body);
    assert_eq!(first.body["id"], again.body["id"]);
    let hold = first.body["id"].as_i64().unwrap();

    let pay = format!("reservation_id={hold}&idempotency_key=attempt-2");
    let paid = post("/rpc/purchase_hold", pay.clone()).await;
    let paid_again = post("/rpc/purchase_hold", pay).await;
    assert_eq!(paid.status, StatusCode::OK, "{}", paid.body);
    assert_eq!(paid.body["id"], paid_again.body["id"]);
    let audit = api.state.inventory.audit(DropId(drop)).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (4, 0, 1)
    );

    // A new attempt has a new key and meets today's rules: one purchase per buyer.
    let next = post(
        "/rpc/reserve_unit",
        format!("drop_id={drop}&idempotency_key=attempt-3"),
    )
    .await;
    assert_eq!(next.status, StatusCode::CONFLICT, "{}", next.body);
}

/// Behind a reverse proxy the per-IP limit counts each buyer's own address (from the header
/// the proxy sets), and IPv6 buyers by their /64.
async fn behind_a_proxy_each_buyer_address_has_its_own_limit(backend: Backend) {
    let api = Api::configured(backend, |s| {
        s.client_ip_source = axum_client_ip::ClientIpSource::RightmostXForwardedFor;
        s.trusted_proxies = "10.0.0.0/8".into();
        s.rate_limit_ip_per_second = 1;
        s.rate_limit_ip_burst = 2;
    })
    .await;
    let proxy = std::net::SocketAddr::from(([10, 0, 0, 2], 40_000));
    let sign_in_from = |address: &'static str| {
        let api = &api;
        async move {
            api.call_from(
                proxy,
                "POST",
                "/api/v1/session",
                Some(r#"{"name":"Ann"}"#),
                Auth::None,
                &[("x-forwarded-for", address)],
            )
            .await
            .status
            .as_u16()
        }
    };
    let mut seen = Vec::new();
    for address in [
        "198.51.100.7",
        "198.51.100.7",
        "198.51.100.7",
        "198.51.100.8",
        "2001:db8:0:1::1",
        "2001:db8:0:1::2",
        "2001:db8:0:1::3",
        "2001:db8:0:2::1",
    ] {
        seen.push(sign_in_from(address).await);
    }
    assert_eq!(seen, [201, 201, 429, 201, 201, 201, 429, 201]);
}

/// Every answer names its request, so a buyer's report can be found in the logs; a proxy's id
/// is kept.
#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let api = Api::new(Backend::Sqlite).await;
    let first = api.call("GET", "/api/v1/drops", None, Auth::None).await;
    let second = api.call("GET", "/api/v1/nothing", None, Auth::None).await;
    let id = |reply: &Reply| reply.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(!id(&first).is_empty());
    assert_ne!(id(&first), id(&second));
    let proxied = api
        .call_with(
            "GET",
            "/api/v1/drops",
            None,
            Auth::None,
            &[("x-request-id", "edge-42")],
        )
        .await;
    assert_eq!(id(&proxied), "edge-42");
}

on_both_databases!(
    a_resubmitted_form_reserves_and_buys_once,
    behind_a_proxy_each_buyer_address_has_its_own_limit,
    retries_with_an_idempotency_key_change_nothing,
    metrics_count_reserves_by_outcome,
    a_hammering_session_is_slowed_down_and_others_are_not,
    browsers_cannot_write_across_sites,
    sign_in_sets_a_session_and_forgeries_are_ignored,
    only_the_admin_creates_drops_and_bad_input_writes_nothing,
    reserve_purchase_and_cancel_over_http,
    unknown_things_and_bad_ids_get_clear_errors,
);
