//! Every route of the server, built in one place and grouped by the rules they share. A rule is
//! a layer on its group (`route_layer`), never a match on a path string: moving or renaming a
//! route keeps its rules, and the OpenAPI document describes each group from the same [`Rules`].
//!
//! Adding a rate-limited, idempotent write is one line in [`rest`] (or [`rpc`] for a server
//! function) plus its handler.

use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{header, HeaderName},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post, MethodRouter},
    Json, Router,
};
use leptos::{prelude::provide_context, server_fn::ServerFn};
use leptos_axum::{generate_route_list_with_exclusions, LeptosRoutes};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    assets,
    extract::{self, Admin, Caller, ClientAddr},
    groups::{Rules, REST_PREFIX},
    idempotency, live, observe, openapi, protect, rest,
};
use crate::{
    api::{
        BeginPasskey, CancelHold, CreateDrop, JoinQueue, LeaveQueue, LogIn, PasskeySignIn,
        ProofChallenge, PurchaseHold, ReserveUnit, SignIn, SignUp, SignUpChallenge,
    },
    app::{shell, App},
    model::{ApiError, ErrorCode},
    server::AppState,
};

/// The whole HTTP surface: REST, server functions, WebSocket, health, metrics, pages and
/// static files.
pub fn routes(state: &AppState) -> Router<AppState> {
    let (rpc, rpc_paths) = rpc(state);
    let options = state.leptos_options.clone();
    let mut router = Router::new()
        .nest(REST_PREFIX, rest(state))
        .merge(rpc)
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    // With an address of its own, `/metrics` is not on the public port at all.
    if state.settings.metrics_addr().is_none() {
        router = router.route("/metrics", get(observe::handler));
    }
    router
        // Pages, and the server functions `rpc` does not route itself.
        .leptos_routes(
            state,
            generate_route_list_with_exclusions(App, Some(rpc_paths)),
            move || shell(options.clone()),
        )
        // The site's other files (images, favicon), precompressed, and the 404 page.
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        // Everything above is rendered here, so compressed here; what follows is not.
        .layer(middleware::from_fn(assets::html_not_reused))
        .layer(assets::compression())
        // A socket's frames are tiny, and an upgrade has no body to compress.
        .route("/ws", get(live::handler))
        .route(assets::PKG_ROUTE, assets::pkg(&state.leptos_options))
}

/// `/metrics` alone, for an address of its own (`metrics_addr`).
pub fn metrics_only(state: &AppState) -> Router {
    Router::new()
        .route("/metrics", get(observe::handler))
        .with_state(state.clone())
}

/// `/api/v1`, with its OpenAPI document at `/api/v1/openapi.json`.
fn rest(state: &AppState) -> Router<AppState> {
    let api = OpenApiRouter::default()
        .merge(
            OpenApiRouter::default()
                .routes(routes!(rest::drops::list_drops))
                .routes(routes!(rest::drops::get_drop))
                .routes(routes!(rest::session::sign_out))
                .routes(routes!(rest::holds::my_reservations))
                .routes(routes!(rest::queue::my_ticket))
                .routes(routes!(rest::queue::my_entry))
                .routes(routes!(rest::queue::my_receipt)),
        )
        .merge(guard(
            state,
            Rules::LIMITED,
            OpenApiRouter::default()
                .routes(routes!(rest::session::sign_in))
                .routes(routes!(rest::session::sign_up))
                .routes(routes!(rest::session::sign_up_challenge))
                .routes(routes!(rest::passkeys::begin_sign_up))
                .routes(routes!(rest::passkeys::sign_up))
                .routes(routes!(rest::passkeys::begin_sign_in))
                .routes(routes!(rest::passkeys::sign_in))
                .routes(routes!(rest::holds::cancel))
                .routes(routes!(rest::queue::challenge))
                .routes(routes!(rest::queue::join_queue))
                .routes(routes!(rest::queue::leave_queue))
                .routes(routes!(rest::queue::enter_draw))
                .routes(routes!(rest::queue::withdraw_entry))
                .routes(routes!(rest::audit::queue_audit))
                .routes(routes!(rest::audit::audit_later))
                .routes(routes!(rest::audit::audit_tickets))
                .routes(routes!(rest::audit::entry_proof)),
        ))
        .merge(guard(
            state,
            Rules::LIMITED_IDEMPOTENT,
            OpenApiRouter::default()
                .routes(routes!(rest::holds::reserve))
                .routes(routes!(rest::holds::purchase)),
        ))
        .merge(guard(
            state,
            Rules::ADMIN_IDEMPOTENT,
            OpenApiRouter::default()
                .routes(routes!(rest::drops::create_drop))
                .routes(routes!(rest::drops::paste_beacon)),
        ));
    let (router, paths) = api.split_for_parts();
    let document = serde_json::to_vec(&openapi::document(paths))
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
        .method_not_allowed_fallback(|| async { ApiError::refusal(ErrorCode::MethodNotAllowed) })
        .fallback(|| async { ApiError::refusal(ErrorCode::NotFound) })
}

/// The server functions that carry rules, routed here with their groups' layers; answers the
/// router and their paths (the pages' router leaves those out).
fn rpc(state: &AppState) -> (Router<AppState>, Vec<String>) {
    let mut paths = Vec::new();
    let mut server_fn = |(path, route): (&'static str, MethodRouter<AppState>)| {
        paths.push(path.to_string());
        OpenApiRouter::default().route(path, route)
    };
    let router = OpenApiRouter::default()
        .merge(guard(
            state,
            Rules::LIMITED,
            server_fn(server_fn_route::<SignIn>(state))
                .merge(server_fn(server_fn_route::<SignUp>(state)))
                .merge(server_fn(server_fn_route::<SignUpChallenge>(state)))
                .merge(server_fn(server_fn_route::<LogIn>(state)))
                .merge(server_fn(server_fn_route::<BeginPasskey>(state)))
                .merge(server_fn(server_fn_route::<PasskeySignIn>(state)))
                .merge(server_fn(server_fn_route::<CancelHold>(state)))
                .merge(server_fn(server_fn_route::<ProofChallenge>(state)))
                .merge(server_fn(server_fn_route::<JoinQueue>(state)))
                .merge(server_fn(server_fn_route::<LeaveQueue>(state))),
        ))
        .merge(guard(
            state,
            Rules::LIMITED_IDEMPOTENT,
            server_fn(server_fn_route::<ReserveUnit>(state))
                .merge(server_fn(server_fn_route::<PurchaseHold>(state))),
        ))
        // The panel sends the admin token in the form; the server function checks it.
        .merge(guard(
            state,
            Rules::IDEMPOTENT,
            server_fn(server_fn_route::<CreateDrop>(state)),
        ));
    (router.split_for_parts().0, paths)
}

/// One server function's route, served like `leptos_routes` serves the others.
fn server_fn_route<F: ServerFn>(state: &AppState) -> (&'static str, MethodRouter<AppState>) {
    let state = state.clone();
    let handler = move |request: Request| {
        let state = state.clone();
        async move {
            leptos_axum::handle_server_fns_with_context(
                move || provide_context(state.clone()),
                request,
            )
            .await
        }
    };
    (F::PATH, post(handler))
}

/// Puts a group of routes behind the layers its rules name, and describes them in its
/// OpenAPI paths.
fn guard(
    state: &AppState,
    rules: Rules,
    mut routes: OpenApiRouter<AppState>,
) -> OpenApiRouter<AppState> {
    openapi::describe(routes.get_openapi_mut(), rules);
    if rules.admin {
        routes = routes.route_layer(middleware::from_extractor_with_state::<Admin, _>(
            state.clone(),
        ));
    }
    if rules.idempotent {
        routes = routes.route_layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        ));
    }
    if rules.rate_limited {
        routes = routes.route_layer(middleware::from_fn_with_state(state.clone(), rate_limited));
    }
    routes
}

/// Counts a request against its caller's session and address; past either budget, 429 with
/// `Retry-After`.
async fn rate_limited(
    State(state): State<AppState>,
    caller: Caller,
    ClientAddr(ip): ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    match state.limits.check(ip, caller.user()) {
        Ok(()) => next.run(request).await,
        Err(wait) => extract::rate_limited(wait).into_response(),
    }
}

/// Ready to serve: the database answers and live events flow (the LISTEN connection is up).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // A database that does not answer at all (a connection silently gone) is not ready either.
    let ping = state.inventory.store().ping();
    let database = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), ping).await,
        Ok(Ok(()))
    );
    let live_events = state.bus.is_listening();
    let status = if database && live_events {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "database": database, "live_events": live_events })),
    )
}

/// The whole HTTP surface with the layers every request passes through.
pub fn router(state: AppState) -> Router {
    let state_timeouts = state.settings.timeouts();
    let app = routes(&state)
        .layer(state.proxies.source().into_extension())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::track,
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
