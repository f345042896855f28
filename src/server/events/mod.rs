//! The event bus (`bus`): committed changes fan out to every WebSocket of this instance; and
//! the seal (`seal`) on what instances send each other through PostgreSQL (the LISTEN bridge
//! itself is the PostgreSQL store's, `store::listen`).

mod bus;
mod envelope;
mod seal;

pub(crate) use self::seal::Heard;
pub use self::{
    bus::{
        refusal_counter, BusMessage, EventBus, OwnerEvents, StockBoard, StockFrame,
        MAX_VERSION_LEAP,
    },
    envelope::Envelope,
    seal::{EventKey, NOTIFY_PAYLOAD_BYTES, SEAL_WINDOW_MS},
};
