//! Idempotency keys: a write sent again with the same key gets the first answer again and
//! changes nothing; the same key with a different request is refused (422 `INVALID_INPUT`,
//! `field: idempotency_key`). One layer serves both doors: REST clients send the
//! `Idempotency-Key` header, the web app's forms (server functions under `/rpc`) an
//! `idempotency_key` field, since a form cannot set a header. Either way the first answer is
//! stored as it was sent (status, body, and the headers a replay needs), so a retry of a form post
//! gets the same redirect and a retry of a JSON call the same JSON.
//!
//! Keys belong to the caller (their session, else the admin), so nobody sees another's answer.
//! A key is claimed before its request runs: a concurrent duplicate gets 409 and does not run.
//! Only the answer of a request that changed something (a 2xx, or a form's redirect without an
//! error) is stored: after a refusal or a failure the key is let go, so a retry runs again and
//! refused requests leave no rows behind. One caller may hold `idempotency_keys_per_buyer` keys
//! at once; a new key past them is answered 429.

use std::{future::Future, sync::Arc};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequestParts, Request, State},
    http::{header, response::Parts as ResponseParts, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;
use sha2::{Digest, Sha256};

use super::{
    error::timed_out,
    extract::{Admin, Caller},
    protect::MAX_BODY_BYTES,
};
use crate::{
    model::{ApiError, ErrorCode},
    server::{
        inventory::Inventory,
        store::{KeyClaim, KeyRequest, Settlement, Store, StoredResponse},
        AppState,
    },
};

/// The header a REST client sets to make a write safe to retry.
pub const HEADER: &str = "idempotency-key";

/// The form field a server function's form sends for the same purpose.
pub const FORM_FIELD: &str = "idempotency_key";

/// The longest key accepted, in characters: a UUID (36) or a 64-digit hash fits.
pub const MAX_KEY_CHARS: usize = 64;

/// Checks a client's key: 1 to [`MAX_KEY_CHARS`] visible ASCII characters.
fn valid_key(key: &str) -> Result<&str, ApiError> {
    if !key.is_empty() && key.len() <= MAX_KEY_CHARS && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(key)
    } else {
        Err(ApiError::new(
            ErrorCode::MalformedRequest,
            format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters."),
        ))
    }
}

/// Identifies a request under its key: what it does and with which input.
fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(method);
    digest.update(b" ");
    digest.update(path);
    digest.update(b"\n");
    digest.update(body);
    format!("{:x}", digest.finalize())
}

/// The layer on the writes a client may retry (see the module docs).
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let header_key = request.headers().get(HEADER).cloned();
    let is_form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    if header_key.is_none() && !is_form {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    // The session decides who acts (reserve and purchase act for it), so it scopes the key.
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    let scope = match caller.user() {
        Some(user) => format!("user:{user}"),
        None if Admin::from_request_parts(&mut parts, &state).await.is_ok() => "admin".into(),
        // Nobody to scope the key to: the handler refuses the request as usual.
        None => return next.run(Request::from_parts(parts, body)).await,
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) if timed_out(&error) => {
            return ApiError::refusal(ErrorCode::RequestTimeout).into_response()
        }
        Err(_) => return ApiError::refusal(ErrorCode::TooLarge).into_response(),
    };
    let key = match header_key {
        // A header that is not visible ASCII reads as empty, which the check refuses.
        Some(key) => key.to_str().unwrap_or_default().to_string(),
        None => match form_key(&bytes) {
            Some(key) => key,
            None => {
                return next
                    .run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
        },
    };
    if let Err(error) = valid_key(&key) {
        return error.into_response();
    }
    let keyed = KeyRequest {
        scope,
        key,
        fingerprint: fingerprint(parts.method.as_str(), parts.uri.path(), &bytes),
    };
    let run = async move {
        let response = next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        (parts, bytes)
    };
    match once(state.inventory.clone(), keyed, run).await {
        Ok(Outcome::Fresh((parts, bytes))) => Response::from_parts(parts, Body::from(bytes)),
        Ok(Outcome::Replay(stored)) => replay(stored),
        Err(error) => error.into_response(),
    }
}

/// The `idempotency_key` field of a form body, if it has a non-empty one.
fn form_key(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(name, _)| name == FORM_FIELD)
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty())
}

/// What [`once`] gives back.
enum Outcome<T> {
    /// The request ran now (first use of its key).
    Fresh(T),
    /// The key was used before: the stored answer.
    Replay(StoredResponse),
}

/// Runs `run` once per key and stores its answer for retries (not a server error: a retry of
/// that runs again). The request runs and its answer is stored in a detached task, so a client
/// that hangs up mid-request cannot leave its key unsettled.
async fn once(
    inventory: Inventory,
    request: KeyRequest,
    run: impl Future<Output = (ResponseParts, Bytes)> + Send + 'static,
) -> Result<Outcome<(ResponseParts, Bytes)>, ApiError> {
    let token = match inventory.claim_key(request.clone()).await? {
        KeyClaim::Claimed { token } => token,
        KeyClaim::Replay(stored) => return Ok(Outcome::Replay(stored)),
        KeyClaim::Mismatch => {
            return Err(ApiError::invalid(
                "idempotency_key",
                "This Idempotency-Key was already used for a different request.",
            ))
        }
        KeyClaim::InFlight => {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                "A request with this Idempotency-Key is still running; retry shortly.",
            ))
        }
        KeyClaim::TooMany => {
            // Keys are forgotten hourly once older than idempotency_key_hours.
            return Err(ApiError {
                retry_after: Some(3600),
                ..ApiError::new(
                    ErrorCode::RateLimited,
                    "Too many Idempotency-Keys in use by this caller; retry later, or without a \
                     key.",
                )
            });
        }
    };
    let settled = tokio::spawn(async move {
        let (parts, bytes) = run.await;
        let settlement = Settlement {
            scope: request.scope,
            key: request.key,
            token,
            answer: stored_form(&parts, &bytes),
        };
        if let Err(error) = inventory.settle_key(settlement).await {
            tracing::warn!(error = %error.message, "could not record an idempotent answer");
        }
        (parts, bytes)
    });
    match settled.await {
        Ok(answer) => Ok(Outcome::Fresh(answer)),
        Err(error) => {
            tracing::error!(%error, "idempotent request failed");
            Err(ApiError::refusal(ErrorCode::Internal))
        }
    }
}

/// What a retry gets back of an answer; `None` (the key is let go) for one that changed
/// nothing: a refusal, a failure, or a form sent back with an error.
fn stored_form(parts: &ResponseParts, body: &[u8]) -> Option<StoredResponse> {
    let form_error = parts.headers.contains_key(SERVER_FN_ERROR_HEADER);
    if !(parts.status.is_success() || parts.status.is_redirection()) || form_error {
        return None;
    }
    let header = |name| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Some(StoredResponse {
        status: parts.status.as_u16(),
        content_type: header(header::CONTENT_TYPE),
        location: header(header::LOCATION),
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// A stored answer sent again, marked `Idempotent-Replayed: true`.
fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::LOCATION, stored.location),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

/// Forgets keys older than `keep`, once at start and then every hour, so the table holds only
/// the retries that can still come.
pub async fn forget_old_keys(store: Arc<dyn Store>, keep: std::time::Duration) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        every.tick().await;
        match store.forget_keys(keep).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "forgot old idempotency keys"),
            Err(error) => tracing::warn!(%error, "could not forget old idempotency keys"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_carries_its_key_in_a_field() {
        assert_eq!(
            form_key(b"drop_id=4&idempotency_key=tap%2D1").as_deref(),
            Some("tap-1")
        );
        assert_eq!(form_key(b"drop_id=4&idempotency_key="), None);
        assert_eq!(form_key(b"drop_id=4"), None);
    }

    #[test]
    fn keys_are_visible_ascii() {
        assert!(valid_key("tap-1").is_ok());
        assert!(valid_key(&"k".repeat(64)).is_ok());
        for bad in ["", "with space", "é", &"k".repeat(65)] {
            assert!(valid_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_answers_that_changed_something_are_kept() {
        let (mut parts, ()) = Response::new(()).into_parts();
        for status in [
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::NOT_FOUND,
            StatusCode::CONFLICT,
            StatusCode::TOO_MANY_REQUESTS,
        ] {
            parts.status = status;
            assert!(stored_form(&parts, b"{}").is_none(), "{status}");
        }
        parts.status = StatusCode::CREATED;
        assert!(stored_form(&parts, b"{}").is_some());
        // A form sent back to its page with an error changed nothing either.
        parts.status = StatusCode::FOUND;
        parts.headers.insert(
            SERVER_FN_ERROR_HEADER,
            HeaderValue::from_static("/rpc/reserve_unit"),
        );
        assert!(stored_form(&parts, b"").is_none());
        parts.headers.remove(SERVER_FN_ERROR_HEADER);
        parts.status = StatusCode::FOUND;
        parts
            .headers
            .insert(header::LOCATION, HeaderValue::from_static("/?x=1"));
        let stored = stored_form(&parts, b"").unwrap();
        let replayed = replay(stored);
        assert_eq!(replayed.status(), StatusCode::FOUND);
        assert_eq!(replayed.headers()[header::LOCATION], "/?x=1");
        assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    }
}
