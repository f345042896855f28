//! The queue worker: puts each queue's lobby in order at go-live and lets buyers in, and makes
//! each draw at its time and passes unused units down its waitlist, a few times a second, on
//! every instance. In beacon mode it fetches each sealed drop's round once published and keeps
//! it once its signature checks out. Every step decides under the drop's row lock in the
//! database, so instances running it side by side never line up twice or admit past the rule.

use std::{sync::Arc, time::Duration};

use crate::model::SaleMode;
use crate::server::{
    beacon::{BeaconError, Fetcher},
    metrics::Metrics,
    settings::Pace,
    store::{Store, StoreError},
};

/// Runs forever: one pass every `every`, and one at each go-live (a draw: its draw) that
/// falls between, so a lobby is put in order and a draw made on time rather than up to a
/// tick late.
pub async fn run(
    store: Arc<dyn Store>,
    pace: Pace,
    every: Duration,
    beacon: Option<Fetcher>,
    metrics: Metrics,
) {
    loop {
        // A go-live still due after a pass (one that failed) waits for the next tick, not
        // none; a millisecond more makes sure the pass lands after it, by the database's clock.
        let wait = match store.next_go_live().await {
            Ok(Some(until)) if !until.is_zero() => (until + Duration::from_millis(1)).min(every),
            _ => every,
        };
        tokio::time::sleep(wait).await;
        if let Err(error) = pass(store.as_ref(), pace, beacon.as_ref(), &metrics).await {
            tracing::warn!(%error, "queue pass failed; retrying");
        }
    }
}

/// One pass over every queue whose go-live has come and every draw whose draw has, that is
/// still open, after keeping the beacon rounds that have come for sealed drops.
pub async fn pass(
    store: &dyn Store,
    pace: Pace,
    beacon: Option<&Fetcher>,
    metrics: &Metrics,
) -> Result<(), StoreError> {
    if let Some(fetcher) = beacon {
        keep_beacons(store, fetcher).await?;
    }
    for (drop, mode, lined_up) in store.queues_due().await? {
        if mode == SaleMode::Draw {
            if !lined_up && store.draw(drop, pace.claim).await? {
                metrics.draws.inc();
                tracing::info!(drop = %drop, "draw made: winners hold their units");
            }
            let pass = store.hand_on(drop, pace.claim).await?;
            metrics.draw_units_passed_on.inc_by(pass.handed_on as u64);
            if pass.closed {
                tracing::info!(drop = %drop, "draw closed: nothing left to pass on");
            }
            continue;
        }
        if !lined_up && store.line_up(drop).await? {
            tracing::info!(drop = %drop, "queue went live: lobby put in order");
        }
        let pass = store.admit(drop, pace.rule, pace.window).await?;
        metrics.queue_admissions.inc_by(pass.admitted as u64);
        metrics.queue_lapses.inc_by(pass.lapsed as u64);
        if pass.closed {
            tracing::info!(drop = %drop, "queue closed: sold out");
        }
    }
    Ok(())
}

/// Fetches the rounds the sealed beacon-mode drops wait for, and keeps each that verifies. A
/// round not published yet is asked again at the next pass; one that does not verify is never
/// kept, whatever the endpoint answered.
async fn keep_beacons(store: &dyn Store, fetcher: &Fetcher) -> Result<(), StoreError> {
    for (drop, round, chain, key) in store.beacons_due().await? {
        match fetcher.fetch(&chain, &key, round).await {
            Ok(checked) => {
                let kept = store
                    .keep_beacon(drop, checked.round, &checked.signature, &checked.randomness)
                    .await?;
                if kept {
                    tracing::info!(drop = %drop, round, "beacon round kept: the order is decided");
                }
            }
            Err(BeaconError::NotYet(_)) => {}
            Err(error) => tracing::warn!(drop = %drop, %error, "beacon round not usable; retrying"),
        }
    }
    Ok(())
}
