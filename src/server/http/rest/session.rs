//! Signing in and out.

use axum::{
    extract::State,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{Body, Result};
use crate::{
    model::User,
    server::{
        http::{error::ErrorBody, extract::Caller, session},
        AppState,
    },
};

/// What a buyer sends to sign in.
#[derive(Deserialize, ToSchema)]
pub(in crate::server::http) struct SignIn {
    /// Display name: 1 to 80 characters after trimming, no control characters and no format
    /// characters (bidi overrides, zero-width spaces and joiners); stored in Unicode NFC.
    #[schema(min_length = 1, max_length = 80, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: String,
}

/// The signed-in buyer.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct UserReply {
    user: User,
}

/// Sign-out always succeeds.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct SignedOut {
    signed_out: bool,
}

/// Sign in with a display name
///
/// Creates a buyer and sets the signed session cookie that the buyer's routes read (named
/// `__Host-dropline_session` when it is `Secure`). A session the request still carries ends.
#[utoipa::path(
    post,
    path = "/session",
    tag = "session",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in.", body = UserReply,
            headers(("Set-Cookie" = String, description = "The signed session cookie `dropline_session` (`__Host-dropline_session` when Secure)."))),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the name is missing, empty, longer than 80 characters or has control or format characters.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<SignIn>,
) -> Result<Response> {
    let (user, cookie) = session::sign_in(&state, &body.name, &headers).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(UserReply { user }),
    )
        .into_response())
}

/// Sign out
///
/// Revokes the caller's session (the cookie is worth nothing from now on, on every instance
/// within `session_cache_seconds`) and clears the cookie. Without a session it just clears it.
#[utoipa::path(
    delete,
    path = "/session",
    tag = "session",
    responses(
        (status = 200, description = "Signed out.", body = SignedOut,
            headers(("Set-Cookie" = String, description = "Expires the session cookie."))),
    )
)]
pub(in crate::server::http) async fn sign_out(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response> {
    let mut response = Json(SignedOut { signed_out: true }).into_response();
    for cookie in session::sign_out(&state, caller).await? {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
