//! Group commit: concurrent writes of one kind on one drop (reserves; joins of its queue) share
//! one transaction; so do the idempotency keys' claims and settlements, and sign-ups,
//! site-wide.
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
    fmt::Debug,
    hash::Hash,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use async_trait::async_trait;
use tokio::sync::oneshot;

use super::{
    metrics::Metrics,
    settings::{HoldTerms, NetworkCaps},
    store::{
        Joiner, KeyClaim, KeyRequest, NewAccount, Progress, Reserve, ReserveOutcome, Settlement,
        Store, StoreError,
    },
};
use crate::model::{ApiError, DropId, ErrorCode, Refusal, SaleMode, Ticket, User};

/// A write that many requests can share: one transaction answers each request in the order
/// given. Requests are grouped by a key (a drop), and one group's batches run one at a time.
#[async_trait]
pub trait GroupWrite: Send + Sync + 'static {
    /// The write's name in the batch-size metric.
    const NAME: &'static str;
    /// What requests are grouped by.
    type Group: Copy + Eq + Hash + Debug + Send + Sync + 'static;
    /// One request.
    type Request: Send + Sync + 'static;
    /// One request's answer.
    type Answer: Send + 'static;
    /// Runs the write for `requests` (in arrival order, maybe with repeats) in one
    /// transaction, telling `progress` the time of each step it wants measured.
    async fn write(
        &self,
        store: &dyn Store,
        group: Self::Group,
        requests: &[Self::Request],
        progress: &mut Progress,
    ) -> Result<Vec<Result<Self::Answer, Refusal>>, StoreError>;
}

/// Reserves of one drop, on these terms (how long a hold lasts, who must wait).
pub struct Reserves {
    pub terms: HoldTerms,
}

#[async_trait]
impl GroupWrite for Reserves {
    const NAME: &'static str = "reserve";
    type Group = DropId;
    type Request = Reserve;
    type Answer = crate::server::store::Reserved;

    async fn write(
        &self,
        store: &dyn Store,
        drop: DropId,
        asks: &[Reserve],
        progress: &mut Progress,
    ) -> Result<Vec<ReserveOutcome>, StoreError> {
        store.reserve_many(drop, asks, &self.terms, progress).await
    }
}

/// Joins of one drop's queue, or entries in its draw (the mode the caller asked for), each
/// from its network, at most `caps` from one: each user's ticket, and whether it is new.
pub struct Joins {
    pub caps: NetworkCaps,
}

#[async_trait]
impl GroupWrite for Joins {
    const NAME: &'static str = "join";
    type Group = (DropId, SaleMode);
    type Request = Joiner;
    type Answer = (Ticket, bool);

    async fn write(
        &self,
        store: &dyn Store,
        (drop, mode): (DropId, SaleMode),
        joiners: &[Joiner],
        _: &mut Progress,
    ) -> Result<Vec<Result<(Ticket, bool), Refusal>>, StoreError> {
        Ok(store
            .join_many(drop, mode, joiners, self.caps)
            .await?
            .into_iter()
            .map(|joined| joined.map_err(Refusal::from))
            .collect())
    }
}

/// Idempotency keys claimed before their requests run, whatever they are for; a caller may
/// have at most `per_scope` live.
pub struct KeyClaims {
    pub per_scope: i64,
}

#[async_trait]
impl GroupWrite for KeyClaims {
    const NAME: &'static str = "key_claim";
    type Group = ();
    type Request = KeyRequest;
    type Answer = KeyClaim;

    async fn write(
        &self,
        store: &dyn Store,
        (): (),
        requests: &[KeyRequest],
        _: &mut Progress,
    ) -> Result<Vec<Result<KeyClaim, Refusal>>, StoreError> {
        Ok(store
            .claim_keys(requests, self.per_scope)
            .await?
            .into_iter()
            .map(Ok)
            .collect())
    }
}

/// The answers of keyed requests, recorded for their retries.
pub struct Settlements;

#[async_trait]
impl GroupWrite for Settlements {
    const NAME: &'static str = "key_settle";
    type Group = ();
    type Request = Settlement;
    type Answer = ();

    async fn write(
        &self,
        store: &dyn Store,
        (): (),
        settlements: &[Settlement],
        _: &mut Progress,
    ) -> Result<Vec<Result<(), Refusal>>, StoreError> {
        store.settle_keys(settlements).await?;
        Ok(vec![Ok(()); settlements.len()])
    }
}

/// New buyers, each with the session they are signed in by.
pub struct SignUps;

#[async_trait]
impl GroupWrite for SignUps {
    const NAME: &'static str = "sign_up";
    type Group = ();
    type Request = NewAccount;
    type Answer = User;

    async fn write(
        &self,
        store: &dyn Store,
        (): (),
        accounts: &[NewAccount],
        _: &mut Progress,
    ) -> Result<Vec<Result<User, Refusal>>, StoreError> {
        Ok(store
            .sign_up_many(accounts)
            .await?
            .into_iter()
            .map(Ok)
            .collect())
    }
}

/// One request waiting for its batch.
struct Waiter<W: GroupWrite> {
    request: W::Request,
    reply: oneshot::Sender<Result<W::Answer, ApiError>>,
}

/// Queued requests of one group.
type Queue<W> = VecDeque<Waiter<W>>;

/// Writes of one kind grouped per drop (or other group). Shared by every request of one server
/// instance.
pub struct Batcher<W: GroupWrite> {
    store: Arc<dyn Store>,
    write: W,
    max: usize,
    metrics: Metrics,
    /// The waiting requests of every group that has a batch leader running. A group is a key
    /// exactly while its leader runs, so an arrival can tell whether it must start one.
    queues: Mutex<HashMap<W::Group, Queue<W>>>,
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

    /// Runs the write for `request` in `group`, in whichever batch gets to it first.
    pub async fn submit(
        self: &Arc<Self>,
        group: W::Group,
        request: W::Request,
    ) -> Result<W::Answer, ApiError> {
        let (reply, answer) = oneshot::channel();
        let waiter = Waiter { request, reply };
        if self.max == 1 {
            // Batching off: every request is its own transaction, all of them at once.
            let batcher = self.clone();
            tokio::spawn(async move { batcher.run(group, vec![waiter]).await });
        } else if self.enqueue(group, waiter) {
            tokio::spawn(self.clone().lead(group));
        }
        answer.await.unwrap_or_else(|_| {
            tracing::error!(?group, write = W::NAME, "a batch ended without an answer");
            Err(ApiError::refusal(ErrorCode::Internal))
        })
    }

    fn queues(&self) -> MutexGuard<'_, HashMap<W::Group, Queue<W>>> {
        // Nothing panics while holding the lock, and the map is consistent between calls.
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a request; true when no leader runs for the group and the caller must start one.
    fn enqueue(&self, group: W::Group, waiter: Waiter<W>) -> bool {
        let mut queues = self.queues();
        match queues.get_mut(&group) {
            Some(queue) => {
                queue.push_back(waiter);
                false
            }
            None => {
                queues.insert(group, VecDeque::from([waiter]));
                true
            }
        }
    }

    /// The next batch of a group, oldest first; `None` (and the leader's turn ends) when the
    /// queue is empty.
    fn next_batch(&self, group: W::Group) -> Option<Vec<Waiter<W>>> {
        let mut queues = self.queues();
        let queue = queues.get_mut(&group)?;
        if queue.is_empty() {
            queues.remove(&group);
            return None;
        }
        let size = queue.len().min(self.max);
        Some(queue.drain(..size).collect())
    }

    /// Runs batches of a group until its queue is empty.
    async fn lead(self: Arc<Self>, group: W::Group) {
        let mut turn = Turn {
            batcher: &self,
            group,
            over: false,
        };
        while let Some(batch) = self.next_batch(group) {
            self.run(group, batch).await;
            // Let the callers just answered run before the next batch is cut: whatever they
            // send next joins it, instead of the first of them making a batch of its own.
            tokio::task::yield_now().await;
        }
        turn.over = true;
    }

    /// One transaction for a batch, then every waiter's own answer.
    async fn run(&self, group: W::Group, mut batch: Vec<Waiter<W>>) {
        // A caller that already went away gets nothing: a reserve's unit stays on sale.
        batch.retain(|waiter| !waiter.reply.is_closed());
        if batch.is_empty() {
            return;
        }
        self.metrics
            .batch_size
            .with_label_values(&[W::NAME])
            .observe(batch.len() as f64);
        let (requests, replies): (Vec<W::Request>, Vec<_>) = batch
            .into_iter()
            .map(|waiter| (waiter.request, waiter.reply))
            .unzip();
        let mut progress = Progress::default();
        let written = self
            .write
            .write(self.store.as_ref(), group, &requests, &mut progress)
            .await;
        for (step, took) in progress.steps() {
            self.metrics
                .write_steps
                .with_label_values(&[W::NAME, step])
                .observe(took.as_secs_f64());
        }
        match written {
            Ok(outcomes) => {
                // One outcome per request, in order; a waiter left without one hears an error.
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    // A caller gone by now keeps what it got, as with any write it started.
                    let _ = reply.send(outcome.map_err(ApiError::from));
                }
            }
            Err(error) => {
                // Rolled back: nothing of the batch happened, and everyone in it hears why.
                let error = ApiError::from(error);
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// A leader's hold on its group's queue. If the leader dies before the queue is empty, the
/// queue goes with it: its waiters' answers are dropped, which they see as an error, and the
/// next arrival starts a fresh leader.
struct Turn<'a, W: GroupWrite> {
    batcher: &'a Batcher<W>,
    group: W::Group,
    over: bool,
}

impl<W: GroupWrite> Drop for Turn<'_, W> {
    fn drop(&mut self) {
        if !self.over {
            self.batcher.queues().remove(&self.group);
        }
    }
}
