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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::model::Reservation;
use crate::server::{
    metrics::Metrics,
    store::{Store, StoreError, Writes, EXPIRY_BATCH},
};

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

/// What a pass needs of the store: overdue holds expired, a batch at a time.
#[async_trait]
pub trait ExpireDue: Send + Sync {
    /// Expires up to `limit` overdue holds in one transaction; answers them once committed.
    async fn expire_due(&self, limit: i64) -> Result<Vec<Reservation>, StoreError>;
}

#[async_trait]
impl<S: Writes + ?Sized> ExpireDue for S {
    async fn expire_due(&self, limit: i64) -> Result<Vec<Reservation>, StoreError> {
        Writes::expire_due(self, limit).await
    }
}

/// Expires every overdue hold now, batch after batch, handing each batch to `returned`;
/// answers how many holds were expired.
pub async fn expire_all_due(
    store: &(impl ExpireDue + ?Sized),
    mut returned: impl FnMut(&[Reservation]) + Send,
) -> Result<usize, StoreError> {
    let mut expired = 0;
    loop {
        let batch = store.expire_due(EXPIRY_BATCH).await?;
        returned(&batch);
        expired += batch.len();
        if batch.len() < EXPIRY_BATCH as usize {
            return Ok(expired);
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
    expire_all_due(store, |batch| observe(metrics, batch)).await?;
    store.next_deadline().await
}

/// Records how late each hold of a batch came back: from its deadline to now.
fn observe(metrics: &Metrics, batch: &[Reservation]) {
    let now = Utc::now();
    for hold in batch {
        let late = (now - hold.expires_at).to_std().unwrap_or_default();
        metrics.expiry_lateness.observe(late.as_secs_f64());
    }
    metrics.expiries.inc_by(batch.len() as u64);
}

#[cfg(test)]
mod tests {
    use std::{collections::VecDeque, sync::Mutex};

    use super::*;
    use crate::model::{DropId, ReservationId, ReservationStatus, UserId};

    /// A store whose batches take known time: each waits, then answers holds due just now.
    struct Paced(Mutex<VecDeque<(Duration, usize)>>);

    #[async_trait]
    impl ExpireDue for Paced {
        async fn expire_due(&self, _limit: i64) -> Result<Vec<Reservation>, StoreError> {
            let next = self.0.lock().expect("not poisoned").pop_front();
            let Some((wait, holds)) = next else {
                return Ok(Vec::new());
            };
            tokio::time::sleep(wait).await;
            let now = Utc::now();
            Ok((0..holds)
                .map(|i| Reservation {
                    id: ReservationId(i as i64),
                    drop_id: DropId(1),
                    user_id: UserId(i as i64),
                    size: "One size".into(),
                    status: ReservationStatus::Expired,
                    created_at: now,
                    expires_at: now,
                })
                .collect())
        }
    }

    #[tokio::test]
    async fn each_batch_is_timed_when_it_commits_not_when_the_pass_ends() {
        // A full batch due now and committed at once, then one more hold a second later.
        let store = Paced(Mutex::new(VecDeque::from([
            (Duration::ZERO, EXPIRY_BATCH as usize),
            (Duration::from_secs(1), 1),
        ])));
        let metrics = Metrics::default();
        let expired = expire_all_due(&store, |batch| observe(&metrics, batch))
            .await
            .expect("the pass runs");
        assert_eq!(expired, EXPIRY_BATCH as usize + 1);
        assert_eq!(metrics.expiries.get(), expired as u64);
        // The first batch came back on time; charging it the second batch's second would
        // make the lateness sum about 500 s.
        let late = metrics.expiry_lateness.get_sample_sum();
        assert!(
            late < 50.0,
            "{late:.1} s of lateness in all for 500 holds on time and one a second late"
        );
    }
}
