//! The rules a group of routes shares — rate limited, idempotent, admin — and where the REST
//! routes live: what the router layers and the OpenAPI document describes, from one value.

/// Where the REST routes are nested: every REST path starts with it.
pub const REST_PREFIX: &str = "/api/v1";

/// The layers in front of a group of routes; the router applies them and the document
/// describes what they may answer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules {
    /// Counted against the caller's session and address (429 past either budget).
    pub rate_limited: bool,
    /// Safe to retry with an `Idempotency-Key`.
    pub idempotent: bool,
    /// Needs the admin token.
    pub admin: bool,
}

impl Rules {
    pub const LIMITED: Rules = Rules {
        rate_limited: true,
        idempotent: false,
        admin: false,
    };
    pub const LIMITED_IDEMPOTENT: Rules = Rules {
        rate_limited: true,
        idempotent: true,
        admin: false,
    };
    pub const IDEMPOTENT: Rules = Rules {
        rate_limited: false,
        idempotent: true,
        admin: false,
    };
    pub const ADMIN_IDEMPOTENT: Rules = Rules {
        rate_limited: false,
        idempotent: true,
        admin: true,
    };
}
