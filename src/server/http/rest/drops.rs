//! Drops: every one, one, and a new one (admin); a beacon round pasted by the operator.

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{Body, Id, Result};
use crate::{
    model::{DropId, NewDrop, ProductDrop},
    server::{http::error::ErrorBody, AppState},
};

/// Every drop, oldest first.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct DropsReply {
    drops: Vec<ProductDrop>,
}

/// One drop.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct DropReply {
    drop: ProductDrop,
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
pub(in crate::server::http) async fn list_drops(
    State(state): State<AppState>,
) -> Result<Json<DropsReply>> {
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
pub(in crate::server::http) async fn get_drop(
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
pub(in crate::server::http) async fn create_drop(
    State(state): State<AppState>,
    Body(new): Body<NewDrop>,
) -> Result<(StatusCode, Json<DropReply>)> {
    let drop = state.inventory.create_drop(new).await?;
    Ok((StatusCode::CREATED, Json(DropReply { drop })))
}

/// A beacon round's signature, pasted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(in crate::server::http) struct PastedRound {
    /// The round's BLS signature, hex (a compressed G1 point: 96 hex digits), as any drand
    /// client shows it.
    signature: String,
}

/// The round kept.
#[derive(Serialize, ToSchema)]
pub(in crate::server::http) struct KeptRound {
    round: u64,
    /// SHA-256 of the signature, hex: what the order is computed from.
    randomness: String,
}

/// Paste a drop's beacon round (admin)
///
/// For a server that cannot reach a drand endpoint: once a beacon drop's entry list is sealed
/// and the round it names is published, the operator may paste that round's signature, read
/// from any drand client. It is checked against the chain key the drop was created under,
/// exactly as a fetched round is; only a round that verifies is kept, and only once, so
/// pasting decides nothing an operator could choose.
#[utoipa::path(
    post,
    path = "/drops/{id}/beacon",
    tag = "drops",
    params(("id" = i64, Path, description = "The drop's id.")),
    request_body = PastedRound,
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Kept: the drop is put in order at the next pass.", body = KeptRound),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`: no `Authorization` header.", body = ErrorBody),
        (status = 403, description = "`FORBIDDEN`: the token is not the admin token.", body = ErrorBody),
        (status = 409, description = "`BEACON_NOT_DUE`: no beacon, not sealed, the round not published yet, or kept already.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT` (`signature`): not a signature of the drop's round under its chain's key.", body = ErrorBody),
    )
)]
pub(in crate::server::http) async fn paste_beacon(
    State(state): State<AppState>,
    Id(drop): Id<DropId>,
    Body(pasted): Body<PastedRound>,
) -> Result<Json<KeptRound>> {
    let kept = state
        .inventory
        .paste_beacon(drop, &pasted.signature)
        .await?;
    Ok(Json(KeptRound {
        round: kept.round,
        randomness: kept.randomness,
    }))
}
