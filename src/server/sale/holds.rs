//! The writes that move stock — create a drop, seed the demo, reserve, purchase, cancel,
//! expire — each written once for every database, as steps of one write transaction.
//!
//! The drop row is locked first (the lock order every writer follows, so writers never wait
//! on each other in a cycle), the rules decide on what was read under that lock
//! (`server::rules`), the rows are written, the drop's stock and version move, and the events
//! go out only once the transaction has committed.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::Utc;

use super::notices::{expired_event, hold_event, stock_event, ticket_event};
use crate::{
    model::{
        DropId, ErrorCode, LiveEvent, NewDrop, ProductDrop, Purchase, Reservation, ReservationId,
        SaleMode, UserId,
    },
    server::{
        beacon,
        events::Envelope,
        rules::{self, BatchPlan},
        settings::{BeaconChain, HoldTerms},
        store::{
            holds::{Closing, HoldTx},
            ops::{Cancelled, Progress, Reads, Reserve, ReserveOutcome, Reserved, Writes},
            queue::QueueTx,
            rows::{BeaconPlan, Order, ReservationRow, Seed, SizeRow},
            steps::{Dialect, WriteTx},
            StoreError,
        },
    },
};

#[async_trait]
impl<D> Writes for D
where
    D: Dialect + Reads,
    D::Tx: HoldTx + QueueTx,
{
    async fn create_drop(&self, new: &NewDrop) -> Result<ProductDrop, StoreError> {
        let mut tx = self.begin_write().await?;
        let drop = insert_drop(&mut tx, new, self.beacon()).await?;
        let created = Envelope::public(LiveEvent::DropCreated {
            drop: Box::new(drop.clone()),
        });
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
            seeded.push(insert_drop(&mut tx, new, self.beacon()).await?);
        }
        let events = seeded
            .iter()
            .map(|drop| {
                Envelope::public(LiveEvent::DropCreated {
                    drop: Box::new(drop.clone()),
                })
            })
            .collect();
        tx.commit(events).await?;
        Ok(seeded)
    }

    async fn reserve_many(
        &self,
        drop: DropId,
        asks: &[Reserve],
        terms: &HoldTerms,
        progress: &mut Progress,
    ) -> Result<Vec<ReserveOutcome>, StoreError> {
        if asks.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        progress.step("begin");
        // Holding the drop's lock, the checks below see every hold and purchase committed
        // before, and no reserve of this drop can slip in between.
        let locked = tx.lock_drop(drop).await?;
        progress.step("lock");
        let (sizes, checks) = match &locked {
            Some(locked) if locked.started() => {
                let users = rules::distinct_users(asks.iter().map(|ask| ask.user));
                (
                    tx.sizes(drop).await?,
                    tx.buyer_checks(drop, &users, locked.now).await?,
                )
            }
            _ => (Vec::new(), Vec::new()),
        };
        let plan = rules::plan_batch(asks, locked.as_ref(), &sizes, &checks, terms);
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
            return Ok(batch_outcomes(asks, plan, inserted, None));
        }
        let after = move_stock(&mut tx, drop, sizes, &inserted, -1).await?;
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
        Ok(batch_outcomes(asks, plan, inserted, Some(after)))
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
        let sizes = tx.sizes(drop).await?;
        let after = move_stock(&mut tx, drop, sizes, [&hold], 1).await?;
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
        for (drop, holds) in by_drop(&expired) {
            let sizes = tx.sizes(drop).await?;
            let after = move_stock(&mut tx, drop, sizes, holds, 1).await?;
            events.push(stock_event(&after));
        }
        events.extend(expired.iter().map(expired_event));
        tx.commit(events).await?;
        Ok(expired.into_iter().map(Reservation::from).collect())
    }
}

/// Inserts a validated drop and its sizes: the drop as created.
async fn insert_drop(
    tx: &mut impl HoldTx,
    new: &NewDrop,
    beacon: Option<&BeaconChain>,
) -> Result<ProductDrop, sqlx::Error> {
    let row = tx.insert_drop(new, order_for(new, beacon).as_ref()).await?;
    let sizes = tx.insert_sizes(row.id, &new.size_run_or_one()).await?;
    Ok(row.into_drop(Vec::new(), sizes))
}

/// Moves the stock of the sizes `holds` are of, by `sign` units a hold (-1 as they are taken,
/// 1 as they come back), and the drop's own sum by theirs, each version by one: the drop as it
/// stands after. `sizes` are the drop's sizes as read under its lock, before the move. Every
/// write that moves stock moves it here.
pub(super) async fn move_stock<'a>(
    tx: &mut impl HoldTx,
    drop: DropId,
    mut sizes: Vec<SizeRow>,
    holds: impl IntoIterator<Item = &'a ReservationRow>,
    sign: i64,
) -> Result<ProductDrop, sqlx::Error> {
    let mut units: BTreeMap<&str, i64> = BTreeMap::new();
    for hold in holds {
        *units.entry(hold.size.as_str()).or_insert(0) += sign;
    }
    let moves: Vec<(String, i64)> = units
        .into_iter()
        .map(|(label, units)| (label.to_owned(), units))
        .collect();
    let row = tx
        .add_stock(drop, moves.iter().map(|(_, units)| units).sum())
        .await?;
    let moved = tx.move_sizes(drop, &moves).await?;
    // Every hold names a size of its drop; one that did not would move the drop's sum and no
    // size's: refuse the whole transaction instead.
    if moved.len() != moves.len() {
        return Err(sqlx::Error::RowNotFound);
    }
    for after in moved {
        if let Some(size) = sizes.iter_mut().find(|size| size.label == after.label) {
            *size = after;
        }
    }
    Ok(row.into_drop(Vec::new(), sizes))
}

/// How a new drop will be ordered: a queue's lobby at go-live and a draw's entries at its
/// draw, by the first round of the chain (`beacon`) published a margin after that time, or
/// without a beacon by a seed drawn now. A first-come drop has no order to draw.
fn order_for(new: &NewDrop, beacon: Option<&BeaconChain>) -> Option<Order> {
    if !matches!(new.sale_mode, Some(SaleMode::Queue | SaleMode::Draw)) {
        return None;
    }
    let Some(chain) = beacon else {
        return Some(Order::Seed(Seed::draw()));
    };
    let go_live = new.starts_at.unwrap_or_else(Utc::now).timestamp_millis();
    let (round, round_at) = beacon::round_for(chain, go_live);
    Some(Order::Beacon(BeaconPlan {
        chain_hash: chain.chain_hash.clone(),
        public_key: hex::encode(chain.public_key),
        round,
        round_at,
    }))
}

/// The drop of the caller's hold, read before any lock is taken; a missing hold or someone
/// else's is refused right here (see [`rules::not_theirs`]).
async fn owned_hold(
    db: &impl Reads,
    reservation: ReservationId,
    user: UserId,
) -> Result<DropId, StoreError> {
    let hold = db.hold(reservation).await?;
    match (rules::not_theirs(hold.as_ref(), user), hold) {
        (None, Some(hold)) => Ok(hold.drop_id),
        (refusal, _) => Err(StoreError::Refused(
            refusal.unwrap_or(ErrorCode::ReservationNotFound),
        )),
    }
}

/// Rolls back a purchase or cancel whose hold did not match, naming why.
async fn refuse<T>(
    mut tx: impl WriteTx + HoldTx,
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
    asks: &[Reserve],
    plan: BatchPlan,
    inserted: Vec<ReservationRow>,
    drop: Option<ProductDrop>,
) -> Vec<ReserveOutcome> {
    let mut holds: HashMap<UserId, ReservationRow> =
        inserted.into_iter().map(|row| (row.user_id, row)).collect();
    asks.iter()
        .zip(plan.refusals)
        .map(|(ask, refusal)| {
            if let Some(refusal) = refusal {
                return Err(refusal);
            }
            match (holds.remove(&ask.user), &drop) {
                (Some(row), Some(drop)) => Ok(Reserved {
                    reservation: row.into(),
                    drop: drop.clone(),
                }),
                _ => Err(ErrorCode::AlreadyReserved.into()),
            }
        })
        .collect()
}

/// These holds by their drop, in drop order.
fn by_drop(holds: &[ReservationRow]) -> BTreeMap<DropId, Vec<&ReservationRow>> {
    let mut drops: BTreeMap<DropId, Vec<&ReservationRow>> = BTreeMap::new();
    for hold in holds {
        drops.entry(hold.drop_id).or_default().push(hold);
    }
    drops
}
