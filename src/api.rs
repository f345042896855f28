//! Server functions the UI calls (under `/rpc`). Each is thin: who is asking, then one
//! inventory operation, returning its typed outcome.

use leptos::prelude::*;

#[cfg(feature = "ssr")]
use crate::model::{parse_price, ErrorCode, NewDrop};
use crate::model::{ApiError, ProductDrop, Purchase, Reservation, User};

#[cfg(feature = "ssr")]
mod ssr {
    use axum::http::{header, HeaderMap};
    use leptos::prelude::*;

    use crate::{
        model::{ApiError, UserId},
        server::{
            idempotency::{self, Outcome},
            AppState,
        },
    };

    pub fn state() -> AppState {
        expect_context::<AppState>()
    }

    pub async fn headers() -> Result<HeaderMap, ApiError> {
        leptos_axum::extract::<HeaderMap>()
            .await
            .map_err(|e| ApiError::new(crate::model::ErrorCode::Internal, e.to_string()))
    }

    /// The signed-in caller, or the "sign in first" refusal.
    pub async fn caller() -> Result<UserId, ApiError> {
        state()
            .auth
            .session_user(&headers().await?)
            .ok_or_else(ApiError::unauthenticated)
    }

    /// Runs a server function's body and gives a refusal its real HTTP status (the server
    /// function default is 500, which would log every "sold out" as a server failure). A plain
    /// form post (no JavaScript) keeps the redirect back to its page instead.
    pub async fn respond<T>(
        body: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let result = body.await;
        if let Err(error) = &result {
            let form_post = headers().await.is_ok_and(|h| {
                h.get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
            });
            let status = axum::http::StatusCode::from_u16(error.code.http_status());
            if let (false, Ok(status)) = (form_post, status) {
                expect_context::<leptos_axum::ResponseOptions>().set_status(status);
            }
        }
        result
    }

    /// Runs a write once per idempotency key when the form sent one (see
    /// [`crate::server::idempotency`]): a resubmitted form gets the first outcome again.
    /// `run` must not reach for the reactive context: it may run in a detached task.
    pub async fn once<T>(
        scope: String,
        key: Option<String>,
        operation: &str,
        input: &impl serde::Serialize,
        run: impl std::future::Future<Output = Result<T, ApiError>> + Send + 'static,
    ) -> Result<T, ApiError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return run.await;
        };
        let keyed = idempotency::Keyed {
            scope,
            key: idempotency::valid_key(&key)?.to_string(),
            fingerprint: idempotency::fingerprint(
                "RPC",
                operation,
                &serde_json::to_vec(input).unwrap_or_default(),
            ),
        };
        let store = state().inventory.store().clone();
        match idempotency::once(store, keyed, run, idempotency::record_result).await? {
            Outcome::Fresh(result) => result,
            Outcome::Replay { body, .. } => idempotency::replayed(&body),
        }
    }

    /// Adds a `Set-Cookie` header to the server function's response.
    pub fn set_cookie(value: axum::http::HeaderValue) {
        expect_context::<leptos_axum::ResponseOptions>().append_header(header::SET_COOKIE, value);
    }
}

/// Every drop with its stock and activity feed.
#[server(prefix = "/rpc", endpoint = "list_drops")]
pub async fn list_drops() -> Result<Vec<ProductDrop>, ApiError> {
    ssr::state().inventory.list_drops().await
}

/// The signed-in user, if any.
#[server(prefix = "/rpc", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<User>, ApiError> {
    let state = ssr::state();
    match state.auth.session_user(&ssr::headers().await?) {
        Some(id) => state.inventory.user(id).await,
        None => Ok(None),
    }
}

/// Signs in with a display name (a new buyer each time) and sets the session cookie.
#[server(prefix = "/rpc", endpoint = "sign_in")]
pub async fn sign_in(name: String) -> Result<User, ApiError> {
    ssr::respond(async move {
        let state = ssr::state();
        let user = state.inventory.sign_up(&name).await?;
        let https = crate::server::rest::is_https(&ssr::headers().await?);
        ssr::set_cookie(state.auth.sign_in_cookie(user.id, https));
        Ok(user)
    })
    .await
}

/// Clears the session cookie.
#[server(prefix = "/rpc", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ApiError> {
    ssr::set_cookie(ssr::state().auth.sign_out_cookie());
    Ok(())
}

/// Takes one unit of a drop for the caller. A resubmission with the same `idempotency_key`
/// gets the first outcome.
#[server(prefix = "/rpc", endpoint = "reserve_unit")]
pub async fn reserve_unit(
    drop_id: i64,
    idempotency_key: Option<String>,
) -> Result<Reservation, ApiError> {
    ssr::respond(async move {
        let user = ssr::caller().await?;
        let inventory = ssr::state().inventory.clone();
        let run = async move { Ok(inventory.reserve(drop_id, user).await?.reservation) };
        ssr::once(
            format!("user:{user}"),
            idempotency_key,
            "reserve_unit",
            &drop_id,
            run,
        )
        .await
    })
    .await
}

/// Buys the unit the caller holds. A resubmission with the same `idempotency_key` gets the
/// first outcome.
#[server(prefix = "/rpc", endpoint = "purchase_hold")]
pub async fn purchase_hold(
    reservation_id: i64,
    idempotency_key: Option<String>,
) -> Result<Purchase, ApiError> {
    ssr::respond(async move {
        let user = ssr::caller().await?;
        let inventory = ssr::state().inventory.clone();
        let run = async move { inventory.purchase(reservation_id, user).await };
        ssr::once(
            format!("user:{user}"),
            idempotency_key,
            "purchase_hold",
            &reservation_id,
            run,
        )
        .await
    })
    .await
}

/// Gives the caller's held unit back.
#[server(prefix = "/rpc", endpoint = "cancel_hold")]
pub async fn cancel_hold(reservation_id: i64) -> Result<Reservation, ApiError> {
    ssr::respond(async move {
        let user = ssr::caller().await?;
        Ok(ssr::state()
            .inventory
            .cancel(reservation_id, user)
            .await?
            .reservation)
    })
    .await
}

/// The caller's holds, newest first (empty when signed out).
#[server(prefix = "/rpc", endpoint = "my_reservations")]
pub async fn my_reservations() -> Result<Vec<Reservation>, ApiError> {
    let state = ssr::state();
    match state.auth.session_user(&ssr::headers().await?) {
        Some(user) => state.inventory.user_reservations(user).await,
        None => Ok(Vec::new()),
    }
}

/// Creates a drop from the admin panel; the admin token proves the right to. A resubmission
/// with the same `idempotency_key` gets the first outcome instead of a second drop.
#[server(prefix = "/rpc", endpoint = "create_drop")]
pub async fn create_drop(
    admin_token: String,
    name: String,
    price: String,
    total_stock: String,
    description: Option<String>,
    idempotency_key: Option<String>,
) -> Result<ProductDrop, ApiError> {
    ssr::respond(async move {
        let state = ssr::state();
        if !state.auth.token_matches(admin_token.trim()) {
            return Err(ApiError {
                field: Some("admin_token".into()),
                ..ApiError::new(ErrorCode::Forbidden, "That admin token is not valid.")
            });
        }
        let total_stock = total_stock.trim().parse().map_err(|_| {
            ApiError::invalid("total_stock", "total_stock must be a whole number of units")
        })?;
        let drop = NewDrop {
            name,
            description,
            price_cents: parse_price(&price)?,
            total_stock,
            ..NewDrop::default()
        };
        let input = drop.clone();
        let inventory = state.inventory.clone();
        let run = async move { inventory.create_drop(drop).await };
        ssr::once("admin".into(), idempotency_key, "create_drop", &input, run).await
    })
    .await
}
