//! Runtime settings: the defaults in `Leptos.toml`, each overridable by an environment variable.

use std::{net::SocketAddr, time::Duration};

use axum_client_ip::ClientIpSource;
use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{queue::Pace, rules::AdmissionRule};

/// Every runtime setting. The field name is the key in `Leptos.toml`; the environment variable
/// of the same name in capitals overrides it (`site_addr` also answers to `LEPTOS_SITE_ADDR`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the server listens.
    pub site_addr: String,
    /// The folder cargo-leptos builds the site into (WASM, JS, CSS, assets).
    pub site_root: String,
    /// `sqlite:` or `postgres:` URL; the scheme picks the store.
    pub database_url: String,
    /// How long a hold lasts before its unit goes back on sale.
    pub reservation_ttl_seconds: u64,
    /// Bearer token for creating drops; empty means a random one is made at start and logged once.
    pub admin_token: String,
    /// Secret that signs session cookies (at least 32 characters); empty means a random one per
    /// start, which signs everyone out on restart and cannot be shared between instances.
    pub session_secret: String,
    /// Seed a few demo drops into an empty database.
    pub seed_demo: bool,
    /// The expiry worker's safety-net sweep, in milliseconds, on top of its deadline wake-ups.
    pub expiry_sweep_ms: u64,
    /// Most connections in the database pool.
    pub database_max_connections: u32,
    /// SQLite only: when a commit is answered. `full` (the default): once it is on disk, so a
    /// power cut loses nothing a buyer was told of. `normal`: once it is in the write-ahead
    /// log, not yet synced; a crash of the process loses nothing, a power cut may lose the
    /// last commits.
    pub sqlite_synchronous: SqliteSync,
    /// Most reserves (or queue joins) of one drop that share one transaction (1 turns batching
    /// off).
    pub reserve_batch_max: usize,
    /// Sign-in, reserve and purchase requests one session may make per second, sustained...
    pub rate_limit_session_per_second: u32,
    /// ...and in one burst.
    pub rate_limit_session_burst: u32,
    /// The same, per client IP address (several buyers may share one).
    pub rate_limit_ip_per_second: u32,
    pub rate_limit_ip_burst: u32,
    /// Where a client's IP address comes from, for the per-IP limit: `ConnectInfo` (the socket
    /// peer, when clients connect directly) or the header the reverse proxy in front sets:
    /// `RightmostXForwardedFor`, `XRealIp`, `CfConnectingIp`, `FlyClientIp`, ...
    pub client_ip_source: ClientIpSource,
    /// How long a stored idempotency outcome is kept (hours); older keys are forgotten.
    pub idempotency_key_hours: u64,
    /// Log lines as readable `text` or as one JSON object per line (`json`) for a collector.
    pub log_format: LogFormat,
    /// Wrong admin tokens one client address may present per minute (REST and the panel);
    /// past it every admin attempt from there gets 429 until the budget refills.
    pub rate_limit_admin_failures_per_minute: u32,
    /// How long a sign-in lasts (days); a session past it is anonymous.
    pub session_days: u64,
    /// How often an instance looks for sessions revoked on other instances (seconds): a
    /// sign-out is honoured everywhere within this time. 0 remembers no session (every request
    /// reads the database).
    pub session_cache_seconds: u64,
    /// Whether the session cookie is marked `Secure`: `auto` when the request came over HTTPS
    /// (directly, or a proxy's `X-Forwarded-Proto: https`), `always`, or `never`.
    pub cookie_secure: CookieSecure,
    /// How often `/ws` pings a client (milliseconds); a client that has answered none of the
    /// last two pings is closed.
    pub ws_ping_interval_ms: u64,
    /// Most live-feed sockets one client address may hold open at once.
    pub ws_max_per_ip: usize,
    /// On PostgreSQL: how long an instance may go without hearing its own heartbeat on its
    /// LISTEN connection (milliseconds) before it counts the connection dead and rebuilds it.
    pub listen_heartbeat_timeout_ms: u64,
    /// A queue lets buyers in while those admitted but not yet reserving, plus the live holds,
    /// stay below the units left times this (some admitted buyers never reserve).
    pub queue_over_admission: f64,
    /// Most buyers one queue lets in per second.
    pub queue_admit_per_second: u32,
    /// How long an admitted buyer has to reserve before their turn lapses (seconds).
    pub queue_admission_seconds: u64,
    /// How often each instance moves its queues along (milliseconds): go-live, admissions,
    /// lapses and closing happen within this time.
    pub queue_tick_ms: u64,
    /// How long a draw's winner has to buy (seconds): the deadline of the hold drawn for them,
    /// and of one passed on from the waitlist.
    pub draw_claim_seconds: u64,
    /// After a buyer cancels a hold or lets it run out, how long before they may reserve the
    /// same drop again (seconds; 0: at once). Without it two accounts could keep two units to
    /// themselves by giving each back and taking it again the same instant.
    pub hold_cooldown_seconds: u64,
    /// How many holds one buyer may give back (cancel or let run out) on one drop; past it they
    /// get no more holds of that drop.
    pub max_released_holds: u32,
    /// How long a client may take to send a request's head (milliseconds); past it the
    /// connection is closed. Also how long an idle kept-alive connection stays open.
    pub header_read_timeout_ms: u64,
    /// How long a request body may go without sending anything (milliseconds); past it the
    /// request gets 408 and the connection is closed.
    pub request_body_timeout_ms: u64,
    /// How long one request may take from its head to its answer (milliseconds): a body
    /// trickled a byte at a time gets 408 past it.
    pub request_timeout_ms: u64,
    /// How long a live-feed socket may take to take one write (milliseconds); a client that
    /// stopped reading is closed past it.
    pub ws_write_timeout_ms: u64,
    /// Most connections one client address may hold open at once (a trusted proxy's are not
    /// counted); the next is answered 429 and closed.
    pub max_connections_per_ip: usize,
    /// The networks of the reverse proxies in front (CIDRs, comma-separated, e.g.
    /// `10.0.0.0/8, 192.168.1.7/32`): only a request whose socket peer is in one of them has
    /// its client address read from the `client_ip_source` header. Empty: trust no header.
    pub trusted_proxies: String,
    /// Most idempotency keys one buyer (or the admin) may have live at once; past it a keyed
    /// request is answered 429.
    pub idempotency_keys_per_buyer: u32,
    /// Where `/metrics` is served: empty for the site's own address, or an address of its own
    /// (`127.0.0.1:9100`, a private network's), which takes it off the public port.
    pub metrics_addr: String,
}

/// When SQLite answers a commit (see [`Settings::sqlite_synchronous`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

/// When the session cookie carries `Secure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CookieSecure {
    Auto,
    Always,
    Never,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            site_addr: "127.0.0.1:3000".into(),
            site_root: "target/site".into(),
            database_url: "sqlite://dropline.db?mode=rwc".into(),
            reservation_ttl_seconds: 60,
            admin_token: String::new(),
            session_secret: String::new(),
            seed_demo: true,
            expiry_sweep_ms: 5_000,
            database_max_connections: 16,
            sqlite_synchronous: SqliteSync::Full,
            reserve_batch_max: 256,
            rate_limit_session_per_second: 5,
            rate_limit_session_burst: 10,
            rate_limit_ip_per_second: 50,
            rate_limit_ip_burst: 100,
            client_ip_source: ClientIpSource::ConnectInfo,
            idempotency_key_hours: 24,
            log_format: LogFormat::Text,
            rate_limit_admin_failures_per_minute: 10,
            session_days: 30,
            session_cache_seconds: 5,
            cookie_secure: CookieSecure::Auto,
            ws_ping_interval_ms: 20_000,
            ws_max_per_ip: 64,
            listen_heartbeat_timeout_ms: 15_000,
            queue_over_admission: 1.5,
            queue_admit_per_second: 200,
            queue_admission_seconds: 120,
            queue_tick_ms: 200,
            draw_claim_seconds: 600,
            hold_cooldown_seconds: 60,
            max_released_holds: 3,
            header_read_timeout_ms: 10_000,
            request_body_timeout_ms: 10_000,
            request_timeout_ms: 30_000,
            ws_write_timeout_ms: 10_000,
            max_connections_per_ip: 256,
            trusted_proxies: String::new(),
            idempotency_keys_per_buyer: 1_000,
            metrics_addr: String::new(),
        }
    }
}

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

    /// True for a `postgres:` database (several instances may share it).
    pub fn is_postgres(&self) -> bool {
        !self.database_url.starts_with("sqlite:")
    }

    /// The listen address (validated at load).
    pub fn addr(&self) -> SocketAddr {
        self.site_addr.parse().expect("validated at load")
    }

    /// How long an idempotency key's outcome is kept.
    pub fn idempotency_key_ttl(&self) -> Duration {
        Duration::from_secs(self.idempotency_key_hours * 3600)
    }

    /// How long a sign-in lasts.
    pub fn session_lifetime(&self) -> Duration {
        Duration::from_secs(self.session_days * 24 * 3600)
    }

    /// How long a new hold lasts.
    pub fn reservation_ttl(&self) -> Duration {
        Duration::from_secs(self.reservation_ttl_seconds)
    }

    /// How the queue worker moves queues and draws along.
    pub fn queue_pace(&self) -> Pace {
        Pace {
            rule: AdmissionRule {
                over_admission: self.queue_over_admission,
                per_second: self.queue_admit_per_second,
            },
            window: Duration::from_secs(self.queue_admission_seconds),
            claim: Duration::from_secs(self.draw_claim_seconds),
        }
    }

    /// How often the queue worker runs.
    pub fn queue_tick(&self) -> Duration {
        Duration::from_millis(self.queue_tick_ms)
    }

    /// What a reserve checks beyond stock: how long a hold lasts, how long a buyer who gave
    /// one back waits, how many they may give back.
    pub fn hold_terms(&self) -> HoldTerms {
        HoldTerms {
            ttl: self.reservation_ttl(),
            cooldown: Duration::from_secs(self.hold_cooldown_seconds),
            max_released: i64::from(self.max_released_holds),
        }
    }

    /// The networks whose forwarding headers are believed (validated at load).
    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        parse_networks(&self.trusted_proxies).expect("validated at load")
    }

    /// The address `/metrics` is served on apart from the site, if any (validated at load).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        (!self.metrics_addr.is_empty())
            .then(|| self.metrics_addr.parse().expect("validated at load"))
    }

    /// How long a connection may take over each part of a request.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            header_read: Duration::from_millis(self.header_read_timeout_ms),
            body: Duration::from_millis(self.request_body_timeout_ms),
            request: Duration::from_millis(self.request_timeout_ms),
        }
    }
}

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// What a reserve checks beyond stock (see [`Settings::hold_terms`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldTerms {
    /// How long a new hold lasts.
    pub ttl: Duration,
    /// How long a buyer who gave a hold back waits before reserving the same drop again.
    pub cooldown: Duration,
    /// How many holds one buyer may give back on one drop.
    pub max_released: i64,
}

impl HoldTerms {
    /// Holds of `ttl`, with no cooldown and no cap (what a draw's winners get).
    pub fn lasting(ttl: Duration) -> Self {
        Self {
            ttl,
            cooldown: Duration::ZERO,
            max_released: i64::MAX,
        }
    }
}

/// How long a connection may take over each part of a request (see the `*_timeout_ms`
/// settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub header_read: Duration,
    pub body: Duration,
    pub request: Duration,
}

/// Reads a comma-separated list of networks (`10.0.0.0/8`, or a bare address for itself).
fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
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
