//! Opening the store a URL names.

use std::{sync::Arc, time::Duration};

use super::{error::StoreError, ops::Store, postgres::PgStore, sqlite::SqliteStore};
use crate::server::{events::EventBus, settings::Settings};

/// Opens the store `database_url` names, runs its migrations and wires it to `bus`.
pub async fn connect(settings: &Settings, bus: EventBus) -> Result<Arc<dyn Store>, StoreError> {
    let url = &settings.database_url;
    let connections = settings.database_max_connections;
    if settings.is_postgres() {
        let heartbeat = Duration::from_millis(settings.listen_heartbeat_timeout_ms);
        let store = PgStore::connect(url, connections, heartbeat, bus).await?;
        Ok(Arc::new(store.with_beacon(settings.beacon())))
    } else {
        let sync = settings.sqlite_synchronous;
        let store = SqliteStore::connect(url, connections, sync, bus).await?;
        Ok(Arc::new(store.with_beacon(settings.beacon())))
    }
}
