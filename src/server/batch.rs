//! Group commit: concurrent writes of one kind on one drop (reserves; joins of its queue) share
//! one transaction.
//!
//! A hot drop is one row every such write must lock, so they run one after another no matter
//! how many connections there are. Instead of queueing on the row lock, a write joins its
//! drop's queue here. When no batch of that drop is running, the caller's reserve starts
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

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::{
    metrics::Metrics,
    store::{ReserveOutcome, Store, StoreError},
};
use crate::model::{ApiError, DropId, ErrorCode, Ticket, UserId};

/// A write that many users' requests on one drop can share: one transaction answers each user
/// in the order given.
#[async_trait]
pub trait GroupWrite: Send + Sync + 'static {
    /// The write's name in the batch-size metric.
    const NAME: &'static str;
    /// One user's answer.
    type Answer: Send + 'static;
    /// Runs the write for `users` (in arrival order, maybe with repeats) in one transaction.
    async fn write(
        &self,
        store: &dyn Store,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<Result<Self::Answer, ErrorCode>>, StoreError>;
}

/// Reserves of one drop, each holding a unit for `ttl`.
pub struct Reserves {
    pub ttl: Duration,
}

#[async_trait]
impl GroupWrite for Reserves {
    const NAME: &'static str = "reserve";
    type Answer = crate::server::store::Reserved;

    async fn write(
        &self,
        store: &dyn Store,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<ReserveOutcome>, StoreError> {
        store.reserve_many(drop, users, self.ttl).await
    }
}

/// Joins of one drop's queue: each user's ticket, and whether it is new.
pub struct Joins;

#[async_trait]
impl GroupWrite for Joins {
    const NAME: &'static str = "join";
    type Answer = (Ticket, bool);

    async fn write(
        &self,
        store: &dyn Store,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<Result<(Ticket, bool), ErrorCode>>, StoreError> {
        store.join_many(drop, users).await
    }
}

/// One request waiting for its batch.
struct Waiter<A> {
    user: UserId,
    reply: oneshot::Sender<Result<A, ApiError>>,
}

/// Queued requests of one drop.
type Queue<A> = VecDeque<Waiter<A>>;

/// Writes of one kind grouped per drop. Shared by every request of one server instance.
pub struct Batcher<W: GroupWrite> {
    store: Arc<dyn Store>,
    write: W,
    max: usize,
    metrics: Metrics,
    /// The waiting requests of every drop that has a batch leader running. A drop is a key
    /// exactly while its leader runs, so an arrival can tell whether it must start one.
    queues: Mutex<HashMap<DropId, Queue<W::Answer>>>,
}

impl<W: GroupWrite> Batcher<W> {
    /// Batches of up to `max` requests (at least one; 1 turns batching off); each batch's size
    /// goes to `metrics`.
    pub fn new(store: Arc<dyn Store>, write: W, max: usize, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            store,
            write,
            max: max.max(1),
            metrics,
            queues: Mutex::new(HashMap::new()),
        })
    }

    /// Runs the write for `user` on `drop`, in whichever batch gets to it first.
    pub async fn submit(
        self: &Arc<Self>,
        drop: DropId,
        user: UserId,
    ) -> Result<W::Answer, ApiError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter { user, reply };
        if self.max == 1 {
            // Batching off: every request is its own transaction, all of them at once.
            let batcher = self.clone();
            tokio::spawn(async move { batcher.run(drop, vec![waiter]).await });
        } else if self.enqueue(drop, waiter) {
            tokio::spawn(self.clone().lead(drop));
        }
        answer.await.unwrap_or_else(|_| {
            tracing::error!(%drop, "a batch ended without an answer");
            Err(ApiError::refusal(ErrorCode::Internal))
        })
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<DropId, Queue<W::Answer>>> {
        // Nothing panics while holding the lock, and the map is consistent between calls.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a request; true when no leader runs for the drop and the caller must start one.
    fn enqueue(&self, drop: DropId, waiter: Waiter<W::Answer>) -> bool {
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
    fn next_batch(&self, drop: DropId) -> Option<Vec<Waiter<W::Answer>>> {
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
    async fn run(&self, drop: DropId, mut batch: Vec<Waiter<W::Answer>>) {
        // A caller that already went away gets nothing: a reserve's unit stays on sale.
        batch.retain(|waiter| !waiter.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        self.metrics
            .batch_size
            .with_label_values(&[W::NAME])
            .observe(batch.len() as f64);
        let users: Vec<UserId> = batch.iter().map(|waiter| waiter.user).collect();
        match self.write.write(self.store.as_ref(), drop, &users).await {
            Ok(outcomes) => {
                // One outcome per user, in order; a waiter left without one hears an error.
                for (waiter, outcome) in batch.into_iter().zip(outcomes) {
                    // A caller gone by now keeps what it got, as with any write it started.
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
struct Turn<'a, W: GroupWrite> {
    batcher: &'a Batcher<W>,
    drop: DropId,
    over: bool,
}

impl<W: GroupWrite> Drop for Turn<'_, W> {
    fn drop(&mut self) {
        if !self.over {
            self.batcher.queues().remove(&self.drop);
        }
    }
}
