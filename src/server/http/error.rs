//! How a refusal or failure is answered over HTTP: [`ApiError`] is the response itself
//! (`{"error":{"code","message"[,"field"]}}` with the status its code maps to), the rejections
//! of axum's extractors become `ApiError`s, and so does a storage failure (logged, never shown).

use axum::{
    extract::rejection::{JsonRejection, PathRejection},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use crate::{
    model::{ApiError, ErrorCode},
    server::store::StoreError,
};

/// Every refusal and failure: a stable `code` to branch on and a `message` for a person.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, Json(ErrorBody { error: self })).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// An extractor that cannot fail, used where any extractor's refusal is expected.
impl From<std::convert::Infallible> for ApiError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// A body that is not JSON, JSON of the wrong shape, or one that stalled on the way.
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let code = match rejection {
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
            _ if timed_out(&rejection) => ErrorCode::RequestTimeout,
            JsonRejection::JsonDataError(_) => ErrorCode::InvalidInput,
            _ => ErrorCode::MalformedRequest,
        };
        let field = match &rejection {
            JsonRejection::JsonDataError(data) => field_of(data),
            _ => None,
        };
        ApiError {
            field,
            ..ApiError::new(code, rejection.body_text())
        }
    }
}

/// True when a body could not be read because it stopped arriving (the body timeout).
pub(super) fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// The field (as a path: `sale_mode`, `items[2].name`) a JSON body of the wrong shape got wrong.
fn field_of(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(found) = error.downcast_ref::<serde_path_to_error::Error<serde_json::Error>>() {
            let path = found.path().to_string();
            return (path != ".").then_some(path);
        }
        cause = error.source();
    }
    None
}

/// A path parameter that does not parse (`/drops/abc`).
impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(ErrorCode::MalformedRequest, rejection.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Refused(code) => ApiError::refusal(code),
            StoreError::Database(error) => {
                if is_unavailable(&error) {
                    tracing::warn!(%error, "database unavailable");
                    ApiError::refusal(ErrorCode::Unavailable)
                } else {
                    tracing::error!(%error, "database error");
                    ApiError::refusal(ErrorCode::Internal)
                }
            }
        }
    }
}

/// True for failures that mean "try again shortly", not "this request is wrong".
fn is_unavailable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    ) || matches!(error, sqlx::Error::Database(db)
        if db.code().is_some_and(|code| is_transient(&code)))
}

/// Database error codes that mean "try again shortly".
fn is_transient(code: &str) -> bool {
    // PostgreSQL: 08 connection, 53 resources, 55 not in prerequisite state (a database not
    // accepting connections, a lock not available), 57P shutdown/terminated, 40001
    // serialization, 40P01 deadlock, 25006 read-only (failover). SQLite: BUSY, LOCKED, IOERR,
    // FULL, CANTOPEN.
    ["08", "53", "55", "57P", "40001", "40P01", "25006"]
        .iter()
        .any(|prefix| code.starts_with(prefix))
        || matches!(code, "5" | "6" | "10" | "13" | "14")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_answers_its_status_and_code() {
        let response = ApiError::refusal(ErrorCode::OutOfStock).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let response = ApiError::refusal(ErrorCode::Unavailable).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn transient_database_codes_are_unavailable() {
        for code in ["08006", "53300", "55000", "57P01", "40001", "40P01", "5"] {
            assert!(is_transient(code), "{code}");
        }
        for code in ["23505", "22001", "42P01", "19"] {
            assert!(!is_transient(code), "{code}");
        }
    }
}
