//! Storage: what Dropline needs from a database, one implementation per database.
//!
//! The rest of the server asks through the operation traits (`ops`: the reads and the writes,
//! all of them behind `Arc<dyn Store>`). A write's flow is written once (`server::sale`, and
//! beside their steps for keys and accounts) as steps of one write transaction, each concept's
//! steps a trait of its own — holds (`holds`), a queue's tickets (`queue`), a draw's (`draw`),
//! idempotency keys (`keys`), sign-ups (`accounts`) — whose SQL is written once too, with the
//! few phrases each database says its own way passed in by `sqlite.rs` and `postgres.rs`.
//! Every write runs in one transaction and makes its events visible on the
//! [`EventBus`](super::events::EventBus) only once it has committed: SQLite publishes them from
//! the committing task, PostgreSQL sends them, sealed, with `pg_notify` inside the transaction
//! (delivered by the database on commit, to every instance, through `listen.rs`).

mod accounts;
mod audit;
mod connect;
mod dialect;
pub(crate) mod draw;
mod error;
pub(crate) mod holds;
mod keys;
pub mod listen;
pub(crate) mod ops;
mod postgres;
pub(crate) mod proofs;
pub(crate) mod queue;
mod reads;
pub(crate) mod rows;
mod sqlite;
pub(crate) mod steps;
pub(crate) mod tickets;

pub(crate) use self::audit::{
    audited, final_audit_document, history_columns, history_page, later_page, AuditHead, AuditRow,
    AuditStart, HistoryRow,
};
pub use self::{
    accounts::{AccountWrites, Ceremony, CeremonyFor, LoginKey, NewAccount, NewLogin},
    connect::{connect, kept_secret},
    error::StoreError,
    keys::{KeyClaim, KeyRequest, KeyWrites, Settlement, StoredResponse},
    ops::{
        Account, AdmitPass, Cancelled, DrawWrites, HandOnPass, Progress, QueueWrites, Reads,
        Reserve, ReserveOutcome, Reserved, SizeAudit, StockAudit, Store, Writes,
    },
    postgres::PgStore,
    rows::{Seed, SessionId, SessionRecord, EXPIRY_BATCH},
    sqlite::SqliteStore,
    tickets::{Joiner, Spend},
};
