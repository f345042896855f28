//! A queue's or a draw's audit: the final document, and what came after it, page by page.

use axum::{extract::State, http::HeaderMap, response::Response, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{Id, Params, Result};
use crate::{
    model::{ApiError, Audit, AuditHistory, AuditLater, DropId, EntryProof},
    server::{http::error::ErrorBody, AppState},
};

/// A queue's order, for anyone to check.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct AuditReply {
    audit: Audit,
}

/// What happened after the audit was final, one page.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct LaterReply {
    later: AuditLater,
}

/// Every ticket's story, one page.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct HistoryReply {
    history: AuditHistory,
}

/// A ticket's proof of being in the sealed entry list.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct ProofReply {
    proof: EntryProof,
}

/// A queue's or a draw's audit
///
/// Final from go-live (a draw: the draw) on, and the same bytes ever after, so clients and
/// caches may keep it (`ETag`, `Cache-Control: immutable`; `If-None-Match` gets 304). The seed
/// behind the `seed_sha256` published when the drop was created, and every ticket placed at
/// go-live with its place, no user ids or names. The lobby (tickets that joined before
/// `starts_at`) is ordered by ascending `sha256_hex(seed + ":" + id)`; tickets that joined after
/// `starts_at` but before the lobby was put in order follow in the order they joined. Anyone
/// can recompute it. A draw's tickets are its entries, all ordered by that key; `winners` are
/// the entries that won at the draw (the first `units` places). What happened after go-live
/// is `GET /drops/{id}/audit/later`; every ticket's whole story is `GET /drops/{id}/audit/tickets`.
#[utoipa::path(
    get,
    path = "/drops/{id}/audit",
    tag = "queue",
    params(
        ("id" = i64, Path, description = "The drop's id."),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of a copy already held."),
    ),
    responses(
        (status = 200, description = "The final audit.", body = AuditReply,
            headers(
                ("ETag" = String, description = "The SHA-256 of the document, quoted: the same on every instance."),
                ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`: it never changes."),
                ("Dropline-Signature" = String, description = "Ed25519 (hex) by the audit's `receipt_key` over `dropline audit v1\\n` and the document's bytes (uncompressed): two different documents signed for one drop prove the server showed different audits."),
            )),
        (status = 304, description = "The copy named in `If-None-Match` is this one.",
            headers(
                ("ETag" = String, description = "The SHA-256 of the document, quoted."),
                ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`."),
            )),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_STARTED` (before go-live) or `NOT_A_QUEUE`.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn queue_audit(
    State(state): State<AppState>,
    Id(drop): Id<DropId>,
    headers: HeaderMap,
) -> Result<Response> {
    let audit = state
        .audits
        .get(&state.inventory, &state.receipts, drop)
        .await?;
    Ok(audit.respond(&headers))
}

/// Which part of an audit's later part to answer.
#[derive(Deserialize)]
pub(in crate::server::http) struct LaterPage {
    after: Option<i64>,
    limit: Option<i64>,
}

/// The most rows one page of an audit's later part carries.
const LATER_PAGE_MAX: i64 = 1000;

/// What happened after a queue's or a draw's audit was final
///
/// A queue: the tickets that joined after go-live, each placed at the back of the line as it
/// joined (`tickets`, by place). A draw: each unit a winner left unused and the entry it passed
/// to, down the waitlist in order (`waitlist_moves`, by place). One page at a time, from place
/// `after` on: the next page starts at `next_after`, null on the last.
#[utoipa::path(
    get,
    path = "/drops/{id}/audit/later",
    tag = "queue",
    params(
        ("id" = i64, Path, description = "The drop's id."),
        ("after" = Option<i64>, Query, minimum = 0, description = "Answer places after this one (0 when left out)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many rows (1000 when left out)."),
    ),
    responses(
        (status = 200, description = "One page.", body = LaterReply),
        (status = 400, description = "`MALFORMED_REQUEST`: `after` or `limit` is not an integer.", body = ErrorBody),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_STARTED` (before go-live) or `NOT_A_QUEUE`.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: `after` is negative or `limit` is not 1 to 1000.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn audit_later(
    State(state): State<AppState>,
    Id(drop): Id<DropId>,
    Params(page): Params<LaterPage>,
) -> Result<Json<LaterReply>> {
    let (after, limit) = page.checked()?;
    let later = state.inventory.audit_later(drop, after, limit).await?;
    Ok(Json(LaterReply { later }))
}

impl LaterPage {
    /// (`after`, `limit`), checked, with their defaults (0, the most a page carries).
    fn checked(&self) -> std::result::Result<(i64, i64), ApiError> {
        let after = self.after.unwrap_or(0);
        if after < 0 {
            return Err(ApiError::invalid("after", "after must be 0 or more"));
        }
        let limit = self.limit.unwrap_or(LATER_PAGE_MAX);
        if !(1..=LATER_PAGE_MAX).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be between 1 and {LATER_PAGE_MAX}"),
            ));
        }
        Ok((after, limit))
    }
}

/// Every ticket a queue or a draw issued, with its story
///
/// Each ticket ever issued, in the order they were issued, whatever became of it: when it
/// joined, whether it is in the sealed list, its place, its state, and when it left (a draw:
/// withdrew), had its turn, ended (used, lapsed, closed, lost) or won a unit, and the new
/// ticket it came back as. With the final audit, enough to check every place, admission and
/// waitlist move (`cargo run -p dropline-verify`). Live until the sale ends. One page at a
/// time: the next starts at `next_after`, null on the last.
#[utoipa::path(
    get,
    path = "/drops/{id}/audit/tickets",
    tag = "queue",
    params(
        ("id" = i64, Path, description = "The drop's id."),
        ("after" = Option<i64>, Query, minimum = 0, description = "Answer tickets after this position (a page's `next_after`; 0 when left out)."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many tickets (1000 when left out)."),
    ),
    responses(
        (status = 200, description = "One page.", body = HistoryReply),
        (status = 400, description = "`MALFORMED_REQUEST`: `after` or `limit` is not an integer.", body = ErrorBody),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_STARTED` (before go-live) or `NOT_A_QUEUE`.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: `after` is negative or `limit` is not 1 to 1000.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn audit_tickets(
    State(state): State<AppState>,
    Id(drop): Id<DropId>,
    Params(page): Params<LaterPage>,
) -> Result<Json<HistoryReply>> {
    let (after, limit) = page.checked()?;
    let history = state.inventory.audit_history(drop, after, limit).await?;
    Ok(Json(HistoryReply { history }))
}

/// The proof that a ticket is in the sealed entry list
///
/// Beacon mode: from the moment the entry list is sealed at go-live (a draw: at the draw),
/// before the drand round that orders it exists, anyone can check that a ticket is in it:
/// `path` is the RFC 6962 audit path of leaf `index` (the ticket's id, the list sorted by
/// bytes) up to `root`, the Merkle root the final audit publishes, over `count` leaves.
#[utoipa::path(
    get,
    path = "/drops/{id}/entries/{ticket}/proof",
    tag = "queue",
    params(
        ("id" = i64, Path, description = "The drop's id."),
        ("ticket" = String, Path, description = "The ticket's (the entry's) public id."),
    ),
    responses(
        (status = 200, description = "The ticket is in the sealed list.", body = ProofReply),
        (status = 400, description = "`MALFORMED_REQUEST`: the id is not an integer.", body = ErrorBody),
        (status = 404, description = "`DROP_NOT_FOUND`, or `TICKET_NOT_FOUND`: no such ticket in the sealed list.", body = ErrorBody),
        (status = 409, description = "`NOT_SEALED` (before the seal, or a drop ordered by its seed) or `NOT_A_QUEUE`.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn entry_proof(
    State(state): State<AppState>,
    Id((drop, ticket)): Id<(DropId, String)>,
) -> Result<Json<ProofReply>> {
    let proof = state.inventory.entry_proof(drop, &ticket).await?;
    Ok(Json(ProofReply { proof }))
}
