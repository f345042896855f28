//! A database's write transaction, as the flows see it: begun (on SQLite, at the writer's
//! turn), the drop row locked first, committed with its events or rolled back. The steps of
//! each concept (holds, queue, draw, keys, accounts) are their own traits beside them, whose
//! SQL is written once for both databases (`holds.rs`, `queue.rs`, ...); what only one
//! database says its own way stays in `sqlite.rs` and `postgres.rs`.

use async_trait::async_trait;

use crate::server::{events::Envelope, settings::BeaconChain};

/// One write transaction of a database. Dropping it unfinished rolls it back.
#[async_trait]
pub(crate) trait WriteTx: Send + Sized {
    /// Takes the lock that lets one instance at a time decide whether to seed.
    async fn lock_seeding(&mut self) -> Result<(), sqlx::Error>;
    /// Commits, then makes `events` visible to every subscriber — never before the commit.
    async fn commit(self, events: Vec<Envelope>) -> Result<(), sqlx::Error>;
    /// Rolls back: nothing was written (a refusal, or nothing to do).
    async fn rollback(self) -> Result<(), sqlx::Error>;
}

/// What a store's new drops commit to and its final audits name, the same for both databases:
/// the drand chain that orders new queues and draws (`server::beacon`), and the public key of
/// receipts (`server::receipts`).
#[derive(Clone, Debug, Default)]
pub struct Commitments {
    pub beacon: Option<BeaconChain>,
    pub receipt_key: Option<String>,
}

/// A database that can run [`WriteTx`]s.
#[async_trait]
pub(crate) trait Dialect: Send + Sync {
    type Tx: WriteTx;
    /// Begins a write transaction (on SQLite, after waiting for the writer's turn).
    async fn begin_write(&self) -> Result<Self::Tx, sqlx::Error>;
    /// What new drops commit to and final audits name.
    fn commitments(&self) -> &Commitments;
    /// The drand chain new queues and draws are ordered by, if a beacon is set.
    fn beacon(&self) -> Option<&BeaconChain> {
        self.commitments().beacon.as_ref()
    }
}
