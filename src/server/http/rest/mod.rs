//! `/api/v1`: the JSON API for scripts and other non-browser clients.
//!
//! Every error answers `{"error":{"code","message"}}` with the status its code maps to. Each
//! handler carries its `#[utoipa::path]` description; [`super::routes`] registers the handlers
//! from those descriptions, so the OpenAPI document ([`super::openapi`]) cannot miss a route.
//! The answers every operation of a kind shares (a database that fails, an id that does not
//! parse, a missing session) are added to the document there, not repeated here.

pub mod audit;
mod body;
pub mod drops;
pub mod holds;
pub mod passkeys;
pub mod queue;
pub mod session;
