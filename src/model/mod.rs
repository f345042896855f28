//! Types shared by the server and the browser, one file per concept: row ids, an account's
//! checks, a drop, how it is sold (a queue's line, a ticket), its audit, holds and purchases,
//! what an admin sends to create one, the live events, and the stable refusal codes.

mod account;
mod audit;
mod drop;
mod error;
mod events;
mod hold;
mod ids;
mod new_drop;
mod sale;

#[cfg(feature = "ssr")]
pub use self::new_drop::validate_name;
pub use self::{
    account::{
        check_password_length, validate_username, PasskeyOptions, SignInWays, MAX_PASSWORD_BYTES,
    },
    audit::{
        receipt_message, Audit, AuditBeacon, AuditHistory, AuditLater, AuditTicket, EntryProof,
        OrderSource, Receipt, SealedEntries, TicketHistory, WaitlistMove,
    },
    drop::{DropSize, ProductDrop, Purchaser},
    error::{ApiError, ErrorCode, Refusal},
    events::LiveEvent,
    hold::{Purchase, Reservation, ReservationStatus, User},
    ids::{DropId, PurchaseId, ReservationId, UserId},
    new_drop::{
        parse_price, parse_size_run, NewDrop, NewSize, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS,
        MAX_PRICE_CENTS, MAX_SIZES, MAX_SIZE_CHARS, MAX_STOCK, ONE_SIZE, QUEUE_LOBBY_MINUTES,
    },
    sale::{QueueLine, SaleMode, Ticket, TicketState},
};
