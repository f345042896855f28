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

/// A passkey ceremony's refusals, each with its own answer: a username taken or bad, an account
/// without a passkey, an answer that is not a credential or does not check out, and a ceremony
/// unknown or answered already (each is taken once, whatever its answer).
async fn passkey_ceremonies_refuse_what_does_not_check_out(backend: Backend) {
    let api = Api::new(backend).await;
    let made = post(
        &api,
        "/api/v1/accounts",
        json!({ "username": "Has_Password", "password": PASSWORD }),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    for username in ["has_password", "nobody_here"] {
        let begun = post(
            &api,
            "/api/v1/passkeys/sign-in",
            json!({ "username": username }),
        )
        .await;
        assert_eq!(
            code(&begun),
            (StatusCode::NOT_FOUND, json!("NO_PASSKEY"), Value::Null),
            "{username}"
        );
    }
    let taken = post(
        &api,
        "/api/v1/passkeys/sign-up",
        json!({ "username": "HAS_PASSWORD" }),
    )
    .await;
    assert_eq!(
        code(&taken),
        (StatusCode::CONFLICT, json!("USERNAME_TAKEN"), Value::Null)
    );
    let bad = post(
        &api,
        "/api/v1/passkeys/sign-up",
        json!({ "username": "no spaces" }),
    )
    .await;
    assert_eq!(
        code(&bad),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("INVALID_INPUT"),
            json!("username")
        )
    );

    let begin = || {
        post(
            &api,
            "/api/v1/passkeys/sign-up",
            json!({ "username": "New_Fan" }),
        )
    };
    let begun = begin().await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let options = &begun.body["options"]["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "New_Fan");
    let ceremony = begun.body["ceremony"].as_str().unwrap().to_string();
    let answer = |ceremony: &str, credential: Value| {
        post(
            &api,
            "/api/v1/passkeys/sign-up/answer",
            json!({ "ceremony": ceremony, "credential": credential }),
        )
    };
    let garbage = answer(&ceremony, json!({ "id": "x" })).await;
    assert_eq!(
        code(&garbage),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("INVALID_INPUT"),
            json!("credential")
        )
    );
    assert!(garbage.cookie.is_none());
    // The ceremony was taken by that answer: it answers once.
    let again = answer(&ceremony, json!({ "id": "x" })).await;
    assert_eq!(
        code(&again),
        (StatusCode::CONFLICT, json!("CEREMONY_EXPIRED"), Value::Null)
    );
    let unknown = answer("0123456789abcdef0123456789abcdef", json!({})).await;
    assert_eq!(code(&unknown).1, json!("CEREMONY_EXPIRED"));
    // A credential in the right shape that no authenticator signed.
    let fresh = begin().await.body["ceremony"].as_str().unwrap().to_string();
    let forged = json!({
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": { "attestationObject": "o2NmbXRkbm9uZQ", "clientDataJSON": "e30" },
    });
    let refused = answer(&fresh, forged).await;
    assert_eq!(
        code(&refused),
        (
            StatusCode::UNAUTHORIZED,
            json!("PASSKEY_REFUSED"),
            Value::Null
        )
    );
    assert!(refused.cookie.is_none());
    // A sign-up ceremony does not answer a sign-in.
    let other = begin().await.body["ceremony"].as_str().unwrap().to_string();
    let crossed = post(
        &api,
        "/api/v1/passkeys/sign-in/answer",
        json!({ "ceremony": other, "credential": {} }),
    )
    .await;
    assert_eq!(code(&crossed).1, json!("CEREMONY_EXPIRED"));
    // Nothing refused made an account.
    let nobody = post(
        &api,
        "/api/v1/passkeys/sign-in",
        json!({ "username": "new_fan" }),
    )
    .await;
    assert_eq!(code(&nobody).1, json!("NO_PASSKEY"));
}

/// Making an account with a passkey pays the same proof of work as with a password, once.
async fn a_passkey_sign_up_takes_a_proof_of_work(backend: Backend) {
    let api = Api::configured(backend, cheap_proofs).await;
    let begin_as = |username: &'static str, proof: Option<String>| {
        let api = &api;
        async move {
            let body = json!({ "username": username }).to_string();
            let headers: Vec<(&str, &str)> = proof
                .as_deref()
                .map(|p| ("dropline-proof", p))
                .into_iter()
                .collect();
            api.call_with(
                "POST",
                "/api/v1/passkeys/sign-up",
                Some(&body),
                Auth::None,
                &headers,
            )
            .await
        }
    };
    let begin = |proof| begin_as("pow_fan", proof);
    // A username that can never be an account is refused before the door asks its price.
    let bad = begin_as("no spaces", None).await;
    assert_eq!(code(&bad).2, json!("username"));
    let bare = begin(None).await;
    assert_eq!(
        code(&bare),
        (StatusCode::FORBIDDEN, json!("PROOF_REQUIRED"), Value::Null)
    );
    let challenge = api
        .call("GET", "/api/v1/accounts/challenge", None, Auth::None)
        .await;
    let proof = solve(serde_json::from_value(challenge.body["challenge"].clone()).unwrap());
    let begun = begin(Some(proof.clone())).await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let reused = begin(Some(proof)).await;
    assert_eq!(
        code(&reused),
        (StatusCode::FORBIDDEN, json!("PROOF_INVALID"), Value::Null)
    );
}

on_both_databases!(
    a_passkey_signs_up_and_in_and_refuses_its_forgers,
    passkey_ceremonies_refuse_what_does_not_check_out,
    a_passkey_sign_up_takes_a_proof_of_work,
    an_account_signs_up_logs_out_and_logs_in_again,
    the_database_keeps_only_a_salted_hash,
    the_demo_sign_in_is_off_unless_set,
    a_sign_up_takes_a_proof_of_work,
);

/// A passkey, played: sign up, sign out, sign in again (the username in another case) and the
/// attacks on it — an old answer replayed to a new ceremony, an answer to the same ceremony
/// twice, another authenticator's answer, a page of another origin (phishing), and a cloned
/// authenticator whose counter went back.
async fn a_passkey_signs_up_and_in_and_refuses_its_forgers(backend: Backend) {
    let api = Api::new(backend).await;
    let mut phone = soft::Authenticator::new("http://localhost:3000");
    let begun = post(
        &api,
        "/api/v1/passkeys/sign-up",
        json!({ "username": "Key_Fan" }),
    )
    .await;
    assert_eq!(begun.status, StatusCode::OK, "{}", begun.body);
    let made = post(
        &api,
        "/api/v1/passkeys/sign-up/answer",
        json!({
            "ceremony": begun.body["ceremony"],
            "credential": phone.create(&begun.body["options"]),
        }),
    )
    .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    assert_eq!(made.body["user"]["name"], "Key_Fan");
    let id = made.body["user"]["id"].clone();
    let cookie = made.cookie.clone().expect("a session cookie");
    let out = api
        .call("DELETE", "/api/v1/session", None, Auth::Cookie(&cookie))
        .await;
    assert_eq!(out.status, StatusCode::OK);
    // The account has no password: nothing logs in to it that way.
    let by_password = post(
        &api,
        "/api/v1/session",
        json!({ "username": "key_fan", "password": PASSWORD }),
    )
    .await;
    assert_eq!(by_password.status, StatusCode::UNAUTHORIZED);

    let begin = || {
        post(
            &api,
            "/api/v1/passkeys/sign-in",
            json!({ "username": "KEY_FAN" }),
        )
    };
    let answer = |ceremony: &Value, credential: Value| {
        post(
            &api,
            "/api/v1/passkeys/sign-in/answer",
            json!({ "ceremony": ceremony, "credential": credential }),
        )
    };
    let first = begin().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let signed = phone.get(&first.body["options"]);
    let signed_in = answer(&first.body["ceremony"], signed.clone()).await;
    assert_eq!(signed_in.status, StatusCode::CREATED, "{}", signed_in.body);
    assert_eq!(signed_in.body["user"]["id"], id);
    assert!(signed_in.cookie.is_some());

    // The same answer again: to its own ceremony (taken), and to a new one (another challenge).
    let twice = answer(&first.body["ceremony"], signed.clone()).await;
    assert_eq!(code(&twice).1, json!("CEREMONY_EXPIRED"));
    let replay = begin().await;
    let replayed = answer(&replay.body["ceremony"], signed).await;
    assert_eq!(
        code(&replayed),
        (
            StatusCode::UNAUTHORIZED,
            json!("PASSKEY_REFUSED"),
            Value::Null
        )
    );
    assert!(replayed.cookie.is_none());

    // Another authenticator, even one claiming the phone's credential id, signs nothing in.
    let mut stranger = soft::Authenticator::new("http://localhost:3000").claiming(&phone);
    let next = begin().await;
    let strange = answer(&next.body["ceremony"], stranger.get(&next.body["options"])).await;
    assert_eq!(code(&strange).1, json!("PASSKEY_REFUSED"));

    // A phishing page of another origin relays the shop's options to the buyer's phone.
    let mut phished = phone.clone_at("http://localhost.evil.example");
    let next = begin().await;
    let relayed = answer(&next.body["ceremony"], phished.get(&next.body["options"])).await;
    assert_eq!(code(&relayed).1, json!("PASSKEY_REFUSED"));

    // A clone of the phone made before its last sign-in: its counter is behind the stored one.
    let mut clone = phone.clone_at("http://localhost:3000");
    let next = begin().await;
    let ok = answer(&next.body["ceremony"], phone.get(&next.body["options"])).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let next = begin().await;
    let cloned = answer(&next.body["ceremony"], clone.get(&next.body["options"])).await;
    assert_eq!(code(&cloned).1, json!("PASSKEY_REFUSED"));
}

/// A software passkey: what a phone's authenticator answers to `navigator.credentials`, in the
/// JSON of `PublicKeyCredential.toJSON()` (attestation "none", ES256, user verified).
mod soft {
    use std::collections::BTreeMap;

    use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
    use p256::ecdsa::{signature::Signer, Signature, SigningKey};
    use serde_cbor_2::Value as Cbor;
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    pub struct Authenticator {
        key: SigningKey,
        id: Vec<u8>,
        counter: u32,
        origin: String,
    }

    impl Authenticator {
        /// A new passkey, used on pages of `origin`.
        pub fn new(origin: &str) -> Self {
            let key = loop {
                let bytes: [u8; 32] = rand::random();
                if let Ok(key) = SigningKey::from_slice(&bytes) {
                    break key;
                }
            };
            Self {
                key,
                id: rand::random::<[u8; 16]>().to_vec(),
                counter: 0,
                origin: origin.into(),
            }
        }

        /// This key under `other`'s credential id.
        pub fn claiming(mut self, other: &Authenticator) -> Self {
            self.id = other.id.clone();
            self
        }

        /// The same passkey (key, id, counter as it stands) used on pages of `origin`.
        pub fn clone_at(&self, origin: &str) -> Self {
            Self {
                key: self.key.clone(),
                id: self.id.clone(),
                counter: self.counter,
                origin: origin.into(),
            }
        }

        /// The answer to `navigator.credentials.create(options)`.
        pub fn create(&mut self, options: &Value) -> Value {
            let options = &options["publicKey"];
            let point = self.key.verifying_key().to_sec1_point(false);
            let int = |n: i128| Cbor::Integer(n);
            let cose = Cbor::Map(BTreeMap::from([
                (int(1), int(2)),  // kty: EC2
                (int(3), int(-7)), // alg: ES256
                (int(-1), int(1)), // crv: P-256
                (int(-2), Cbor::Bytes(point.x().unwrap().to_vec())),
                (int(-3), Cbor::Bytes(point.y().unwrap().to_vec())),
            ]));
            let mut attested = vec![0; 16]; // AAGUID: none
            attested.extend(u16::try_from(self.id.len()).unwrap().to_be_bytes());
            attested.extend(&self.id);
            attested.extend(serde_cbor_2::to_vec(&cose).unwrap());
            // User present, user verified, attested credential data.
            let data =
                self.authenticator_data(options["rp"]["id"].as_str().unwrap(), 0x45, &attested);
            let text = |s: &str| Cbor::Text(s.into());
            let object = Cbor::Map(BTreeMap::from([
                (text("fmt"), text("none")),
                (text("attStmt"), Cbor::Map(BTreeMap::new())),
                (text("authData"), Cbor::Bytes(data)),
            ]));
            let id = B64.encode(&self.id);
            json!({
                "id": id,
                "rawId": id,
                "type": "public-key",
                "response": {
                    "clientDataJSON": B64.encode(self.client_data("webauthn.create", options)),
                    "attestationObject": B64.encode(serde_cbor_2::to_vec(&object).unwrap()),
                    "transports": ["internal"],
                },
                "clientExtensionResults": {},
            })
        }

        /// The answer to `navigator.credentials.get(options)`: a signature over the
        /// authenticator data and the client data's hash, with the counter one on.
        pub fn get(&mut self, options: &Value) -> Value {
            let options = &options["publicKey"];
            self.counter += 1;
            let data = self.authenticator_data(options["rpId"].as_str().unwrap(), 0x05, &[]);
            let client = self.client_data("webauthn.get", options);
            let mut signed = data.clone();
            signed.extend(Sha256::digest(&client));
            let signature: Signature = self.key.sign(&signed);
            let id = B64.encode(&self.id);
            json!({
                "id": id,
                "rawId": id,
                "type": "public-key",
                "response": {
                    "clientDataJSON": B64.encode(client),
                    "authenticatorData": B64.encode(data),
                    "signature": B64.encode(signature.to_der().as_bytes()),
                },
                "clientExtensionResults": {},
            })
        }

        fn authenticator_data(&self, rp_id: &str, flags: u8, attested: &[u8]) -> Vec<u8> {
            let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
            data.push(flags);
            data.extend(self.counter.to_be_bytes());
            data.extend(attested);
            data
        }

        fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
            json!({
                "type": kind,
                "challenge": options["challenge"],
                "origin": self.origin,
                "crossOrigin": false,
            })
            .to_string()
            .into_bytes()
        }
    }
}
