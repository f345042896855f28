//! The HTTP edge: every route and the rules in front of them ([`routes`], their groups'
//! rules [`groups`]), who is asking ([`extract`], behind which proxies [`proxies`]), how
//! refusals are answered ([`error`]), the JSON API ([`rest`]) and its OpenAPI document
//! ([`openapi`]), idempotency keys ([`idempotency`]) and the protections every request passes
//! ([`protect`]); signing in and out ([`session`]); how the built site and rendered pages
//! reach a browser ([`assets`]); the final audits, encoded once ([`audit`]); the live feed's
//! door ([`live`]); `/metrics` and request latency ([`observe`]); the accept loop that every
//! connection comes through ([`serve`]); and the one state every handler reaches ([`state`]).

pub mod assets;
pub mod audit;
pub mod error;
pub mod extract;
pub mod groups;
pub mod idempotency;
pub mod live;
pub mod observe;
pub mod openapi;
pub mod protect;
pub mod proxies;
pub mod rest;
pub mod routes;
pub mod serve;
pub mod session;
pub mod state;

pub use self::routes::router;
