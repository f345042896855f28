//! What every REST handler reads and answers with: a JSON body, a path id and query parameters
//! whose rejections answer in the API's error shape.

use axum::{
    body::Bytes,
    extract::{rejection::JsonRejection, FromRequest, FromRequestParts, Path, Query, Request},
    http::{header::CONTENT_TYPE, request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;

use crate::model::{ApiError, ErrorCode};

pub(super) type Result<T> = std::result::Result<T, ApiError>;

/// A JSON body whose rejections answer in the API's error shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(in crate::server::http) struct Body<T>(pub(super) T);

/// A JSON body that may be left out (an empty body: `None`, whatever its `Content-Type`),
/// whose rejections answer in the API's error shape, as [`Body`]'s do: a body that is there
/// must be JSON, sent as JSON.
pub(in crate::server::http) struct MaybeBody<T>(pub(super) Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let mime = value.split(';').next().unwrap_or_default().trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError::from(JsonRejection::from(rejection)))?;
        if bytes.is_empty() {
            return Ok(MaybeBody(None));
        }
        if !json {
            return Err(ApiError::new(
                ErrorCode::MalformedRequest,
                "a body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let axum::Json(body) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(MaybeBody(Some(body)))
    }
}

/// A path id whose rejections answer in the API's error shape.
pub(in crate::server::http) struct Id<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Id<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Path(id) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(Id(id))
    }
}

/// Query parameters whose rejections answer in the API's error shape.
pub(in crate::server::http) struct Params<T>(pub(super) T);

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

/// 201 for a ticket (an entry) made now, 200 for the one the caller already had.
pub(super) fn created_if(new: bool) -> StatusCode {
    if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}
