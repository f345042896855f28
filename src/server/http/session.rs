//! Signing in and out, for the REST API and the server functions alike: the session lives in
//! the database ([`crate::server::sessions`]), the cookie only carries its id.

use axum::http::{HeaderMap, HeaderValue};

use super::extract::Caller;
use crate::{
    model::{ApiError, User},
    server::AppState,
};

/// Signs a new buyer in under a display name: creates them, opens their session and answers
/// the `Set-Cookie` value that carries it. The session the request's cookie carried, if any,
/// ends: a copy of the old cookie is worth nothing from now on.
pub async fn sign_in(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
) -> Result<(User, HeaderValue), ApiError> {
    let (user, session) = state.sessions.sign_up(name).await?;
    // After the new one, so a refused sign-in (a bad name) leaves the buyer signed in as they
    // were; a revocation that fails does not undo the sign-in the buyer was told of.
    if let Some(old) = state.auth.session_id(headers) {
        if let Err(error) = state.sessions.revoke(old).await {
            tracing::warn!(%error, "could not end the session a sign-in replaced");
        }
    }
    let cookie = state.auth.sign_in_cookie(
        session.id,
        state.auth.is_secure(headers),
        state.sessions.lifetime(),
    );
    Ok((user, cookie))
}

/// Signs the caller out: their session is revoked (a copy of the cookie is worth nothing from
/// now on) and the answer's `Set-Cookie` values clear it.
pub async fn sign_out(state: &AppState, caller: Caller) -> Result<[HeaderValue; 2], ApiError> {
    if let Some(session) = caller.session {
        state.sessions.revoke(session.id).await?;
    }
    Ok(state.auth.sign_out_cookies())
}
