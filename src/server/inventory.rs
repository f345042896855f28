//! The domain operations every entry point (REST, server functions) calls: input checks, the
//! store call, and what follows a commit (waking the expiry worker).

use std::{net::IpAddr, sync::Arc};

use super::{
    batch::{Batcher, Joins, KeyClaims, Reserves, Settlements},
    beacon::{self, Round},
    metrics::Metrics,
    rules,
    settings::{HoldTerms, NetworkCaps},
    store::{
        Cancelled, Joiner, KeyClaim, KeyRequest, Reserve, Reserved, Settlement, Spend, StockAudit,
        Store, StoreError,
    },
    workers::expiry::ExpiryClock,
};
use crate::model::{
    ApiError, AuditHistory, AuditLater, DropId, EntryProof, ErrorCode, NewDrop, NewSize,
    ProductDrop, Purchase, Reservation, ReservationId, SaleMode, Ticket, User, UserId,
};

/// Runs a write to completion even if the caller goes away: a client that disconnects
/// mid-request must not leave a committed change whose events were never published.
async fn detached<T: Send + 'static>(
    write: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::spawn(write).await {
        Ok(result) => Ok(result?),
        Err(join) => {
            tracing::error!(error = %join, "write task failed");
            Err(ApiError::refusal(ErrorCode::Internal))
        }
    }
}

/// The inventory: drops, holds and purchases. Cheap to clone.
#[derive(Clone)]
pub struct Inventory {
    store: Arc<dyn Store>,
    expiry: Arc<ExpiryClock>,
    reserves: Arc<Batcher<Reserves>>,
    joins: Arc<Batcher<Joins>>,
    key_claims: Arc<Batcher<KeyClaims>>,
    settlements: Arc<Batcher<Settlements>>,
    metrics: Metrics,
}

impl Inventory {
    /// Wraps a store; holds are taken on `terms`; a drop takes at most `caps` tickets from one
    /// network; one caller may have `keys_per_caller`
    /// idempotency keys live; concurrent reserves of one drop share a transaction, up to
    /// `reserve_batch_max` of them (1: every reserve has its own), and so do concurrent joins of
    /// one queue and the claims and settlements of idempotency keys.
    pub fn new(
        store: Arc<dyn Store>,
        expiry: Arc<ExpiryClock>,
        terms: HoldTerms,
        caps: NetworkCaps,
        keys_per_caller: u32,
        reserve_batch_max: usize,
        metrics: Metrics,
    ) -> Self {
        Self {
            reserves: Batcher::new(
                store.clone(),
                Reserves { terms },
                reserve_batch_max,
                metrics.clone(),
            ),
            joins: Batcher::new(
                store.clone(),
                Joins { caps },
                reserve_batch_max,
                metrics.clone(),
            ),
            key_claims: Batcher::new(
                store.clone(),
                KeyClaims {
                    per_scope: i64::from(keys_per_caller),
                },
                reserve_batch_max,
                metrics.clone(),
            ),
            settlements: Batcher::new(
                store.clone(),
                Settlements,
                reserve_batch_max,
                metrics.clone(),
            ),
            store,
            expiry,
            metrics,
        }
    }

    /// The underlying store (for workers and health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>, ApiError> {
        Ok(self.store.user(id).await?)
    }

    /// Creates a drop after checking every field.
    pub async fn create_drop(&self, new: NewDrop) -> Result<ProductDrop, ApiError> {
        let new = new.validate()?;
        let store = self.store.clone();
        detached(async move { store.create_drop(&new).await }).await
    }

    pub async fn list_drops(&self) -> Result<Vec<ProductDrop>, ApiError> {
        Ok(self.store.list_drops().await?)
    }

    pub async fn drop(&self, id: DropId) -> Result<ProductDrop, ApiError> {
        self.store
            .get_drop(id)
            .await?
            .ok_or_else(|| ApiError::refusal(ErrorCode::DropNotFound))
    }

    /// Takes one unit of a drop, of the size asked for, for the user, for the configured hold
    /// time (in a batch with the other reserves of the drop that arrive while one is being
    /// written).
    pub async fn reserve(&self, drop: DropId, ask: Reserve) -> Result<Reserved, ApiError> {
        let outcome = self.reserves.submit(drop, ask).await;
        let label = match &outcome {
            Ok(_) => "HELD",
            Err(e) => e.code.as_str(),
        };
        self.metrics.reserves.with_label_values(&[label]).inc();
        let reserved = outcome?;
        self.expiry.hold_created(reserved.reservation.expires_at);
        Ok(reserved)
    }

    pub async fn purchase(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Purchase, ApiError> {
        let store = self.store.clone();
        detached(async move { store.purchase(reservation, user).await }).await
    }

    pub async fn cancel(
        &self,
        reservation: ReservationId,
        user: UserId,
    ) -> Result<Cancelled, ApiError> {
        let store = self.store.clone();
        detached(async move { store.cancel(reservation, user).await }).await
    }

    pub async fn user_reservations(&self, user: UserId) -> Result<Vec<Reservation>, ApiError> {
        Ok(self.store.user_reservations(user).await?)
    }

    pub async fn audit(&self, drop: DropId) -> Result<StockAudit, ApiError> {
        Ok(self.store.audit(drop).await?)
    }

    /// Joins the user to a queue drop's line (`mode` queue) or enters them in a draw (`mode`
    /// draw), asking from address `from` with `proof` (the checked proof of work a new ticket
    /// spends, if the doors ask one): their ticket, and whether it is new (in a batch with the
    /// other joins of the drop that arrive while one is being written).
    pub async fn join(
        &self,
        drop: DropId,
        mode: SaleMode,
        user: UserId,
        from: Option<IpAddr>,
        proof: Option<Spend>,
    ) -> Result<(Ticket, bool), ApiError> {
        let network = from.map(rules::network_of);
        let joiner = Joiner {
            user,
            network,
            proof,
        };
        self.joins.submit((drop, mode), joiner).await
    }

    /// Takes the user out of a queue drop's line, or withdraws their entry in a draw.
    pub async fn leave(
        &self,
        drop: DropId,
        mode: SaleMode,
        user: UserId,
    ) -> Result<Ticket, ApiError> {
        let store = self.store.clone();
        detached(async move { store.leave_queue(drop, mode, user).await }).await
    }

    /// The user's ticket in a queue drop's line, or their entry in a draw.
    pub async fn ticket(&self, drop: DropId, user: UserId) -> Result<Ticket, ApiError> {
        self.store
            .ticket(drop, user)
            .await?
            .ok_or_else(|| ApiError::refusal(ErrorCode::TicketNotFound))
    }

    /// Every ticket of the user, by drop.
    pub async fn user_tickets(&self, user: UserId) -> Result<Vec<(DropId, Ticket)>, ApiError> {
        Ok(self.store.user_tickets(user).await?)
    }

    /// The final audit of a queue's order or a draw's (`{"audit": ...}`), once it has gone
    /// live.
    pub async fn final_audit(&self, drop: DropId) -> Result<String, ApiError> {
        Ok(self.store.final_audit(drop).await?)
    }

    /// What happened to a queue or a draw after its final audit, by place from `after` on (at
    /// most `limit` of it).
    pub async fn audit_later(
        &self,
        drop: DropId,
        after: i64,
        limit: i64,
    ) -> Result<AuditLater, ApiError> {
        Ok(self.store.audit_later(drop, after, limit).await?)
    }

    /// Every ticket of a queue or a draw with its story, in the order they were issued, after
    /// position `after` (at most `limit` of them).
    pub async fn audit_history(
        &self,
        drop: DropId,
        after: i64,
        limit: i64,
    ) -> Result<AuditHistory, ApiError> {
        Ok(self.store.audit_history(drop, after, limit).await?)
    }

    /// The proof that `ticket` is in the drop's sealed entry list (beacon mode, from the seal
    /// on): `NOT_SEALED` before, `TICKET_NOT_FOUND` for a ticket not in it.
    pub async fn entry_proof(&self, drop: DropId, ticket: &str) -> Result<EntryProof, ApiError> {
        let sealed = self.store.sealed_entries(drop).await?;
        let (index, path) = rules::entry_proof(&sealed.ids, ticket)
            .ok_or_else(|| ApiError::refusal(ErrorCode::TicketNotFound))?;
        Ok(EntryProof {
            ticket: ticket.to_string(),
            index,
            count: sealed.count,
            root: sealed.root,
            sealed_at: sealed.sealed_at,
            path,
        })
    }

    /// Keeps the round drop `drop` waits for from a signature an operator pastes (hex), as
    /// the queue worker keeps a fetched one: only once its entry list is sealed and the round
    /// is published, and only if it verifies under the key the drop was created with
    /// (`INVALID_INPUT` on `signature` otherwise). Answers the round kept.
    pub async fn paste_beacon(&self, drop: DropId, signature: &str) -> Result<Round, ApiError> {
        let due = self.store.beacons_due().await?;
        let Some((_, round, _, key)) = due.into_iter().find(|(id, ..)| *id == drop) else {
            return Err(ApiError::refusal(ErrorCode::BeaconNotDue));
        };
        let checked = beacon::check_under(&key, round, signature)
            .map_err(|error| ApiError::invalid("signature", error.to_string()))?;
        let kept = self
            .store
            .keep_beacon(drop, checked.round, &checked.signature, &checked.randomness)
            .await?;
        if !kept {
            return Err(ApiError::refusal(ErrorCode::BeaconNotDue));
        }
        tracing::info!(drop = %drop, round, "beacon round pasted and kept: the order is decided");
        Ok(checked)
    }

    /// Claims a request's idempotency key (in a batch with the other claims that arrive while
    /// one is being written).
    pub async fn claim_key(&self, request: KeyRequest) -> Result<KeyClaim, ApiError> {
        self.key_claims.submit((), request).await
    }

    /// Records the answer to a claimed key, or releases it (in a batch like the claims).
    pub async fn settle_key(&self, settlement: Settlement) -> Result<(), ApiError> {
        self.settlements.submit((), settlement).await
    }

    /// Seeds the demo drops when the database has none (once, however many instances start
    /// together).
    pub async fn seed_demo(&self) -> Result<(), ApiError> {
        let drops = demo_drops()
            .into_iter()
            .map(NewDrop::validate)
            .collect::<Result<Vec<_>, _>>()?;
        let store = self.store.clone();
        let seeded = detached(async move { store.seed(&drops).await }).await?;
        if !seeded.is_empty() {
            tracing::info!(drops = seeded.len(), "seeded demo drops");
        }
        Ok(())
    }
}

/// A few drops so a fresh install has something to show.
fn demo_drops() -> Vec<NewDrop> {
    let drop = |name: &str, description: &str, image: &str, price_cents, total_stock| NewDrop {
        name: name.into(),
        description: Some(description.into()),
        image: Some(image.into()),
        price_cents,
        total_stock,
        max_per_user: Some(1),
        ..NewDrop::default()
    };
    let size = |label: &str, stock| NewSize {
        label: label.into(),
        stock,
    };
    vec![
        NewDrop {
            sizes: vec![
                size("EU 40", 5),
                size("EU 41", 8),
                size("EU 42", 12),
                size("EU 43", 12),
                size("EU 44", 8),
                size("EU 45", 5),
            ],
            ..drop(
                "Aurora Runner OG",
                "The 2014 runner, back in its launch colourway. Numbered box.",
                "/images/aurora-runner.svg",
                18_000,
                50,
            )
        },
        drop(
            "Midnight Court Low",
            "Suede low-top in midnight blue with a gum sole.",
            "/images/midnight-court.svg",
            14_500,
            20,
        ),
        drop(
            "Solar Flare Hi",
            "High-top in safety orange. One per buyer, no restock.",
            "/images/solar-flare.svg",
            21_000,
            5,
        ),
    ]
}
