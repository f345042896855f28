//! Every runtime setting and its default: the defaults in `Leptos.toml`, each overridable by an
//! environment variable. Plain data: nothing here knows the features that read it.

use axum_client_ip::ClientIpSource;
use serde::{Deserialize, Serialize};

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
    /// The demo's sign-in by display name alone (`POST /api/v1/session {"name"}`), which makes
    /// a new account each time. Off: buyers sign up with a username and a password. `make run`
    /// turns it on for its demo database.
    pub demo_sign_in: bool,
    /// The address buyers' browsers open the shop at (scheme, host, port if not the scheme's).
    /// Passkeys are bound to its host name, and a browser offers them only there: a name, not an
    /// IP address (WebAuthn refuses those), and `https:` but for `localhost`.
    pub public_origin: String,
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
    /// Most tickets (a draw: entries) one drop takes from one IPv4 /24, and from one IPv6
    /// /64: one person with many accounts still has few networks. 0: no cap.
    pub join_cap_per_ipv4_24: u32,
    pub join_cap_per_ipv6_64: u32,
    /// Proof of work at the doors (a queue's join, a draw's entry): each new ticket takes a
    /// fresh challenge (ALTCHA PoW v2, PBKDF2/SHA-256), bound to the buyer and the drop, that
    /// the browser solves in a Web Worker and a script solves the same way. A challenge takes
    /// `proof_floor` tries of `proof_cost` PBKDF2 iterations on average when the doors are
    /// quiet, rising to `proof_ceiling` tries as the proofs checked per second (over the last
    /// 10 s, on this instance) reach `proof_pressure_per_second`. `proof_floor = 0`: no proof.
    pub proof_floor: u32,
    pub proof_ceiling: u32,
    pub proof_cost: u32,
    pub proof_pressure_per_second: u32,
    /// How long a challenge stays good after it is issued (seconds).
    pub proof_seconds: u64,
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
    /// A drand HTTP endpoint (e.g. `https://api.drand.sh`): each new queue or draw is ordered by
    /// the randomness of a round published after its entries are sealed. Empty: by a seed the
    /// server draws at creation and publishes the SHA-256 of (which whoever can read the
    /// database knows early).
    pub beacon_url: String,
    /// The drand chain the rounds come from (hex of its hash; quicknet by default).
    pub beacon_chain_hash: String,
    /// The chain's BLS public key (hex, 96 bytes, on G2): every round is checked against it.
    pub beacon_public_key: String,
    /// The chain's genesis (Unix seconds) and its period: round `r` is published at
    /// `genesis + (r - 1) × period`.
    pub beacon_genesis_seconds: i64,
    pub beacon_period_seconds: u64,
    /// How long after go-live (a draw: its draw time) the round that decides it comes at the
    /// earliest: the entries are sealed at go-live, so the round must not exist then, even on a
    /// clock that runs a little ahead.
    pub beacon_margin_seconds: u64,
}

/// drand's quicknet (unchained BLS on BLS12-381, a round every 3 s since 2023-08-23), the
/// chain a beacon is read from unless another is set.
pub const QUICKNET_CHAIN_HASH: &str =
    "52db9ba70e0cc0f6eaf7803dd07447a1f5477735fd3f661792ba94600c84e971";
pub const QUICKNET_PUBLIC_KEY: &str = "83cf0f2896adee7eb8b5f01fcad3912212c437e0073e911fb90022d3e\
    760183c8c4b450b6a0a6c3ac6a5776a2d1064510d1fec758c921cc22b0e17e63aaf4bcb5ed66304de9cf809bd274\
    ca73bab4af5a6e9c76a4bc09e76eae8991ef5ece45a";

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
            demo_sign_in: false,
            public_origin: "http://localhost:3000".into(),
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
            join_cap_per_ipv4_24: 0,
            join_cap_per_ipv6_64: 0,
            proof_floor: 400,
            proof_ceiling: 4_500,
            proof_cost: 5_000,
            proof_pressure_per_second: 200,
            proof_seconds: 120,
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
            beacon_url: String::new(),
            beacon_chain_hash: QUICKNET_CHAIN_HASH.into(),
            beacon_public_key: QUICKNET_PUBLIC_KEY.into(),
            beacon_genesis_seconds: 1_692_803_367,
            beacon_period_seconds: 3,
            beacon_margin_seconds: 10,
        }
    }
}
