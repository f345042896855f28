//! A queue's writes — join, leave, put the lobby in order at go-live, admit — with their control
//! flow written once, like the stock writes (`writes.rs`). Their steps are portable SQL but for
//! the database's "now", so each database's [`QueueTx`] impl is one body (`queue_steps!`) with
//! its "now" filled in; the two steps that pass lists differ per database (`WriteTx`).
//!
//! Every step runs under the drop row's lock, the first lock of every writer: joins, admissions
//! and reserves of one drop never interleave, on any number of instances.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_trait::async_trait;

use super::{
    final_audit_document, from_ms,
    writes::{hold_event, stock_event, Dialect, NewTicket, WriteTx},
    StoreError, TicketRow,
};
use crate::{
    model::{DropId, ErrorCode, LiveEvent, QueueLine, SaleMode, Ticket, TicketState, UserId},
    server::{
        events::Envelope,
        rules::{self, Admission, AdmissionRule, HandOn, LineTicket, LockedDrop},
    },
};

/// The queue's steps inside one write transaction.
#[async_trait]
pub(crate) trait QueueTx: Send {
    /// The user's ticket for the drop, if any.
    async fn ticket(
        &mut self,
        drop: DropId,
        user: UserId,
    ) -> Result<Option<TicketRow>, sqlx::Error>;
    /// A ticket back in line as `state` (joined again after leaving).
    async fn rejoin(
        &mut self,
        ticket: i64,
        place: Option<i64>,
        state: TicketState,
    ) -> Result<TicketRow, sqlx::Error>;
    /// A ticket out of line, as `state` (left, or withdrawn).
    async fn leave(&mut self, ticket: i64, state: TicketState) -> Result<TicketRow, sqlx::Error>;
    /// The place after the last one given.
    async fn next_place(&mut self, drop: DropId) -> Result<i64, sqlx::Error>;
    /// The waiting tickets (a draw's: entries) that have no place yet.
    async fn unplaced(&mut self, drop: DropId) -> Result<Vec<LineTicket>, sqlx::Error>;
    /// The drop's seed and the SHA-256 of it published at creation.
    async fn seed(&mut self, drop: DropId) -> Result<Commitment, sqlx::Error>;
    /// The drops put in order before their audits were kept (by an earlier version), with
    /// their placed tickets: what their final audit shows.
    async fn unaudited(&mut self) -> Result<Vec<Unaudited>, sqlx::Error>;
    /// A drop's placed tickets, by place.
    async fn placed(&mut self, drop: DropId) -> Result<Vec<PlacedTicket>, sqlx::Error>;
    /// Notes that the line is in order.
    async fn mark_lined_up(&mut self, drop: DropId) -> Result<(), sqlx::Error>;
    /// Keeps the final audit (`document`, which places `placed` tickets), made as the line
    /// was put in order.
    async fn save_final_audit(
        &mut self,
        drop: DropId,
        document: &str,
        placed: i64,
    ) -> Result<(), sqlx::Error>;
    /// Admissions whose time ran out become lapsed.
    async fn lapse(&mut self, drop: DropId) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// (admitted and unused, active holds, waitlisted).
    async fn counts(&mut self, drop: DropId) -> Result<(i64, i64, i64), sqlx::Error>;
    /// Admits the next `n` waiting tickets in order, for `ttl`.
    async fn admit(
        &mut self,
        drop: DropId,
        n: i64,
        ttl: Duration,
    ) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// The next `n` entries on a draw's waitlist, in the drawn order, win now.
    async fn win(&mut self, drop: DropId, n: i64) -> Result<Vec<TicketRow>, sqlx::Error>;
    /// Notes how many entries won at the draw itself.
    async fn note_winners(&mut self, drop: DropId, winners: i64) -> Result<(), sqlx::Error>;
    /// Over: every ticket still in one of `open` states takes state `to`, and the drop is
    /// closed.
    async fn close(
        &mut self,
        drop: DropId,
        open: [TicketState; 2],
        to: TicketState,
    ) -> Result<(), sqlx::Error>;
    /// Notes an admission pass: the smoothed admissions per second (x1000) and the highest
    /// place whose turn has come.
    async fn note_pass(
        &mut self,
        drop: DropId,
        rate_milli: i64,
        served_through: i64,
    ) -> Result<(), sqlx::Error>;
}

/// Expands to the [`QueueTx`] impl of a transaction type whose connection is `self.$conn`,
/// given the database's "now".
macro_rules! queue_steps {
    ($tx:ty, conn: $conn:tt, now: [$($now:tt)+]) => {
        #[async_trait::async_trait]
        impl $crate::server::store::queue::QueueTx for $tx {
            async fn ticket(
                &mut self,
                drop: $crate::model::DropId,
                user: $crate::model::UserId,
            ) -> Result<Option<$crate::server::store::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::server::store::ticket_columns!(),
                    " FROM tickets WHERE drop_id = $1 AND user_id = $2"
                ))
                .bind(drop)
                .bind(user)
                .fetch_optional(&mut *self.$conn)
                .await
            }

            async fn rejoin(
                &mut self,
                ticket: i64,
                place: Option<i64>,
                state: $crate::model::TicketState,
            ) -> Result<$crate::server::store::TicketRow, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = $3, admitted_until = NULL, place = $2, \
                     joined_at = ",
                    $($now)+,
                    " WHERE id = $1 RETURNING ",
                    $crate::server::store::ticket_columns!()
                ))
                .bind(ticket)
                .bind(place)
                .bind(state.as_str())
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn leave(
                &mut self,
                ticket: i64,
                state: $crate::model::TicketState,
            ) -> Result<$crate::server::store::TicketRow, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = $2 WHERE id = $1 RETURNING ",
                    $crate::server::store::ticket_columns!()
                ))
                .bind(ticket)
                .bind(state.as_str())
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn next_place(&mut self, drop: $crate::model::DropId) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar(
                    "SELECT COALESCE(MAX(place), 0) + 1 FROM tickets WHERE drop_id = $1",
                )
                .bind(drop)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn unplaced(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::server::rules::LineTicket>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT id, public_id, joined_at FROM tickets \
                     WHERE drop_id = $1 AND state IN ('waiting', 'entered') AND place IS NULL",
                )
                .bind(drop)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn seed(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<$crate::server::store::queue::Commitment, sqlx::Error> {
                sqlx::query_as("SELECT seed, seed_sha256 FROM drops WHERE id = $1")
                    .bind(drop)
                    .fetch_one(&mut *self.$conn)
                    .await
            }

            async fn unaudited(
                &mut self,
            ) -> Result<Vec<$crate::server::store::queue::Unaudited>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT id, sale_mode, starts_at, seed, seed_sha256, winners_drawn FROM drops \
                     WHERE lined_up_at IS NOT NULL \
                     AND NOT EXISTS (SELECT 1 FROM final_audits f WHERE f.drop_id = drops.id) \
                     ORDER BY id",
                )
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn placed(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::server::store::queue::PlacedTicket>, sqlx::Error> {
                sqlx::query_as(
                    "SELECT id, public_id, joined_at, place FROM tickets \
                     WHERE drop_id = $1 AND place IS NOT NULL ORDER BY place",
                )
                .bind(drop)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn mark_lined_up(&mut self, drop: $crate::model::DropId) -> Result<(), sqlx::Error> {
                sqlx::query(concat!("UPDATE drops SET lined_up_at = ", $($now)+, " WHERE id = $1"))
                    .bind(drop)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }

            async fn save_final_audit(
                &mut self,
                drop: $crate::model::DropId,
                document: &str,
                placed: i64,
            ) -> Result<(), sqlx::Error> {
                // Written once: an instance that comes second keeps the first.
                sqlx::query(concat!(
                    "INSERT INTO final_audits (drop_id, document, placed, created_at) \
                     VALUES ($1, $2, $3, ",
                    $($now)+,
                    ") ON CONFLICT (drop_id) DO NOTHING"
                ))
                .bind(drop)
                .bind(document)
                .bind(placed)
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }

            async fn lapse(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<Vec<$crate::server::store::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = 'lapsed' WHERE drop_id = $1 \
                     AND state = 'admitted' AND admitted_until <= ",
                    $($now)+,
                    " RETURNING ",
                    $crate::server::store::ticket_columns!()
                ))
                .bind(drop)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn counts(
                &mut self,
                drop: $crate::model::DropId,
            ) -> Result<(i64, i64, i64), sqlx::Error> {
                sqlx::query_as(
                    "SELECT (SELECT COUNT(*) FROM tickets WHERE drop_id = $1 \
                       AND state = 'admitted'), \
                     (SELECT COUNT(*) FROM reservations WHERE drop_id = $1 AND status = 'ACTIVE'), \
                     (SELECT COUNT(*) FROM tickets WHERE drop_id = $1 AND state = 'waitlisted')",
                )
                .bind(drop)
                .fetch_one(&mut *self.$conn)
                .await
            }

            async fn admit(
                &mut self,
                drop: $crate::model::DropId,
                n: i64,
                ttl: std::time::Duration,
            ) -> Result<Vec<$crate::server::store::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = 'admitted', admitted_until = ",
                    $($now)+,
                    " + $3 WHERE id IN (SELECT id FROM tickets WHERE drop_id = $1 \
                       AND state = 'waiting' AND place IS NOT NULL ORDER BY place LIMIT $2) \
                     RETURNING ",
                    $crate::server::store::ticket_columns!()
                ))
                .bind(drop)
                .bind(n)
                .bind($crate::server::store::ttl_ms(ttl))
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn win(
                &mut self,
                drop: $crate::model::DropId,
                n: i64,
            ) -> Result<Vec<$crate::server::store::TicketRow>, sqlx::Error> {
                sqlx::query_as(concat!(
                    "UPDATE tickets SET state = 'won', won_at = ",
                    $($now)+,
                    " WHERE id IN (SELECT id FROM tickets WHERE drop_id = $1 \
                       AND state = 'waitlisted' ORDER BY place LIMIT $2) RETURNING ",
                    $crate::server::store::ticket_columns!()
                ))
                .bind(drop)
                .bind(n)
                .fetch_all(&mut *self.$conn)
                .await
            }

            async fn note_winners(
                &mut self,
                drop: $crate::model::DropId,
                winners: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE drops SET winners_drawn = $2 WHERE id = $1")
                    .bind(drop)
                    .bind(winners)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }

            async fn close(
                &mut self,
                drop: $crate::model::DropId,
                open: [$crate::model::TicketState; 2],
                to: $crate::model::TicketState,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "UPDATE tickets SET state = $4 WHERE drop_id = $1 AND state IN ($2, $3)",
                )
                .bind(drop)
                .bind(open[0].as_str())
                .bind(open[1].as_str())
                .bind(to.as_str())
                .execute(&mut *self.$conn)
                .await?;
                sqlx::query(concat!("UPDATE drops SET closed_at = ", $($now)+, " WHERE id = $1"))
                    .bind(drop)
                    .execute(&mut *self.$conn)
                    .await?;
                Ok(())
            }

            async fn note_pass(
                &mut self,
                drop: $crate::model::DropId,
                rate_milli: i64,
                served_through: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(concat!(
                    "UPDATE drops SET admitted_at = ",
                    $($now)+,
                    ", admit_rate_milli = $2, served_through = $3 WHERE id = $1"
                ))
                .bind(drop)
                .bind(rate_milli)
                .bind(served_through)
                .execute(&mut *self.$conn)
                .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use queue_steps;

/// A drop's secret seed and the SHA-256 of it published when the drop was created.
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub(crate) struct Commitment {
    pub seed: Option<String>,
    pub seed_sha256: Option<String>,
}

/// A drop put in order whose final audit was never kept.
#[derive(sqlx::FromRow)]
pub(crate) struct Unaudited {
    id: DropId,
    sale_mode: String,
    starts_at: i64,
    #[sqlx(flatten)]
    commitment: Commitment,
    winners_drawn: i64,
}

/// A ticket with the place it was given.
#[derive(sqlx::FromRow)]
pub(crate) struct PlacedTicket {
    #[sqlx(flatten)]
    ticket: LineTicket,
    place: i64,
}

/// A ticket as its owner learns of it, in a line that has moved this far.
pub(super) fn ticket_event(row: &TicketRow, line: &QueueLine, now_ms: i64) -> Envelope {
    Envelope::private(
        row.user_id,
        LiveEvent::TicketUpdated {
            drop_id: row.drop_id,
            ticket: row.ticket(line),
            at: from_ms(now_ms),
        },
    )
}

/// A line's progress for every screen.
fn line_event(drop_id: DropId, line: QueueLine, now_ms: i64) -> Envelope {
    Envelope::public(LiveEvent::QueueMoved {
        drop_id,
        line,
        at: from_ms(now_ms),
    })
}

/// Every user's answer to a batch of joins, in the order given: the refusal for those who were
/// to join when the queue refused them, else their ticket — new (`true`) for the first mention
/// of a user whose ticket the batch inserted, as it stands otherwise.
fn answer_joins(
    users: &[UserId],
    joining: &[UserId],
    refusal: Option<ErrorCode>,
    tickets: &HashMap<UserId, TicketRow>,
    fresh: &HashSet<UserId>,
    line: &QueueLine,
) -> Vec<Result<(Ticket, bool), ErrorCode>> {
    let mut answered = HashSet::new();
    users
        .iter()
        .map(|user| match (refusal, tickets.get(user)) {
            (Some(code), _) if joining.contains(user) => Err(code),
            (_, Some(ticket)) => {
                let new = fresh.contains(user) && answered.insert(*user);
                Ok((ticket.ticket(line), new))
            }
            // Not in the rows read or written: cannot happen once the batch committed.
            (_, None) => Err(ErrorCode::Internal),
        })
        .collect()
}

/// What an admission pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdmitPass {
    pub admitted: usize,
    pub lapsed: usize,
    pub closed: bool,
}

/// What a pass over a drawn draw did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandOnPass {
    /// Units given to entries from the waitlist.
    pub handed_on: usize,
    pub closed: bool,
}

/// How far a line has been served once these tickets have had their turn (a draw: their
/// unit): the highest of `through` and their places.
fn furthest_place(through: i64, tickets: &[TicketRow]) -> i64 {
    tickets
        .iter()
        .filter_map(|ticket| ticket.place)
        .fold(through, i64::max)
}

/// The state a new or returning ticket takes in a drop sold this way.
fn joined_state(mode: SaleMode) -> TicketState {
    match mode {
        SaleMode::Draw => TicketState::Entered,
        _ => TicketState::Waiting,
    }
}

/// A queue's writes. Every database has them, through [`Dialect`].
#[async_trait]
pub trait QueueWrites: Send + Sync {
    /// Joins each user to the drop's queue (`mode` queue) or enters them in its draw (`mode`
    /// draw) in one transaction (see `batch.rs`), answering each in the order given: their
    /// ticket, and whether it is new. Joining again answers the same ticket; after leaving
    /// before their turn (or withdrawing before the draw), the buyer joins again like anyone
    /// else (the lobby before go-live, the back of the line after, in the order given). A
    /// buyer gets one turn: after it, joining answers the ticket as it stands.
    async fn join_many(
        &self,
        drop: DropId,
        mode: SaleMode,
        users: &[UserId],
    ) -> Result<Vec<Result<(Ticket, bool), ErrorCode>>, StoreError>;
    /// Takes the user out of the drop's queue (their admission too, if their turn had come), or
    /// withdraws their entry in its draw (their place on the waitlist too, after the draw).
    async fn leave_queue(
        &self,
        drop: DropId,
        mode: SaleMode,
        user: UserId,
    ) -> Result<Ticket, StoreError>;
    /// Go-live, once, on whichever instance comes first: puts the lobby in order by its keys
    /// (see [`rules::line_up`]) and tells every ticket its place. Answers false when it was not
    /// due or already done.
    async fn line_up(&self, drop: DropId) -> Result<bool, StoreError>;
    /// One admission pass: lapses admissions whose time ran out, lets the next buyers in as
    /// `rule` allows for `ttl`, and closes the queue once the drop has sold out.
    async fn admit(
        &self,
        drop: DropId,
        rule: AdmissionRule,
        ttl: Duration,
    ) -> Result<AdmitPass, StoreError>;
    /// The draw, once, on whichever instance comes first: reveals the order of the entries
    /// (see [`rules::draw_order`]), and in the same transaction gives each of the first
    /// `total_stock` a hold until now + `claim` and puts the rest on the waitlist. Answers
    /// false when it was not due or already done.
    async fn draw(&self, drop: DropId, claim: Duration) -> Result<bool, StoreError>;
    /// One pass over a drawn draw: gives each unit a winner left unused (cancelled or let
    /// lapse) to the next entry on the waitlist, as a new hold until now + `claim`, and closes
    /// the draw once nothing can pass on (see [`rules::hand_on`]).
    async fn hand_on(&self, drop: DropId, claim: Duration) -> Result<HandOnPass, StoreError>;
    /// Keeps the final audit of every drop an earlier version put in order without keeping
    /// one: its tickets as they are placed now (a draw's winners, the first it drew). Answers
    /// how many it kept.
    async fn keep_earlier_audits(&self) -> Result<usize, StoreError>;
}

#[async_trait]
impl<D> QueueWrites for D
where
    D: Dialect,
    D::Tx: QueueTx,
{
    async fn join_many(
        &self,
        drop: DropId,
        mode: SaleMode,
        users: &[UserId],
    ) -> Result<Vec<Result<(Ticket, bool), ErrorCode>>, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(locked) = tx.lock_drop(drop).await? else {
            tx.rollback().await?;
            return Ok(vec![Err(ErrorCode::DropNotFound); users.len()]);
        };
        if locked.mode() != mode {
            tx.rollback().await?;
            return Ok(vec![Err(rules::not_sold_by(mode)); users.len()]);
        }
        let line = locked.line();
        let distinct = rules::distinct_users(users);
        let mut tickets: HashMap<UserId, TicketRow> = tx
            .tickets_of(drop, &distinct)
            .await?
            .into_iter()
            .map(|ticket| (ticket.user_id, ticket))
            .collect();
        // In line already, or out after having had a turn (one turn per buyer): as it stands.
        // A withdrawn entry may enter again until the draw.
        let settled = |t: &TicketRow| match TicketState::parse(&t.state) {
            Some(TicketState::Left) => t.admitted_until.is_some(),
            Some(TicketState::Withdrawn) => false,
            _ => true,
        };
        let joining: Vec<UserId> = distinct
            .iter()
            .copied()
            .filter(|user| !tickets.get(user).is_some_and(settled))
            .collect();
        let refusal = rules::may_join(&locked, mode).err();
        if refusal.is_some() || joining.is_empty() {
            tx.rollback().await?;
            return Ok(answer_joins(
                users,
                &joining,
                refusal,
                &tickets,
                &HashSet::new(),
                &line,
            ));
        }
        // After go-live, arrivals go to the back of the line at once, in arrival order.
        let mut next = match locked.lined_up_at {
            Some(_) => Some(tx.next_place(drop).await?),
            None => None,
        };
        let mut place = || {
            let this = next;
            next = next.map(|n| n + 1);
            this
        };
        let mut new = Vec::new();
        for user in &joining {
            match tickets.get(user) {
                Some(left) => {
                    let back = tx.rejoin(left.id, place(), joined_state(mode)).await?;
                    tickets.insert(*user, back);
                }
                None => new.push(NewTicket {
                    user_id: *user,
                    public_id: format!("{:032x}", rand::random::<u128>()),
                    place: place(),
                }),
            }
        }
        let mut fresh = HashSet::new();
        if !new.is_empty() {
            for ticket in tx.insert_tickets(drop, &new, joined_state(mode)).await? {
                fresh.insert(ticket.user_id);
                tickets.insert(ticket.user_id, ticket);
            }
        }
        let events = joining
            .iter()
            .filter_map(|user| tickets.get(user))
            .map(|ticket| ticket_event(ticket, &line, locked.now))
            .collect();
        tx.commit(events).await?;
        Ok(answer_joins(users, &joining, None, &tickets, &fresh, &line))
    }

    async fn leave_queue(
        &self,
        drop: DropId,
        mode: SaleMode,
        user: UserId,
    ) -> Result<Ticket, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some(locked) = tx.lock_drop(drop).await? else {
            tx.rollback().await?;
            return Err(StoreError::Refused(ErrorCode::DropNotFound));
        };
        if locked.mode() != mode {
            tx.rollback().await?;
            return Err(StoreError::Refused(rules::not_sold_by(mode)));
        }
        let out = match mode {
            SaleMode::Draw => TicketState::Withdrawn,
            _ => TicketState::Left,
        };
        let line = locked.line();
        let ticket = match tx.ticket(drop, user).await? {
            Some(ticket) if TicketState::parse(&ticket.state).is_some_and(TicketState::in_line) => {
                tx.leave(ticket.id, out).await?
            }
            Some(ticket) => {
                tx.rollback().await?;
                return Ok(ticket.ticket(&line));
            }
            None => {
                tx.rollback().await?;
                return Err(StoreError::Refused(ErrorCode::TicketNotFound));
            }
        };
        tx.commit(vec![ticket_event(&ticket, &line, locked.now)])
            .await?;
        Ok(ticket.ticket(&line))
    }

    async fn line_up(&self, drop: DropId) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some((locked, placed)) = put_in_order(&mut tx, drop, SaleMode::Queue).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        let line = QueueLine {
            live: true,
            ..locked.line()
        };
        let mut events: Vec<Envelope> = placed
            .iter()
            .map(|ticket| ticket_event(ticket, &line, locked.now))
            .collect();
        events.push(line_event(drop, line, locked.now));
        tx.commit(events).await?;
        Ok(true)
    }

    async fn admit(
        &self,
        drop: DropId,
        rule: AdmissionRule,
        ttl: Duration,
    ) -> Result<AdmitPass, StoreError> {
        let mut tx = self.begin_write().await?;
        let locked = match tx.lock_drop(drop).await? {
            Some(locked) if locked.lined_up_at.is_some() && locked.closed_at.is_none() => locked,
            _ => {
                tx.rollback().await?;
                return Ok(AdmitPass::default());
            }
        };
        let lapsed = tx.lapse(drop).await?;
        let (unused, holds, _) = tx.counts(drop).await?;
        let since_ms = locked.admitted_at.map(|at| locked.now - at);
        let decision = rule.pass(locked.available_stock, unused, holds, since_ms);
        let closed = decision == Admission::Close;
        let admitted = match decision {
            Admission::Close => {
                let open = [TicketState::Waiting, TicketState::Admitted];
                tx.close(drop, open, TicketState::Closed).await?;
                Vec::new()
            }
            Admission::Admit(0) => Vec::new(),
            Admission::Admit(n) => tx.admit(drop, n, ttl).await?,
        };
        let pass = AdmitPass {
            admitted: admitted.len(),
            lapsed: lapsed.len(),
            closed,
        };
        // Admissions per second, smoothed so a waiting buyer's estimate does not jump about.
        let window_ms = since_ms.unwrap_or(1000).max(1);
        let rate_milli = admitted.len() as i64 * 1_000_000 / window_ms;
        let smoothed = (locked.admit_rate_milli * 4 + rate_milli) / 5;
        let line = QueueLine {
            live: true,
            served_through: furthest_place(locked.served_through, &admitted),
            per_minute: smoothed * 60 / 1000,
            closed,
        };
        tx.note_pass(drop, smoothed, line.served_through).await?;
        let mut events: Vec<Envelope> = lapsed
            .iter()
            .chain(&admitted)
            .map(|ticket| ticket_event(ticket, &line, locked.now))
            .collect();
        // The line's progress goes out at most once a second (and when it closes).
        let new_second = locked
            .admitted_at
            .is_none_or(|at| at / 1000 != locked.now / 1000);
        if new_second || closed {
            events.push(line_event(drop, line, locked.now));
        }
        tx.commit(events).await?;
        Ok(pass)
    }

    async fn draw(&self, drop: DropId, claim: Duration) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let Some((locked, placed)) = put_in_order(&mut tx, drop, SaleMode::Draw).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        let winners: Vec<TicketRow> = placed
            .iter()
            .filter(|ticket| ticket.state == TicketState::Won.as_str())
            .cloned()
            .collect();
        let won = i64::try_from(winners.len()).unwrap_or(i64::MAX);
        tx.note_winners(drop, won).await?;
        let mut events = give_units(&mut tx, drop, &winners, claim).await?;
        let line = QueueLine {
            live: true,
            served_through: won,
            ..locked.line()
        };
        tx.note_pass(drop, 0, won).await?;
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
            let document = final_audit_document(
                mode,
                &drop.commitment,
                drop.starts_at,
                &ordered,
                won_through,
            );
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

/// Go-live's first steps, done once: under the drop's lock, when a drop sold as `mode` has
/// started and is not in order yet, gives every unplaced ticket its place (a queue's lobby by
/// [`rules::line_up`]; a draw's entries by [`rules::draw_order`], the first as many as there
/// are units winning and the rest waitlisted, in the same statement) and notes that it is in
/// order. Answers the drop as the lock found it with the tickets placed, or `None` when it was
/// not due.
async fn put_in_order<T: WriteTx + QueueTx>(
    tx: &mut T,
    drop: DropId,
    mode: SaleMode,
) -> Result<Option<(LockedDrop, Vec<TicketRow>)>, sqlx::Error> {
    let locked = match tx.lock_drop(drop).await? {
        Some(locked)
            if locked.mode() == mode && locked.started() && locked.lined_up_at.is_none() =>
        {
            locked
        }
        _ => return Ok(None),
    };
    let commitment = tx.seed(drop).await?;
    let seed = commitment.seed.clone().unwrap_or_default();
    let unplaced = tx.unplaced(drop).await?;
    let (places, won_through) = match mode {
        SaleMode::Draw => {
            let places = rules::draw_order(&seed, &unplaced);
            let winners = locked.available_stock.min(places.len() as i64);
            (places, Some(winners))
        }
        _ => (rules::line_up(&seed, locked.starts_at, &unplaced), None),
    };
    let placed = tx.set_places(&places, won_through).await?;
    tx.mark_lined_up(drop).await?;
    // The audit is final now: built once, here, with the order it shows.
    let by_id: HashMap<i64, &LineTicket> = unplaced.iter().map(|t| (t.id, t)).collect();
    let ordered: Vec<(&LineTicket, i64)> = places
        .iter()
        .filter_map(|(id, place)| Some((*by_id.get(id)?, *place)))
        .collect();
    let document = final_audit_document(mode, &commitment, locked.starts_at, &ordered, won_through);
    let count = i64::try_from(ordered.len()).unwrap_or(i64::MAX);
    tx.save_final_audit(drop, &document, count).await?;
    Ok(Some((locked, placed)))
}

/// Gives each of a draw's new winners a hold until now + `claim`, taking its unit from stock
/// in the same transaction; answers the events that say so (each winner's hold, the stock).
async fn give_units<T: WriteTx>(
    tx: &mut T,
    drop: DropId,
    winners: &[TicketRow],
    claim: Duration,
) -> Result<Vec<Envelope>, sqlx::Error> {
    if winners.is_empty() {
        return Ok(Vec::new());
    }
    let users: Vec<UserId> = winners.iter().map(|ticket| ticket.user_id).collect();
    let holds = tx.insert_holds(drop, &users, claim).await?;
    let taken = i64::try_from(holds.len()).unwrap_or(i64::MAX);
    let after = tx.add_stock(drop, -taken).await?.into_drop(Vec::new());
    let mut events = vec![stock_event(&after)];
    events.extend(holds.iter().map(hold_event));
    Ok(events)
}
