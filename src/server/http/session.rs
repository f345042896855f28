//! Signing in and out, for the REST API and the server functions alike: the session lives in
//! the database ([`crate::server::sessions`]), the cookie only carries its id.

use axum::http::{HeaderMap, HeaderValue};

use super::extract::Caller;
use crate::{
    model::{ApiError, User},
    server::{auth::cookie_is_secure, AppState},
};

/// Signs a new buyer in under a display name: creates them, opens their session and answers
/// the `Set-Cookie` value that carries it.
pub async fn sign_in(
    state: &AppState,
    name: &str,
    headers: &HeaderMap,
) -> Result<(User, HeaderValue), ApiError> {
    let (user, session) = state.sessions.sign_up(name).await?;
    let secure = cookie_is_secure(state.settings.cookie_secure, headers);
    let cookie = state
        .auth
        .sign_in_cookie(session.id, secure, state.sessions.lifetime());
    Ok((user, cookie))
}

/// Signs the caller out: their session is revoked (a copy of the cookie is worth nothing from
/// now on) and the answer's `Set-Cookie` value clears it.
pub async fn sign_out(state: &AppState, caller: Caller) -> Result<HeaderValue, ApiError> {
    if let Some(session) = caller.session {
        state.sessions.revoke(session.id).await?;
    }
    Ok(state.auth.sign_out_cookie())
}
