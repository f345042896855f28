//! The queue worker: puts each queue's lobby in order at go-live and lets buyers in, a few
//! times a second, on every instance. Every step decides under the drop's row lock in the
//! database, so instances running it side by side never line up twice or admit past the rule.

use std::{sync::Arc, time::Duration};

use super::{
    metrics::Metrics,
    rules::AdmissionRule,
    store::{Store, StoreError},
};

/// Runs forever: one pass every `every`.
pub async fn run(
    store: Arc<dyn Store>,
    rule: AdmissionRule,
    window: Duration,
    every: Duration,
    metrics: Metrics,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) = pass(store.as_ref(), rule, window, &metrics).await {
            tracing::warn!(%error, "queue pass failed; retrying");
        }
    }
}

/// One pass over every queue whose go-live has come and that is still open.
pub async fn pass(
    store: &dyn Store,
    rule: AdmissionRule,
    window: Duration,
    metrics: &Metrics,
) -> Result<(), StoreError> {
    for (drop, lined_up) in store.queues_due().await? {
        if !lined_up && store.line_up(drop).await? {
            tracing::info!(drop = %drop, "queue went live: lobby put in order");
        }
        let pass = store.admit(drop, rule, window).await?;
        metrics.queue_admissions.inc_by(pass.admitted as u64);
        metrics.queue_lapses.inc_by(pass.lapsed as u64);
        if pass.closed {
            tracing::info!(drop = %drop, "queue closed: sold out");
        }
    }
    Ok(())
}
