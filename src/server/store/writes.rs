//! The writes that move stock, written once for every database.
//!
//! Each is a sequence of steps inside one write transaction: the drop row is locked first (the
//! lock order every writer follows, so writers never wait on each other in a cycle), the rules
//! decide on what was read under that lock (`server::rules`), the rows are written, the drop's
//! stock and version move, and the events go out only once the transaction has committed. A
//! database supplies the steps in its own SQL ([`WriteTx`]); the order lives here, once.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use async_trait::async_trait;

use super::{
    queue::ticket_event, Cancelled, DropRow, PurchaseRow, ReservationRow, ReserveOutcome, Reserved,
    Seed, StoreError, TicketRow,
};
use crate::{
    model::{
        DropId, ErrorCode, LiveEvent, NewDrop, ProductDrop, Purchase, Purchaser, Reservation,
        ReservationId, SaleMode, TicketState, UserId,
    },
    server::{
        events::Envelope,
        rules::{self, BatchPlan, BuyerCheck, HoldCheck, LockedDrop},
        settings::HoldTerms,
    },
};

/// How long each step of a batch's transaction took, for whoever runs the batch to report.
#[derive(Debug)]
pub struct Progress {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            last: Instant::now(),
            steps: Vec::new(),
        }
    }
}

impl Progress {
    /// The step just finished: the time since the previous one (or since the start).
    pub fn step(&mut self, name: &'static str) {
        let now = Instant::now();
        self.steps.push((name, now - self.last));
        self.last = now;
    }

    /// Every step finished so far, in order.
    pub fn steps(&self) -> &[(&'static str, Duration)] {
        &self.steps
    }
}

/// A ticket about to be inserted.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct NewTicket {
    pub user_id: UserId,
    pub public_id: String,
    /// After go-live: the back of the line.
    pub place: Option<i64>,
}

/// Where a purchase or cancel takes a live hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Closing {
    /// Bought: only before the hold's deadline, checked in the statement itself.
    Purchased,
    /// Given back to stock.
    Cancelled,
}

impl Closing {
    /// The status the hold takes.
    pub fn status(self) -> &'static str {
        match self {
            Self::Purchased => "PURCHASED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

/// One write transaction of a database, step by step. Dropping it unfinished rolls it back.
#[async_trait]
pub(crate) trait WriteTx: Send + Sized {
    /// Locks the drop row — every write's first lock — and reads what a reserve decides on,
    /// with the database's "now"; `None` when there is no such drop.
    async fn lock_drop(&mut self, drop: DropId) -> Result<Option<LockedDrop>, sqlx::Error>;
    /// What the reserve rules need to know about each of these (distinct) users.
    async fn buyer_checks(
        &mut self,
        drop: DropId,
        users: &[UserId],
        now: i64,
    ) -> Result<Vec<BuyerCheck>, sqlx::Error>;
    /// Inserts a live hold for each user, until now + `ttl`, in one statement. A row the
    /// one-live-hold-per-buyer index turns away is left out of the answer.
    async fn insert_holds(
        &mut self,
        drop: DropId,
        users: &[UserId],
        ttl: Duration,
    ) -> Result<Vec<ReservationRow>, sqlx::Error>;
    /// Moves the drop's available stock by `units` and its version by one.
    async fn add_stock(&mut self, drop: DropId, units: i64) -> Result<DropRow, sqlx::Error>;
    /// Takes the user's live hold to `to`; `None` when it did not match (not live, not theirs,
    /// or past its deadline for a purchase).
    async fn close_hold(
        &mut self,
        hold: ReservationId,
        user: UserId,
        to: Closing,
    ) -> Result<Option<ReservationRow>, sqlx::Error>;
    /// A hold as it stands now, to name a refusal.
    async fn hold(&mut self, hold: ReservationId) -> Result<Option<HoldCheck>, sqlx::Error>;
    /// Records the sale of a purchased hold at the drop's price.
    async fn insert_purchase(&mut self, hold: &ReservationRow) -> Result<PurchaseRow, sqlx::Error>;
    /// The drop's three newest purchasers, newest first.
    async fn recent_purchasers(&mut self, drop: DropId) -> Result<Vec<Purchaser>, sqlx::Error>;
    /// Locks, in id order, the drops that have holds past their deadline; answers their ids.
    async fn lock_due_drops(&mut self) -> Result<Vec<DropId>, sqlx::Error>;
    /// Expires up to `limit` overdue holds of these drops (none another instance is expiring).
    async fn expire_holds(
        &mut self,
        drops: &[DropId],
        limit: i64,
    ) -> Result<Vec<ReservationRow>, sqlx::Error>;
    /// Inserts a validated drop (a queue's with its seed).
    async fn insert_drop(
        &mut self,
        new: &NewDrop,
        seed: Option<&Seed>,
    ) -> Result<DropRow, sqlx::Error>;
    /// The tickets these users hold in the drop's queue.
    async fn tickets_of(
        &mut self,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// New tickets of the drop in `state` (waiting in a queue, entered in a draw), in one
    /// statement.
    async fn insert_tickets(
        &mut self,
        drop: DropId,
        tickets: &[NewTicket],
        state: TicketState,
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// Gives tickets their places in line, (ticket row id, place), in one statement, and answers
    /// them as they now stand. With `won_through` (a draw), the places up to it win now and the
    /// rest go on the waitlist, in the same statement.
    async fn set_places(
        &mut self,
        places: &[(i64, i64)],
        won_through: Option<i64>,
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// The admissions these users reserved with are used.
    async fn use_admissions(
        &mut self,
        drop: DropId,
        users: &[UserId],
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// Takes the lock that lets one instance at a time decide whether to seed.
    async fn lock_seeding(&mut self) -> Result<(), sqlx::Error>;
    /// True when any drop exists.
    async fn has_drops(&mut self) -> Result<bool, sqlx::Error>;
    /// Commits, then makes `events` visible to every subscriber — never before the commit.
    async fn commit(self, events: Vec<Envelope>) -> Result<(), sqlx::Error>;
    /// Rolls back: nothing was written (a refusal, or nothing to do).
    async fn rollback(self) -> Result<(), sqlx::Error>;
}

/// A database that can run [`WriteTx`]s.
#[async_trait]
pub(crate) trait Dialect: Send + Sync {
    type Tx: WriteTx;
    /// Begins a write transaction (on SQLite, after waiting for the writer's turn).
    async fn begin_write(&self) -> Result<Self::Tx, sqlx::Error>;
    /// A hold as it stands, read without any lock.
    async fn read_hold(&self, hold: ReservationId) -> Result<Option<HoldCheck>, sqlx::Error>;
}

/// The writes that move stock. Every database has them, through [`Dialect`].
#[async_trait]
pub trait Writes: Send + Sync {
    /// Inserts a validated drop and announces it.
    async fn create_drop(&self, new: &NewDrop) -> Result<ProductDrop, StoreError>;
    /// Inserts these validated drops if the database has none yet, deciding under a lock, so
    /// instances starting together seed once; answers the drops inserted.
    async fn seed(&self, drops: &[NewDrop]) -> Result<Vec<ProductDrop>, StoreError>;
    /// Takes one unit of `drop` for each of `users` for `terms.ttl`, in one transaction, and
    /// answers every user's own outcome in the order given. First come, first served: when
    /// stock runs out inside the batch, the later users get `OUT_OF_STOCK`. A user named twice
    /// gets one hold and `ALREADY_RESERVED` for the rest; one who gave a hold of the drop back
    /// lately gets `COOLING_DOWN`, one who gave back too many `HOLD_LIMIT_REACHED` (`terms`).
    /// The drop's `version` rises once and one stock event goes out for the whole batch. A
    /// database error fails the whole batch and writes nothing. `progress` hears how long each
    /// step took.
    async fn reserve_many(
        &self,
        drop: DropId,
        users: &[UserId],
        terms: &HoldTerms,
        progress: &mut Progress,
    ) -> Result<Vec<ReserveOutcome>, StoreError>;
    /// Turns the caller's live hold into a purchase, if its deadline has not passed.
    async fn purchase(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Purchase, StoreError>;
    /// Gives the caller's live hold back to stock.
    async fn cancel(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Cancelled, StoreError>;
    /// Expires up to `limit` overdue holds, returning their units; answers the holds expired.
    async fn expire_due(&self, limit: i64) -> Result<Vec<Reservation>, StoreError>;
}

#[async_trait]
impl<D: Dialect> Writes for D {
    async fn create_drop(&self, new: &NewDrop) -> Result<ProductDrop, StoreError> {
        let mut tx = self.begin_write().await?;
        let drop = tx.insert_drop(new, seed_for(new).as_ref()).await?;
        let drop = drop.into_drop(Vec::new());
        let created = Envelope::public(LiveEvent::DropCreated { drop: drop.clone() });
        tx.commit(vec![created]).await?;
        Ok(drop)
    }

    async fn seed(&self, drops: &[NewDrop]) -> Result<Vec<ProductDrop>, StoreError> {
        let mut tx = self.begin_write().await?;
        tx.lock_seeding().await?;
        if tx.has_drops().await? {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let mut seeded = Vec::with_capacity(drops.len());
        for new in drops {
            let drop = tx.insert_drop(new, seed_for(new).as_ref()).await?;
            seeded.push(drop.into_drop(Vec::new()));
        }
        let events = seeded
            .iter()
            .map(|drop| Envelope::public(LiveEvent::DropCreated { drop: drop.clone() }))
            .collect();
        tx.commit(events).await?;
        Ok(seeded)
    }

    async fn reserve_many(
        &self,
        drop: DropId,
        users: &[UserId],
        terms: &HoldTerms,
        progress: &mut Progress,
    ) -> Result<Vec<ReserveOutcome>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        progress.step("begin");
        // Holding the drop's lock, the checks below see every hold and purchase committed
        // before, and no reserve of this drop can slip in between.
        let locked = tx.lock_drop(drop).await?;
        progress.step("lock");
        let checks = match &locked {
            Some(locked) if locked.started() => {
                let users = rules::distinct_users(users);
                tx.buyer_checks(drop, &users, locked.now).await?
            }
            _ => Vec::new(),
        };
        let plan = rules::plan_batch(users, locked.as_ref(), &checks, terms);
        progress.step("check");
        // The unique index has the last word: the stock below is taken only for the rows that
        // went in.
        let inserted = if plan.takers.is_empty() {
            Vec::new()
        } else {
            tx.insert_holds(drop, &plan.takers, terms.ttl).await?
        };
        progress.step("insert");
        if inserted.is_empty() {
            tx.rollback().await?;
            progress.step("commit");
            return Ok(batch_outcomes(users, plan, inserted, None));
        }
        let taken = i64::try_from(inserted.len()).unwrap_or(i64::MAX);
        let after = tx.add_stock(drop, -taken).await?.into_drop(Vec::new());
        progress.step("stock");
        // Every tab of each buyer learns of their new hold, not just the one that asked.
        let mut events = Vec::with_capacity(inserted.len() + 1);
        events.push(stock_event(&after));
        events.extend(inserted.iter().map(hold_event));
        if let Some(queue) = locked.as_ref().filter(|d| d.mode() == SaleMode::Queue) {
            // A queue's buyer reserves once per turn.
            let holders: Vec<UserId> = inserted.iter().map(|row| row.user_id).collect();
            let used = tx.use_admissions(drop, &holders).await?;
            progress.step("admit");
            let line = queue.line();
            events.extend(
                used.iter()
                    .map(|ticket| ticket_event(ticket, &line, queue.now)),
            );
        }
        tx.commit(events).await?;
        progress.step("commit");
        Ok(batch_outcomes(users, plan, inserted, Some(after)))
    }

    async fn purchase(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Purchase, StoreError> {
        let drop = owned_hold(self, reservation, user).await?;
        let mut tx = self.begin_write().await?;
        tx.lock_drop(drop).await?;
        let Some(hold) = tx.close_hold(reservation, user, Closing::Purchased).await? else {
            return refuse(tx, reservation, user).await;
        };
        let purchase = Purchase::from(tx.insert_purchase(&hold).await?);
        let recent = tx.recent_purchasers(drop).await?;
        tx.commit(vec![
            Envelope::public(LiveEvent::ActivityUpdated {
                drop_id: drop,
                recent,
            }),
            Envelope::private(
                user,
                LiveEvent::PurchaseCompleted {
                    purchase: purchase.clone(),
                },
            ),
        ])
        .await?;
        Ok(purchase)
    }

    async fn cancel(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Cancelled, StoreError> {
        let drop = owned_hold(self, reservation, user).await?;
        let mut tx = self.begin_write().await?;
        tx.lock_drop(drop).await?;
        let Some(hold) = tx.close_hold(reservation, user, Closing::Cancelled).await? else {
            return refuse(tx, reservation, user).await;
        };
        let after = tx.add_stock(drop, 1).await?.into_drop(Vec::new());
        let cancelled = Envelope::private(
            user,
            LiveEvent::HoldCancelled {
                reservation_id: reservation,
                drop_id: drop,
            },
        );
        tx.commit(vec![stock_event(&after), cancelled]).await?;
        Ok(Cancelled {
            reservation: hold.into(),
            drop: after,
        })
    }

    async fn expire_due(&self, limit: i64) -> Result<Vec<Reservation>, StoreError> {
        let mut tx = self.begin_write().await?;
        let drops = tx.lock_due_drops().await?;
        let expired = if drops.is_empty() {
            Vec::new()
        } else {
            tx.expire_holds(&drops, limit).await?
        };
        if expired.is_empty() {
            tx.rollback().await?;
            return Ok(Vec::new());
        }
        let mut events = Vec::with_capacity(expired.len() + drops.len());
        for (drop, count) in count_by_drop(&expired) {
            let after = tx.add_stock(drop, count).await?;
            events.push(stock_event(&after.into_drop(Vec::new())));
        }
        events.extend(expired.iter().map(expired_event));
        tx.commit(events).await?;
        Ok(expired.into_iter().map(Reservation::from).collect())
    }
}

/// The seed a new drop needs: a queue's orders its lobby at go-live, a draw's its entries.
fn seed_for(new: &NewDrop) -> Option<Seed> {
    matches!(new.sale_mode, Some(SaleMode::Queue | SaleMode::Draw)).then(Seed::draw)
}

/// The drop of the caller's hold, read before any lock is taken; a missing hold or someone
/// else's is refused right here (see [`rules::not_theirs`]).
async fn owned_hold(
    db: &impl Dialect,
    reservation: ReservationId,
    user: UserId,
) -> Result<DropId, StoreError> {
    let hold = db.read_hold(reservation).await?;
    match (rules::not_theirs(hold.as_ref(), user), hold) {
        (None, Some(hold)) => Ok(hold.drop_id),
        (refusal, _) => Err(StoreError::Refused(
            refusal.unwrap_or(ErrorCode::ReservationNotFound),
        )),
    }
}

/// Rolls back a purchase or cancel whose hold did not match, naming why.
async fn refuse<T>(
    mut tx: impl WriteTx,
    reservation: ReservationId,
    user: UserId,
) -> Result<T, StoreError> {
    let check = tx.hold(reservation).await?;
    tx.rollback().await?;
    Err(StoreError::Refused(rules::hold_refusal(
        check.as_ref(),
        user,
    )))
}

/// Every user's outcome once the holds are in (`drop` as it stands after the batch, `None`
/// when no hold went in). A taker whose row the unique index turned away (a live hold another
/// writer made first) gets `ALREADY_RESERVED`; no unit was taken for it.
fn batch_outcomes(
    users: &[UserId],
    plan: BatchPlan,
    inserted: Vec<ReservationRow>,
    drop: Option<ProductDrop>,
) -> Vec<ReserveOutcome> {
    let mut holds: HashMap<UserId, ReservationRow> =
        inserted.into_iter().map(|row| (row.user_id, row)).collect();
    users
        .iter()
        .zip(plan.refusals)
        .map(|(user, refusal)| {
            if let Some(refusal) = refusal {
                return Err(refusal);
            }
            match (holds.remove(user), &drop) {
                (Some(row), Some(drop)) => Ok(Reserved {
                    reservation: row.into(),
                    drop: drop.clone(),
                }),
                _ => Err(ErrorCode::AlreadyReserved.into()),
            }
        })
        .collect()
}

/// The owner-only notice of a new hold, for every tab of the buyer.
pub(super) fn hold_event(hold: &ReservationRow) -> Envelope {
    Envelope::private(
        hold.user_id,
        LiveEvent::HoldCreated {
            reservation: Reservation::from(hold),
        },
    )
}

/// The public stock event for a drop as it stands.
pub(super) fn stock_event(drop: &ProductDrop) -> Envelope {
    Envelope::public(LiveEvent::StockUpdated {
        drop_id: drop.id,
        available: drop.available_stock,
        total: drop.total_stock,
        version: drop.version,
    })
}

/// The owner-only notice that a hold expired.
fn expired_event(hold: &ReservationRow) -> Envelope {
    Envelope::private(
        hold.user_id,
        LiveEvent::ReservationExpired {
            reservation_id: hold.id,
            drop_id: hold.drop_id,
        },
    )
}

/// How many of these holds belong to each drop, in drop order.
fn count_by_drop(holds: &[ReservationRow]) -> BTreeMap<DropId, i64> {
    let mut counts = BTreeMap::new();
    for hold in holds {
        *counts.entry(hold.drop_id).or_insert(0) += 1;
    }
    counts
}
