//! A queue's writes — join, leave, put the lobby in order at go-live, admit — written once for
//! every database. Every step runs under the drop row's lock, the first lock of every writer:
//! joins, admissions and reserves of one drop never interleave, on any number of instances.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use async_trait::async_trait;

use super::notices::{line_event, ticket_event};
use crate::{
    model::{DropId, ErrorCode, QueueLine, SaleMode, Ticket, TicketState, UserId},
    server::{
        beacon,
        events::Envelope,
        rules::{self, Admission},
        settings::{AdmissionRule, NetworkCaps},
        store::{
            final_audit_document,
            holds::HoldTx,
            ops::{AdmitPass, QueueWrites},
            proofs::ProofTx,
            queue::QueueTx,
            rows::LockedDrop,
            steps::{Commitments, Dialect, WriteTx},
            tickets::{Joiner, LineTicket, NewTicket, TicketRow},
            AuditHead, StoreError,
        },
    },
};

#[async_trait]
impl<D> QueueWrites for D
where
    D: Dialect,
    D::Tx: HoldTx + QueueTx + ProofTx,
{
    async fn join_many(
        &self,
        drop: DropId,
        mode: SaleMode,
        joiners: &[Joiner],
        caps: NetworkCaps,
    ) -> Result<Vec<Result<(Ticket, bool), ErrorCode>>, StoreError> {
        let users: Vec<UserId> = joiners.iter().map(|j| j.user).collect();
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
        let distinct = rules::distinct_users(users.iter().copied());
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
        // Each asking for a new ticket, once, from the network of their first request.
        let mut seen = HashSet::new();
        let asking: Vec<Joiner> = joiners
            .iter()
            .filter(|j| !tickets.get(&j.user).is_some_and(settled) && seen.insert(j.user))
            .cloned()
            .collect();
        let mut refused: HashMap<UserId, ErrorCode> = match rules::may_join(&locked, mode) {
            Err(code) => asking.iter().map(|j| (j.user, code)).collect(),
            Ok(()) => {
                let users: Vec<UserId> = asking.iter().map(|j| j.user).collect();
                let created: HashMap<UserId, i64> = match locked.accounts_before {
                    Some(_) if !users.is_empty() => {
                        tx.account_ages(&users).await?.into_iter().collect()
                    }
                    _ => HashMap::new(),
                };
                let mut taken: HashMap<String, i64> = HashMap::new();
                if !caps.none() {
                    let mut networks: Vec<String> =
                        asking.iter().filter_map(|j| j.network.clone()).collect();
                    networks.sort_unstable();
                    networks.dedup();
                    taken.extend(tx.network_counts(drop, &networks).await?);
                }
                // A buyer back after leaving gives their old ticket's place in the count up.
                for joiner in &asking {
                    let old = tickets.get(&joiner.user).and_then(|t| t.network.as_ref());
                    if let Some(count) = old.and_then(|network| taken.get_mut(network)) {
                        *count -= 1;
                    }
                }
                rules::refuse_joiners(&asking, &created, locked.accounts_before, taken, caps)
            }
        };
        // A proof of work opens one door once: spent here, with the ticket it makes.
        for joiner in &asking {
            if !refused.contains_key(&joiner.user) && !tx.spend(joiner.proof.as_ref()).await? {
                refused.insert(joiner.user, ErrorCode::ProofInvalid);
            }
        }
        let joining: Vec<&Joiner> = asking
            .iter()
            .filter(|j| !refused.contains_key(&j.user))
            .collect();
        if joining.is_empty() {
            tx.rollback().await?;
            return Ok(answer_joins(
                &users,
                &refused,
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
        // A buyer back after leaving gets a new ticket (at the back once the line is in
        // order); the old one keeps its place, its seal and its story, naming the new one. So
        // the places have no gap, a sealed ticket never moves, and a receipt's ticket is never
        // given a later `joined_at`: the audit shows both.
        for joiner in &joining {
            let ticket = NewTicket {
                user_id: joiner.user,
                public_id: format!("{:032x}", rand::random::<u128>()),
                place: place(),
                network: joiner.network.clone(),
            };
            if let Some(left) = tickets.get(&joiner.user) {
                tx.retire(left.id, &ticket.public_id).await?;
            }
            new.push(ticket);
        }
        let mut fresh = HashSet::new();
        for ticket in tx.insert_tickets(drop, &new, joined_state(mode)).await? {
            fresh.insert(ticket.user_id);
            tickets.insert(ticket.user_id, ticket);
        }
        let events = joining
            .iter()
            .filter_map(|joiner| tickets.get(&joiner.user))
            .map(|ticket| ticket_event(ticket, &line, locked.now))
            .collect();
        tx.commit(events).await?;
        Ok(answer_joins(&users, &refused, &tickets, &fresh, &line))
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
        let tx = self.begin_write().await?;
        let commitments = self.commitments();
        let Some((tx, locked, placed)) = go_live(tx, drop, SaleMode::Queue, commitments).await?
        else {
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

    async fn keep_beacon(
        &self,
        drop: DropId,
        round: u64,
        signature: &str,
        randomness: &str,
    ) -> Result<bool, StoreError> {
        // No drop names a round past i64::MAX: such a round matches none.
        let round = i64::try_from(round).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let kept = tx.keep_beacon(drop, round, signature, randomness).await?;
        tx.commit(Vec::new()).await?;
        Ok(kept)
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
        let decision = rules::admission(&rule, locked.available_stock, unused, holds, since_ms);
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
}

/// Every user's answer to a batch of joins, in the order given: the refusal for those who were
/// to join and were refused (`refused`), else their ticket — new (`true`) for the first mention
/// of a user whose ticket the batch inserted, as it stands otherwise.
fn answer_joins(
    users: &[UserId],
    refused: &HashMap<UserId, ErrorCode>,
    tickets: &HashMap<UserId, TicketRow>,
    fresh: &HashSet<UserId>,
    line: &QueueLine,
) -> Vec<Result<(Ticket, bool), ErrorCode>> {
    let mut answered = HashSet::new();
    users
        .iter()
        .map(|user| match (refused.get(user), tickets.get(user)) {
            (Some(code), _) => Err(*code),
            (_, Some(ticket)) => {
                let new = fresh.contains(user) && answered.insert(*user);
                Ok((ticket.ticket(line), new))
            }
            // Not in the rows read or written: cannot happen once the batch committed.
            (_, None) => Err(ErrorCode::Internal),
        })
        .collect()
}

/// How far a line has been served once these tickets have had their turn (a draw: their
/// unit): the highest of `through` and their places.
pub(super) fn furthest_place(through: i64, tickets: &[TicketRow]) -> i64 {
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

/// [`put_in_order`] as the first step of a flow's transaction `tx`: answers it with the drop
/// and the tickets placed, or `None` once it has ended it (committed a fresh seal, rolled back
/// what was not due).
pub(super) async fn go_live<T: WriteTx + HoldTx + QueueTx>(
    mut tx: T,
    drop: DropId,
    mode: SaleMode,
    commitments: &Commitments,
) -> Result<Option<(T, LockedDrop, Vec<TicketRow>)>, sqlx::Error> {
    match put_in_order(&mut tx, drop, mode, commitments).await? {
        GoLive::Ordered(locked, placed) => Ok(Some((tx, locked, placed))),
        GoLive::Awaiting => tx.commit(Vec::new()).await.map(|()| None),
        GoLive::NotDue => tx.rollback().await.map(|()| None),
    }
}

/// What go-live's first step did (see [`put_in_order`]).
enum GoLive {
    /// Nothing to do: not started, in order already, or sold otherwise. Nothing written.
    NotDue,
    /// Beacon mode: the entry list is sealed (now or earlier) and the beacon round it waits
    /// for is not kept yet. Commit what was written.
    Awaiting,
    /// In order: the drop as the lock found it, and the tickets just placed.
    Ordered(LockedDrop, Vec<TicketRow>),
}

/// Go-live's first steps, done once: under the drop's lock, when a drop sold as `mode` has
/// started and is not in order yet, gives every unplaced ticket its place (a queue's lobby by
/// [`rules::line_up`]; a draw's entries by [`rules::draw_order`], the first as many as there
/// are units winning and the rest waitlisted, in the same statement) and notes that it is in
/// order, with its final audit. In beacon mode the lobby (a draw: every entry) is sealed first
/// — its Merkle root published before the round that orders it exists — and it is put in
/// order once that round is kept ([`rules::order_source`]); a round already published at
/// the seal is replaced by a later one first ([`beacon::renamed_round`]). The audit names
/// the receipt key of `commitments`.
async fn put_in_order<T: WriteTx + HoldTx + QueueTx>(
    tx: &mut T,
    drop: DropId,
    mode: SaleMode,
    commitments: &Commitments,
) -> Result<GoLive, sqlx::Error> {
    let locked = match tx.lock_drop(drop).await? {
        Some(locked)
            if locked.mode() == mode && locked.started() && locked.lined_up_at.is_none() =>
        {
            locked
        }
        _ => return Ok(GoLive::NotDue),
    };
    let lobby_before = match mode {
        SaleMode::Draw => i64::MAX,
        _ => locked.starts_at,
    };
    let mut commitment = tx.commitment(drop).await?;
    let unplaced = tx.unplaced(drop).await?;
    if commitment.beacon_round.is_some() && commitment.entry_root.is_none() {
        let renamed = commitments.beacon.as_ref().and_then(|chain| {
            let hash = commitment.beacon_chain.as_deref();
            beacon::renamed_round(chain, hash, commitment.beacon_round_at, locked.now)
        });
        if let Some((round, round_at)) = renamed {
            let round = i64::try_from(round).unwrap_or(i64::MAX);
            tx.rename_round(drop, round, round_at).await?;
            commitment.beacon_named_round =
                commitment.beacon_named_round.or(commitment.beacon_round);
            commitment.beacon_round = Some(round);
            commitment.beacon_round_at = Some(round_at);
        }
        let lobby = unplaced.iter().filter(|t| t.joined_at < lobby_before);
        let (root, sealed) = rules::entry_root(lobby.map(|t| t.public_id.as_str()));
        let count = i64::try_from(sealed.len()).unwrap_or(i64::MAX);
        tx.seal(drop, lobby_before, &root, count).await?;
        commitment.entry_root = Some(root);
    }
    let Some(source) = rules::order_source(
        commitment.seed.as_deref(),
        commitment.beacon_round,
        commitment.entry_root.as_deref(),
        commitment.beacon_randomness.as_deref(),
    ) else {
        return Ok(GoLive::Awaiting);
    };
    let (places, won_through) = match mode {
        SaleMode::Draw => {
            let places = rules::draw_order(&source, &unplaced);
            let winners = locked.available_stock.min(places.len() as i64);
            (places, Some(winners))
        }
        _ => (rules::line_up(&source, locked.starts_at, &unplaced), None),
    };
    let placed = tx.set_places(&places, won_through).await?;
    // PostgreSQL reads the lock's "now" before it waits for the lock; this one is after.
    let ordered_at = tx.mark_lined_up(drop).await?;
    // The audit is final now: built once, here, with the order it shows.
    let by_id: HashMap<i64, &LineTicket> = unplaced.iter().map(|t| (t.id, t)).collect();
    let ordered: Vec<(&LineTicket, i64)> = places
        .iter()
        .filter_map(|(id, place)| Some((*by_id.get(id)?, *place)))
        .collect();
    // Only a beacon drop has a sealed list to publish.
    let mut sealed = match commitment.entry_root {
        Some(_) => tx.sealed_ids(drop).await?,
        None => Vec::new(),
    };
    sealed.sort_unstable();
    let head = AuditHead {
        mode,
        commitment: &commitment,
        starts_at: locked.starts_at,
        sealed: &sealed,
        receipt_key: commitments.receipt_key.as_deref(),
        ordered_at: Some(ordered_at),
        units: (mode == SaleMode::Draw).then_some(locked.available_stock),
    };
    let document = final_audit_document(&head, &ordered, won_through);
    let count = i64::try_from(ordered.len()).unwrap_or(i64::MAX);
    tx.save_final_audit(drop, &document, count).await?;
    Ok(GoLive::Ordered(locked, placed))
}
