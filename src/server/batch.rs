//! Group commit for reserves: concurrent reserves of one drop share one transaction.
//!
//! A hot drop is one row every reserve must lock, so reserves of it run one after another no
//! matter how many connections there are. Instead of queueing on the row lock, a reserve joins
//! its drop's queue here. When no batch of that drop is running, the caller's reserve starts
//! one at once with whatever is queued (just itself when traffic is light: no timer, no added
//! wait). While a batch's transaction runs, new arrivals queue up, and the next batch takes
//! them all, up to the configured size. One transaction then serves many buyers. Between
//! batches the leader yields once, so the callers it just answered can queue their next
//! request before the next batch is cut.
//!
//! Batches run in spawned tasks, so a caller that goes away cannot cancel a batch others wait
//! on, and a committed batch always publishes its event. A batch leader keeps going until its
//! queue is empty; a leader that dies (a panic) takes its queue with it, and every waiter in it
//! gets an error instead of waiting forever.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use tokio::sync::oneshot;

use super::{
    metrics::Metrics,
    store::{Reserved, Store},
};
use crate::model::{ApiError, DropId, ErrorCode, UserId};

/// One reserve waiting for its batch.
struct Waiter {
    user: UserId,
    reply: oneshot::Sender<Result<Reserved, ApiError>>,
}

/// Reserves grouped per drop. Shared by every request of one server instance.
pub struct ReserveBatcher {
    store: Arc<dyn Store>,
    ttl: Duration,
    max: usize,
    metrics: Metrics,
    /// The waiting reserves of every drop that has a batch leader running. A drop is a key
    /// exactly while its leader runs, so an arrival can tell whether it must start one.
    queues: Mutex<HashMap<DropId, VecDeque<Waiter>>>,
}

impl ReserveBatcher {
    /// Batches of up to `max` reserves (at least one; 1 turns batching off) holding for `ttl`;
    /// each batch's size goes to `metrics`.
    pub fn new(store: Arc<dyn Store>, ttl: Duration, max: usize, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            store,
            ttl,
            max: max.max(1),
            metrics,
            queues: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one unit of `drop` for `user`, in whichever batch gets to it first.
    pub async fn reserve(
        self: &Arc<Self>,
        drop: DropId,
        user: UserId,
    ) -> Result<Reserved, ApiError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter { user, reply };
        if self.max == 1 {
            // Batching off: every reserve is its own transaction, all of them at once.
            let batcher = self.clone();
            tokio::spawn(async move { batcher.run(drop, vec![waiter]).await });
        } else if self.enqueue(drop, waiter) {
            tokio::spawn(self.clone().lead(drop));
        }
        answer.await.unwrap_or_else(|_| {
            tracing::error!(%drop, "reserve batch ended without an answer");
            Err(ApiError::refusal(ErrorCode::Internal))
        })
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<DropId, VecDeque<Waiter>>> {
        // Nothing panics while holding the lock, and the map is consistent between calls.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a reserve; true when no leader runs for the drop and the caller must start one.
    fn enqueue(&self, drop: DropId, waiter: Waiter) -> bool {
        let mut queues = self.queues();
        match queues.get_mut(&drop) {
            Some(queue) => {
                queue.push_back(waiter);
                false
            }
            None => {
                queues.insert(drop, VecDeque::from([waiter]));
                true
            }
        }
    }

    /// The next batch of a drop, oldest first; `None` (and the leader's turn ends) when the
    /// queue is empty.
    fn next_batch(&self, drop: DropId) -> Option<Vec<Waiter>> {
        let mut queues = self.queues();
        let queue = queues.get_mut(&drop)?;
        if queue.is_empty() {
            queues.remove(&drop);
            return None;
        }
        let size = queue.len().min(self.max);
        Some(queue.drain(..size).collect())
    }

    /// Runs batches of a drop until its queue is empty.
    async fn lead(self: Arc<Self>, drop: DropId) {
        let mut turn = Turn {
            batcher: &self,
            drop,
            over: false,
        };
        while let Some(batch) = self.next_batch(drop) {
            self.run(drop, batch).await;
            // Let the callers just answered run before the next batch is cut: whatever they
            // send next joins it, instead of the first of them making a batch of its own.
            tokio::task::yield_now().await;
        }
        turn.over = true;
    }

    /// One transaction for a batch, then every waiter's own answer.
    async fn run(&self, drop: DropId, mut batch: Vec<Waiter>) {
        // A caller that already went away gets no hold: its unit stays on sale.
        batch.retain(|waiter| !waiter.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        self.metrics.reserve_batch_size.observe(batch.len() as f64);
        let users: Vec<UserId> = batch.iter().map(|waiter| waiter.user).collect();
        match self.store.reserve_many(drop, &users, self.ttl).await {
            Ok(outcomes) => {
                // One outcome per user, in order; a waiter left without one hears an error.
                for (waiter, outcome) in batch.into_iter().zip(outcomes) {
                    // A caller gone by now keeps its hold, as with any write it started.
                    let _ = waiter.reply.send(outcome.map_err(ApiError::refusal));
                }
            }
            Err(error) => {
                // Rolled back: nothing of the batch happened, and everyone in it hears why.
                let error = ApiError::from(error);
                for waiter in batch {
                    let _ = waiter.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// A leader's hold on its drop's queue. If the leader dies before the queue is empty, the queue
/// goes with it: its waiters' answers are dropped, which they see as an error, and the next
/// arrival starts a fresh leader.
struct Turn<'a> {
    batcher: &'a ReserveBatcher,
    drop: DropId,
    over: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.over {
            self.batcher.queues().remove(&self.drop);
        }
    }
}
