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
        Ok(Arc::new(
            PgStore::connect(url, connections, heartbeat, bus).await?,
        ))
    } else {
        let sync = settings.sqlite_synchronous;
        Ok(Arc::new(
            SqliteStore::connect(url, connections, sync, bus).await?,
        ))
    }
}
