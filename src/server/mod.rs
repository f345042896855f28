//! Everything that runs only on the server: settings, storage, workers, HTTP.

pub mod auth;
pub mod batch;
pub mod events;
pub mod expiry;
pub mod idempotency;
pub mod inventory;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod protect;
pub mod rest;
pub mod settings;
pub mod store;
pub mod ws;

use std::sync::Arc;

use axum::http::HeaderName;
use axum::{
    extract::{FromRef, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
    serve::ListenerExt,
    Json, Router,
};
use leptos::prelude::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio_util::sync::CancellationToken;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

use self::{
    auth::Auth, events::EventBus, expiry::ExpiryClock, inventory::Inventory, settings::Settings,
    store::StoreError,
};
use crate::{
    app::{shell, App},
    model::ApiError,
};

/// What every handler and server function can reach. Cloned on every request by each
/// middleware and `State` extractor, so it is one shared value: a clone is one reference count,
/// where cloning the parts (the Leptos options' strings, every metric) took a fifth of the
/// server's CPU on a hot drop.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub leptos_options: LeptosOptions,
    pub inventory: Inventory,
    pub auth: Auth,
    pub bus: EventBus,
    pub limits: limits::Limits,
    pub metrics: metrics::Metrics,
    /// Cancelled when the server begins to shut down; long-lived tasks (sockets) end on it.
    pub shutdown: CancellationToken,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Opens the database, returns overdue holds, seeds the demo and starts the expiry worker.
pub async fn start(settings: &Settings) -> Result<AppState, StartError> {
    let bus = EventBus::default();
    let store = store::connect(
        &settings.database_url,
        settings.database_max_connections,
        bus.clone(),
    )
    .await?;
    // The start-up pass: holds that fell due while no server ran go back before anyone is served.
    let returned = expiry::expire_all_due(store.as_ref()).await?.len();
    if returned > 0 {
        tracing::info!(
            returned,
            "returned holds that expired while the server was down"
        );
    }
    let metrics = metrics::Metrics::default();
    let clock = Arc::new(ExpiryClock::default());
    tokio::spawn(expiry::run(
        store.clone(),
        clock.clone(),
        std::time::Duration::from_millis(settings.expiry_sweep_ms),
        metrics.clone(),
    ));
    tokio::spawn(idempotency::forget_old_keys(
        store.clone(),
        settings.idempotency_key_ttl(),
    ));
    let inventory = Inventory::new(
        store,
        clock,
        settings.reservation_ttl(),
        settings.reserve_batch_max,
        metrics.clone(),
    );
    if settings.seed_demo {
        inventory.seed_demo().await?;
    }
    let limits = limits::Limits::new(settings);
    tokio::spawn(limits.clone().prune_forever());
    let leptos_options = LeptosOptions::builder()
        .output_name("dropline")
        .site_root(settings.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(settings.addr())
        .build();
    Ok(AppState(Arc::new(Shared {
        leptos_options,
        inventory,
        auth: Auth::new(&settings.session_secret, &settings.admin_token),
        bus,
        limits,
        metrics,
        shutdown: CancellationToken::new(),
    })))
}

/// The whole HTTP surface: REST, WebSocket, server functions, pages and static files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let options = state.leptos_options.clone();
    let app = Router::new()
        .nest(
            rest::PREFIX,
            rest::router().layer(axum::middleware::from_fn_with_state(
                state.clone(),
                rest::idempotent,
            )),
        )
        .route("/ws", get(ws::handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::handler))
        .leptos_routes(&state, routes, move || shell(options.clone()))
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::limit,
        ))
        .layer(state.limits.ip_source().into_extension())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state);
    // Every request gets an `x-request-id` (kept if a proxy already set one), logged on its
    // span and echoed in the response, so a buyer's report can be found in the logs.
    let request_id = HeaderName::from_static("x-request-id");
    protect::layer(app)
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

/// Ready to serve: the database answers and live events flow (the LISTEN connection is up).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database = state.inventory.store().ping().await.is_ok();
    let live_events = state.bus.is_listening();
    let status = if database && live_events {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "database": database, "live_events": live_events })),
    )
}

/// Starts everything and serves until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    let state = start(&settings).await?;
    let addr = settings.addr();
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.site_addr.clone(),
            source,
        })?
        // Small writes (a stock event, a reserve answer) go out at once instead of waiting for
        // the peer's delayed ACK of the previous one (Nagle).
        .tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "could not set TCP_NODELAY");
            }
        });
    tracing::info!(%addr, database = %redact(&settings.database_url), "dropline listening");
    let shutdown = state.shutdown.clone();
    // On SIGTERM: stop accepting, let in-flight requests finish, close sockets with a reason.
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            shutdown.cancel();
        })
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.site_addr,
            source,
        })
}

/// The database URL without its password, for the log.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_string(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
