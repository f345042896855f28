//! Rate limits on the endpoints bots hammer (sign-in, reserve, purchase), per signed-in session
//! and per client IP, with the `governor` crate (GCRA). An over-eager client gets 429 and a
//! `Retry-After` telling it when to come back.
//!
//! The client's IP comes from the socket peer or, behind a reverse proxy, from the header the
//! proxy sets (`client_ip_source`, read with `axum-client-ip`). IPv6 clients count by their /64,
//! the block one subscriber gets, so hopping addresses inside it buys no extra attempts.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{FromRequestParts, Request, State},
    http::{header, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use axum_client_ip::{ClientIp, ClientIpSource};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{rest::RestError, settings::Settings, AppState};
use crate::model::{ApiError, ErrorCode, UserId};

/// The limiters. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    per_session: Arc<DefaultKeyedRateLimiter<UserId>>,
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    ip_source: ClientIpSource,
}

impl Limits {
    /// Builds the limiters from the settings (validated to be at least 1).
    pub fn new(settings: &Settings) -> Self {
        let quota = |per_second: u32, burst: u32| {
            Quota::per_second(NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        Self {
            per_session: Arc::new(RateLimiter::keyed(quota(
                settings.rate_limit_session_per_second,
                settings.rate_limit_session_burst,
            ))),
            per_ip: Arc::new(RateLimiter::keyed(quota(
                settings.rate_limit_ip_per_second,
                settings.rate_limit_ip_burst,
            ))),
            ip_source: settings.client_ip_source.clone(),
        }
    }

    /// Where client IPs come from; the router hands it to [`ClientIp`] as an extension.
    pub fn ip_source(&self) -> ClientIpSource {
        self.ip_source.clone()
    }

    /// Forgets idle keys now and then, so memory follows the active crowd, not every visitor.
    pub async fn prune_forever(self) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            self.per_session.retain_recent();
            self.per_ip.retain_recent();
        }
    }

    /// `Err(wait)` when this caller must slow down.
    fn check(&self, ip: Option<IpAddr>, user: Option<UserId>) -> Result<(), Duration> {
        // The limiters' own clock: making a new one per request costs CPUID calibration, which
        // is slow in a virtual machine.
        if let Some(ip) = ip {
            self.per_ip
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(self.per_ip.clock().now()))?;
        }
        if let Some(user) = user {
            self.per_session
                .check_key(&user)
                .map_err(|not_until| not_until.wait_time_from(self.per_session.clock().now()))?;
        }
        Ok(())
    }
}

/// True for the requests that take or buy stock, or make accounts.
pub fn is_limited(method: &Method, path: &str) -> bool {
    if method != Method::POST {
        return false;
    }
    matches!(
        path,
        "/api/v1/session" | "/rpc/sign_in" | "/rpc/reserve_unit" | "/rpc/purchase_hold"
    ) || (path.starts_with("/api/v1/drops/") && path.ends_with("/reservations"))
        || (path.starts_with("/api/v1/reservations/") && path.ends_with("/purchase"))
}

/// The middleware: counts limited requests against the caller's IP and session.
pub async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !is_limited(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    // No address (no socket peer in tests, or a proxy header missing): the per-session limit
    // still applies.
    let ip = ClientIp::from_request_parts(&mut parts, &state)
        .await
        .ok()
        .map(|ClientIp(ip)| bucket(ip));
    let request = Request::from_parts(parts, body);
    let user = state.auth.session_user(request.headers());
    match state.limits.check(ip, user) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let mut response = RestError(ApiError::refusal(ErrorCode::RateLimited)).into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            response
        }
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

    #[test]
    fn only_stock_and_account_writes_are_limited() {
        assert!(is_limited(&Method::POST, "/api/v1/drops/4/reservations"));
        assert!(is_limited(&Method::POST, "/api/v1/reservations/9/purchase"));
        assert!(is_limited(&Method::POST, "/rpc/reserve_unit"));
        assert!(is_limited(&Method::POST, "/api/v1/session"));
        assert!(!is_limited(&Method::GET, "/api/v1/drops"));
        assert!(!is_limited(&Method::DELETE, "/api/v1/reservations/9"));
        assert!(!is_limited(&Method::POST, "/api/v1/drops"));
    }
}
