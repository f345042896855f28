//! The live feed in the browser: one WebSocket per tab feeding one reactive store that every
//! island of the page reads.
//!
//! The store exists on both sides so islands can read it while rendering: on the server it is
//! provided per request (context), in the browser there is one per tab, made in `hydrate()`
//! before the islands wake. Islands render first from their own props (what the server
//! rendered), so hydration always matches; the store then moves them, and a value replaces a
//! rendered one only when it is newer (`version`), so late or reordered events never show
//! stale stock.

#[cfg(feature = "hydrate")]
pub mod browser;
mod store;

pub use self::store::{Connection, HoldView, LiveStore, Stock};
