//! Signing up and in with a passkey: each a ceremony of two requests, the options for the
//! browser's `navigator.credentials`, then the authenticator's answer.

use axum::{extract::State, http::HeaderMap, response::Response, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    body::{Body, Result},
    session::{signed_in, UserReply},
};
use crate::{
    model::{ApiError, ErrorCode, PasskeyOptions},
    server::{
        http::{
            error::ErrorBody,
            extract::Proof,
            session::{self, begin_passkey, PasskeyFor, SignInBy},
        },
        AppState,
    },
};

/// Whose passkey ceremony to begin.
#[derive(Deserialize, ToSchema)]
pub(in crate::server::http) struct PasskeyUsername {
    /// Signing up: the new account's username (3 to 20 ASCII letters, digits, `_` or `-`,
    /// starting with a letter or a digit; shown publicly). Signing in: the account's, in any
    /// case.
    #[schema(max_length = 20)]
    username: String,
}

/// A ceremony begun: send `ceremony` back with the authenticator's answer within two minutes.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct PasskeyBegun {
    ceremony: String,
    /// `navigator.credentials.create` (signing up) or `.get` (signing in) options as JSON,
    /// `{"publicKey": ...}`, binary fields as unpadded base64url (what
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` and `parseRequestOptionsFromJSON`
    /// take). Bound to the host name of the shop's `public_origin`.
    #[schema(value_type = Object)]
    options: serde_json::Value,
}

/// The authenticator's answer to a ceremony.
#[derive(Deserialize, ToSchema)]
pub(in crate::server::http) struct PasskeyAnswer {
    /// The `ceremony` the options came with.
    ceremony: String,
    /// The credential the browser answered with, as `PublicKeyCredential.toJSON()` gives it.
    #[schema(value_type = Object)]
    credential: serde_json::Value,
}

impl TryFrom<PasskeyOptions> for PasskeyBegun {
    type Error = ApiError;

    fn try_from(begun: PasskeyOptions) -> std::result::Result<Self, ApiError> {
        let options = serde_json::from_str(&begun.options)
            .map_err(|_| ApiError::refusal(ErrorCode::Internal))?;
        Ok(Self {
            ceremony: begun.ceremony,
            options,
        })
    }
}

/// Begin signing up with a passkey
///
/// Checks the username (valid, not taken) and the proof of work making an account takes (the
/// same as `POST /accounts`'), and answers the options for the authenticator. Send its answer
/// to `POST /passkeys/sign-up/answer`.
#[utoipa::path(
    post,
    path = "/passkeys/sign-up",
    tag = "session",
    request_body = PasskeyUsername,
    params(("Dropline-Proof" = Option<String>, Header, description = "The solved proof of work (see `GET /accounts/challenge`): base64 of `{\"challenge\", \"solution\"}`.")),
    responses(
        (status = 200, description = "The ceremony begun.", body = PasskeyBegun),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 403, description = "`PROOF_REQUIRED` (no proof of work sent) or `PROOF_INVALID` (used already, expired, for another door, or not a solution).", body = ErrorBody),
        (status = 409, description = "`USERNAME_TAKEN`", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the username is not 3 to 20 letters, digits, `_` or `-`.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn begin_sign_up(
    State(state): State<AppState>,
    Proof(proof): Proof,
    Body(body): Body<PasskeyUsername>,
) -> Result<Json<PasskeyBegun>> {
    let ceremony = PasskeyFor::SignUp {
        username: &body.username,
        proof: proof.as_deref(),
    };
    Ok(Json(begin_passkey(&state, ceremony).await?.try_into()?))
}

/// Sign up with a passkey
///
/// Makes the account with the passkey the authenticator made, and signs in to it (as `POST
/// /session` does).
#[utoipa::path(
    post,
    path = "/passkeys/sign-up/answer",
    tag = "session",
    request_body = PasskeyAnswer,
    responses(
        (status = 201, description = "Signed up and in.", body = UserReply,
            headers(("Set-Cookie" = String, description = "The signed session cookie."))),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 401, description = "`PASSKEY_REFUSED`: the answer does not check out (another ceremony's, another site's, or not signed by the passkey it names).", body = ErrorBody),
        (status = 409, description = "`CEREMONY_EXPIRED` (unknown, answered already, or older than two minutes) or `USERNAME_TAKEN` (taken meanwhile).", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the credential is not a WebAuthn credential as JSON.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn sign_up(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<PasskeyAnswer>,
) -> Result<Response> {
    answered(&state, &headers, &body, |ceremony, credential| {
        SignInBy::PasskeySignUp {
            ceremony,
            credential,
        }
    })
    .await
}

/// Signs in `by` the answer `body` carries.
async fn answered(
    state: &AppState,
    headers: &HeaderMap,
    body: &PasskeyAnswer,
    by: for<'a> fn(&'a str, &'a str) -> SignInBy<'a>,
) -> Result<Response> {
    let credential = body.credential.to_string();
    let (user, cookie) = session::sign_in(state, by(&body.ceremony, &credential), headers).await?;
    signed_in(user, cookie)
}

/// Begin signing in with a passkey
///
/// Answers the options for the authenticator to sign in to the account named `username`
/// with one of its passkeys. Send its answer to `POST /passkeys/sign-in/answer`.
#[utoipa::path(
    post,
    path = "/passkeys/sign-in",
    tag = "session",
    request_body = PasskeyUsername,
    responses(
        (status = 200, description = "The ceremony begun.", body = PasskeyBegun),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 404, description = "`NO_PASSKEY`: no account of that username has a passkey.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the body is not `{\"username\": string}`.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn begin_sign_in(
    State(state): State<AppState>,
    Body(body): Body<PasskeyUsername>,
) -> Result<Json<PasskeyBegun>> {
    let ceremony = PasskeyFor::SignIn {
        username: &body.username,
    };
    Ok(Json(begin_passkey(&state, ceremony).await?.try_into()?))
}

/// Sign in with a passkey
///
/// Signs in to the account whose passkey answered (as `POST /session` does).
#[utoipa::path(
    post,
    path = "/passkeys/sign-in/answer",
    tag = "session",
    request_body = PasskeyAnswer,
    responses(
        (status = 201, description = "Signed in.", body = UserReply,
            headers(("Set-Cookie" = String, description = "The signed session cookie."))),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 401, description = "`PASSKEY_REFUSED`: the answer does not check out (another ceremony's, another site's, not one of the account's passkeys, or not signed by it).", body = ErrorBody),
        (status = 409, description = "`CEREMONY_EXPIRED`: unknown, answered already, or older than two minutes.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the credential is not a WebAuthn credential as JSON.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<PasskeyAnswer>,
) -> Result<Response> {
    answered(&state, &headers, &body, |ceremony, credential| {
        SignInBy::Passkey {
            ceremony,
            credential,
        }
    })
    .await
}
