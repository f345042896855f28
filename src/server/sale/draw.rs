//! A draw's writes — the draw itself, the units passed down its waitlist, and the final audits
//! an earlier version did not keep — written once for every database.

use std::time::Duration;

use async_trait::async_trait;

use super::{
    holds::move_stock,
    notices::{hold_event, line_event, stock_event, ticket_event},
    queue::{furthest_place, go_live},
};
use crate::{
    model::{DropId, QueueLine, SaleMode, TicketState},
    server::{
        events::Envelope,
        rules::{self, HandOn},
        store::{
            draw::DrawTx,
            final_audit_document,
            holds::{HoldTx, NewHold},
            ops::{DrawWrites, HandOnPass},
            queue::QueueTx,
            steps::{Dialect, WriteTx},
            tickets::{LineTicket, TicketRow},
            AuditHead, StoreError,
        },
    },
};

#[async_trait]
impl<D> DrawWrites for D
where
    D: Dialect,
    D::Tx: HoldTx + QueueTx + DrawTx,
{
    async fn draw(&self, drop: DropId, claim: Duration) -> Result<bool, StoreError> {
        let tx = self.begin_write().await?;
        let commitments = self.commitments();
        let Some((mut tx, locked, placed)) = go_live(tx, drop, SaleMode::Draw, commitments).await?
        else {
            return Ok(false);
        };
        let winners: Vec<TicketRow> = placed
            .iter()
            .filter(|ticket| ticket.state == TicketState::Won.as_str())
            .cloned()
            .collect();
        let won = i64::try_from(winners.len()).unwrap_or(i64::MAX);
        tx.note_draw(drop, won).await?;
        let mut events = give_units(&mut tx, drop, &winners, claim).await?;
        let line = QueueLine {
            live: true,
            served_through: won,
            ..locked.line()
        };
        events.extend(
            placed
                .iter()
                .map(|ticket| ticket_event(ticket, &line, locked.now)),
        );
        events.push(line_event(drop, line, locked.now));
        tx.commit(events).await?;
        Ok(true)
    }

    async fn keep_earlier_audits(&self) -> Result<usize, StoreError> {
        let mut tx = self.begin_write().await?;
        let drops = tx.unaudited().await?;
        for drop in &drops {
            let placed = tx.placed(drop.id).await?;
            let ordered: Vec<(&LineTicket, i64)> =
                placed.iter().map(|t| (&t.ticket, t.place)).collect();
            let mode = SaleMode::parse(&drop.sale_mode).unwrap_or_default();
            let won_through = (mode == SaleMode::Draw).then_some(drop.winners_drawn);
            let head = AuditHead {
                mode,
                commitment: &drop.commitment,
                starts_at: drop.starts_at,
                sealed: &[],
                receipt_key: self.commitments().receipt_key.as_deref(),
                ordered_at: None,
                units: None,
            };
            let document = final_audit_document(&head, &ordered, won_through);
            let count = i64::try_from(ordered.len()).unwrap_or(i64::MAX);
            tx.save_final_audit(drop.id, &document, count).await?;
        }
        tx.commit(Vec::new()).await?;
        Ok(drops.len())
    }

    async fn hand_on(&self, drop: DropId, claim: Duration) -> Result<HandOnPass, StoreError> {
        let mut tx = self.begin_write().await?;
        let locked = match tx.lock_drop(drop).await? {
            Some(locked)
                if locked.mode() == SaleMode::Draw
                    && locked.lined_up_at.is_some()
                    && locked.closed_at.is_none() =>
            {
                locked
            }
            _ => {
                tx.rollback().await?;
                return Ok(HandOnPass::default());
            }
        };
        let (_, holds, waitlisted) = tx.counts(drop).await?;
        let (handed, closed) = match rules::hand_on(locked.available_stock, holds, waitlisted) {
            HandOn::Give(0) => {
                tx.rollback().await?;
                return Ok(HandOnPass::default());
            }
            HandOn::Give(n) => (tx.win(drop, n).await?, false),
            HandOn::Close => {
                let open = [TicketState::Entered, TicketState::Waitlisted];
                tx.close(drop, open, TicketState::Lost).await?;
                (Vec::new(), true)
            }
        };
        let mut events = give_units(&mut tx, drop, &handed, claim).await?;
        let line = QueueLine {
            served_through: furthest_place(locked.served_through, &handed),
            closed,
            ..locked.line()
        };
        tx.note_pass(drop, 0, line.served_through).await?;
        events.extend(
            handed
                .iter()
                .map(|ticket| ticket_event(ticket, &line, locked.now)),
        );
        events.push(line_event(drop, line, locked.now));
        tx.commit(events).await?;
        Ok(HandOnPass {
            handed_on: handed.len(),
            closed,
        })
    }
}

/// Gives each of a draw's new winners a hold until now + `claim`, taking its unit from stock
/// in the same transaction; answers the events that say so (each winner's hold, the stock).
async fn give_units<T: WriteTx + HoldTx>(
    tx: &mut T,
    drop: DropId,
    winners: &[TicketRow],
    claim: Duration,
) -> Result<Vec<Envelope>, sqlx::Error> {
    if winners.is_empty() {
        return Ok(Vec::new());
    }
    // A draw sells one size (`NewDrop::validate`), and every drop has one.
    let sizes = tx.sizes(drop).await?;
    let Some(size) = sizes.first().map(|s| s.label.clone()) else {
        return Err(sqlx::Error::RowNotFound);
    };
    let holds: Vec<NewHold> = winners
        .iter()
        .map(|ticket| NewHold {
            user_id: ticket.user_id,
            size: size.clone(),
        })
        .collect();
    let holds = tx.insert_holds(drop, &holds, claim).await?;
    let after = move_stock(tx, drop, sizes, &holds, -1).await?;
    let mut events = vec![stock_event(&after)];
    events.extend(holds.iter().map(hold_event));
    Ok(events)
}
