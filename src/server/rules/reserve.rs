//! Who of a batch of reserves gets a unit, and why a purchase or cancel is refused. Plain
//! functions of what the store read under its lock, so they can be tested without a database;
//! the reserve, purchase and cancel flows (`sale::holds`) call them between their reads and
//! their writes.

use std::collections::{HashMap, HashSet};

use crate::{
    model::{ErrorCode, Refusal, SaleMode, UserId},
    server::{
        settings::HoldTerms,
        store::{
            holds::NewHold,
            rows::{BuyerCheck, HoldCheck, LockedDrop, SizeRow},
            Reserve,
        },
    },
};

/// How a reserve batch answers its users before any row is written: a refusal for some, a
/// unit of the size they asked for (and a hold to insert) for the others.
#[derive(Debug, PartialEq, Eq)]
pub struct BatchPlan {
    /// Per user, in batch order: `None` for a user who gets a unit, else the refusal.
    pub refusals: Vec<Option<Refusal>>,
    /// The holds to insert, one per user who gets a unit, in batch order.
    pub takers: Vec<NewHold>,
}

/// The users of a batch, each once, in first-come order (the set the checks are read for).
pub fn distinct_users(users: impl IntoIterator<Item = UserId>) -> Vec<UserId> {
    let mut seen = HashSet::new();
    users.into_iter().filter(|u| seen.insert(*u)).collect()
}

/// The size a reserve takes its unit from: the one it names, whatever its case (a drop's
/// labels differ by more than case), or a drop's only size.
fn size_of<'a>(ask: &Reserve, sizes: &'a [SizeRow]) -> Result<&'a SizeRow, ErrorCode> {
    match (&ask.size, sizes) {
        (None, [only]) => Ok(only),
        (None, _) => Err(ErrorCode::SizeRequired),
        (Some(label), _) => sizes
            .iter()
            .find(|size| size.label.to_lowercase() == label.to_lowercase())
            .ok_or(ErrorCode::SizeNotFound),
    }
}

/// Decides every user's outcome in one batch: first come, first served, as if each reserve ran
/// alone after the ones before it. `drop` is `None` when the drop does not exist; `sizes` are
/// its sizes with their stock; `checks` hold what was read for each distinct user; `terms` say
/// how long a buyer who gave a hold back waits, and how many they may give back. A buyer may
/// hold one unit of a drop at a time, whatever its size, and `max_per_user` counts the drop.
pub fn plan_batch(
    asks: &[Reserve],
    drop: Option<&LockedDrop>,
    sizes: &[SizeRow],
    checks: &[BuyerCheck],
    terms: &HoldTerms,
) -> BatchPlan {
    let whole_batch = |code: ErrorCode| BatchPlan {
        refusals: vec![Some(code.into()); asks.len()],
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
    let mut left: HashMap<&str, i64> = sizes
        .iter()
        .map(|size| (size.label.as_str(), size.available_stock))
        .collect();
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
    let refusals = asks
        .iter()
        .map(|ask| {
            let user = ask.user;
            let size = size_of(ask, sizes);
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
                Some(_) => match size {
                    Err(code) => Some(code.into()),
                    Ok(size) => match left.get_mut(size.label.as_str()) {
                        Some(units) if *units > 0 => {
                            *units -= 1;
                            holding.insert(user);
                            takers.push(NewHold {
                                user_id: user,
                                size: size.label.clone(),
                            });
                            None
                        }
                        _ => Some(ErrorCode::OutOfStock.into()),
                    },
                },
            };
            refusal
        })
        .collect();
    BatchPlan { refusals, takers }
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
    use crate::{
        model::ApiError,
        server::rules::{
            fixtures::{buyer, drop, hold, users, NOW},
            queue::may_join,
        },
    };

    const TERMS: HoldTerms = HoldTerms {
        ttl: std::time::Duration::from_secs(60),
        cooldown: std::time::Duration::from_secs(60),
        max_released: 3,
    };

    /// A batch of reserves of a one-size drop (as many units as the drop has).
    fn plan_of(users: &[UserId], drop: Option<&LockedDrop>, checks: &[BuyerCheck]) -> BatchPlan {
        let sizes = drop.map(|d| vec![size("One size", d.available_stock)]);
        plan_batch(
            &any_size(users),
            drop,
            sizes.as_deref().unwrap_or_default(),
            checks,
            &TERMS,
        )
    }

    fn any_size(users: &[UserId]) -> Vec<Reserve> {
        users.iter().copied().map(Reserve::any).collect()
    }

    fn size(label: &str, available_stock: i64) -> SizeRow {
        SizeRow {
            drop_id: crate::model::DropId(1),
            label: label.into(),
            total_stock: available_stock,
            available_stock,
            version: 0,
        }
    }

    fn ask(user: i64, size: Option<&str>) -> Reserve {
        Reserve {
            user: UserId(user),
            size: size.map(Into::into),
        }
    }

    /// Who gets a unit, in batch order.
    fn taker_ids(plan: &BatchPlan) -> Vec<UserId> {
        plan.takers.iter().map(|hold| hold.user_id).collect()
    }

    /// Each user's refusal code, in batch order.
    fn codes(plan: &BatchPlan) -> Vec<Option<ErrorCode>> {
        plan.refusals.iter().map(|r| r.map(|r| r.code)).collect()
    }

    #[test]
    fn the_first_buyers_get_the_last_units() {
        let plan = plan_of(
            &users(&[1, 2, 3]),
            Some(&drop(2)),
            &[buyer(1), buyer(2), buyer(3)],
        );
        assert_eq!(taker_ids(&plan), users(&[1, 2]));
        assert_eq!(codes(&plan), vec![None, None, Some(ErrorCode::OutOfStock)]);
    }

    #[test]
    fn a_buyer_named_twice_gets_one_hold() {
        let plan = plan_of(&users(&[1, 1, 2]), Some(&drop(5)), &[buyer(1), buyer(2)]);
        assert_eq!(taker_ids(&plan), users(&[1, 2]));
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
        assert_eq!(taker_ids(&plan), users(&[6]));
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
        assert_eq!(taker_ids(&plan), users(&[2]));
        // Without a cooldown the same buyer may take the unit again at once.
        let none = HoldTerms::lasting(TERMS.ttl);
        let again = plan_batch(
            &any_size(&users(&[1])),
            Some(&drop(5)),
            &[size("One size", 5)],
            &[cancelled(1, NOW)],
            &none,
        );
        assert_eq!(taker_ids(&again), users(&[1]));
    }

    #[test]
    fn distinct_users_keep_their_first_place() {
        assert_eq!(distinct_users(users(&[3, 1, 3, 2, 1])), users(&[3, 1, 2]));
    }

    #[test]
    fn each_size_sells_out_on_its_own_and_the_batch_takes_from_several() {
        let sizes = [size("EU 41", 1), size("EU 42", 2), size("EU 43", 0)];
        let asks = [
            ask(1, Some("EU 41")),
            ask(2, Some("EU 41")),
            ask(3, Some("EU 42")),
            ask(4, Some("EU 43")),
            ask(5, Some("eu 42")),
            ask(6, Some("EU 42")),
        ];
        let checks: Vec<BuyerCheck> = (1..=6).map(buyer).collect();
        let plan = plan_batch(&asks, Some(&drop(3)), &sizes, &checks, &TERMS);
        assert_eq!(
            codes(&plan),
            vec![
                None,
                Some(ErrorCode::OutOfStock),
                None,
                Some(ErrorCode::OutOfStock),
                None,
                Some(ErrorCode::OutOfStock),
            ]
        );
        assert_eq!(taker_ids(&plan), users(&[1, 3, 5]));
        let sizes: Vec<&str> = plan.takers.iter().map(|h| h.size.as_str()).collect();
        assert_eq!(sizes, vec!["EU 41", "EU 42", "EU 42"]);
    }

    #[test]
    fn a_reserve_names_a_size_the_drop_has_unless_it_has_one() {
        let sizes = [size("US 9", 5), size("US 10", 5)];
        let checks: Vec<BuyerCheck> = (1..=3).map(buyer).collect();
        let asks = [ask(1, None), ask(2, Some("US 11")), ask(3, Some("US 10"))];
        let plan = plan_batch(&asks, Some(&drop(10)), &sizes, &checks, &TERMS);
        assert_eq!(
            codes(&plan),
            vec![
                Some(ErrorCode::SizeRequired),
                Some(ErrorCode::SizeNotFound),
                None
            ]
        );
        assert_eq!(plan.takers[0].size, "US 10");
        // One size needs no name; naming it works too.
        let one = [size("One size", 2)];
        let asks = [ask(1, None), ask(2, Some("One size"))];
        let plan = plan_batch(&asks, Some(&drop(2)), &one, &checks, &TERMS);
        assert_eq!(codes(&plan), vec![None, None]);
    }

    #[test]
    fn one_hold_per_buyer_whatever_the_size() {
        let sizes = [size("US 9", 5), size("US 10", 5)];
        let asks = [ask(1, Some("US 9")), ask(1, Some("US 10"))];
        let plan = plan_batch(&asks, Some(&drop(10)), &sizes, &[buyer(1)], &TERMS);
        assert_eq!(codes(&plan), vec![None, Some(ErrorCode::AlreadyReserved)]);
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
        assert_eq!(taker_ids(&plan), users(&[1]));
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
}
