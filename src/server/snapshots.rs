//! One snapshot of every drop, shared by all the sockets of an instance.
//!
//! A socket needs a snapshot when it connects and after every resync — after a LISTEN
//! reconnect, all of them at once. Instead of one database read per socket, an instance reads
//! one snapshot at a time and shares it: a socket may take any snapshot whose read began after
//! the socket subscribed to events (so nothing published in between can be missing from both),
//! and otherwise waits for the next read, which then serves everyone waiting.
//!
//! The snapshot carries the time by the database's clock, the clock the deadlines come from,
//! so a browser's countdown matches the deadline even when the app server's clock is off.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use super::{
    events::EventBus,
    store::{Store, StoreError},
};
use crate::model::DropId;

/// A snapshot event ready to send, and the stock version of each drop it shows.
pub struct Snapshot {
    pub json: Utf8Bytes,
    pub versions: Arc<[(DropId, i64)]>,
}

/// The newest snapshot read.
struct Read {
    /// The bus's event count when the read began: a socket that subscribed at or before this
    /// count misses nothing by taking it.
    began_at: u64,
    /// `"drops":[...]` of the snapshot event, serialized once.
    drops: Arc<str>,
    /// Database clock minus this server's clock, in milliseconds, at the read.
    clock_offset_ms: i64,
    versions: Arc<[(DropId, i64)]>,
}

/// Reads and shares snapshots. Cheap to clone.
#[derive(Clone)]
pub struct Snapshots {
    store: Arc<dyn Store>,
    bus: EventBus,
    newest: Arc<Mutex<Option<Read>>>,
}

impl Snapshots {
    pub fn new(store: Arc<dyn Store>, bus: EventBus) -> Self {
        Self {
            store,
            bus,
            newest: Arc::default(),
        }
    }

    /// A snapshot event for a socket that subscribed when the bus had counted `subscribed_at`
    /// events, with the database's time now.
    pub async fn for_socket(&self, subscribed_at: u64) -> Result<Snapshot, StoreError> {
        // One read at a time: the sockets waiting here take the read in progress.
        let mut newest = self.newest.lock().await;
        if newest
            .as_ref()
            .is_none_or(|read| read.began_at < subscribed_at)
        {
            let began_at = self.bus.published();
            let drops = self.store.list_drops().await?;
            let database_now = self.store.now_ms().await?;
            // The database's word puts the board right; a version it showed that no real
            // event could reach means every socket needs a snapshot too.
            if self.bus.rebuild_stock(&drops) {
                tracing::warn!("the stock board was ahead of the database; resyncing clients");
                self.bus.resync();
            }
            *newest = Some(Read {
                began_at,
                drops: serde_json::to_string(&drops)
                    .expect("drops serialize")
                    .into(),
                clock_offset_ms: database_now - Utc::now().timestamp_millis(),
                versions: drops.iter().map(|drop| (drop.id, drop.version)).collect(),
            });
        }
        let read = newest.as_ref().expect("just read");
        Ok(Snapshot {
            json: frame(&read.drops, read.clock_offset_ms),
            versions: read.versions.clone(),
        })
    }
}

/// The `SNAPSHOT` event's text, as `LiveEvent::Snapshot` serializes, with the database's time.
fn frame(drops: &str, clock_offset_ms: i64) -> Utf8Bytes {
    let now = Utc::now().timestamp_millis() + clock_offset_ms;
    let server_time = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_default();
    let server_time = serde_json::to_string(&server_time).expect("a time serializes");
    format!(r#"{{"type":"SNAPSHOT","drops":{drops},"server_time":{server_time}}}"#).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LiveEvent;

    #[test]
    fn the_frame_reads_as_a_snapshot_event_on_the_database_clock() {
        let json = frame("[]", 10_000);
        let event: LiveEvent = serde_json::from_str(json.as_str()).unwrap();
        let LiveEvent::Snapshot { drops, server_time } = event else {
            panic!("not a snapshot: {json}");
        };
        assert!(drops.is_empty());
        let ahead = (server_time - Utc::now()).num_milliseconds();
        assert!((9_000..=10_000).contains(&ahead), "{ahead}");
    }
}
