//! A queue drop's line and a draw drop's entries: join or enter, where the caller stands,
//! leave or withdraw.

use axum::{extract::State, http::StatusCode, Json};
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::body::{created_if, Id, Result};
use crate::{
    model::{DropId, Receipt, SaleMode, Ticket},
    server::{
        doors::Door,
        http::{
            error::ErrorBody,
            extract::{ClientAddr, Proof, SignedIn},
        },
        AppState,
    },
};

/// The caller's place in a drop's queue; joining adds a signed receipt for it.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct TicketReply {
    ticket: Ticket,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<Receipt>,
}

/// A proof-of-work challenge for the caller's join or entry.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct ChallengeReply {
    /// ALTCHA's PoW v2 challenge (`{"parameters", "signature"}`), or null when this shop asks
    /// no proof.
    #[schema(value_type = Option<Object>)]
    pub(in crate::server::http) challenge: Option<altcha::Challenge>,
}

/// The caller's entry in a drop's draw; entering adds a signed receipt for it.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct EntryReply {
    entry: Ticket,
    #[serde(skip_serializing_if = "Option::is_none")]
    receipt: Option<Receipt>,
}

/// Join a drop's queue
///
/// A drop sold through a queue (`sale_mode` `queue`) takes reserves only from buyers whose
/// turn has come. Joining from `queue_opens_at` on puts the caller in its lobby; at
/// `starts_at` the lobby is put in a random order anyone can check (see the audit), and later
/// arrivals join at the back. Joining again answers the same ticket.
#[utoipa::path(
    post,
    path = "/drops/{id}/queue",
    tag = "queue",
    params(
        ("id" = i64, Path, description = "The drop's id."),
        ("Dropline-Proof" = Option<String>, Header, description = "The solved proof of work (see `GET /drops/{id}/challenge`): base64 of `{\"challenge\", \"solution\"}`."),
    ),
    security(("session" = [])),
    responses(
        (status = 201, description = "In line.", body = TicketReply),
        (status = 200, description = "Already in line: the same ticket.", body = TicketReply),
        (status = 403, description = "`PROOF_REQUIRED` (no proof of work sent), `PROOF_INVALID` (used already, expired, for another drop or buyer, or not a solution) or `ACCOUNT_TOO_NEW` (the drop takes only accounts made before its `accounts_before`).", body = ErrorBody),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_A_QUEUE` (the drop is first come, first served), `QUEUE_NOT_OPEN` (before `queue_opens_at`), `OUT_OF_STOCK` (sold out: the queue has closed) or `NETWORK_CAP_REACHED` (the drop has taken its cap of tickets from the caller's network: an IPv4 /24 or an IPv6 /64).", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn join_queue(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    ClientAddr(from): ClientAddr,
    Proof(proof): Proof,
    Id(drop): Id<DropId>,
) -> Result<(StatusCode, Json<TicketReply>)> {
    let spend = state
        .doors
        .check(Door::Join { drop, buyer: user }, proof.as_deref())?;
    let (ticket, new) = state
        .inventory
        .join(drop, SaleMode::Queue, user, from, spend)
        .await?;
    let receipt = Some(state.receipts.sign(drop, &ticket.id, Utc::now()));
    Ok((created_if(new), Json(TicketReply { ticket, receipt })))
}

/// A proof-of-work challenge for joining or entering a drop
///
/// Joining a queue and entering a draw each take a proof of work, so that a thousand accounts
/// cost a thousand solves: fetch a challenge (issued to the caller for this drop, good for
/// `proof_seconds`), find the `counter` whose PBKDF2-SHA256 key (password: the `nonce` bytes
/// then the counter as 4 bytes big-endian; salt: the `salt` bytes; `cost` iterations;
/// `keyLength` bytes) starts with `keyPrefix` — counting up from 0, about a second in a phone's
/// browser while the doors are quiet, longer under pressure — and send base64 of
/// `{"challenge": <as given>, "solution": {"counter", "derivedKey"}}` as the join's or entry's
/// `Dropline-Proof` header. This is ALTCHA's PoW v2; its libraries solve it (the `altcha`
/// crate's `solve_challenge`, ALTCHA's JavaScript widget). Each proof opens one door once.
#[utoipa::path(
    get,
    path = "/drops/{id}/challenge",
    tag = "queue",
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 200, description = "A fresh challenge, or null when this shop asks no proof.", body = ChallengeReply),
        (status = 401, description = "`UNAUTHENTICATED`", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn challenge(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Json<ChallengeReply> {
    Json(ChallengeReply {
        challenge: state.doors.challenge(Door::Join { drop, buyer: user }),
    })
}

/// The caller's place in a drop's queue
///
/// `place` is null until go-live puts the lobby in order; while waiting, `ahead` and
/// `eta_seconds` say how far the turn is; once `admitted`, reserve before `admitted_until`.
#[utoipa::path(
    get,
    path = "/drops/{id}/queue/me",
    tag = "queue",
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller's ticket.", body = TicketReply),
        (status = 404, description = "`TICKET_NOT_FOUND`: the caller never joined this drop's queue.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn my_ticket(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<TicketReply>> {
    let ticket = state.inventory.ticket(drop, user).await?;
    Ok(Json(TicketReply {
        ticket,
        receipt: None,
    }))
}

/// Leave a drop's queue
///
/// Gives up the caller's place (and their turn, if it had come). Joining again later is
/// allowed, at the back of the line once the drop has gone live.
#[utoipa::path(
    delete,
    path = "/drops/{id}/queue/me",
    tag = "queue",
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Out of line (or the ticket as it already stood, if it was no longer in line).", body = TicketReply),
        (status = 404, description = "`DROP_NOT_FOUND` or `TICKET_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_A_QUEUE`", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn leave_queue(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<TicketReply>> {
    let ticket = state.inventory.leave(drop, SaleMode::Queue, user).await?;
    Ok(Json(TicketReply {
        ticket,
        receipt: None,
    }))
}

/// Enter a drop's draw
///
/// A drop sold by draw (`sale_mode` `draw`) takes entries from `entries_open_at` until
/// `starts_at`, one per buyer. At `starts_at` the entries are put in the order of ascending
/// `sha256_hex(seed + ":" + id)` (see the audit): the first `total_stock` each get a hold (they
/// have `draw_claim_seconds` to buy), the rest wait in that order for a unit a winner leaves
/// unused. Entering again answers the same entry.
#[utoipa::path(
    post,
    path = "/drops/{id}/entry",
    tag = "draw",
    params(
        ("id" = i64, Path, description = "The drop's id."),
        ("Dropline-Proof" = Option<String>, Header, description = "The solved proof of work (see `GET /drops/{id}/challenge`): base64 of `{\"challenge\", \"solution\"}`."),
    ),
    security(("session" = [])),
    responses(
        (status = 201, description = "Entered.", body = EntryReply),
        (status = 200, description = "Already entered: the same entry.", body = EntryReply),
        (status = 403, description = "`PROOF_REQUIRED` (no proof of work sent), `PROOF_INVALID` (used already, expired, for another drop or buyer, or not a solution) or `ACCOUNT_TOO_NEW` (the drop takes only accounts made before its `accounts_before`).", body = ErrorBody),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_A_DRAW`, `ENTRIES_NOT_OPEN` (before `entries_open_at`), `ENTRIES_CLOSED` (the draw has been made) or `NETWORK_CAP_REACHED` (the drop has taken its cap of entries from the caller's network).", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn enter_draw(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    ClientAddr(from): ClientAddr,
    Proof(proof): Proof,
    Id(drop): Id<DropId>,
) -> Result<(StatusCode, Json<EntryReply>)> {
    let spend = state
        .doors
        .check(Door::Join { drop, buyer: user }, proof.as_deref())?;
    let (entry, new) = state
        .inventory
        .join(drop, SaleMode::Draw, user, from, spend)
        .await?;
    let receipt = Some(state.receipts.sign(drop, &entry.id, Utc::now()));
    Ok((created_if(new), Json(EntryReply { entry, receipt })))
}

/// The caller's entry in a drop's draw
///
/// `state` is `entered` before the draw; after it `won` (the caller holds a unit: see their
/// reservations), `waitlisted` (`ahead` entries are before theirs on the waitlist), `lost` or
/// `withdrawn`. `place` is the entry's place in the drawn order, null before the draw.
#[utoipa::path(
    get,
    path = "/drops/{id}/entry",
    tag = "draw",
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller's entry.", body = EntryReply),
        (status = 404, description = "`TICKET_NOT_FOUND`: the caller never entered this draw.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn my_entry(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<EntryReply>> {
    let entry = state.inventory.ticket(drop, user).await?;
    Ok(Json(EntryReply {
        entry,
        receipt: None,
    }))
}

/// Withdraw from a drop's draw
///
/// Takes the caller's entry back: before the draw it takes no part; after it, it leaves the
/// waitlist. Entering again is allowed until the draw.
#[utoipa::path(
    delete,
    path = "/drops/{id}/entry",
    tag = "draw",
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Withdrawn (or the entry as it already stood, if it had won, lost or was withdrawn).", body = EntryReply),
        (status = 404, description = "`DROP_NOT_FOUND` or `TICKET_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_A_DRAW`", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn withdraw_entry(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<EntryReply>> {
    let entry = state.inventory.leave(drop, SaleMode::Draw, user).await?;
    Ok(Json(EntryReply {
        entry,
        receipt: None,
    }))
}

/// A signed receipt for the caller's ticket
///
/// The caller's current ticket in the drop's queue or draw, signed now (Ed25519, by the key
/// every final audit names as `receipt_key`): the same receipt joining or entering answers,
/// for a buyer who joined from the web page (whose "Keep your receipt" link fetches this).
/// Kept, it proves the ticket was issued if an audit ever leaves it out (`dropline-verify URL
/// DROP receipt.json`).
#[utoipa::path(
    get,
    path = "/drops/{id}/receipt",
    tag = "queue",
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The receipt.", body = Receipt),
        (status = 404, description = "`TICKET_NOT_FOUND`: the caller has no ticket in this drop's queue or draw.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn my_receipt(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<Receipt>> {
    let ticket = state.inventory.ticket(drop, user).await?;
    Ok(Json(state.receipts.sign(drop, &ticket.id, Utc::now())))
}
