//! `/api/v1`: the JSON API for scripts and other non-browser clients.
//!
//! Every error answers `{"error":{"code","message"}}` with the status its code maps to. Each
//! handler carries its `#[utoipa::path]` description and the routes are registered from those
//! descriptions, so the OpenAPI document ([`super::openapi`]) cannot miss a route.

use axum::{
    body::Bytes,
    extract::{
        rejection::{JsonRejection, PathRejection},
        FromRequest, FromRequestParts, OriginalUri, Path, Request, State,
    },
    http::{header, request::Parts, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    idempotency::{self, Outcome},
    AppState,
};
use crate::model::{
    ApiError, DropId, ErrorCode, NewDrop, ProductDrop, Purchase, Reservation, ReservationId,
    ReservationStatus, User, UserId,
};

/// Where [`router`] is nested: every REST path starts with it.
pub const PREFIX: &str = "/api/v1";

/// The REST routes, nested under [`PREFIX`] by the caller, with their OpenAPI document at
/// `/openapi.json` (built once, here).
pub fn router() -> Router<AppState> {
    let (router, paths) = routes().split_for_parts();
    let document = serde_json::to_vec(&super::openapi::document(paths))
        .expect("an OpenAPI document always serializes");
    let document = Bytes::from(document);
    router
        .route(
            "/openapi.json",
            get(move || {
                let document = document.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], document) }
            }),
        )
        .method_not_allowed_fallback(|| async {
            RestError(ApiError::refusal(ErrorCode::MethodNotAllowed))
        })
        .fallback(|| async { RestError(ApiError::refusal(ErrorCode::NotFound)) })
}

/// The REST routes with their OpenAPI descriptions, paths relative to [`PREFIX`].
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(list_drops, create_drop))
        .routes(routes!(get_drop))
        .routes(routes!(reserve))
        .routes(routes!(purchase))
        .routes(routes!(cancel))
        .routes(routes!(my_reservations))
}

/// True for the writes a client may retry with an `Idempotency-Key`: create a drop, reserve,
/// purchase. (Sign-in is left out: a replayed sign-in could not set the cookie again.) `path`
/// is the whole path, [`PREFIX`] included.
pub fn is_idempotent_write(method: &Method, path: &str) -> bool {
    method == Method::POST
        && (path == "/api/v1/drops"
            || (path.starts_with("/api/v1/drops/") && path.ends_with("/reservations"))
            || (path.starts_with("/api/v1/reservations/") && path.ends_with("/purchase")))
}

/// Makes the writes that carry an `Idempotency-Key` safe to retry (see [`idempotency`]): a
/// retry gets the first response again with `Idempotent-Replayed: true`. Keys belong to the
/// caller (its session, else the admin), so nobody sees another's outcome. Server errors are not
/// stored: a retry runs again.
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(key) = request.headers().get(idempotency::HEADER).cloned() else {
        return next.run(request).await;
    };
    // Inside the nested router the path has lost its `/api/v1` prefix; judge the original.
    let path = request.extensions().get::<OriginalUri>().map_or_else(
        || request.uri().path().to_string(),
        |u| u.path().to_string(),
    );
    if !is_idempotent_write(request.method(), &path) {
        return next.run(request).await;
    }
    // A header that is not visible ASCII reads as empty, which the check refuses.
    let key = match idempotency::valid_key(key.to_str().unwrap_or_default()) {
        Ok(key) => key.to_string(),
        Err(error) => return RestError(error).into_response(),
    };
    // The session decides who acts (reserve and purchase act for it), so it scopes the key.
    let scope = if let Some(user) = state.auth.session_user(request.headers()) {
        format!("user:{user}")
    } else if state.auth.is_admin(request.headers()) {
        "admin".to_string()
    } else {
        // Nobody to scope the key to: the handler refuses it as usual.
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, super::protect::MAX_BODY_BYTES).await else {
        return RestError(ApiError::refusal(ErrorCode::TooLarge)).into_response();
    };
    let keyed = idempotency::Keyed {
        scope,
        key,
        fingerprint: idempotency::fingerprint(parts.method.as_str(), parts.uri.path(), &bytes),
    };
    let run = async move {
        let response = next
            .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
            .await;
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        (parts, bytes)
    };
    let record = |(parts, bytes): &(axum::http::response::Parts, axum::body::Bytes)| {
        (!parts.status.is_server_error()).then(|| {
            (
                parts.status.as_u16(),
                String::from_utf8_lossy(bytes).into_owned(),
            )
        })
    };
    match idempotency::once(state.inventory.store().clone(), keyed, run, record).await {
        Ok(Outcome::Fresh((parts, bytes))) => {
            Response::from_parts(parts, axum::body::Body::from(bytes))
        }
        Ok(Outcome::Replay { status, body }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response =
                (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            response.headers_mut().insert(
                "idempotent-replayed",
                header::HeaderValue::from_static("true"),
            );
            response
        }
        Err(error) => RestError(error).into_response(),
    }
}

/// An [`ApiError`] answered as JSON with its HTTP status.
#[derive(Debug)]
pub struct RestError(pub ApiError);

impl From<ApiError> for RestError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody { error: self.0 })).into_response()
    }
}

impl From<JsonRejection> for RestError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection {
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
            JsonRejection::JsonDataError(_) => ErrorCode::InvalidInput,
            _ => ErrorCode::MalformedRequest,
        };
        Self(ApiError::new(code, rejection.body_text()))
    }
}

impl From<PathRejection> for RestError {
    fn from(rejection: PathRejection) -> Self {
        Self(ApiError::new(
            ErrorCode::MalformedRequest,
            rejection.body_text(),
        ))
    }
}

type Result<T> = std::result::Result<T, RestError>;

/// A JSON body whose rejections answer in the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(RestError))]
struct Body<T>(T);

/// A numeric path id whose rejections answer in the API's error shape.
struct Id(i64);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Path(id) = Path::<i64>::from_request_parts(parts, state).await?;
        Ok(Id(id))
    }
}

/// The signed-in user; requests without a valid session get 401.
pub struct SignedIn(pub UserId);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        state
            .auth
            .session_user(&parts.headers)
            .map(SignedIn)
            .ok_or_else(|| RestError(ApiError::unauthenticated()))
    }
}

/// A request carrying the admin token; others get 401 (no token) or 403 (wrong token).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = RestError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        if state.auth.is_admin(&parts.headers) {
            Ok(Admin)
        } else if parts.headers.contains_key(header::AUTHORIZATION) {
            Err(RestError(ApiError::refusal(ErrorCode::Forbidden)))
        } else {
            Err(RestError(ApiError::new(
                ErrorCode::Unauthenticated,
                "Creating drops needs the admin token (Authorization: Bearer ...).",
            )))
        }
    }
}

/// What a buyer sends to sign in.
#[derive(Deserialize, ToSchema)]
struct SignIn {
    /// Display name: 1 to 80 characters after trimming, no control characters.
    #[schema(min_length = 1, max_length = 80, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    name: String,
}

/// The signed-in buyer.
#[derive(Serialize, ToSchema)]
struct UserReply {
    user: User,
}

/// Sign-out always succeeds.
#[derive(Serialize, ToSchema)]
struct SignedOut {
    signed_out: bool,
}

/// Every drop, oldest first.
#[derive(Serialize, ToSchema)]
struct DropsReply {
    drops: Vec<ProductDrop>,
}

/// One drop.
#[derive(Serialize, ToSchema)]
struct DropReply {
    drop: ProductDrop,
}

/// A hold and its drop as it stands right after the change.
#[derive(Serialize, ToSchema)]
struct HoldReply {
    reservation: Hold,
    drop: ProductDrop,
}

/// The completed purchase.
#[derive(Serialize, ToSchema)]
struct PurchaseReply {
    purchase: Purchase,
}

/// The caller's holds, newest first, in every status.
#[derive(Serialize, ToSchema)]
struct HoldsReply {
    reservations: Vec<Hold>,
}

/// Every refusal and failure: a stable `code` to branch on and a `message` for a person.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

/// A hold as the API shows it: the owner is the caller, so no user id.
#[derive(Serialize, ToSchema)]
#[schema(as = Reservation)]
struct Hold {
    #[schema(value_type = i64)]
    id: ReservationId,
    #[schema(value_type = i64)]
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
/// Creates a buyer and sets the signed session cookie that the buyer's routes read.
#[utoipa::path(
    post,
    path = "/session",
    tag = "session",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in.", body = UserReply,
            headers(("Set-Cookie" = String, description = "The signed session cookie `dropline_session`."))),
        (status = 400, description = "`MALFORMED_REQUEST`: the body is not JSON sent as `application/json`.", body = ErrorBody),
        (status = 422, description = "`INVALID_INPUT`: the name is missing, empty, longer than 80 characters or has control characters.", body = ErrorBody),
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Body(body): Body<SignIn>,
) -> Result<Response> {
    let user = state.inventory.sign_up(&body.name).await?;
    let cookie = state.auth.sign_in_cookie(user.id, is_https(&headers));
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, cookie)],
        Json(UserReply { user }),
    )
        .into_response())
}

/// Sign out
///
/// Clears the session cookie.
#[utoipa::path(
    delete,
    path = "/session",
    tag = "session",
    responses(
        (status = 200, description = "Signed out.", body = SignedOut,
            headers(("Set-Cookie" = String, description = "Expires the session cookie."))),
    )
)]
async fn sign_out(State(state): State<AppState>) -> Response {
    (
        [(header::SET_COOKIE, state.auth.sign_out_cookie())],
        Json(SignedOut { signed_out: true }),
    )
        .into_response()
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
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn list_drops(State(state): State<AppState>) -> Result<Json<DropsReply>> {
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
        (status = 400, description = "`MALFORMED_REQUEST`: the id is not an integer.", body = ErrorBody),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn get_drop(State(state): State<AppState>, Id(id): Id) -> Result<Json<DropReply>> {
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
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn create_drop(
    State(state): State<AppState>,
    _: Admin,
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
        (status = 400, description = "`MALFORMED_REQUEST`: the id is not an integer.", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`: no valid session.", body = ErrorBody),
        (status = 404, description = "`DROP_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`OUT_OF_STOCK`, `ALREADY_RESERVED` (the caller holds one already), `NOT_STARTED` or `LIMIT_REACHED` (bought as many as one buyer may).", body = ErrorBody),
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn reserve(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id,
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
        (status = 400, description = "`MALFORMED_REQUEST`: the id is not an integer.", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`: no valid session.", body = ErrorBody),
        (status = 403, description = "`NOT_YOUR_RESERVATION`", body = ErrorBody),
        (status = 404, description = "`RESERVATION_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RESERVATION_EXPIRED` or `RESERVATION_NOT_ACTIVE` (already bought or cancelled).", body = ErrorBody),
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn purchase(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(reservation): Id,
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
        (status = 400, description = "`MALFORMED_REQUEST`: the id is not an integer.", body = ErrorBody),
        (status = 401, description = "`UNAUTHENTICATED`: no valid session.", body = ErrorBody),
        (status = 403, description = "`NOT_YOUR_RESERVATION`", body = ErrorBody),
        (status = 404, description = "`RESERVATION_NOT_FOUND`", body = ErrorBody),
        (status = 409, description = "`RESERVATION_EXPIRED` or `RESERVATION_NOT_ACTIVE` (already bought or cancelled).", body = ErrorBody),
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(reservation): Id,
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
        (status = 401, description = "`UNAUTHENTICATED`: no valid session.", body = ErrorBody),
        (status = 500, description = "`INTERNAL`", body = ErrorBody),
        (status = 503, description = "`UNAVAILABLE`: the database is briefly unreachable; retry.", body = ErrorBody),
    )
)]
async fn my_reservations(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Json<HoldsReply>> {
    let reservations = state.inventory.user_reservations(user).await?;
    Ok(Json(HoldsReply {
        reservations: reservations.iter().map(Hold::from).collect(),
    }))
}

/// True when the request came over HTTPS (directly or through a proxy that says so), so the
/// session cookie can be marked Secure.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}
