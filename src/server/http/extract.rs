//! Who is asking, and from where: the extractors every entry point uses (REST handlers, the
//! server functions, `/ws` and the rate limiter). Each is worked out once per request and kept in
//! the request's extensions, so a reserve that passes the limiter and the idempotency layer
//! still checks its session cookie only once.

use std::{
    convert::Infallible,
    net::{IpAddr, Ipv6Addr},
};

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts},
};
use axum_client_ip::ClientIp;

use crate::{
    model::{ApiError, ErrorCode, UserId},
    server::AppState,
};

/// The caller as their session cookie says: a signed-in buyer, or nobody in particular.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub user: Option<UserId>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(*caller);
        }
        let caller = Caller {
            user: state.auth.session_user(&parts.headers),
        };
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
        let Ok(Caller { user }) = Caller::from_request_parts(parts, state).await;
        user.map(SignedIn).ok_or_else(ApiError::unauthenticated)
    }
}

/// A request that carries the admin token (`Authorization: Bearer ...`): 401 without one, 403
/// with a wrong one.
#[derive(Clone, Copy, Debug)]
pub struct Admin;

impl Admin {
    /// Checks a presented admin token (the header's, or the panel's form field).
    pub fn check(state: &AppState, token: &str) -> Result<Admin, ApiError> {
        if state.auth.token_matches(token.trim()) {
            Ok(Admin)
        } else {
            Err(ApiError::refusal(ErrorCode::Forbidden))
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(token) => Admin::check(state, token),
            None if parts.headers.contains_key(header::AUTHORIZATION) => {
                Err(ApiError::refusal(ErrorCode::Forbidden))
            }
            None => Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "Creating drops needs the admin token (Authorization: Bearer ...).",
            )),
        }
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

/// The address a client's per-IP limits count against: the proxy's header when
/// `client_ip_source` names one, else the socket peer. IPv6 clients count by their /64 (the block
/// one subscriber gets, so hopping addresses inside it buys nothing). `None` only when neither is
/// known (a request handed to the router in a test).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        if let Some(addr) = parts.extensions.get::<ClientAddr>() {
            return Ok(*addr);
        }
        let ip = match ClientIp::from_request_parts(parts, state).await {
            Ok(ClientIp(ip)) => Some(ip),
            Err(_) => None,
        };
        let addr = ClientAddr(ip.map(bucket));
        parts.extensions.insert(addr);
        Ok(addr)
    }
}

/// The key an address counts against: an IPv4 address alone, an IPv6 address by its /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_block() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(other));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(bucket(v4), v4);
        assert_eq!(bucket(mapped), v4);
    }
}
