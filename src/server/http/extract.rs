//! Who is asking, and from where: the extractors every entry point uses (REST handlers, the
//! server functions, `/ws` and the rate limiter). Each is worked out once per request and kept in
//! the request's extensions, so a reserve that passes the limiter and the idempotency layer
//! still checks its session cookie only once.

use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts},
};
use axum_client_ip::ClientIp;

use crate::{
    model::{ApiError, ErrorCode, UserId},
    server::{sessions::Session, AppState},
};

/// The caller as their session says: a signed-in buyer, or nobody in particular. A cookie
/// whose session was revoked or has expired is nobody.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub session: Option<Session>,
}

impl Caller {
    /// The signed-in buyer, if any.
    pub fn user(&self) -> Option<UserId> {
        self.session.map(|session| session.user)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller);
        }
        let session = match state.auth.session_id(&parts.headers) {
            Some(id) => state.sessions.find(id).await?,
            None => None,
        };
        let caller = Caller { session };
        parts.extensions.insert(caller);
        Ok(caller)
    }
}

/// A signed-in buyer; anyone else is refused with `UNAUTHENTICATED` (401).
#[derive(Clone, Copy, Debug)]
pub struct SignedIn(pub UserId);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller
            .user()
            .map(SignedIn)
            .ok_or_else(ApiError::unauthenticated)
    }
}

/// A request that carries the admin token (`Authorization: Bearer ...`): 401 without one, 403
/// with a wrong one, and 429 once its address has presented too many wrong ones.
#[derive(Clone, Copy, Debug)]
pub struct Admin;

/// The verdict on a request's admin token, kept so that layers and the handler that ask again
/// do not count one wrong token twice.
#[derive(Clone)]
struct AdminVerdict(Result<Admin, ApiError>);

impl Admin {
    /// Checks a presented admin token (the header's, or the panel's form field) from `addr`.
    /// Wrong tokens count against the address; past its budget every attempt from there is
    /// refused, the right token too, so a guess cannot be confirmed by its answer.
    pub fn check(
        state: &AppState,
        ClientAddr(addr): ClientAddr,
        token: &str,
    ) -> Result<Admin, ApiError> {
        state.limits.admin_attempt(addr).map_err(rate_limited)?;
        if state.auth.token_matches(token.trim()) {
            return Ok(Admin);
        }
        state.limits.admin_failed(addr).map_err(rate_limited)?;
        Err(ApiError::refusal(ErrorCode::Forbidden))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(AdminVerdict(verdict)) = parts.extensions.get::<AdminVerdict>() {
            return verdict.clone();
        }
        let addr = ClientAddr::from_request_parts(parts, state).await?;
        let verdict = match bearer(parts) {
            Some(token) => Admin::check(state, addr, token),
            None if parts.headers.contains_key(header::AUTHORIZATION) => {
                Err(ApiError::refusal(ErrorCode::Forbidden))
            }
            None => Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "Creating drops needs the admin token (Authorization: Bearer ...).",
            )),
        };
        parts.extensions.insert(AdminVerdict(verdict.clone()));
        verdict
    }
}

/// The refusal of a caller past a rate limit, waiting `wait`.
pub fn rate_limited(wait: std::time::Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError {
        retry_after: Some(seconds.max(1)),
        ..ApiError::refusal(ErrorCode::RateLimited)
    }
}

/// The token of `Authorization: Bearer <token>`, if the request carries one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The header a join or an entry carries its proof of work in.
pub const PROOF_HEADER: &str = "dropline-proof";

/// The proof of work a request carries in its `Dropline-Proof` header (base64 of ALTCHA's
/// payload JSON), if any; `server::doors` checks it.
#[derive(Clone, Debug, Default)]
pub struct Proof(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Proof {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let proof = parts
            .headers
            .get(PROOF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Proof(proof))
    }
}

/// The address a client's per-IP limits count against: the socket peer, or — when the peer is
/// one of the `trusted_proxies` — the client the proxy names in the `client_ip_source` header.
/// A forwarding header from anyone else is the client's word, not its address: a script that
/// reaches the port directly cannot take another address's budget, nor spend one of its own
/// choosing. IPv6 clients count by their /64 (the block one subscriber gets, so hopping
/// addresses inside it buys nothing). `None` only when neither is known (a request handed to
/// the router in a test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(addr) = parts.extensions.get::<ClientAddr>() {
            return Ok(*addr);
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        let ip = match peer {
            Some(proxy) if state.proxies.trusts(proxy) => {
                match ClientIp::from_request_parts(parts, state).await {
                    Ok(ClientIp(ip)) => Some(ip),
                    // A proxy header missing is no reason to count nothing: fall back to it.
                    Err(_) => Some(proxy),
                }
            }
            peer => {
                state.proxies.notice(&parts.headers);
                peer
            }
        };
        let addr = ClientAddr(ip.map(super::proxies::bucket));
        parts.extensions.insert(addr);
        Ok(addr)
    }
}
