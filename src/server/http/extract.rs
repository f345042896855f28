//! Who is asking, and from where: the extractors every entry point uses (REST handlers, the
//! server functions, `/ws` and the rate limiter). Each is worked out once per request and kept in
//! the request's extensions, so a reserve that passes the limiter and the idempotency layer
//! still checks its session cookie only once.

use std::{
    convert::Infallible,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    sync::atomic::{AtomicBool, Ordering},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts, HeaderMap},
};
use axum_client_ip::{ClientIp, ClientIpSource};
use ipnet::IpNet;

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
        let addr = ClientAddr(ip.map(bucket));
        parts.extensions.insert(addr);
        Ok(addr)
    }
}

/// Which socket peers are reverse proxies whose forwarding header names the client.
pub struct Proxies {
    source: ClientIpSource,
    trusted: Vec<IpNet>,
    /// Whether the warning about a forwarding header from an untrusted peer has been logged.
    warned: AtomicBool,
}

impl Proxies {
    /// Proxies at `trusted` naming their clients in the header `source` says.
    pub fn new(source: ClientIpSource, trusted: Vec<IpNet>) -> Self {
        Self {
            source,
            trusted,
            warned: AtomicBool::new(false),
        }
    }

    /// Where the client's address is read when a trusted proxy sends the request; the router
    /// hands it to `axum_client_ip` as an extension.
    pub fn source(&self) -> ClientIpSource {
        self.source.clone()
    }

    /// True when `peer` is in one of the trusted proxies' networks (an IPv4-mapped IPv6
    /// peer, as a dual-stack listener sees IPv4, counts as its IPv4 address).
    pub fn is_proxy(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// True when `peer` is a trusted proxy and a header names the client.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        !matches!(self.source, ClientIpSource::ConnectInfo) && self.is_proxy(peer)
    }

    /// Warns once when requests from untrusted peers carry a forwarding header while no proxy
    /// is trusted: behind a proxy that is a misconfiguration (every buyer counts as the proxy).
    fn notice(&self, headers: &HeaderMap) {
        if self.trusted.is_empty()
            && headers.contains_key("x-forwarded-for")
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "requests carry X-Forwarded-For but trusted_proxies is empty: the header is \
                 ignored and each request counts against its socket peer; behind a reverse \
                 proxy, set trusted_proxies (and client_ip_source)"
            );
        }
    }
}

/// The key an address counts against: an IPv4 address alone, an IPv6 address by its /64.
pub(super) fn bucket(ip: IpAddr) -> IpAddr {
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
    fn only_a_trusted_peer_names_the_client() {
        let nets = vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap(),
        ];
        let proxies = Proxies::new(ClientIpSource::RightmostXForwardedFor, nets.clone());
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(proxies.trusts(ip("10.1.2.3")));
        assert!(proxies.trusts(ip("::ffff:10.1.2.3")));
        assert!(proxies.trusts(ip("192.0.2.7")));
        assert!(!proxies.trusts(ip("192.0.2.8")));
        // The socket peer is the address; no header counts whatever the list says.
        let direct = Proxies::new(ClientIpSource::ConnectInfo, nets);
        assert!(!direct.trusts(ip("10.1.2.3")));
        let nobody = Proxies::new(ClientIpSource::RightmostXForwardedFor, Vec::new());
        assert!(!nobody.trusts(ip("10.1.2.3")));
    }

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
