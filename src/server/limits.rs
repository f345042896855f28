//! The rate limiters behind the routes bots hammer (sign-in, reserve, purchase, cancel): one
//! budget per signed-in session and one per client address, with the `governor` crate (GCRA);
//! and a budget of wrong admin tokens per address. Which routes spend from them is decided where
//! the routes are built (`http::routes`), the admin budget where the token is checked.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::settings::Settings;
use crate::model::UserId;

/// The limiters. Cheap to clone.
#[derive(Clone)]
pub struct Limits {
    per_session: Arc<DefaultKeyedRateLimiter<UserId>>,
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    admin_failures: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    /// Addresses past their wrong-admin-token budget, and until when every admin attempt from
    /// them waits (a right token too: its answer must not tell a guess from the truth).
    admin_locked: Arc<Mutex<HashMap<IpAddr, Instant>>>,
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
            admin_failures: Arc::new(RateLimiter::keyed({
                let per_minute = NonZeroU32::new(settings.rate_limit_admin_failures_per_minute)
                    .unwrap_or(NonZeroU32::MIN);
                Quota::per_minute(per_minute).allow_burst(per_minute)
            })),
            admin_locked: Arc::default(),
        }
    }

    /// Forgets idle keys now and then, so memory follows the active crowd, not every visitor.
    pub async fn prune_forever(self) {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            self.per_session.retain_recent();
            self.per_ip.retain_recent();
            self.admin_failures.retain_recent();
            let now = Instant::now();
            self.admin_locked().retain(|_, until| *until > now);
        }
    }

    /// `Err(wait)` when this caller must slow down.
    pub fn check(&self, ip: Option<IpAddr>, user: Option<UserId>) -> Result<(), Duration> {
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

    /// `Err(wait)` while an address is held back for its wrong admin tokens.
    pub fn admin_attempt(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        match self.admin_locked().get(&ip) {
            Some(until) if *until > Instant::now() => Err(*until - Instant::now()),
            _ => Ok(()),
        }
    }

    /// Counts a wrong admin token against an address; `Err(wait)` when that was one too many,
    /// and the address is held back from now on for `wait`.
    pub fn admin_failed(&self, ip: Option<IpAddr>) -> Result<(), Duration> {
        let Some(ip) = ip else { return Ok(()) };
        let clock = self.admin_failures.clock();
        self.admin_failures.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(clock.now());
            self.admin_locked().insert(ip, Instant::now() + wait);
            wait
        })
    }

    fn admin_locked(&self) -> MutexGuard<'_, HashMap<IpAddr, Instant>> {
        // Nothing panics while holding the lock, and the map is consistent between calls.
        self.admin_locked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}
