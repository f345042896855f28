//! One committed event and who may see it.

use serde::{Deserialize, Serialize};

use crate::model::{LiveEvent, UserId};

/// One event and who may see it: everyone, or only the user it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// `Some(user)` for owner-only events.
    pub to: Option<UserId>,
    pub event: LiveEvent,
}

impl Envelope {
    /// An event every client may see.
    pub fn public(event: LiveEvent) -> Self {
        Self { to: None, event }
    }

    /// An event only `user`'s sockets may see.
    pub fn private(user: UserId, event: LiveEvent) -> Self {
        Self {
            to: Some(user),
            event,
        }
    }
}

#[cfg(test)]
impl Envelope {
    /// Buyer `user`'s hold `reservation_id` of drop 1 expired: an owner-only event, for tests.
    pub(crate) fn hold_expired(user: i64, reservation_id: i64) -> Self {
        Self::private(
            UserId(user),
            LiveEvent::ReservationExpired {
                reservation_id: crate::model::ReservationId(reservation_id),
                drop_id: crate::model::DropId(1),
            },
        )
    }
}
