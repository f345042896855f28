//! Rate limits on the endpoints bots hammer (sign-in, reserve, purchase), per signed-in session
//! and per client IP, with the `governor` crate (GCRA). An over-eager client gets 429 and a
//! `Retry-After` telling it when to come back.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{header, HeaderValue, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::{rest::RestError, settings::Settings, AppState};
use crate::model::{ApiError, ErrorCode, UserId};

/// The limiters. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    per_session: Arc<DefaultKeyedRateLimiter<UserId>>,
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
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
        }
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
        let clock = governor::clock::DefaultClock::default();
        if let Some(ip) = ip {
            self.per_ip
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        }
        if let Some(user) = user {
            self.per_session
                .check_key(&user)
                .map_err(|not_until| not_until.wait_time_from(clock.now()))?;
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
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
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

#[cfg(test)]
mod tests {
    use super::*;

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
