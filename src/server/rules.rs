//! The inventory's decision rules: who of a batch of reserves gets a unit, and why a purchase
//! or cancel is refused. Plain functions of what the store read under its lock, so they can be
//! tested without a database; the store (`store::writes`) calls them between its reads and its
//! writes.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::settings::HoldTerms;
use crate::model::{ApiError, DropId, ErrorCode, QueueLine, ReservationId, SaleMode, UserId};

/// A refusal as a rule decides it: its code and, for one that ends by itself (a cooldown),
/// how long until it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    /// Milliseconds until asking again can succeed.
    pub retry_after_ms: Option<i64>,
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Self {
        Self {
            code,
            retry_after_ms: None,
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        let Some(wait_ms) = refusal.retry_after_ms else {
            return ApiError::refusal(refusal.code);
        };
        // Whole seconds, rounded up: asking again after them succeeds.
        let seconds = u64::try_from((wait_ms + 999) / 1000).unwrap_or(0).max(1);
        let message = match refusal.code {
            ErrorCode::CoolingDown => format!(
                "You gave a hold of this drop back; you may reserve it again in {seconds} s."
            ),
            _ => ApiError::refusal(refusal.code).message,
        };
        ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(refusal.code, message)
        }
    }
}

/// A drop row as a write finds it under its lock, with the database's "now".
#[derive(Clone, Debug, Default, sqlx::FromRow)]
pub struct LockedDrop {
    pub available_stock: i64,
    pub max_per_user: i64,
    pub starts_at: i64,
    pub sale_mode: String,
    /// A queue: when joining opens.
    pub opens_at: Option<i64>,
    /// A queue: when the lobby was put in order (go-live done).
    pub lined_up_at: Option<i64>,
    /// A queue: when it closed (sold out).
    pub closed_at: Option<i64>,
    /// A queue: when the last admission pass ran.
    pub admitted_at: Option<i64>,
    /// A queue: admissions per second, smoothed, x1000.
    pub admit_rate_milli: i64,
    /// A queue: the highest place whose turn has come.
    pub served_through: i64,
    pub now: i64,
}

impl LockedDrop {
    /// True once the drop's sale has opened.
    pub fn started(&self) -> bool {
        self.starts_at <= self.now
    }

    /// How the drop is sold.
    pub fn mode(&self) -> SaleMode {
        SaleMode::parse(&self.sale_mode).unwrap_or_default()
    }

    /// How far the drop's queue has moved.
    pub fn line(&self) -> QueueLine {
        QueueLine {
            live: self.lined_up_at.is_some(),
            served_through: self.served_through,
            per_minute: self.admit_rate_milli * 60 / 1000,
            closed: self.closed_at.is_some(),
        }
    }
}

/// What a reserve batch needs to know about one of its users, read under the drop's lock.
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct BuyerCheck {
    pub user_id: UserId,
    /// The user exists (a stale session may name one that does not).
    pub known: bool,
    /// The user already has an ACTIVE hold on the drop.
    pub holds_one: bool,
    /// Units of the drop the user has bought.
    pub bought: i64,
    /// The user's turn in the drop's queue has come and not passed (a queue drop's reserves
    /// need it).
    pub admitted: bool,
    /// Holds of the drop the user gave back: cancelled, or let run out.
    pub released: i64,
    /// When the last of those ended (a cancel's time, an expired hold's deadline).
    pub released_at: Option<i64>,
}

/// How a reserve batch answers its users before any row is written: a refusal for some, a
/// unit (and a hold to insert) for the others.
#[derive(Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Per user, in batch order: `None` for a user who gets a unit, else the refusal.
    pub refusals: Vec<Option<Refusal>>,
    /// The users who get a unit, each once, in batch order.
    pub takers: Vec<UserId>,
}

/// The users of a batch, each once, in first-come order (the set the checks are read for).
pub fn distinct_users(users: &[UserId]) -> Vec<UserId> {
    let mut seen = HashSet::with_capacity(users.len());
    users.iter().copied().filter(|u| seen.insert(*u)).collect()
}

/// Decides every user's outcome in one batch: first come, first served, as if each reserve ran
/// alone after the ones before it. `drop` is `None` when the drop does not exist; `checks` hold
/// what was read for each distinct user; `terms` say how long a buyer who gave a hold back
/// waits, and how many they may give back.
pub fn plan_batch(
    users: &[UserId],
    drop: Option<&LockedDrop>,
    checks: &[BuyerCheck],
    terms: &HoldTerms,
) -> BatchPlan {
    let whole_batch = |code: ErrorCode| BatchPlan {
        refusals: vec![Some(code.into()); users.len()],
        takers: Vec::new(),
    };
    let Some(drop) = drop else {
        return whole_batch(ErrorCode::DropNotFound);
    };
    if drop.mode() == SaleMode::Draw {
        return whole_batch(ErrorCode::SoldByDraw);
    }
    if !drop.started() {
        return whole_batch(ErrorCode::NotStarted);
    }
    let queued = drop.mode() == SaleMode::Queue;
    let checks: HashMap<UserId, &BuyerCheck> = checks.iter().map(|c| (c.user_id, c)).collect();
    // A user named again after getting a hold is already holding one; after a refusal, refused
    // alike.
    let mut left = drop.available_stock;
    let mut takers = Vec::new();
    let mut holding = HashSet::new();
    let cooldown_ms = i64::try_from(terms.cooldown.as_millis()).unwrap_or(i64::MAX);
    let cooling = |check: &BuyerCheck| {
        let ends = check.released_at?.saturating_add(cooldown_ms);
        (ends > drop.now).then(|| Refusal {
            code: ErrorCode::CoolingDown,
            retry_after_ms: Some(ends - drop.now),
        })
    };
    let refusals = users
        .iter()
        .map(|&user| {
            let refusal = match checks.get(&user) {
                None => Some(ErrorCode::Unauthenticated.into()),
                Some(c) if !c.known => Some(ErrorCode::Unauthenticated.into()),
                Some(c) if c.holds_one || holding.contains(&user) => {
                    Some(ErrorCode::AlreadyReserved.into())
                }
                Some(c) if c.bought >= drop.max_per_user => Some(ErrorCode::LimitReached.into()),
                Some(c) if queued && !c.admitted => Some(ErrorCode::NotAdmitted.into()),
                Some(c) if c.released >= terms.max_released => {
                    Some(ErrorCode::HoldLimitReached.into())
                }
                Some(c) if cooling(c).is_some() => cooling(c),
                Some(_) if left <= 0 => Some(ErrorCode::OutOfStock.into()),
                Some(_) => None,
            };
            if refusal.is_none() {
                left -= 1;
                holding.insert(user);
                takers.push(user);
            }
            refusal
        })
        .collect();
    BatchPlan { refusals, takers }
}

/// A hold as a purchase or cancel finds it, with the database's "now".
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct HoldCheck {
    pub id: ReservationId,
    pub drop_id: DropId,
    pub user_id: UserId,
    pub status: String,
    pub expires_at: i64,
    pub now: i64,
}

/// The refusal a purchase or cancel gets before any lock is taken: no such hold, or someone
/// else's. Neither can change later (a hold's owner is fixed), so an abusive client looping over
/// other buyers' ids is answered without waiting for the drop's lock.
pub fn not_theirs(hold: Option<&HoldCheck>, user: UserId) -> Option<ErrorCode> {
    match hold {
        None => Some(ErrorCode::ReservationNotFound),
        Some(hold) if hold.user_id != user => Some(ErrorCode::NotYourReservation),
        Some(_) => None,
    }
}

/// Names the refusal of a purchase or cancel whose conditional update matched no row.
pub fn hold_refusal(check: Option<&HoldCheck>, user: UserId) -> ErrorCode {
    if let Some(code) = not_theirs(check, user) {
        return code;
    }
    match check {
        Some(c) if c.status == "EXPIRED" => ErrorCode::ReservationExpired,
        Some(c) if c.status == "ACTIVE" && c.expires_at <= c.now => ErrorCode::ReservationExpired,
        _ => ErrorCode::ReservationNotActive,
    }
}

/// Why a buyer may not join a drop's queue (`mode` queue) or enter its draw (`mode` draw) now,
/// if they may not. A queue takes buyers from its opening until it closes, a draw takes
/// entries from its opening until the draw.
pub fn may_join(drop: &LockedDrop, mode: SaleMode) -> Result<(), ErrorCode> {
    let not_open = drop.opens_at.is_some_and(|opens| opens > drop.now);
    match (drop.mode(), mode) {
        (SaleMode::Queue, SaleMode::Queue) if not_open => Err(ErrorCode::QueueNotOpen),
        (SaleMode::Queue, SaleMode::Queue) if drop.closed_at.is_some() => {
            Err(ErrorCode::OutOfStock)
        }
        (SaleMode::Draw, SaleMode::Draw) if not_open => Err(ErrorCode::EntriesNotOpen),
        (SaleMode::Draw, SaleMode::Draw) if drop.started() => Err(ErrorCode::EntriesClosed),
        (actual, wanted) if actual == wanted => Ok(()),
        (_, wanted) => Err(not_sold_by(wanted)),
    }
}

/// The refusal of a queue's step (`mode` queue) or a draw's (`mode` draw) on a drop sold
/// otherwise.
pub fn not_sold_by(mode: SaleMode) -> ErrorCode {
    match mode {
        SaleMode::Draw => ErrorCode::NotADraw,
        _ => ErrorCode::NotAQueue,
    }
}

/// `sha256_hex(seed + ":" + ticket)`: where a lobby ticket stands in the drawn order (the
/// lowest first). Anyone can recompute it from an audit.
pub fn lobby_key(seed: &str, ticket: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(seed.as_bytes());
    digest.update(b":");
    digest.update(ticket.as_bytes());
    format!("{:x}", digest.finalize())
}

/// A ticket as go-live finds it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct LineTicket {
    pub id: i64,
    pub public_id: String,
    pub joined_at: i64,
}

/// Places for the tickets in line at go-live: the lobby (joined before `starts_at`) by
/// ascending [`lobby_key`], then those who joined later in the order they joined. Answers
/// (ticket row id, place), place 1 first.
pub fn line_up(seed: &str, starts_at: i64, tickets: &[LineTicket]) -> Vec<(i64, i64)> {
    let (mut lobby, mut late): (Vec<&LineTicket>, Vec<&LineTicket>) =
        tickets.iter().partition(|t| t.joined_at < starts_at);
    lobby.sort_by_cached_key(|t| lobby_key(seed, &t.public_id));
    late.sort_by_key(|t| (t.joined_at, t.id));
    lobby
        .into_iter()
        .chain(late)
        .zip(1..)
        .map(|(ticket, place)| (ticket.id, place))
        .collect()
}

/// Places for a draw's entries: every entry by ascending [`lobby_key`] (a draw's lobby is all
/// of it). Answers (ticket row id, place), place 1 first.
pub fn draw_order(seed: &str, entries: &[LineTicket]) -> Vec<(i64, i64)> {
    line_up(seed, i64::MAX, entries)
}

/// What one pass over a drawn draw does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandOn {
    /// Give this many units that came back to the next entries on the waitlist (maybe none).
    Give(i64),
    /// Nothing can pass on any more: every unit is sold, or nobody is left on the waitlist.
    /// Whoever is still waiting has lost, and a unit still unsold stays unsold.
    Close,
}

/// Decides a pass over a drawn draw from its `available` units (left unused by a winner, or
/// never drawn), its live `holds` and the entries still `waitlisted`.
pub fn hand_on(available: i64, holds: i64, waitlisted: i64) -> HandOn {
    if waitlisted == 0 || (available <= 0 && holds == 0) {
        HandOn::Close
    } else {
        HandOn::Give(available.clamp(0, waitlisted))
    }
}

/// What one admission pass of a queue does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Let this many more buyers in (maybe none).
    Admit(i64),
    /// Sold out: no unit left and none held; the queue is over.
    Close,
}

/// How a queue admits. The buyers "in the shop" — admitted but not yet reserving, plus those
/// holding a unit — may be at most `over_admission` times the units not yet sold (available
/// plus held): some admitted buyers never reserve, so a little more than the stock are let in.
/// At most `per_second` are let in per second (spread over the time since the last pass, at
/// most a second's worth at once).
///
/// A reserve changes neither side (an admission becomes a hold, a unit goes from available to
/// held); cancels, expiries and lapses only shrink the left. So between passes the line can
/// only move within the rule, and at every moment `in the shop + sold ≤ over_admission ×
/// total`.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionRule {
    pub over_admission: f64,
    pub per_second: u32,
}

impl AdmissionRule {
    /// The most buyers in the shop `unsold` units allow.
    pub fn room(&self, unsold: i64) -> i64 {
        (unsold as f64 * self.over_admission).floor() as i64
    }

    /// Decides one pass: `available` units on sale, `holds` held, `unused` admissions
    /// outstanding, `since_ms` since the last pass (`None`: none ran yet).
    pub fn pass(
        &self,
        available: i64,
        unused: i64,
        holds: i64,
        since_ms: Option<i64>,
    ) -> Admission {
        if available <= 0 && holds == 0 {
            return Admission::Close;
        }
        let room = (self.room(available + holds) - unused - holds).max(0);
        let since_ms = since_ms.unwrap_or(1000).clamp(0, 1000);
        let allowance = i64::from(self.per_second) * since_ms / 1000;
        Admission::Admit(room.min(allowance))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn drop(available_stock: i64) -> LockedDrop {
        LockedDrop {
            available_stock,
            max_per_user: 1,
            starts_at: NOW - 1,
            sale_mode: "first_come".into(),
            now: NOW,
            ..LockedDrop::default()
        }
    }

    fn buyer(id: i64) -> BuyerCheck {
        BuyerCheck {
            user_id: UserId(id),
            known: true,
            holds_one: false,
            bought: 0,
            admitted: false,
            released: 0,
            released_at: None,
        }
    }

    const TERMS: HoldTerms = HoldTerms {
        ttl: std::time::Duration::from_secs(60),
        cooldown: std::time::Duration::from_secs(60),
        max_released: 3,
    };

    fn plan_of(users: &[UserId], drop: Option<&LockedDrop>, checks: &[BuyerCheck]) -> BatchPlan {
        plan_batch(users, drop, checks, &TERMS)
    }

    /// Each user's refusal code, in batch order.
    fn codes(plan: &BatchPlan) -> Vec<Option<ErrorCode>> {
        plan.refusals.iter().map(|r| r.map(|r| r.code)).collect()
    }

    fn users(ids: &[i64]) -> Vec<UserId> {
        ids.iter().copied().map(UserId).collect()
    }

    #[test]
    fn the_first_buyers_get_the_last_units() {
        let plan = plan_of(
            &users(&[1, 2, 3]),
            Some(&drop(2)),
            &[buyer(1), buyer(2), buyer(3)],
        );
        assert_eq!(plan.takers, users(&[1, 2]));
        assert_eq!(codes(&plan), vec![None, None, Some(ErrorCode::OutOfStock)]);
    }

    #[test]
    fn a_buyer_named_twice_gets_one_hold() {
        let plan = plan_of(&users(&[1, 1, 2]), Some(&drop(5)), &[buyer(1), buyer(2)]);
        assert_eq!(plan.takers, users(&[1, 2]));
        assert_eq!(
            codes(&plan),
            vec![None, Some(ErrorCode::AlreadyReserved), None]
        );
    }

    #[test]
    fn each_refusal_names_its_reason_and_takes_no_unit() {
        let holder = BuyerCheck {
            holds_one: true,
            ..buyer(2)
        };
        let bought = BuyerCheck {
            bought: 1,
            ..buyer(3)
        };
        let stranger = BuyerCheck {
            known: false,
            ..buyer(4)
        };
        let plan = plan_of(
            &users(&[2, 3, 4, 5, 6]),
            Some(&drop(1)),
            &[holder, bought, stranger, buyer(6)],
        );
        assert_eq!(
            codes(&plan),
            vec![
                Some(ErrorCode::AlreadyReserved),
                Some(ErrorCode::LimitReached),
                Some(ErrorCode::Unauthenticated),
                // No check was read for user 5: not a known user.
                Some(ErrorCode::Unauthenticated),
                None,
            ]
        );
        assert_eq!(plan.takers, users(&[6]));
    }

    #[test]
    fn a_missing_or_unopened_drop_refuses_the_whole_batch() {
        let plan = plan_of(&users(&[1, 2]), None, &[]);
        assert_eq!(codes(&plan), vec![Some(ErrorCode::DropNotFound); 2]);
        let later = LockedDrop {
            starts_at: NOW + 1,
            ..drop(5)
        };
        let plan = plan_of(&users(&[1]), Some(&later), &[buyer(1)]);
        assert_eq!(codes(&plan), vec![Some(ErrorCode::NotStarted)]);
        assert!(plan.takers.is_empty());
    }

    #[test]
    fn a_buyer_who_gave_a_hold_back_waits_and_may_give_back_only_so_many() {
        let cancelled = |id, at| BuyerCheck {
            released: 1,
            released_at: Some(at),
            ..buyer(id)
        };
        let exhausted = BuyerCheck {
            released: 3,
            released_at: Some(NOW - 3_600_000),
            ..buyer(4)
        };
        let plan = plan_of(
            &users(&[1, 2, 4]),
            Some(&drop(5)),
            &[
                cancelled(1, NOW - 1_000),
                cancelled(2, NOW - 60_000),
                exhausted,
            ],
        );
        assert_eq!(
            codes(&plan),
            vec![
                Some(ErrorCode::CoolingDown),
                None,
                Some(ErrorCode::HoldLimitReached)
            ]
        );
        // 59 s of the minute are left, and the answer says so.
        assert_eq!(plan.refusals[0].unwrap().retry_after_ms, Some(59_000));
        let error = ApiError::from(plan.refusals[0].unwrap());
        assert_eq!(error.retry_after, Some(59));
        assert!(error.message.contains("59 s"), "{}", error.message);
        assert_eq!(plan.takers, users(&[2]));
        // Without a cooldown the same buyer may take the unit again at once.
        let none = HoldTerms::lasting(TERMS.ttl);
        let again = plan_batch(&users(&[1]), Some(&drop(5)), &[cancelled(1, NOW)], &none);
        assert_eq!(again.takers, users(&[1]));
    }

    #[test]
    fn distinct_users_keep_their_first_place() {
        assert_eq!(distinct_users(&users(&[3, 1, 3, 2, 1])), users(&[3, 1, 2]));
    }

    fn hold(user: i64, status: &str, expires_at: i64) -> HoldCheck {
        HoldCheck {
            id: ReservationId(9),
            drop_id: DropId(1),
            user_id: UserId(user),
            status: status.into(),
            expires_at,
            now: NOW,
        }
    }

    #[test]
    fn purchase_and_cancel_refusals_name_their_reason() {
        let me = UserId(1);
        assert_eq!(hold_refusal(None, me), ErrorCode::ReservationNotFound);
        let cases = [
            (hold(2, "ACTIVE", NOW + 5), ErrorCode::NotYourReservation),
            (hold(1, "EXPIRED", NOW - 5), ErrorCode::ReservationExpired),
            (hold(1, "ACTIVE", NOW), ErrorCode::ReservationExpired),
            (
                hold(1, "PURCHASED", NOW + 5),
                ErrorCode::ReservationNotActive,
            ),
            (
                hold(1, "CANCELLED", NOW + 5),
                ErrorCode::ReservationNotActive,
            ),
        ];
        for (check, code) in cases {
            assert_eq!(hold_refusal(Some(&check), me), code, "{check:?}");
        }
    }

    #[test]
    fn only_a_missing_or_foreign_hold_is_refused_before_the_lock() {
        let me = UserId(1);
        assert_eq!(not_theirs(None, me), Some(ErrorCode::ReservationNotFound));
        assert_eq!(
            not_theirs(Some(&hold(2, "ACTIVE", NOW + 5)), me),
            Some(ErrorCode::NotYourReservation)
        );
        // Expired or bought is decided under the lock, where it cannot change underneath.
        assert_eq!(not_theirs(Some(&hold(1, "EXPIRED", NOW - 5)), me), None);
    }

    #[test]
    fn a_queue_drop_holds_only_for_the_admitted() {
        let queue = LockedDrop {
            sale_mode: "queue".into(),
            ..drop(5)
        };
        let admitted = BuyerCheck {
            admitted: true,
            ..buyer(1)
        };
        let plan = plan_of(&users(&[1, 2]), Some(&queue), &[admitted, buyer(2)]);
        assert_eq!(codes(&plan), vec![None, Some(ErrorCode::NotAdmitted)]);
        assert_eq!(plan.takers, users(&[1]));
    }

    #[test]
    fn joining_needs_an_open_queue() {
        let queue = |opens_at, closed_at| LockedDrop {
            sale_mode: "queue".into(),
            opens_at,
            closed_at,
            ..drop(5)
        };
        let join = |drop: &LockedDrop| may_join(drop, SaleMode::Queue);
        assert_eq!(join(&drop(5)), Err(ErrorCode::NotAQueue));
        assert_eq!(
            join(&queue(Some(NOW + 1), None)),
            Err(ErrorCode::QueueNotOpen)
        );
        assert_eq!(
            join(&queue(Some(NOW), Some(NOW))),
            Err(ErrorCode::OutOfStock)
        );
        assert_eq!(join(&queue(Some(NOW), None)), Ok(()));
    }

    #[test]
    fn entries_open_until_the_draw_and_a_draw_takes_no_reserve() {
        let draw = |opens_at, starts_at| LockedDrop {
            sale_mode: "draw".into(),
            opens_at,
            starts_at,
            ..drop(5)
        };
        let enter = |drop: &LockedDrop| may_join(drop, SaleMode::Draw);
        assert_eq!(enter(&draw(Some(NOW), NOW + 1)), Ok(()));
        assert_eq!(
            enter(&draw(Some(NOW + 1), NOW + 2)),
            Err(ErrorCode::EntriesNotOpen)
        );
        assert_eq!(enter(&draw(None, NOW)), Err(ErrorCode::EntriesClosed));
        // The other kind's door is not this one.
        assert_eq!(enter(&drop(5)), Err(ErrorCode::NotADraw));
        assert_eq!(
            may_join(&draw(None, NOW + 1), SaleMode::Queue),
            Err(ErrorCode::NotAQueue)
        );
        // Before or after the draw, a reserve is refused: only the drawn get a unit.
        for starts_at in [NOW - 1, NOW + 1] {
            let plan = plan_of(&users(&[1]), Some(&draw(None, starts_at)), &[buyer(1)]);
            assert_eq!(codes(&plan), vec![Some(ErrorCode::SoldByDraw)]);
        }
    }

    #[test]
    fn a_draw_orders_every_entry_by_its_key() {
        let entry = |id, public: &str, joined_at| LineTicket {
            id,
            public_id: public.into(),
            joined_at,
        };
        let entries = [entry(1, "x", 50), entry(2, "y", 10), entry(3, "z", 99)];
        let mut by_key = [
            (lobby_key("s", "x"), 1),
            (lobby_key("s", "y"), 2),
            (lobby_key("s", "z"), 3),
        ];
        by_key.sort();
        let places = draw_order("s", &entries);
        assert_eq!(
            places,
            by_key
                .iter()
                .zip(1..)
                .map(|((_, id), place)| (*id, place))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn units_pass_down_the_waitlist_until_nobody_waits() {
        // Two came back, five wait: the next two get them.
        assert_eq!(hand_on(2, 3, 5), HandOn::Give(2));
        // More came back than wait: as many as wait.
        assert_eq!(hand_on(4, 0, 3), HandOn::Give(3));
        // Winners still deciding: wait for them.
        assert_eq!(hand_on(0, 3, 5), HandOn::Give(0));
        // Every unit sold: the waitlist has lost.
        assert_eq!(hand_on(0, 0, 5), HandOn::Close);
        // Nobody left to give to: what is left stays unsold.
        assert_eq!(hand_on(2, 1, 0), HandOn::Close);
    }

    #[test]
    fn the_lobby_key_is_the_published_rule() {
        // sha256("abc:t1"), as `printf 'abc:t1' | sha256sum` gives it.
        assert_eq!(
            lobby_key("abc", "t1"),
            "cfee85233c8a3db72341b276b2c9e669074817be84ddc63fbe84521f4ce2822e"
        );
    }

    #[test]
    fn the_lobby_goes_by_key_and_later_arrivals_by_time() {
        let ticket = |id, public: &str, joined_at| LineTicket {
            id,
            public_id: public.into(),
            joined_at,
        };
        let tickets = [
            ticket(1, "a", 10),
            ticket(2, "b", 11),
            ticket(3, "c", 12),
            ticket(4, "late-2", 30),
            ticket(5, "late-1", 25),
        ];
        let places = line_up("seed", 20, &tickets);
        let mut lobby: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|p| (lobby_key("seed", p), *p))
            .collect();
        lobby.sort();
        let by_place: Vec<i64> = places.iter().map(|(id, _)| *id).collect();
        let expected_lobby: Vec<i64> = lobby
            .iter()
            .map(|(_, p)| match *p {
                "a" => 1,
                "b" => 2,
                _ => 3,
            })
            .collect();
        assert_eq!(by_place[..3], expected_lobby[..]);
        assert_eq!(by_place[3..], [5, 4]);
        assert_eq!(
            places.iter().map(|(_, place)| *place).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn admission_keeps_the_line_within_the_stock() {
        let rule = AdmissionRule {
            over_admission: 1.5,
            per_second: 100,
        };
        // 10 units unsold: at most 15 in the shop, and at most 20 in 200 ms.
        assert_eq!(rule.pass(10, 0, 0, Some(200)), Admission::Admit(15));
        // 6 on sale and 4 held are still 10 unsold: 15 - 5 unused - 4 holding.
        assert_eq!(rule.pass(6, 5, 4, Some(200)), Admission::Admit(6));
        assert_eq!(rule.pass(100, 0, 0, Some(200)), Admission::Admit(20));
        // The shop is full: nobody more.
        assert_eq!(rule.pass(2, 9, 8, Some(1000)), Admission::Admit(0));
        // Every unit held: one more may come in for a hold that lapses (3 x 1.5 = 4).
        assert_eq!(rule.pass(0, 0, 3, Some(1000)), Admission::Admit(1));
        // Nothing left and nothing held: sold out.
        assert_eq!(rule.pass(0, 4, 0, Some(1000)), Admission::Close);
        // A reserve (an admission becomes a hold, a unit goes from sale to held) leaves the
        // room as it was.
        assert_eq!(
            rule.pass(10, 5, 0, Some(1000)),
            rule.pass(9, 4, 1, Some(1000))
        );
    }
}
