//! Everything that runs only on the server, in layers that use only the ones below them:
//! the HTTP edge (`http`, and `ws` for the live feed) over the domain (`inventory`, `doors`,
//! `sessions`, `snapshots`, `workers`, `batch`, with the sale's flows in `sale` and its
//! decisions in `rules`) over the store (`store`) and the event bus (`events`), with the
//! settings (`settings`) and the shared types (`crate::model`) at the bottom. `start` wires
//! them together into the one `AppState`.

pub mod auth;
pub mod batch;
pub mod beacon;
pub mod doors;
pub mod events;
pub mod http;
pub mod inventory;
pub mod limits;
pub mod metrics;
pub mod passkeys;
pub mod passwords;
pub mod receipts;
pub mod rules;
mod sale;
pub mod sessions;
pub mod settings;
pub mod snapshots;
pub mod start;
pub mod store;
pub mod workers;
pub mod ws;

pub use self::{
    http::{
        router,
        state::{AppState, Shared},
    },
    start::{serve, start, StartError},
};
