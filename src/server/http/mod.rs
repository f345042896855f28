//! The HTTP edge: every route and the rules in front of them ([`routes`]), who is asking
//! ([`extract`]), how refusals are answered ([`error`]), the JSON API ([`rest`]) and its OpenAPI
//! document ([`openapi`]), idempotency keys ([`idempotency`]) and the protections every request
//! passes ([`protect`]); signing in and out ([`session`]); how the built site and rendered
//! pages reach a browser ([`assets`]); the final audits, encoded once ([`audit`]); the accept
//! loop that every connection comes through ([`serve`]).

pub mod assets;
pub mod audit;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod openapi;
pub mod protect;
pub mod rest;
pub mod routes;
pub mod serve;
pub mod session;

use axum::{http::HeaderName, Router};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use super::{metrics, AppState};

/// The whole HTTP surface with the layers every request passes through.
pub fn router(state: AppState) -> Router {
    let state_timeouts = state.settings.timeouts();
    let app = routes::routes(&state)
        .layer(state.proxies.source().into_extension())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state);
    // Every request gets an `x-request-id` (kept if a proxy already set one), logged on its
    // span and echoed in the response, so a buyer's report can be found in the logs.
    let request_id = HeaderName::from_static("x-request-id");
    protect::layer(app, state_timeouts)
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                tracing::info_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                    request_id = %id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}
