//! Signing in and out, for the REST API and the server functions alike: the session lives in
//! the database ([`crate::server::sessions`]), the cookie only carries its id.

use axum::http::{HeaderMap, HeaderValue};

use super::extract::Caller;
use crate::{
    model::{validate_username, ApiError, ErrorCode, PasskeyOptions, User},
    server::{doors::Door, AppState},
};

/// How a buyer signs in.
#[derive(Clone, Copy, Debug)]
pub enum SignInBy<'a> {
    /// The demo's display name alone: a new buyer each time (only with `demo_sign_in`).
    Name(&'a str),
    /// A new account with a username and a password, and the proof of work sign-up takes
    /// when the shop asks one.
    SignUp {
        username: &'a str,
        password: &'a str,
        proof: Option<&'a str>,
    },
    /// An account's username and password.
    Password {
        username: &'a str,
        password: &'a str,
    },
    /// A new account with the passkey the authenticator made in a sign-up ceremony
    /// (`credential`: its answer as JSON).
    PasskeySignUp {
        ceremony: &'a str,
        credential: &'a str,
    },
    /// An account's passkey, answering a sign-in ceremony.
    Passkey {
        ceremony: &'a str,
        credential: &'a str,
    },
}

/// A passkey ceremony to begin: making an account named `username` (with the proof of work
/// sign-up takes when the shop asks one), or signing in to one.
#[derive(Clone, Copy, Debug)]
pub enum PasskeyFor<'a> {
    SignUp {
        username: &'a str,
        proof: Option<&'a str>,
    },
    SignIn {
        username: &'a str,
    },
}

/// Begins a passkey ceremony: the options the browser hands to `navigator.credentials`; its
/// answer signs in by [`SignInBy::PasskeySignUp`] or [`SignInBy::Passkey`].
pub async fn begin_passkey(
    state: &AppState,
    ceremony: PasskeyFor<'_>,
) -> Result<PasskeyOptions, ApiError> {
    match ceremony {
        PasskeyFor::SignUp { username, proof } => {
            // A username that can never be an account is refused before the door is paid.
            validate_username(username)?;
            let proof = state.doors.check(Door::SignUp, proof)?;
            state.sessions.begin_passkey_sign_up(username, proof).await
        }
        PasskeyFor::SignIn { username } => state.sessions.begin_passkey_sign_in(username).await,
    }
}

/// Signs a buyer in `by` a display name, a new account, an account's password or passkey: opens their
/// session and answers the `Set-Cookie` value that carries it. The session the request's
/// cookie carried, if any, ends: a copy of the old cookie is worth nothing from now on.
pub async fn sign_in(
    state: &AppState,
    by: SignInBy<'_>,
    headers: &HeaderMap,
) -> Result<(User, HeaderValue), ApiError> {
    let (user, session) = match by {
        SignInBy::Name(_) if !state.settings.demo_sign_in => {
            return Err(ApiError::refusal(ErrorCode::DemoSignInOff))
        }
        SignInBy::Name(name) => state.sessions.sign_up(name).await?,
        SignInBy::SignUp {
            username,
            password,
            proof,
        } => {
            let proof = state.doors.check(Door::SignUp, proof)?;
            state
                .sessions
                .sign_up_with_password(username, password, proof)
                .await?
        }
        SignInBy::Password { username, password } => {
            state
                .sessions
                .sign_in_with_password(username, password)
                .await?
        }
        SignInBy::PasskeySignUp {
            ceremony,
            credential,
        } => {
            state
                .sessions
                .sign_up_with_passkey(ceremony, credential)
                .await?
        }
        SignInBy::Passkey {
            ceremony,
            credential,
        } => {
            state
                .sessions
                .sign_in_with_passkey(ceremony, credential)
                .await?
        }
    };
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
