//! The expiry worker: gives the units of unused holds back at their deadlines.
//!
//! It sleeps until the earliest deadline it knows of, and is woken early when a hold with a
//! nearer deadline is made on this instance. A periodic sweep catches holds made by other
//! instances; one pass runs at start-up, so holds that fell due while the server was down are
//! returned before it serves anyone.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{
    metrics::Metrics,
    store::{Store, StoreError, EXPIRY_BATCH},
};
use crate::model::Reservation;

/// Lets the request path wake the worker when it makes a hold due before the worker's next
/// planned wake-up.
#[derive(Debug, Default)]
pub struct ExpiryClock {
    wake: Notify,
    /// When the worker plans to wake next, in milliseconds since the epoch.
    next_wake_ms: AtomicI64,
}

impl ExpiryClock {
    /// Tells the worker about a new deadline; wakes it only if that is sooner than planned.
    pub fn hold_created(&self, expires_at: DateTime<Utc>) {
        if expires_at.timestamp_millis() < self.next_wake_ms.load(Ordering::Acquire) {
            self.wake.notify_one();
        }
    }
}

/// Expires every overdue hold now, batch after batch; answers the holds expired.
pub async fn expire_all_due(store: &dyn Store) -> Result<Vec<Reservation>, StoreError> {
    let mut all = Vec::new();
    loop {
        let batch = store.expire_due(EXPIRY_BATCH).await?;
        let last = batch.len() < EXPIRY_BATCH as usize;
        all.extend(batch);
        if last {
            return Ok(all);
        }
    }
}

/// Runs forever: expire what is due, then sleep until the next deadline, the next sweep, or a
/// wake-up from [`ExpiryClock::hold_created`], whichever comes first.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<ExpiryClock>,
    sweep: Duration,
    metrics: Metrics,
) {
    loop {
        let sweep_at = Utc::now() + sweep;
        // Publish the sweep time before looking for deadlines: a hold made while we look wakes
        // us (Notify keeps the permit), so none is missed.
        clock
            .next_wake_ms
            .store(sweep_at.timestamp_millis(), Ordering::Release);
        let wake_at = match pass(store.as_ref(), &metrics).await {
            // The wait comes from the database's clock; only its length is used here, so a
            // skew between this server's clock and the database's does not matter.
            Ok(Some(wait)) => (Utc::now() + wait).min(sweep_at),
            Ok(None) => sweep_at,
            Err(error) => {
                tracing::warn!(%error, "expiry pass failed; retrying in a second");
                Utc::now() + Duration::from_secs(1)
            }
        };
        clock
            .next_wake_ms
            .store(wake_at.timestamp_millis(), Ordering::Release);
        let sleep = (wake_at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = clock.wake.notified() => {}
        }
    }
}

/// One pass: expire what is due, then read how long until the next deadline.
async fn pass(store: &dyn Store, metrics: &Metrics) -> Result<Option<Duration>, StoreError> {
    let expired = expire_all_due(store).await?;
    let now = Utc::now();
    for hold in &expired {
        let late = (now - hold.expires_at).to_std().unwrap_or_default();
        metrics.expiry_lateness.observe(late.as_secs_f64());
    }
    metrics.expiries.inc_by(expired.len() as u64);
    store.next_deadline().await
}
