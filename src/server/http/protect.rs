//! Protections every response and request passes through: security headers, a body size
//! limit, a same-origin check on cookie-authenticated writes (cross-site request forgery), and
//! timeouts on slow requests: a body that stalls, or a request that takes too long to arrive
//! (a body trickled a byte at a time), gets 408 and its connection is closed. (A request head
//! that does not arrive in time never reaches here: the accept loop closes it, `serve.rs`.)

use axum::{
    extract::Request,
    http::{header, HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Router,
};
use tower_http::{
    limit::RequestBodyLimitLayer,
    set_header::SetResponseHeaderLayer,
    timeout::{RequestBodyTimeoutLayer, TimeoutLayer},
};

use crate::{
    model::{ApiError, ErrorCode},
    server::settings::Timeouts,
};

/// Largest request body accepted, in bytes: drops and names are small.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What pages may load and run: our own origin only (the hydration scripts are inline, and the
/// WASM needs `wasm-unsafe-eval` to compile).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
    style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/// Wraps `router` with the protections; requests are held to `timeouts`.
pub fn layer(router: Router, timeouts: Timeouts) -> Router {
    let headers: [(HeaderName, &'static str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=()",
        ),
    ];
    let mut router = router
        .layer(axum::middleware::from_fn(same_origin_writes))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(declared_length))
        .layer(RequestBodyTimeoutLayer::new(timeouts.body))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeouts.request,
        ))
        .layer(axum::middleware::map_response(close_after_timeout));
    for (name, value) in headers {
        router = router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// Answers a request that timed out in the API's error shape and closes its connection: a
/// client that slow is not kept, and the rest of its body is not waited for.
async fn close_after_timeout(response: Response) -> Response {
    if response.status() != StatusCode::REQUEST_TIMEOUT {
        return response;
    }
    let mut response = ApiError::refusal(ErrorCode::RequestTimeout).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Refuses a body whose declared length is over the limit before anything reads it, in the
/// API's error shape (the limit layer behind it answers such requests in plain text; it still
/// cuts off bodies that declare no length).
async fn declared_length(request: Request, next: Next) -> Response {
    let too_long = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64);
    if too_long {
        return ApiError::refusal(ErrorCode::TooLarge).into_response();
    }
    next.run(request).await
}

/// Refuses a state-changing request that a browser sent from another site, with or without
/// cookies (a cross-site sign-in form could otherwise swap the victim's session).
///
/// Browsers say where a request comes from (`Sec-Fetch-Site`, `Origin`); a forged cross-site
/// form or fetch cannot hide it. Clients that are not browsers send neither and pass.
async fn same_origin_writes(request: Request, next: Next) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if safe || is_same_origin(&request) {
        return next.run(request).await;
    }
    ApiError::new(
        ErrorCode::Forbidden,
        "Cross-site requests may not change anything.",
    )
    .into_response()
}

fn is_same_origin(request: &Request) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // No origin information at all: not a modern browser's cross-site request.
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}
