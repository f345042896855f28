//! What each write tells the screens: the events built from the rows it wrote, in one place.

use crate::{
    model::{DropId, LiveEvent, ProductDrop, QueueLine, Reservation},
    server::{
        events::Envelope,
        store::{
            rows::{from_ms, ReservationRow},
            tickets::TicketRow,
        },
    },
};

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
    Envelope::public(LiveEvent::stock_of(drop))
}

/// The owner-only notice that a hold expired.
pub(super) fn expired_event(hold: &ReservationRow) -> Envelope {
    Envelope::private(
        hold.user_id,
        LiveEvent::ReservationExpired {
            reservation_id: hold.id,
            drop_id: hold.drop_id,
        },
    )
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
pub(super) fn line_event(drop_id: DropId, line: QueueLine, now_ms: i64) -> Envelope {
    Envelope::public(LiveEvent::QueueMoved {
        drop_id,
        line,
        at: from_ms(now_ms),
    })
}
