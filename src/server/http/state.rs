//! What every handler and server function can reach: one shared value, made at start
//! (`server::start`) from the domain's parts and the edge's own.

use std::sync::Arc;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use tokio_util::sync::CancellationToken;

use super::{audit::FinalAudits, proxies::Proxies};
use crate::server::{
    auth::Auth, doors::Doors, events::EventBus, inventory::Inventory, limits, metrics,
    receipts::ReceiptKey, sessions::Sessions, settings::Settings, snapshots::Snapshots, ws,
};

/// What every handler and server function can reach. Cloned on every request by each
/// middleware and `State` extractor, so it is one shared value: a clone is one reference count,
/// where cloning the parts (the Leptos options' strings, every metric) took a fifth of the
/// server's CPU on a hot drop.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// The state made of its parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub settings: Settings,
    pub leptos_options: LeptosOptions,
    pub inventory: Inventory,
    pub auth: Auth,
    pub sessions: Sessions,
    pub bus: EventBus,
    pub snapshots: Snapshots,
    /// The final audits this instance has encoded for serving.
    pub audits: FinalAudits,
    /// The proofs of work a join or an entry takes.
    pub doors: Doors,
    /// Signs the receipts of joins and entries.
    pub receipts: ReceiptKey,
    pub sockets: Arc<ws::SocketSlots>,
    pub limits: limits::Limits,
    /// Which peers' forwarding headers name the client.
    pub proxies: Arc<Proxies>,
    pub metrics: metrics::Metrics,
    /// Cancelled when the server begins to shut down; long-lived tasks (sockets) end on it.
    pub shutdown: CancellationToken,
}
