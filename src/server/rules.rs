//! The inventory's decision rules: who of a batch of reserves gets a unit, and why a purchase
//! or cancel is refused. Plain functions of what the store read under its lock, so they can be
//! tested without a database; the store (`store::writes`) calls them between its reads and its
//! writes.

use std::collections::{HashMap, HashSet};

use crate::model::{DropId, ErrorCode, ReservationId, UserId};

/// The drop row a reserve batch has locked, with the database's "now".
#[derive(Clone, Copy, Debug, sqlx::FromRow)]
pub struct BatchDrop {
    pub available_stock: i64,
    pub max_per_user: i64,
    pub starts_at: i64,
    pub now: i64,
}

impl BatchDrop {
    /// True once the drop's sale has opened.
    pub fn started(&self) -> bool {
        self.starts_at <= self.now
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
}

/// How a reserve batch answers its users before any row is written: a refusal for some, a
/// unit (and a hold to insert) for the others.
#[derive(Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Per user, in batch order: `None` for a user who gets a unit, else the refusal.
    pub refusals: Vec<Option<ErrorCode>>,
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
/// what was read for each distinct user.
pub fn plan_batch(users: &[UserId], drop: Option<&BatchDrop>, checks: &[BuyerCheck]) -> BatchPlan {
    let whole_batch = |code| BatchPlan {
        refusals: vec![Some(code); users.len()],
        takers: Vec::new(),
    };
    let Some(drop) = drop else {
        return whole_batch(ErrorCode::DropNotFound);
    };
    if !drop.started() {
        return whole_batch(ErrorCode::NotStarted);
    }
    let checks: HashMap<UserId, &BuyerCheck> = checks.iter().map(|c| (c.user_id, c)).collect();
    // A user named again after getting a hold is already holding one; after a refusal, refused
    // alike.
    let mut left = drop.available_stock;
    let mut takers = Vec::new();
    let mut holding = HashSet::new();
    let refusals = users
        .iter()
        .map(|&user| {
            let refusal = match checks.get(&user) {
                None => Some(ErrorCode::Unauthenticated),
                Some(c) if !c.known => Some(ErrorCode::Unauthenticated),
                Some(c) if c.holds_one || holding.contains(&user) => {
                    Some(ErrorCode::AlreadyReserved)
                }
                Some(c) if c.bought >= drop.max_per_user => Some(ErrorCode::LimitReached),
                Some(_) if left <= 0 => Some(ErrorCode::OutOfStock),
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

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn drop(available_stock: i64) -> BatchDrop {
        BatchDrop {
            available_stock,
            max_per_user: 1,
            starts_at: NOW - 1,
            now: NOW,
        }
    }

    fn buyer(id: i64) -> BuyerCheck {
        BuyerCheck {
            user_id: UserId(id),
            known: true,
            holds_one: false,
            bought: 0,
        }
    }

    fn users(ids: &[i64]) -> Vec<UserId> {
        ids.iter().copied().map(UserId).collect()
    }

    #[test]
    fn the_first_buyers_get_the_last_units() {
        let plan = plan_batch(
            &users(&[1, 2, 3]),
            Some(&drop(2)),
            &[buyer(1), buyer(2), buyer(3)],
        );
        assert_eq!(plan.takers, users(&[1, 2]));
        assert_eq!(plan.refusals, vec![None, None, Some(ErrorCode::OutOfStock)]);
    }

    #[test]
    fn a_buyer_named_twice_gets_one_hold() {
        let plan = plan_batch(&users(&[1, 1, 2]), Some(&drop(5)), &[buyer(1), buyer(2)]);
        assert_eq!(plan.takers, users(&[1, 2]));
        assert_eq!(
            plan.refusals,
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
        let plan = plan_batch(
            &users(&[2, 3, 4, 5, 6]),
            Some(&drop(1)),
            &[holder, bought, stranger, buyer(6)],
        );
        assert_eq!(
            plan.refusals,
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
        let plan = plan_batch(&users(&[1, 2]), None, &[]);
        assert_eq!(plan.refusals, vec![Some(ErrorCode::DropNotFound); 2]);
        let later = BatchDrop {
            starts_at: NOW + 1,
            ..drop(5)
        };
        let plan = plan_batch(&users(&[1]), Some(&later), &[buyer(1)]);
        assert_eq!(plan.refusals, vec![Some(ErrorCode::NotStarted)]);
        assert!(plan.takers.is_empty());
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
}
