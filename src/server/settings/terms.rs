//! What the settings mean to the parts of the server that read them, in their own words: the
//! terms a hold is taken on, the pace of a queue, the timeouts of a request. Plain data, so
//! nothing below the HTTP edge needs a feature module to read its settings.

use std::{net::SocketAddr, time::Duration};

use ipnet::IpNet;

use super::{load::parse_networks, values::Settings};

impl Settings {
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

    /// How many tickets one drop takes from one network.
    pub fn network_caps(&self) -> NetworkCaps {
        NetworkCaps {
            per_ipv4_24: i64::from(self.join_cap_per_ipv4_24),
            per_ipv6_64: i64::from(self.join_cap_per_ipv6_64),
        }
    }

    /// What a proof of work at the doors costs (see [`Settings::proof_floor`]).
    pub fn proof_terms(&self) -> ProofTerms {
        ProofTerms {
            floor: self.proof_floor,
            ceiling: self.proof_ceiling,
            cost: self.proof_cost,
            full_pressure: f64::from(self.proof_pressure_per_second),
            lifetime: Duration::from_secs(self.proof_seconds),
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

    /// The drand chain new queues and draws are ordered by, if a beacon is set (validated at
    /// load).
    pub fn beacon(&self) -> Option<BeaconChain> {
        let key = hex::decode(&self.beacon_public_key).expect("validated at load");
        (!self.beacon_url.is_empty()).then(|| BeaconChain {
            url: self.beacon_url.trim_end_matches('/').to_string(),
            chain_hash: self.beacon_chain_hash.to_ascii_lowercase(),
            public_key: key.try_into().expect("validated at load"),
            genesis_ms: self.beacon_genesis_seconds * 1000,
            period_ms: (self.beacon_period_seconds * 1000) as i64,
            margin_ms: (self.beacon_margin_seconds * 1000) as i64,
        })
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

/// What a proof of work at the doors costs: the mean tries of a challenge, from `floor` while
/// the doors are quiet to `ceiling` at `full_pressure` proofs a second, each try `cost`
/// PBKDF2 iterations; a challenge is good for `lifetime`. A `floor` of 0 asks no proof.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProofTerms {
    pub floor: u32,
    pub ceiling: u32,
    pub cost: u32,
    pub full_pressure: f64,
    pub lifetime: Duration,
}

impl ProofTerms {
    /// Whether the doors ask a proof at all.
    pub fn asked(&self) -> bool {
        self.floor > 0
    }

    /// The mean tries of a challenge issued while `per_second` proofs a second are checked:
    /// straight from the floor to the ceiling as the pressure rises to full, no higher past it.
    pub fn tries(&self, per_second: f64) -> u32 {
        let share = (per_second / self.full_pressure).clamp(0.0, 1.0);
        let span = f64::from(self.ceiling - self.floor);
        self.floor + (span * share).round() as u32
    }
}

/// A drand chain and where to read its rounds (see [`Settings::beacon`]); times in Unix
/// milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BeaconChain {
    /// The HTTP endpoint, without a trailing slash: a round is `{url}/{chain_hash}/public/{n}`.
    pub url: String,
    pub chain_hash: String,
    /// The chain's public key, compressed on G2.
    pub public_key: [u8; 96],
    pub genesis_ms: i64,
    pub period_ms: i64,
    /// The least time between a drop's go-live and the round that orders it.
    pub margin_ms: i64,
}

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

/// What the worker needs to know of the settings.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// How a queue lets buyers in.
    pub rule: AdmissionRule,
    /// How long an admitted buyer has to reserve.
    pub window: Duration,
    /// How long a draw's winner has to buy.
    pub claim: Duration,
}

/// How a queue admits. The buyers "in the shop" — admitted but not yet reserving, plus those
/// holding a unit — may be at most `over_admission` times the units not yet sold (available
/// plus held): some admitted buyers never reserve, so a little more than the stock are let in.
/// At most `per_second` are let in per second (spread over the time since the last pass, at
/// most a second's worth at once).
///
/// A reserve changes neither side (an admission becomes a hold, a unit goes from available to
/// held); cancels, expiries and lapses only shrink the left. So between passes the line can
/// only move within the rule, and at every moment `in the shop + sold ≤ over_admission ×
/// total`.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionRule {
    pub over_admission: f64,
    pub per_second: u32,
}

/// Most tickets one drop takes from one IPv4 /24 and from one IPv6 /64 (0: no cap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkCaps {
    pub per_ipv4_24: i64,
    pub per_ipv6_64: i64,
}

impl NetworkCaps {
    /// True when neither cap is set: no join needs its network counted.
    pub fn none(&self) -> bool {
        self.per_ipv4_24 == 0 && self.per_ipv6_64 == 0
    }
}
