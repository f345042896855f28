//! Reading the settings: `Leptos.toml`, then the environment, then the checks every value
//! passes before the server starts.

use std::net::SocketAddr;

use axum_client_ip::ClientIpSource;
use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use ipnet::IpNet;

use super::values::Settings;

/// A setting that stops start-up, with the key and the value at fault.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {key}={value:?}: {reason}")]
pub struct SettingsError {
    pub key: String,
    pub value: String,
    pub reason: String,
}

/// The environment variables read, beside the upper-case form of every key.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("LEPTOS_SITE_ADDR", "site_addr"),
    ("LEPTOS_SITE_ROOT", "site_root"),
];

impl Settings {
    /// Reads `Leptos.toml` from the working directory (if present), then the environment.
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_figment(
            Figment::from(Serialized::defaults(Settings::default()))
                .merge(Toml::file("Leptos.toml"))
                .merge(Env::raw().filter_map(|key| {
                    let key = key.as_str();
                    ENV_ALIASES
                        .iter()
                        .find(|(env, _)| key.eq_ignore_ascii_case(env))
                        .map(|(_, field)| (*field).into())
                        .or_else(|| {
                            let lower = key.to_ascii_lowercase();
                            Self::KEYS.contains(&lower.as_str()).then(|| lower.into())
                        })
                })),
        )
    }

    const KEYS: &'static [&'static str] = &[
        "site_addr",
        "site_root",
        "database_url",
        "reservation_ttl_seconds",
        "admin_token",
        "session_secret",
        "seed_demo",
        "demo_sign_in",
        "public_origin",
        "expiry_sweep_ms",
        "database_max_connections",
        "reserve_batch_max",
        "rate_limit_session_per_second",
        "rate_limit_session_burst",
        "rate_limit_ip_per_second",
        "rate_limit_ip_burst",
        "client_ip_source",
        "idempotency_key_hours",
        "log_format",
        "rate_limit_admin_failures_per_minute",
        "session_days",
        "session_cache_seconds",
        "cookie_secure",
        "sqlite_synchronous",
        "ws_ping_interval_ms",
        "ws_max_per_ip",
        "listen_heartbeat_timeout_ms",
        "queue_over_admission",
        "queue_admit_per_second",
        "queue_admission_seconds",
        "queue_tick_ms",
        "join_cap_per_ipv4_24",
        "join_cap_per_ipv6_64",
        "proof_floor",
        "proof_ceiling",
        "proof_cost",
        "proof_pressure_per_second",
        "proof_seconds",
        "draw_claim_seconds",
        "hold_cooldown_seconds",
        "max_released_holds",
        "header_read_timeout_ms",
        "request_body_timeout_ms",
        "request_timeout_ms",
        "ws_write_timeout_ms",
        "max_connections_per_ip",
        "trusted_proxies",
        "idempotency_keys_per_buyer",
        "metrics_addr",
        "beacon_url",
        "beacon_chain_hash",
        "beacon_public_key",
        "beacon_genesis_seconds",
        "beacon_period_seconds",
        "beacon_margin_seconds",
    ];

    fn from_figment(figment: Figment) -> Result<Self, SettingsError> {
        let settings: Settings = figment.extract().map_err(|e| {
            let key = e.path.join(".");
            let value = match &e.kind {
                figment::error::Kind::InvalidType(actual, _) => actual.to_string(),
                figment::error::Kind::InvalidValue(actual, _) => actual.to_string(),
                _ => String::new(),
            };
            SettingsError {
                key: key.to_ascii_uppercase(),
                value,
                reason: e.to_string(),
            }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let bad = |key: &str, value: &dyn ToString, reason: &str| SettingsError {
            key: key.into(),
            value: value.to_string(),
            reason: reason.into(),
        };
        if self.site_addr.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "SITE_ADDR",
                &self.site_addr,
                "expected host:port, e.g. 127.0.0.1:3000",
            ));
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres:")
            || self.database_url.starts_with("postgresql:"))
        {
            return Err(bad(
                "DATABASE_URL",
                &self.database_url,
                "expected a sqlite: or postgres: URL",
            ));
        }
        if !(1..=86_400).contains(&self.reservation_ttl_seconds) {
            return Err(bad(
                "RESERVATION_TTL_SECONDS",
                &self.reservation_ttl_seconds,
                "expected 1 to 86400",
            ));
        }
        if self.is_postgres() && self.session_secret.is_empty() {
            // Each instance would sign with a key of its own: a buyer signed in on one would be
            // a stranger on the next.
            return Err(bad(
                "SESSION_SECRET",
                &"(empty)",
                "must be set (32+ characters, the same on every instance) with a postgres: \
                 database",
            ));
        }
        if !self.admin_token.is_empty() && self.admin_token.chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            // A short token falls to guessing within the per-address budget from enough
            // addresses.
            return Err(bad(
                "ADMIN_TOKEN",
                &"(hidden)",
                "must be at least 32 characters (or empty: a random one is made at start)",
            ));
        }
        if !self.metrics_addr.is_empty() && self.metrics_addr.parse::<SocketAddr>().is_err() {
            return Err(bad(
                "METRICS_ADDR",
                &self.metrics_addr,
                "expected host:port, e.g. 127.0.0.1:9100, or empty",
            ));
        }
        match parse_networks(&self.trusted_proxies) {
            Err(reason) => return Err(bad("TRUSTED_PROXIES", &self.trusted_proxies, &reason)),
            // A proxy header believed from no one would count every buyer as the proxy (one
            // budget for the whole site) without a word: refuse to start instead.
            Ok(nets) if nets.is_empty() && self.client_ip_source != ClientIpSource::ConnectInfo => {
                return Err(bad(
                    "TRUSTED_PROXIES",
                    &"(empty)",
                    "client_ip_source names a proxy's header: set trusted_proxies to the \
                     proxy's network (its header is believed from it alone)",
                ));
            }
            Ok(_) => {}
        }
        if !self.beacon_url.is_empty() {
            if !(self.beacon_url.starts_with("http://") || self.beacon_url.starts_with("https://"))
            {
                return Err(bad(
                    "BEACON_URL",
                    &self.beacon_url,
                    "expected an http:// or https:// drand endpoint, or empty",
                ));
            }
            if !matches!(hex::decode(&self.beacon_chain_hash), Ok(hash) if hash.len() == 32) {
                return Err(bad(
                    "BEACON_CHAIN_HASH",
                    &self.beacon_chain_hash,
                    "expected 64 hex digits",
                ));
            }
            // A compressed point of G2 (what drand-verify checks rounds against), not merely
            // 96 bytes: a key that is none would fail only at the first round, at go-live.
            let point = hex::decode(&self.beacon_public_key)
                .ok()
                .and_then(|key| <[u8; 96]>::try_from(key).ok())
                .is_some_and(|key| {
                    <drand_verify::G2PubkeyRfc as drand_verify::Pubkey>::from_fixed(key).is_ok()
                });
            if !point {
                return Err(bad(
                    "BEACON_PUBLIC_KEY",
                    &self.beacon_public_key,
                    "expected 192 hex digits of a compressed BLS12-381 G2 point",
                ));
            }
            if !(1..=3_600).contains(&self.beacon_period_seconds) {
                return Err(bad(
                    "BEACON_PERIOD_SECONDS",
                    &self.beacon_period_seconds,
                    "expected 1 to 3600",
                ));
            }
            if !(0..=4_102_444_800).contains(&self.beacon_genesis_seconds) {
                return Err(bad(
                    "BEACON_GENESIS_SECONDS",
                    &self.beacon_genesis_seconds,
                    "expected Unix seconds",
                ));
            }
            if self.beacon_margin_seconds > 3_600 {
                return Err(bad(
                    "BEACON_MARGIN_SECONDS",
                    &self.beacon_margin_seconds,
                    "expected 0 to 3600",
                ));
            }
        }
        if self.proof_ceiling < self.proof_floor || self.proof_ceiling > 10_000_000 {
            return Err(bad(
                "PROOF_CEILING",
                &self.proof_ceiling,
                "expected proof_floor to 10000000",
            ));
        }
        if !(1..=1_000_000).contains(&self.proof_cost) {
            return Err(bad("PROOF_COST", &self.proof_cost, "expected 1 to 1000000"));
        }
        if self.proof_pressure_per_second == 0 {
            return Err(bad(
                "PROOF_PRESSURE_PER_SECOND",
                &self.proof_pressure_per_second,
                "expected at least 1",
            ));
        }
        if !(1..=86_400).contains(&self.proof_seconds) {
            return Err(bad(
                "PROOF_SECONDS",
                &self.proof_seconds,
                "expected 1 to 86400",
            ));
        }
        let origin = webauthn_rs::prelude::Url::parse(&self.public_origin).ok();
        let named = origin.as_ref().is_some_and(|url| {
            matches!(url.scheme(), "http" | "https")
                && url.domain().is_some()
                && url.path() == "/"
                && url.query().is_none()
        });
        if !named {
            return Err(bad(
                "PUBLIC_ORIGIN",
                &self.public_origin,
                "expected http(s)://host[:port] with a host name, not an IP address",
            ));
        }
        if !self.session_secret.is_empty() && self.session_secret.len() < 32 {
            return Err(bad(
                "SESSION_SECRET",
                &"(hidden)",
                "must be at least 32 characters",
            ));
        }
        if !(10..=3_600_000).contains(&self.expiry_sweep_ms) {
            return Err(bad(
                "EXPIRY_SWEEP_MS",
                &self.expiry_sweep_ms,
                "expected 10 to 3600000",
            ));
        }
        for (key, value) in [
            (
                "RATE_LIMIT_SESSION_PER_SECOND",
                self.rate_limit_session_per_second,
            ),
            ("RATE_LIMIT_SESSION_BURST", self.rate_limit_session_burst),
            ("RATE_LIMIT_IP_PER_SECOND", self.rate_limit_ip_per_second),
            ("RATE_LIMIT_IP_BURST", self.rate_limit_ip_burst),
            (
                "RATE_LIMIT_ADMIN_FAILURES_PER_MINUTE",
                self.rate_limit_admin_failures_per_minute,
            ),
        ] {
            if value == 0 {
                return Err(bad(key, &value, "must be at least 1"));
            }
        }
        if !(1..=24 * 365).contains(&self.idempotency_key_hours) {
            return Err(bad(
                "IDEMPOTENCY_KEY_HOURS",
                &self.idempotency_key_hours,
                "expected 1 to 8760",
            ));
        }
        if !(1..=10_000).contains(&self.reserve_batch_max) {
            return Err(bad(
                "RESERVE_BATCH_MAX",
                &self.reserve_batch_max,
                "expected 1 to 10000",
            ));
        }
        if !(1.0..=10.0).contains(&self.queue_over_admission) {
            return Err(bad(
                "QUEUE_OVER_ADMISSION",
                &self.queue_over_admission,
                "expected 1.0 to 10.0",
            ));
        }
        let ranges: [(&str, u64, std::ops::RangeInclusive<u64>); 17] = [
            ("SESSION_DAYS", self.session_days, 1..=3650),
            ("SESSION_CACHE_SECONDS", self.session_cache_seconds, 0..=300),
            (
                "WS_PING_INTERVAL_MS",
                self.ws_ping_interval_ms,
                100..=600_000,
            ),
            ("WS_MAX_PER_IP", self.ws_max_per_ip as u64, 1..=1_000_000),
            (
                "LISTEN_HEARTBEAT_TIMEOUT_MS",
                self.listen_heartbeat_timeout_ms,
                300..=600_000,
            ),
            (
                "QUEUE_ADMIT_PER_SECOND",
                u64::from(self.queue_admit_per_second),
                1..=100_000,
            ),
            (
                "QUEUE_ADMISSION_SECONDS",
                self.queue_admission_seconds,
                1..=3_600,
            ),
            ("QUEUE_TICK_MS", self.queue_tick_ms, 5..=10_000),
            ("DRAW_CLAIM_SECONDS", self.draw_claim_seconds, 1..=86_400),
            (
                "HOLD_COOLDOWN_SECONDS",
                self.hold_cooldown_seconds,
                0..=86_400,
            ),
            (
                "MAX_RELEASED_HOLDS",
                u64::from(self.max_released_holds),
                1..=1_000_000,
            ),
            (
                "HEADER_READ_TIMEOUT_MS",
                self.header_read_timeout_ms,
                100..=600_000,
            ),
            (
                "REQUEST_BODY_TIMEOUT_MS",
                self.request_body_timeout_ms,
                100..=600_000,
            ),
            (
                "REQUEST_TIMEOUT_MS",
                self.request_timeout_ms,
                100..=3_600_000,
            ),
            (
                "WS_WRITE_TIMEOUT_MS",
                self.ws_write_timeout_ms,
                100..=600_000,
            ),
            (
                "MAX_CONNECTIONS_PER_IP",
                self.max_connections_per_ip as u64,
                1..=10_000_000,
            ),
            (
                "IDEMPOTENCY_KEYS_PER_BUYER",
                u64::from(self.idempotency_keys_per_buyer),
                1..=10_000_000,
            ),
        ];
        for (key, value, range) in ranges {
            if !range.contains(&value) {
                let expected = format!("expected {} to {}", range.start(), range.end());
                return Err(bad(key, &value, &expected));
            }
        }
        if self.database_max_connections == 0 {
            return Err(bad(
                "DATABASE_MAX_CONNECTIONS",
                &self.database_max_connections,
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Reads a comma-separated list of networks (`10.0.0.0/8`, or a bare address for itself).
pub(super) fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{part:?} is not a network such as 10.0.0.0/8 or an address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::{Format, Serialized, Toml};
    use std::time::Duration;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let mut figment =
            Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(toml));
        for (k, v) in env {
            figment = figment.merge((k.to_string(), v.to_string()));
        }
        Settings::from_figment(figment)
    }

    #[test]
    fn defaults_are_valid() {
        let s = load("", &[]).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.reservation_ttl(), Duration::from_secs(60));
    }

    #[test]
    fn a_bad_number_names_the_key_and_value() {
        let err = load("reservation_ttl_seconds = \"soon\"", &[]).unwrap_err();
        let line = err.to_string();
        assert!(line.contains("RESERVATION_TTL_SECONDS"), "{line}");
        assert!(line.contains("soon"), "{line}");
    }

    /// 96 bytes that are not a point of G2 are refused at start, not when the first round
    /// is checked against them; quicknet's own key loads.
    #[test]
    fn a_beacon_key_must_be_a_point_of_g2() {
        let not_a_point = "11".repeat(96);
        let env = [
            ("beacon_url", "https://api.drand.sh"),
            ("beacon_public_key", not_a_point.as_str()),
        ];
        let err = load("", &env).unwrap_err();
        assert_eq!(err.key, "BEACON_PUBLIC_KEY");
        assert!(err.to_string().contains("G2"), "{err}");
        assert!(load("", &env[..1]).unwrap().beacon().is_some());
    }

    #[test]
    fn a_bad_url_is_refused() {
        let err = load("", &[("database_url", "mysql://x")]).unwrap_err();
        assert_eq!(err.key, "DATABASE_URL");
        assert_eq!(err.value, "mysql://x");
    }

    #[test]
    fn postgres_needs_a_shared_session_secret() {
        let env = [("database_url", "postgres://db/dropline")];
        let err = load("", &env).unwrap_err();
        assert_eq!(err.key, "SESSION_SECRET");
        assert!(err.to_string().contains("postgres"), "{err}");
        let secret = "s".repeat(32);
        let env = [
            ("database_url", "postgres://db/dropline"),
            ("session_secret", &secret),
        ];
        assert!(load("", &env).is_ok());
    }

    #[test]
    fn trusted_proxies_are_networks() {
        let env = [("trusted_proxies", "10.0.0.0/8, 192.0.2.7 ,2001:db8::/32")];
        let settings = load("", &env).unwrap();
        let nets = settings.trusted_proxies();
        assert_eq!(nets.len(), 3);
        assert!(nets[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()));
        let err = load("", &[("trusted_proxies", "10.0.0.0/8, everyone")]).unwrap_err();
        assert_eq!(err.key, "TRUSTED_PROXIES");
        assert!(err.to_string().contains("everyone"), "{err}");
        // A proxy's header with no proxy to believe it from is a mistake, said at start.
        let header = [("client_ip_source", "RightmostXForwardedFor")];
        assert_eq!(load("", &header).unwrap_err().key, "TRUSTED_PROXIES");
        let both = [
            ("client_ip_source", "RightmostXForwardedFor"),
            ("trusted_proxies", "10.0.0.0/8"),
        ];
        assert!(load("", &both).is_ok());
    }

    #[test]
    fn a_short_admin_token_is_refused() {
        let err = load("", &[("admin_token", "short-token")]).unwrap_err();
        assert_eq!(err.key, "ADMIN_TOKEN");
        assert!(!err.to_string().contains("short-token"), "{err}");
        let long = "t".repeat(32);
        assert!(load("", &[("admin_token", &long)]).is_ok());
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = load("reservation_ttl = 5", &[]).unwrap_err();
        assert!(err.to_string().contains("reservation_ttl"), "{err}");
    }

    #[test]
    fn the_repository_file_matches_the_defaults() {
        let figment = Figment::from(Serialized::defaults(Settings::default())).merge(Toml::file(
            concat!(env!("CARGO_MANIFEST_DIR"), "/Leptos.toml"),
        ));
        assert_eq!(
            Settings::from_figment(figment).unwrap(),
            Settings::default()
        );
    }
}
