//! `/api/v1`: the JSON API for scripts and other non-browser clients.
//!
//! Every error answers `{"error":{"code","message"}}` with the status its code maps to.

use super::{
    idempotency::{self, Outcome},
    AppState,
};
use crate::model::{ApiError, ErrorCode, NewDrop, Reservation, UserId};
use axum::{
    extract::{
        rejection::{JsonRejection, PathRejection},
        FromRequest, FromRequestParts, OriginalUri, Path, Request, State,
    },
    http::{header, request::Parts, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{delete, get, post},
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// The REST routes, nested under `/api/v1` by the caller.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/session", post(sign_in).delete(sign_out))
        .route("/drops", get(list_drops).post(create_drop))
        .route("/drops/{id}", get(get_drop))
        .route("/drops/{id}/reservations", post(reserve))
        .route("/reservations/{id}/purchase", post(purchase))
        .route("/reservations/{id}", delete(cancel))
        .route("/me/reservations", get(my_reservations))
        .fallback(|| async { RestError(ApiError::refusal(ErrorCode::NotFound)) })
}

/// True for the writes a client may retry with an `Idempotency-Key`: create a drop, reserve,
/// purchase. (Sign-in is left out: a replayed sign-in could not set the cookie again.)
fn is_idempotent_write(method: &Method, path: &str) -> bool {
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
        (status, Json(json!({ "error": self.0 }))).into_response()
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

#[derive(Deserialize)]
struct SignIn {
    name: String,
}

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
        Json(json!({ "user": user })),
    )
        .into_response())
}

async fn sign_out(State(state): State<AppState>) -> Response {
    (
        [(header::SET_COOKIE, state.auth.sign_out_cookie())],
        Json(json!({ "signed_out": true })),
    )
        .into_response()
}

async fn list_drops(State(state): State<AppState>) -> Result<Json<Value>> {
    let drops = state.inventory.list_drops().await?;
    Ok(Json(json!({ "drops": drops })))
}

async fn get_drop(State(state): State<AppState>, Id(id): Id) -> Result<Json<Value>> {
    let drop = state.inventory.drop(id).await?;
    Ok(Json(json!({ "drop": drop })))
}

async fn create_drop(
    State(state): State<AppState>,
    _: Admin,
    Body(new): Body<NewDrop>,
) -> Result<(StatusCode, Json<Value>)> {
    let drop = state.inventory.create_drop(new).await?;
    Ok((StatusCode::CREATED, Json(json!({ "drop": drop }))))
}

async fn reserve(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(drop): Id,
) -> Result<(StatusCode, Json<Value>)> {
    let reserved = state.inventory.reserve(drop, user).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "reservation": reservation_json(&reserved.reservation),
            "drop": reserved.drop,
        })),
    ))
}

async fn purchase(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(reservation): Id,
) -> Result<(StatusCode, Json<Value>)> {
    let purchase = state.inventory.purchase(reservation, user).await?;
    Ok((StatusCode::CREATED, Json(json!({ "purchase": purchase }))))
}

async fn cancel(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
    Id(reservation): Id,
) -> Result<Json<Value>> {
    let cancelled = state.inventory.cancel(reservation, user).await?;
    Ok(Json(json!({
        "reservation": reservation_json(&cancelled.reservation),
        "drop": cancelled.drop,
    })))
}

async fn my_reservations(
    State(state): State<AppState>,
    SignedIn(user): SignedIn,
) -> Result<Json<Value>> {
    let reservations = state.inventory.user_reservations(user).await?;
    let reservations: Vec<Value> = reservations.iter().map(reservation_json).collect();
    Ok(Json(json!({ "reservations": reservations })))
}

/// A hold as the API shows it (the owner is the caller, so no user id).
fn reservation_json(r: &Reservation) -> Value {
    json!({
        "id": r.id,
        "drop_id": r.drop_id,
        "status": r.status,
        "created_at": r.created_at,
        "expires_at": r.expires_at,
    })
}

/// True when the request came over HTTPS (directly or through a proxy that says so), so the
/// session cookie can be marked Secure.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}
