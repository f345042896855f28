//! Signing in and out.

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    body::{Body, Result},
    queue::ChallengeReply,
};
use crate::{
    model::{ApiError, User},
    server::{
        doors::Door,
        http::{
            error::ErrorBody,
            extract::{Caller, Proof},
            session::{self, SignInBy},
        },
        AppState,
    },
};

/// What a buyer sends to sign in: their account's `username` and `password`, or — on the
/// demo's server (`demo_sign_in`) — a display name alone, which makes a new buyer each time.
#[derive(Deserialize, ToSchema)]
pub(in crate::server::http) struct SignIn {
    /// The demo's display name: 1 to 80 characters after trimming, no control characters and
    /// no format characters (bidi overrides, zero-width spaces and joiners); stored in Unicode
    /// NFC.
    #[schema(min_length = 1, max_length = 80, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: Option<String>,
    /// The account's username, in any case.
    username: Option<String>,
    password: Option<String>,
}

/// What a buyer sends to sign up.
#[derive(Deserialize, ToSchema)]
pub(in crate::server::http) struct SignUp {
    /// Shown publicly: 3 to 20 ASCII letters, digits, `_` or `-`, starting with a letter or a
    /// digit; unique whatever its case.
    #[schema(
        min_length = 3,
        max_length = 20,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
    )]
    username: String,
    /// At least 10 characters and at most 256 bytes, and not easy to guess (common passwords,
    /// keyboard walks, the username itself are refused).
    #[schema(min_length = 10)]
    password: String,
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

/// Sign in
///
/// With `username` and `password`, signs in to that account; on the demo's server
/// (`demo_sign_in`), `name` alone makes a new buyer. Sets the signed session cookie that the
/// buyer's routes read (named `__Host-dropline_session` when it is `Secure`). A session the
/// request still carries ends.
#[utoipa::path(
    post,
    path = "/session",
    tag = "session",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in.", body = UserReply,
            headers(("Set-Cookie" = String, description = "The signed session cookie `dropline_session` (`__Host-dropline_session` when Secure)."))),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 401, description = "`WRONG_PASSWORD`: no account has that username and password.", body = ErrorBody),
        (status = 403, description = "`DEMO_SIGN_IN_OFF`: a display name alone signs in only on the demo's server.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: neither a username and a password nor a name; or the name is empty, longer than 80 characters or has control or format characters.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<SignIn>,
) -> Result<Response> {
    let by = match (&body.username, &body.password, &body.name) {
        (Some(username), Some(password), _) => SignInBy::Password { username, password },
        (None, None, Some(name)) => SignInBy::Name(name),
        _ => {
            return Err(ApiError::invalid(
                "username",
                "Send a username and a password (or, on the demo, a name).",
            ))
        }
    };
    let (user, cookie) = session::sign_in(&state, by, &headers).await?;
    signed_in(user, cookie)
}

/// Sign up
///
/// Makes an account with a username (shown publicly) and a password, and signs in to it (as
/// `POST /session` does).
#[utoipa::path(
    post,
    path = "/accounts",
    tag = "session",
    request_body = SignUp,
    params(("Dropline-Proof" = Option<String>, Header, description = "The solved proof of work (see `GET /accounts/challenge`): base64 of `{\"challenge\", \"solution\"}`.")),
    responses(
        (status = 201, description = "Signed up and in.", body = UserReply,
            headers(("Set-Cookie" = String, description = "The signed session cookie."))),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 403, description = "`PROOF_REQUIRED` (no proof of work sent) or `PROOF_INVALID` (used already, expired, for another door, or not a solution).", body = ErrorBody),
        (status = 409, description = "`USERNAME_TAKEN`", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the username is not 3 to 20 letters, digits, `_` or `-`; or the password is shorter than 10 characters, longer than 256 bytes, or easy to guess (`field` says which).", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn sign_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Proof(proof): Proof,
    Body(body): Body<SignUp>,
) -> Result<Response> {
    let by = SignInBy::SignUp {
        username: &body.username,
        password: &body.password,
        proof: proof.as_deref(),
    };
    let (user, cookie) = session::sign_in(&state, by, &headers).await?;
    signed_in(user, cookie)
}

/// A proof-of-work challenge for signing up
///
/// Making an account takes a proof of work, as joining a queue does (see `GET
/// /drops/{id}/challenge` for how to solve one): send the solution as `POST /accounts`'s
/// `Dropline-Proof` header.
#[utoipa::path(
    get,
    path = "/accounts/challenge",
    tag = "session",
    responses(
        (status = 200, description = "A fresh challenge, or null when this shop asks no proof.", body = ChallengeReply),
    )
)]
pub(in crate::server::http) async fn sign_up_challenge(
    State(state): State<AppState>,
) -> Json<ChallengeReply> {
    Json(ChallengeReply {
        challenge: state.doors.challenge(Door::SignUp),
    })
}

/// The answer to a sign-in or a sign-up.
pub(in crate::server::http) fn signed_in(user: User, cookie: HeaderValue) -> Result<Response> {
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
