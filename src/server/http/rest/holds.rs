//! Holds: reserve one unit, buy it, give it back, and the caller's holds.

use axum::{extract::State, http::StatusCode, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{Id, MaybeBody, Result};
use crate::{
    model::{DropId, ProductDrop, Purchase, Reservation, ReservationId, ReservationStatus},
    server::{
        http::{error::ErrorBody, extract::SignedIn},
        store::Reserve,
        AppState,
    },
};

/// Which size to reserve.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server::http) struct ReserveBody {
    /// The size's label, as the drop lists it in `sizes` (such as `EU 42`); may be left out
    /// for a drop with one size.
    #[serde(default)]
    #[schema(max_length = 20)]
    size: Option<String>,
}

/// A hold as the API shows it: the owner is the caller, so no user id.
#[derive(Serialize, ToSchema)]
#[schema(as = Reservation)]
pub(in crate::server::http) struct Hold {
    id: ReservationId,
    drop_id: DropId,
    /// The size the unit is of.
    size: String,
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
            size: r.size.clone(),
            status: r.status,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

/// A hold and its drop as it stands right after the change.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct HoldReply {
    reservation: Hold,
    drop: ProductDrop,
}

/// The completed purchase.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct PurchaseReply {
    purchase: Purchase,
}

/// The caller's holds, newest first, in every status.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct HoldsReply {
    reservations: Vec<Hold>,
}

/// Reserve one unit
///
/// Holds one unit of the drop, of the size named, for the caller until `expires_at`; purchase
/// or cancel it before then, or the unit goes back on sale. A buyer holds one unit of a drop
/// at a time, whatever its size.
#[utoipa::path(
    post,
    path = "/drops/{id}/reservations",
    tag = "reservations",
    params(("id" = i64, Path, description = "The drop's id.")),
    request_body(content = ReserveBody, description = "The size (no body at all, or none named, for a drop with one size)."),
    security(("session" = [])),
    responses(
        (status = 201, description = "Held.", body = HoldReply),
        (status = 404, description = "`DROP_NOT_FOUND`, or `SIZE_NOT_FOUND` (the drop has no size of that label).", body = ErrorBody),
        (status = 422, description = "`SIZE_REQUIRED` (the drop has several sizes and none was named), or a body that is not as documented.", body = ErrorBody),
        (status = 409, description = "`OUT_OF_STOCK` (of that size), `ALREADY_RESERVED` (the caller holds one already), `NOT_STARTED`, `LIMIT_REACHED` (bought as many as one buyer may), `NOT_ADMITTED` (a queue drop, and it is not the caller's turn), `COOLING_DOWN` (the caller gave a hold of this drop back moments ago: `Retry-After` says when they may reserve it again) or `HOLD_LIMIT_REACHED` (the caller gave back as many holds of this drop as one buyer may).", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn reserve(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id<DropId>,
    MaybeBody(body): MaybeBody<ReserveBody>,
) -> Result<(StatusCode, Json<HoldReply>)> {
    let size = body.and_then(|body| body.size);
    let reserved = state
        .inventory
        .reserve(drop, Reserve::of(user, size.as_deref()))
        .await?;
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
pub(in crate::server::http) async fn purchase(
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
pub(in crate::server::http) async fn cancel(
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
pub(in crate::server::http) async fn my_reservations(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Json<HoldsReply>> {
    let reservations = state.inventory.user_reservations(user).await?;
    Ok(Json(HoldsReply {
        reservations: reservations.iter().map(Hold::from).collect(),
    }))
}
