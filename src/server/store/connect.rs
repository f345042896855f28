//! Opening the store a URL names.

use std::{sync::Arc, time::Duration};

use super::{
    error::StoreError, ops::Store, postgres::PgStore, sqlite::SqliteStore, steps::Commitments,
};
use crate::server::{events::EventBus, settings::Settings};

/// Opens the store `database_url` names, runs its migrations and wires it to `bus`; final
/// audits name `receipt_key`, the public key receipts are signed with.
pub async fn connect(
    settings: &Settings,
    bus: EventBus,
    receipt_key: Option<String>,
) -> Result<Arc<dyn Store>, StoreError> {
    let url = &settings.database_url;
    let commitments = Commitments {
        beacon: settings.beacon(),
        receipt_key,
    };
    let connections = settings.database_max_connections;
    if settings.is_postgres() {
        let heartbeat = Duration::from_millis(settings.listen_heartbeat_timeout_ms);
        let store = PgStore::connect(url, connections, heartbeat, bus).await?;
        Ok(Arc::new(store.with_commitments(commitments)))
    } else {
        let sync = settings.sqlite_synchronous;
        let store = SqliteStore::connect(url, connections, sync, bus).await?;
        Ok(Arc::new(store.with_commitments(commitments)))
    }
}

/// The secret of a server started without `session_secret` — alone, on SQLite (PostgreSQL
/// needs one shared by every instance): one drawn at its first start and kept in its database,
/// so the keys derived from it (receipts, events) are the same after a restart.
pub async fn kept_secret(settings: &Settings, bus: EventBus) -> Result<String, StoreError> {
    let sync = settings.sqlite_synchronous;
    let store = SqliteStore::connect(&settings.database_url, 1, sync, bus).await?;
    let candidate: String = (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect();
    let secret = store.kept_secret(&candidate).await?;
    store.pool().close().await;
    Ok(secret)
}
