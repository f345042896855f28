//! Drops: every one, one, and a new one (admin).

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;
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
