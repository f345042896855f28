//! Server functions the UI calls (under `/rpc`). Each is thin: who is asking (the same
//! extractors the REST API uses), then one inventory operation, returning its typed outcome.
//! Rate limits and idempotency keys are rules of their routes (`server::http::routes`): a
//! write's `idempotency_key` field is read there, before the function runs.
// A server function's arguments are its form's fields: the create-drop panel has nine.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;

use crate::model::{
    ApiError, DropId, PasskeyOptions, ProductDrop, Purchase, Reservation, ReservationId, SaleMode,
    SignInWays, Ticket, User,
};
#[cfg(feature = "ssr")]
use crate::{
    model::{parse_price, parse_size_run, ErrorCode, NewDrop},
    server::{
        doors::Door,
        http::{
            extract::{Admin, Caller, ClientAddr, SignedIn},
            session::{self, PasskeyFor, SignInBy},
        },
    },
};

#[cfg(feature = "ssr")]
mod ssr {
    use axum::{
        extract::FromRequestParts,
        http::{header, request::Parts},
    };
    use leptos::prelude::*;

    use crate::{
        model::{ApiError, ErrorCode},
        server::AppState,
    };

    pub fn state() -> AppState {
        expect_context::<AppState>()
    }

    /// Runs one of the HTTP edge's extractors (who is asking, from where) on the request that
    /// called the server function.
    pub async fn extract<T>() -> Result<T, ApiError>
    where
        T: FromRequestParts<AppState>,
        T::Rejection: Into<ApiError>,
    {
        let mut parts = use_context::<Parts>()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "no request to read"))?;
        T::from_request_parts(&mut parts, &state())
            .await
            .map_err(Into::into)
    }

    /// Runs a server function's body and gives a refusal its real HTTP status (the server
    /// function default is 500, which would log every "sold out" as a server failure). A plain
    /// form post (no JavaScript) keeps the redirect back to its page instead.
    pub async fn respond<T>(
        body: impl std::future::Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let result = body.await;
        if let Err(error) = &result {
            let form_post = use_context::<Parts>().is_some_and(|parts| {
                parts
                    .headers
                    .get(header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
            });
            let status = axum::http::StatusCode::from_u16(error.code.http_status());
            if let (false, Ok(status)) = (form_post, status) {
                let response = expect_context::<leptos_axum::ResponseOptions>();
                response.set_status(status);
                if let Some(seconds) = error.retry_after {
                    response.insert_header(header::RETRY_AFTER, seconds.into());
                }
            }
        }
        result
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
    match ssr::extract::<Caller>().await?.user() {
        Some(id) => ssr::state().inventory.user(id).await,
        None => Ok(None),
    }
}

/// How this server signs buyers in: by display name alone too (the demo's `demo_sign_in`), and
/// where its passkeys work.
#[server(prefix = "/rpc", endpoint = "ways_to_sign_in")]
pub async fn ways_to_sign_in() -> Result<SignInWays, ApiError> {
    let settings = &ssr::state().settings;
    Ok(SignInWays {
        demo: settings.demo_sign_in,
        passkey_origin: settings.public_origin.clone(),
    })
}

/// Signs in with a display name (the demo's: a new buyer each time) and sets the session
/// cookie.
#[server(prefix = "/rpc", endpoint = "sign_in")]
pub async fn sign_in(name: String) -> Result<User, ApiError> {
    signed_in_by(SignInBy::Name(&name)).await
}

/// A proof-of-work challenge (ALTCHA's JSON) for signing up, or `None` when the shop asks no
/// proof.
#[server(prefix = "/rpc", endpoint = "sign_up_challenge")]
pub async fn sign_up_challenge() -> Result<Option<String>, ApiError> {
    Ok(challenge_json(Door::SignUp))
}

/// A fresh challenge for `door` as JSON, if the shop asks one.
#[cfg(feature = "ssr")]
fn challenge_json(door: Door) -> Option<String> {
    let challenge = ssr::state().doors.challenge(door)?;
    Some(serde_json::to_string(&challenge).expect("a challenge serializes"))
}

/// Signs up with a username and a password (and `proof`, the solved proof of work of
/// [`sign_up_challenge`], when the shop asks one) and sets the session cookie.
#[server(prefix = "/rpc", endpoint = "sign_up")]
pub async fn sign_up(
    username: String,
    password: String,
    #[server(default)] proof: Option<String>,
) -> Result<User, ApiError> {
    signed_in_by(SignInBy::SignUp {
        username: &username,
        password: &password,
        proof: proof.as_deref(),
    })
    .await
}

/// Signs in with an account's username and password and sets the session cookie.
#[server(prefix = "/rpc", endpoint = "log_in")]
pub async fn log_in(username: String, password: String) -> Result<User, ApiError> {
    signed_in_by(SignInBy::Password {
        username: &username,
        password: &password,
    })
    .await
}

/// Begins a passkey ceremony for `username`: making that account (`sign_up`, with `proof`, the
/// solved proof of work of [`sign_up_challenge`], when the shop asks one) or signing in to it.
/// Answers the options for `navigator.credentials`; the answer goes to [`passkey_sign_in`].
#[server(prefix = "/rpc", endpoint = "begin_passkey")]
pub async fn begin_passkey(
    username: String,
    sign_up: bool,
    #[server(default)] proof: Option<String>,
) -> Result<PasskeyOptions, ApiError> {
    ssr::respond(async move {
        let ceremony = match sign_up {
            true => PasskeyFor::SignUp {
                username: &username,
                proof: proof.as_deref(),
            },
            false => PasskeyFor::SignIn {
                username: &username,
            },
        };
        session::begin_passkey(&ssr::state(), ceremony).await
    })
    .await
}

/// Signs up (`sign_up`) or in with the authenticator's answer (`credential`, the JSON of
/// `PublicKeyCredential.toJSON()`) to the passkey ceremony `ceremony`, and sets the session
/// cookie.
#[server(prefix = "/rpc", endpoint = "passkey_sign_in")]
pub async fn passkey_sign_in(
    ceremony: String,
    credential: String,
    sign_up: bool,
) -> Result<User, ApiError> {
    let (ceremony, credential) = (ceremony.as_str(), credential.as_str());
    signed_in_by(match sign_up {
        true => SignInBy::PasskeySignUp {
            ceremony,
            credential,
        },
        false => SignInBy::Passkey {
            ceremony,
            credential,
        },
    })
    .await
}

/// Signs the caller in `by` one of the ways, and sets the session cookie.
#[cfg(feature = "ssr")]
async fn signed_in_by(by: SignInBy<'_>) -> Result<User, ApiError> {
    ssr::respond(async move {
        let headers = ssr::extract::<axum::http::HeaderMap>().await?;
        let (user, cookie) = session::sign_in(&ssr::state(), by, &headers).await?;
        ssr::set_cookie(cookie);
        Ok(user)
    })
    .await
}

/// Revokes the caller's session and clears the cookie.
#[server(prefix = "/rpc", endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ApiError> {
    ssr::respond(async move {
        let caller = ssr::extract::<Caller>().await?;
        for cookie in session::sign_out(&ssr::state(), caller).await? {
            ssr::set_cookie(cookie);
        }
        Ok(())
    })
    .await
}

/// Takes one unit of a drop, of the size picked (none for a drop with one size), for the
/// caller. A resubmission with the same `idempotency_key` gets the first outcome.
#[server(prefix = "/rpc", endpoint = "reserve_unit")]
pub async fn reserve_unit(
    drop_id: DropId,
    #[server(default)] size: Option<String>,
    idempotency_key: Option<String>,
) -> Result<Reservation, ApiError> {
    let _ = idempotency_key; // Read by the route's idempotency layer.
    ssr::respond(async move {
        let SignedIn(user) = ssr::extract().await?;
        let ask = crate::server::store::Reserve::of(user, size.as_deref());
        let reserved = ssr::state().inventory.reserve(drop_id, ask).await?;
        Ok(reserved.reservation)
    })
    .await
}

/// Buys the unit the caller holds. A resubmission with the same `idempotency_key` gets the
/// first outcome.
#[server(prefix = "/rpc", endpoint = "purchase_hold")]
pub async fn purchase_hold(
    reservation_id: ReservationId,
    idempotency_key: Option<String>,
) -> Result<Purchase, ApiError> {
    let _ = idempotency_key; // Read by the route's idempotency layer.
    ssr::respond(async move {
        let SignedIn(user) = ssr::extract().await?;
        ssr::state().inventory.purchase(reservation_id, user).await
    })
    .await
}

/// Gives the caller's held unit back.
#[server(prefix = "/rpc", endpoint = "cancel_hold")]
pub async fn cancel_hold(reservation_id: ReservationId) -> Result<Reservation, ApiError> {
    ssr::respond(async move {
        let SignedIn(user) = ssr::extract().await?;
        let cancelled = ssr::state().inventory.cancel(reservation_id, user).await?;
        Ok(cancelled.reservation)
    })
    .await
}

/// The caller's holds, newest first (empty when signed out).
#[server(prefix = "/rpc", endpoint = "my_reservations")]
pub async fn my_reservations() -> Result<Vec<Reservation>, ApiError> {
    match ssr::extract::<Caller>().await?.user() {
        Some(user) => ssr::state().inventory.user_reservations(user).await,
        None => Ok(Vec::new()),
    }
}

/// A proof-of-work challenge (ALTCHA's JSON) for the caller to join or enter a drop, or
/// `None` when the shop asks no proof.
#[server(prefix = "/rpc", endpoint = "proof_challenge")]
pub async fn proof_challenge(drop_id: DropId) -> Result<Option<String>, ApiError> {
    ssr::respond(async move {
        let SignedIn(user) = ssr::extract().await?;
        let door = Door::Join {
            drop: drop_id,
            buyer: user,
        };
        Ok(challenge_json(door))
    })
    .await
}

/// Joins the caller to a queue drop's line (`mode` queue) or enters them in its draw (`mode`
/// draw) with `proof`, the solved proof of work of [`proof_challenge`] (base64 of its JSON)
/// when the shop asks one; joining again answers the same ticket.
#[server(prefix = "/rpc", endpoint = "join_queue")]
pub async fn join_queue(
    drop_id: DropId,
    mode: SaleMode,
    #[server(default)] proof: Option<String>,
) -> Result<Ticket, ApiError> {
    ssr::respond(async move {
        let SignedIn(user) = ssr::extract().await?;
        let ClientAddr(from) = ssr::extract().await?;
        let state = ssr::state();
        let door = Door::Join {
            drop: drop_id,
            buyer: user,
        };
        let spend = state.doors.check(door, proof.as_deref())?;
        let (ticket, _) = state
            .inventory
            .join(drop_id, mode, user, from, spend)
            .await?;
        Ok(ticket)
    })
    .await
}

/// Takes the caller out of a queue drop's line (`mode` queue) or withdraws their entry in its
/// draw (`mode` draw).
#[server(prefix = "/rpc", endpoint = "leave_queue")]
pub async fn leave_queue(drop_id: DropId, mode: SaleMode) -> Result<Ticket, ApiError> {
    ssr::respond(async move {
        let SignedIn(user) = ssr::extract().await?;
        ssr::state().inventory.leave(drop_id, mode, user).await
    })
    .await
}

/// The caller's queue tickets, by drop (empty when signed out).
#[server(prefix = "/rpc", endpoint = "my_tickets")]
pub async fn my_tickets() -> Result<Vec<(DropId, Ticket)>, ApiError> {
    match ssr::extract::<Caller>().await?.user() {
        Some(user) => ssr::state().inventory.user_tickets(user).await,
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
    #[server(default)] sizes: Option<String>,
    description: Option<String>,
    sale_mode: Option<String>,
    starts_in_minutes: Option<String>,
    lobby_minutes: Option<String>,
    idempotency_key: Option<String>,
) -> Result<ProductDrop, ApiError> {
    let _ = idempotency_key; // Read by the route's idempotency layer.
    ssr::respond(async move {
        let state = ssr::state();
        // The panel's form carries the token (a form cannot set a header); its refusal is shown
        // next to that field.
        let addr = ssr::extract::<ClientAddr>().await?;
        Admin::check(&state, addr, &admin_token).map_err(|refusal| ApiError {
            field: Some("admin_token".into()),
            message: match refusal.code {
                ErrorCode::Forbidden => "That admin token is not valid.".into(),
                _ => refusal.message,
            },
            ..refusal
        })?;
        let sizes = parse_size_run(sizes.as_deref().unwrap_or_default())?;
        // With sizes the units may be left out: they are the sizes' sum.
        let total_stock = match total_stock.trim() {
            "" if !sizes.is_empty() => 0,
            units => units.parse().map_err(|_| {
                ApiError::invalid("total_stock", "total_stock must be a whole number of units")
            })?,
        };
        let sale_mode = match sale_mode.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(SaleMode::parse(text).ok_or_else(|| {
                ApiError::invalid("sale_mode", "sale_mode must be first_come, queue or draw")
            })?),
        };
        let starts_in = minutes("starts_at", "Goes live in", starts_in_minutes)?;
        let lobby = minutes("queue_opens_at", "The lobby", lobby_minutes)?;
        let starts_at = starts_in.map(|m| chrono::Utc::now() + chrono::Duration::minutes(m));
        // The lobby's minutes open a queue's lobby, or a draw's entries, before go-live.
        let opens_at = lobby
            .map(|m| starts_at.unwrap_or_else(chrono::Utc::now) - chrono::Duration::minutes(m));
        let (queue_opens_at, entries_open_at) = match sale_mode {
            Some(SaleMode::Queue) => (opens_at, None),
            Some(SaleMode::Draw) => (None, opens_at),
            _ => (None, None),
        };
        state
            .inventory
            .create_drop(NewDrop {
                name,
                description,
                price_cents: parse_price(&price)?,
                total_stock,
                sizes,
                starts_at,
                sale_mode,
                queue_opens_at,
                entries_open_at,
                ..NewDrop::default()
            })
            .await
    })
    .await
}

/// A panel field of whole minutes (a week at most), empty for none; a refusal names `field`.
#[cfg(feature = "ssr")]
fn minutes(field: &str, label: &str, text: Option<String>) -> Result<Option<i64>, ApiError> {
    let text = text.unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(None);
    }
    match text.trim().parse::<i64>() {
        Ok(minutes) if (0..=7 * 24 * 60).contains(&minutes) => Ok(Some(minutes)),
        _ => Err(ApiError::invalid(
            field,
            format!("{label} must be a whole number of minutes from 0 to 10080"),
        )),
    }
}
