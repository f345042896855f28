//! `/api/v1`: the JSON API for scripts and other non-browser clients.
//!
//! Every error answers `{"error":{"code","message"}}` with the status its code maps to. Each
//! handler carries its `#[utoipa::path]` description; [`super::routes`] registers the handlers
//! from those descriptions, so the OpenAPI document ([`super::openapi`]) cannot miss a route.
//! The answers every operation of a kind shares (a database that fails, an id that does not
//! parse, a missing session) are added to the document there, not repeated here.

use axum::{
    extract::{FromRequest, FromRequestParts, Path, Query, State},
    http::{header, request::Parts, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    error::ErrorBody,
    extract::{Caller, SignedIn},
    session,
};
use crate::{
    model::{
        ApiError, Audit, AuditLater, DropId, ErrorCode, NewDrop, ProductDrop, Purchase,
        Reservation, ReservationId, ReservationStatus, SaleMode, Ticket, User,
    },
    server::AppState,
};

type Result<T> = std::result::Result<T, ApiError>;

/// A JSON body whose rejections answer in the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(super) struct Body<T>(T);

/// A path id whose rejections answer in the API's error shape.
pub(super) struct Id<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Path(id) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(Id(id))
    }
}

/// Query parameters whose rejections answer in the API's error shape.
pub(super) struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Query(params) =
            Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| {
                    ApiError::new(ErrorCode::MalformedRequest, rejection.body_text())
                })?;
        Ok(Params(params))
    }
}

/// What a buyer sends to sign in.
#[derive(Deserialize, ToSchema)]
pub(super) struct SignIn {
    /// Display name: 1 to 80 characters after trimming, no control characters and no format
    /// characters (bidi overrides, zero-width spaces and joiners); stored in Unicode NFC.
    #[schema(min_length = 1, max_length = 80, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: String,
}

/// The signed-in buyer.
#[derive(Serialize, ToSchema)]
pub(super) struct UserReply {
    user: User,
}

/// Sign-out always succeeds.
#[derive(Serialize, ToSchema)]
pub(super) struct SignedOut {
    signed_out: bool,
}

/// Every drop, oldest first.
#[derive(Serialize, ToSchema)]
pub(super) struct DropsReply {
    drops: Vec<ProductDrop>,
}

/// One drop.
#[derive(Serialize, ToSchema)]
pub(super) struct DropReply {
    drop: ProductDrop,
}

/// A hold and its drop as it stands right after the change.
#[derive(Serialize, ToSchema)]
pub(super) struct HoldReply {
    reservation: Hold,
    drop: ProductDrop,
}

/// The completed purchase.
#[derive(Serialize, ToSchema)]
pub(super) struct PurchaseReply {
    purchase: Purchase,
}

/// The caller's holds, newest first, in every status.
#[derive(Serialize, ToSchema)]
pub(super) struct HoldsReply {
    reservations: Vec<Hold>,
}

/// The caller's place in a drop's queue.
#[derive(Serialize, ToSchema)]
pub(super) struct TicketReply {
    ticket: Ticket,
}

/// 201 for a ticket (an entry) made now, 200 for the one the caller already had.
fn created_if(new: bool) -> StatusCode {
    if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// The caller's entry in a drop's draw.
#[derive(Serialize, ToSchema)]
pub(super) struct EntryReply {
    entry: Ticket,
}

/// A queue's order, for anyone to check.
#[derive(Serialize, ToSchema)]
pub(super) struct AuditReply {
    audit: Audit,
}

/// What happened after the audit was final, one page.
#[derive(Serialize, ToSchema)]
pub(super) struct LaterReply {
    later: AuditLater,
}

/// A hold as the API shows it: the owner is the caller, so no user id.
#[derive(Serialize, ToSchema)]
#[schema(as = Reservation)]
pub(super) struct Hold {
    id: ReservationId,
    drop_id: DropId,
    status: ReservationStatus,
    created_at: DateTime<Utc>,
    /// The deadline: past it the unit goes back on sale and a purchase is refused.
    expires_at: DateTime<Utc>,
}

impl From<&Reservation> for Hold {
    fn from(r: &Reservation) -> Self {
        Self {
            id: r.id,
            drop_id: r.drop_id,
            status: r.status,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// Sign in with a display name
///
/// Creates a buyer and sets the signed session cookie that the buyer's routes read (named
/// `__Host-dropline_session` when it is `Secure`). A session the request still carries ends.
#[utoipa::path(
    post,
    path = "/session",
    tag = "session",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in.", body = UserReply,
            headers(("Set-Cookie" = String, description = "The signed session cookie `dropline_session` (`__Host-dropline_session` when Secure)."))),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the name is missing, empty, longer than 80 characters or has control or format characters.", body = ErrorBody),
    )
)]
pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<SignIn>,
) -> Result<Response> {
    let (user, cookie) = session::sign_in(&state, &body.name, &headers).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(UserReply { user }),
    )
        .into_response())
}

/// Sign out
///
/// Revokes the caller's session (the cookie is worth nothing from now on, on every instance
/// within `session_cache_seconds`) and clears the cookie. Without a session it just clears it.
#[utoipa::path(
    delete,
    path = "/session",
    tag = "session",
    responses(
        (status = 200, description = "Signed out.", body = SignedOut,
            headers(("Set-Cookie" = String, description = "Expires the session cookie."))),
    )
)]
pub(super) async fn sign_out(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let mut response = Json(SignedOut { signed_out: true }).into_response();
    for cookie in session::sign_out(&state, caller).await? {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// List drops
///
/// Every drop, oldest first, with its stock and three newest buyers.
#[utoipa::path(
    get,
    path = "/drops",
    tag = "drops",
    responses(
        (status = 200, description = "Every drop.", body = DropsReply),
    )
)]
pub(super) async fn list_drops(State(state): State<AppState>) -> Result<Json<DropsReply>> {
    let drops = state.inventory.list_drops().await?;
    Ok(Json(DropsReply { drops }))
}

/// One drop
#[utoipa::path(
    get,
    path = "/drops/{id}",
    tag = "drops",
    params(("id" = i64, Path, description = "The drop's id.")),
    responses(
        (status = 200, description = "The drop.", body = DropReply),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
    )
)]
pub(super) async fn get_drop(
    State(state): State<AppState>,
    Id(id): Id<DropId>,
) -> Result<Json<DropReply>> {
    let drop = state.inventory.drop(id).await?;
    Ok(Json(DropReply { drop }))
}

/// Create a drop (admin)
///
/// Needs the admin token. Every field is checked; the error names the first bad one.
#[utoipa::path(
    post,
    path = "/drops",
    tag = "drops",
    request_body = NewDrop,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Created; every screen hears of it.", body = DropReply),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`: no `Authorization` header.", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the token is not the admin token.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: a field is missing, of the wrong type or out of range; `field` names it.", body = ErrorBody),
    )
)]
pub(super) async fn create_drop(
    State(state): State<AppState>,
    Body(new): Body<NewDrop>,
) -> Result<(StatusCode, Json<DropReply>)> {
    let drop = state.inventory.create_drop(new).await?;
    Ok((StatusCode::CREATED, Json(DropReply { drop })))
}

/// Reserve one unit
///
/// Holds one unit of the drop for the caller until `expires_at`; purchase or cancel it before
/// then, or the unit goes back on sale.
#[utoipa::path(
    post,
    path = "/drops/{id}/reservations",
    tag = "reservations",
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 201, description = "Held.", body = HoldReply),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`OUT_OF_STOCK`, `ALREADY_RESERVED` (the caller holds one already), `NOT_STARTED`, `LIMIT_REACHED` (bought as many as one buyer may), `NOT_ADMITTED` (a queue drop, and it is not the caller's turn), `COOLING_DOWN` (the caller gave a hold of this drop back moments ago: `Retry-After` says when they may reserve it again) or `HOLD_LIMIT_REACHED` (the caller gave back as many holds of this drop as one buyer may).", body = ErrorBody),
    )
)]
pub(super) async fn reserve(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<(StatusCode, Json<HoldReply>)> {
    let reserved = state.inventory.reserve(drop, user).await?;
    Ok((
        StatusCode::CREATED,
        Json(HoldReply {
            reservation: Hold::from(&reserved.reservation),
            drop: reserved.drop,
        }),
    ))
}

/// Buy the held unit
///
/// Only the holder, only while the hold is active and before its deadline.
#[utoipa::path(
    post,
    path = "/reservations/{id}/purchase",
    tag = "reservations",
    params(("id" = i64, Path, description = "The hold's id.")),
    security(("session" = [])),
    responses(
        (status = 201, description = "Bought.", body = PurchaseReply),
        (status = 403, description = "`NOT_YOUR_RESERVATION`", body = ErrorBody),
        (status = 404, description = "`RESERVATION_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RESERVATION_EXPIRED` or `RESERVATION_NOT_ACTIVE` (already bought or cancelled).", body = ErrorBody),
    )
)]
pub(super) async fn purchase(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(reservation): Id<ReservationId>,
) -> Result<(StatusCode, Json<PurchaseReply>)> {
    let purchase = state.inventory.purchase(reservation, user).await?;
    Ok((StatusCode::CREATED, Json(PurchaseReply { purchase })))
}

/// Cancel a hold
///
/// Gives the held unit back to stock at once.
#[utoipa::path(
    delete,
    path = "/reservations/{id}",
    tag = "reservations",
    params(("id" = i64, Path, description = "The hold's id.")),
    security(("session" = [])),
    responses(
        (status = 200, description = "Cancelled.", body = HoldReply),
        (status = 403, description = "`NOT_YOUR_RESERVATION`", body = ErrorBody),
        (status = 404, description = "`RESERVATION_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RESERVATION_EXPIRED` or `RESERVATION_NOT_ACTIVE` (already bought or cancelled).", body = ErrorBody),
    )
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(reservation): Id<ReservationId>,
) -> Result<Json<HoldReply>> {
    let cancelled = state.inventory.cancel(reservation, user).await?;
    Ok(Json(HoldReply {
        reservation: Hold::from(&cancelled.reservation),
        drop: cancelled.drop,
    }))
}

/// The caller's holds
#[utoipa::path(
    get,
    path = "/me/reservations",
    tag = "reservations",
    security(("session" = [])),
    responses(
        (status = 200, description = "Every hold of the caller, newest first.", body = HoldsReply),
    )
)]
pub(super) async fn my_reservations(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Json<HoldsReply>> {
    let reservations = state.inventory.user_reservations(user).await?;
    Ok(Json(HoldsReply {
        reservations: reservations.iter().map(Hold::from).collect(),
    }))
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
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 201, description = "In line.", body = TicketReply),
        (status = 200, description = "Already in line: the same ticket.", body = TicketReply),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_A_QUEUE` (the drop is first come, first served), `QUEUE_NOT_OPEN` (before `queue_opens_at`) or `OUT_OF_STOCK` (sold out: the queue has closed).", body = ErrorBody),
    )
)]
pub(super) async fn join_queue(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<(StatusCode, Json<TicketReply>)> {
    let (ticket, new) = state.inventory.join(drop, SaleMode::Queue, user).await?;
    Ok((created_if(new), Json(TicketReply { ticket })))
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
pub(super) async fn my_ticket(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<TicketReply>> {
    let ticket = state.inventory.ticket(drop, user).await?;
    Ok(Json(TicketReply { ticket }))
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
pub(super) async fn leave_queue(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<TicketReply>> {
    let ticket = state.inventory.leave(drop, SaleMode::Queue, user).await?;
    Ok(Json(TicketReply { ticket }))
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
    params(("id" = i64, Path, description = "The drop's id.")),
    security(("session" = [])),
    responses(
        (status = 201, description = "Entered.", body = EntryReply),
        (status = 200, description = "Already entered: the same entry.", body = EntryReply),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`NOT_A_DRAW`, `ENTRIES_NOT_OPEN` (before `entries_open_at`) or `ENTRIES_CLOSED` (the draw has been made).", body = ErrorBody),
    )
)]
pub(super) async fn enter_draw(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<(StatusCode, Json<EntryReply>)> {
    let (entry, new) = state.inventory.join(drop, SaleMode::Draw, user).await?;
    Ok((created_if(new), Json(EntryReply { entry })))
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
pub(super) async fn my_entry(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<EntryReply>> {
    let entry = state.inventory.ticket(drop, user).await?;
    Ok(Json(EntryReply { entry }))
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
pub(super) async fn withdraw_entry(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
) -> Result<Json<EntryReply>> {
    let entry = state.inventory.leave(drop, SaleMode::Draw, user).await?;
    Ok(Json(EntryReply { entry }))
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
/// the entries that won at the draw (the first `total_stock` places). What happened after go-live
/// is `GET /drops/{id}/audit/later`.
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
pub(super) async fn queue_audit(
    State(state): State<AppState>,
    Id(drop): Id<DropId>,
    headers: HeaderMap,
) -> Result<Response> {
    let audit = state.audits.get(&state.inventory, drop).await?;
    Ok(audit.respond(&headers))
}

/// Which part of an audit's later part to answer.
#[derive(Deserialize)]
pub(super) struct LaterPage {
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
pub(super) async fn audit_later(
    State(state): State<AppState>,
    Id(drop): Id<DropId>,
    Params(page): Params<LaterPage>,
) -> Result<Json<LaterReply>> {
    let after = page.after.unwrap_or(0);
    if after < 0 {
        return Err(ApiError::invalid("after", "after must be 0 or more"));
    }
    let limit = page.limit.unwrap_or(LATER_PAGE_MAX);
    if !(1..=LATER_PAGE_MAX).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {LATER_PAGE_MAX}"),
        ));
    }
    let later = state.inventory.audit_later(drop, after, limit).await?;
    Ok(Json(LaterReply { later }))
}
