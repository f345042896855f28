//! Idempotency keys: a write sent again with the same key gets the first outcome again and
//! changes nothing; the same key with a different request is refused (422). REST clients send
//! the `Idempotency-Key` header; the server functions take an optional `idempotency_key` field
//! for the same purpose.

use std::{future::Future, sync::Arc};

use sha2::{Digest, Sha256};

use super::store::{KeyClaim, Store};
use crate::model::{ApiError, ErrorCode};

/// The header a REST client sets to make a write safe to retry.
pub const HEADER: &str = "idempotency-key";

/// Checks a client's key: 1 to 255 visible ASCII characters.
pub fn valid_key(key: &str) -> Result<&str, ApiError> {
    if !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(key)
    } else {
        Err(ApiError::new(
            ErrorCode::MalformedRequest,
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
        ))
    }
}

/// Identifies a request under its key: what it does and with which input.
pub fn fingerprint(operation: &str, target: &str, body: &[u8]) -> String {
    let mut digest = Sha256::new();
    digest.update(operation);
    digest.update(b" ");
    digest.update(target);
    digest.update(b"\n");
    digest.update(body);
    format!("{:x}", digest.finalize())
}

/// What [`once`] gives back.
pub enum Outcome<T> {
    /// The request ran now (first use of its key).
    Fresh(T),
    /// The key was used before: the stored outcome, as recorded.
    Replay { status: u16, body: String },
}

/// Who sent a keyed request, what it is, and its key.
pub struct Keyed {
    /// Whose keys these are (a session's user, or the admin): nobody sees another's outcome.
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// Runs `run` once per key. `record` says what to store for a retry (`None` for outcomes a
/// retry should run again, such as server errors). The request runs and its outcome is stored
/// in a detached task: a client that hangs up mid-request cannot leave its key unsettled.
pub async fn once<T: Send + 'static>(
    store: Arc<dyn Store>,
    keyed: Keyed,
    run: impl Future<Output = T> + Send + 'static,
    record: impl FnOnce(&T) -> Option<(u16, String)> + Send + 'static,
) -> Result<Outcome<T>, ApiError> {
    let Keyed {
        scope,
        key,
        fingerprint,
    } = keyed;
    let token = match store.claim_key(&scope, &key, &fingerprint).await? {
        KeyClaim::Claimed { token } => token,
        KeyClaim::Replay { status, body } => return Ok(Outcome::Replay { status, body }),
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
    };
    let settled = tokio::spawn(async move {
        let outcome = run.await;
        let stored = record(&outcome);
        let stored = stored
            .as_ref()
            .map(|(status, body)| (*status, body.as_str()));
        if let Err(error) = store.settle_key(&scope, &key, token, stored).await {
            tracing::warn!(%error, "could not record an idempotent outcome");
        }
        outcome
    });
    match settled.await {
        Ok(outcome) => Ok(Outcome::Fresh(outcome)),
        Err(error) => {
            tracing::error!(%error, "idempotent request failed");
            Err(ApiError::refusal(ErrorCode::Internal))
        }
    }
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

/// Stores a typed outcome as JSON, except server-side failures (a retry runs again).
pub fn record_result<T: serde::Serialize>(result: &Result<T, ApiError>) -> Option<(u16, String)> {
    let status = match result {
        Ok(_) => 200,
        Err(e) if e.code.http_status() >= 500 => return None,
        Err(e) => e.code.http_status(),
    };
    serde_json::to_string(result)
        .ok()
        .map(|body| (status, body))
}

/// Reads back an outcome stored by [`record_result`].
pub fn replayed<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, ApiError> {
    serde_json::from_str::<Result<T, ApiError>>(body).unwrap_or_else(|_| {
        Err(ApiError::new(
            ErrorCode::Conflict,
            "This Idempotency-Key was already used for a different request.",
        ))
    })
}
