//! Real accounts: a username chosen at sign-up (unique whatever its case) and a password with a
//! strength floor, kept only as its Argon2id hash; logging in again with it, and every wrong
//! way of trying refused with its own clear answer. The demo's sign-in by display name is off
//! unless a server turns it on.

mod common;

use axum::http::StatusCode;
use common::{cheap_proofs, solve, Api, Auth, Backend};
use serde_json::{json, Value};

const PASSWORD: &str = "violet kettle drums at noon";

async fn post(api: &Api, path: &str, body: Value) -> common::Reply {
    api.call("POST", path, Some(&body.to_string()), Auth::None)
        .await
}

fn code(reply: &common::Reply) -> (StatusCode, Value, Value) {
    (
        reply.status,
        reply.body["error"]["code"].clone(),
        reply.body["error"]["field"].clone(),
    )
}

/// Sign up, sign out, log in again (in another case), and the refusals beside: a taken name, a
/// weak password, a bad username, a wrong password, a username nobody has.
async fn an_account_signs_up_logs_out_and_logs_in_again(backend: Backend) {
    let api = Api::new(backend).await;
    let signed_up = post(
        &api,
        "/api/v1/accounts",
        json!({ "username": "Sneaker_Fan", "password": PASSWORD }),
    )
    .await;
    assert_eq!(signed_up.status, StatusCode::CREATED, "{}", signed_up.body);
    assert_eq!(signed_up.body["user"]["name"], "Sneaker_Fan");
    let id = signed_up.body["user"]["id"].clone();
    let cookie = signed_up.cookie.clone().expect("a session cookie");
    let me = api
        .call(
            "GET",
            "/api/v1/me/reservations",
            None,
            Auth::Cookie(&cookie),
        )
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let out = api
        .call("DELETE", "/api/v1/session", None, Auth::Cookie(&cookie))
        .await;
    assert_eq!(out.status, StatusCode::OK);
    let after = api
        .call(
            "GET",
            "/api/v1/me/reservations",
            None,
            Auth::Cookie(&cookie),
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);

    let again = post(
        &api,
        "/api/v1/session",
        json!({ "username": "sneaker_fan", "password": PASSWORD }),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body["user"]["id"], id);
    assert_eq!(again.body["user"]["name"], "Sneaker_Fan");

    let taken = post(
        &api,
        "/api/v1/accounts",
        json!({ "username": "SNEAKER_FAN", "password": "another long passphrase here" }),
    )
    .await;
    assert_eq!(
        code(&taken),
        (StatusCode::CONFLICT, json!("USERNAME_TAKEN"), Value::Null)
    );
    let weak = post(
        &api,
        "/api/v1/accounts",
        json!({ "username": "newcomer", "password": "password123" }),
    )
    .await;
    let invalid = |field: &str| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("INVALID_INPUT"),
            json!(field),
        )
    };
    assert_eq!(code(&weak), invalid("password"));
    assert!(
        weak.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too easy to guess"),
        "{}",
        weak.body
    );
    let short = post(
        &api,
        "/api/v1/accounts",
        json!({ "username": "newcomer", "password": "x7#kQ" }),
    )
    .await;
    assert_eq!(code(&short), invalid("password"));
    let bad_name = post(
        &api,
        "/api/v1/accounts",
        json!({ "username": "no spaces here", "password": PASSWORD }),
    )
    .await;
    assert_eq!(code(&bad_name), invalid("username"));

    let wrong = post(
        &api,
        "/api/v1/session",
        json!({ "username": "Sneaker_Fan", "password": "violet kettle drums at nine" }),
    )
    .await;
    let refused = (
        StatusCode::UNAUTHORIZED,
        json!("WRONG_PASSWORD"),
        Value::Null,
    );
    assert_eq!(code(&wrong), refused);
    assert_eq!(
        wrong.body["error"]["message"],
        "That username and password do not match an account."
    );
    assert!(wrong.cookie.is_none());
    let nobody = post(
        &api,
        "/api/v1/session",
        json!({ "username": "nobody_here", "password": PASSWORD }),
    )
    .await;
    assert_eq!(code(&nobody), refused);
}

/// Whoever reads the database finds a salted Argon2id hash, never the password; two accounts
/// with the same password have different hashes.
async fn the_database_keeps_only_a_salted_hash(backend: Backend) {
    let api = Api::new(backend).await;
    for username in ["first_buyer", "second_buyer"] {
        let reply = post(
            &api,
            "/api/v1/accounts",
            json!({ "username": username, "password": PASSWORD }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let url = &api.db.url;
    let hashes: Vec<String> = match api.db.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query_scalar("SELECT password_hash FROM users ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_scalar("SELECT password_hash FROM users ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(hashes.len(), 2);
    for hash in &hashes {
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("violet"), "{hash}");
    }
    assert_ne!(hashes[0], hashes[1]);
}

/// Off unless a server turns it on: a display name alone signs nobody in, by REST or by the
/// page's server function.
async fn the_demo_sign_in_is_off_unless_set(backend: Backend) {
    let api = Api::configured(backend, |s| s.demo_sign_in = false).await;
    let rest = post(&api, "/api/v1/session", json!({ "name": "Drifter" })).await;
    assert_eq!(
        code(&rest),
        (
            StatusCode::FORBIDDEN,
            json!("DEMO_SIGN_IN_OFF"),
            Value::Null
        )
    );
    assert!(rest.cookie.is_none());
    let rpc = api.form("/rpc/sign_in", "name=Drifter", Auth::None).await;
    assert_eq!(rpc.status, StatusCode::FORBIDDEN, "{}", rpc.body);
    assert_eq!(rpc.body["code"], "DEMO_SIGN_IN_OFF");
    // Accounts with passwords still sign up, by the page's server function too.
    let page = api
        .form(
            "/rpc/sign_up",
            "username=page_buyer&password=violet+kettle+drums+at+noon",
            Auth::None,
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body["name"], "page_buyer");
}

/// Making an account is a door too: no proof, a join's proof, or a used one are refused; a
/// sign-up's own proof makes the account, once.
async fn a_sign_up_takes_a_proof_of_work(backend: Backend) {
    let api = Api::configured(backend, cheap_proofs).await;
    let challenge = |path: &'static str, cookie: Option<String>| {
        let api = &api;
        async move {
            let auth = cookie.as_deref().map_or(Auth::None, Auth::Cookie);
            let reply = api.call("GET", path, None, auth).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
            solve(serde_json::from_value(reply.body["challenge"].clone()).unwrap())
        }
    };
    let sign_up = |username: &'static str, proof: Option<String>| {
        let api = &api;
        async move {
            let body = json!({ "username": username, "password": PASSWORD }).to_string();
            let headers: Vec<(&str, &str)> = proof
                .as_deref()
                .map(|p| ("dropline-proof", p))
                .into_iter()
                .collect();
            api.call_with(
                "POST",
                "/api/v1/accounts",
                Some(&body),
                Auth::None,
                &headers,
            )
            .await
        }
    };
    let bare = sign_up("farm_one", None).await;
    assert_eq!(
        code(&bare),
        (StatusCode::FORBIDDEN, json!("PROOF_REQUIRED"), Value::Null)
    );
    let own = challenge("/api/v1/accounts/challenge", None).await;
    let made = sign_up("farm_one", Some(own.clone())).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let cookie = made.cookie.clone().unwrap();
    // A queue's proof does not open sign-up.
    let join_proof = challenge("/api/v1/drops/1/challenge", Some(cookie)).await;
    let moved = sign_up("farm_two", Some(join_proof)).await;
    assert_eq!(
        code(&moved),
        (StatusCode::FORBIDDEN, json!("PROOF_INVALID"), Value::Null)
    );
    let again = sign_up("farm_three", Some(own)).await;
    assert_eq!(
        code(&again),
        (StatusCode::FORBIDDEN, json!("PROOF_INVALID"), Value::Null)
    );
    // Nothing refused made an account.
    let nobody = post(
        &api,
        "/api/v1/session",
        json!({ "username": "farm_three", "password": PASSWORD }),
    )
    .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
}

on_both_databases!(
    an_account_signs_up_logs_out_and_logs_in_again,
    the_database_keeps_only_a_salted_hash,
    the_demo_sign_in_is_off_unless_set,
    a_sign_up_takes_a_proof_of_work,
);
