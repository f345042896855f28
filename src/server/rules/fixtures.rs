//! What the rules' tests decide on: a drop as a write finds it, a buyer's checks, a hold.

use crate::{
    model::{DropId, ReservationId, UserId},
    server::store::rows::{BuyerCheck, HoldCheck, LockedDrop},
};

pub(super) const NOW: i64 = 1_000_000;

pub(super) fn drop(available_stock: i64) -> LockedDrop {
    LockedDrop {
        available_stock,
        max_per_user: 1,
        starts_at: NOW - 1,
        sale_mode: "first_come".into(),
        now: NOW,
        ..LockedDrop::default()
    }
}

pub(super) fn buyer(id: i64) -> BuyerCheck {
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

pub(super) fn users(ids: &[i64]) -> Vec<UserId> {
    ids.iter().copied().map(UserId).collect()
}

pub(super) fn hold(user: i64, status: &str, expires_at: i64) -> HoldCheck {
    HoldCheck {
        id: ReservationId(9),
        drop_id: DropId(1),
        user_id: UserId(user),
        status: status.into(),
        expires_at,
        now: NOW,
    }
}
