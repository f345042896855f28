//! Starting the server: open the store, start the workers, build the state, serve.

use std::sync::Arc;

use leptos::prelude::LeptosOptions;
use tokio_util::sync::CancellationToken;

use super::{
    auth::Auth,
    beacon::Fetcher,
    doors::Doors,
    events::{EventBus, EventKey},
    http::{
        self,
        state::{AppState, Shared},
    },
    inventory::Inventory,
    limits, metrics,
    passkeys::Passkeys,
    receipts::ReceiptKey,
    sessions::Sessions,
    settings::Settings,
    snapshots::Snapshots,
    store::{self, StoreError},
    workers::{
        expiry::{self, ExpiryClock},
        queue,
    },
    ws,
};
use crate::model::ApiError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Api(#[from] ApiError),
    #[error("{0}")]
    Passkeys(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Opens the database, returns overdue holds, seeds the demo and starts the expiry worker.
pub async fn start(settings: &Settings) -> Result<AppState, StartError> {
    let metrics = metrics::Metrics::default();
    // Every instance of a deployment shares the session secret, so they share the keys derived
    // from it (events, receipts); one without a secret is alone, on SQLite, and keeps a secret
    // of its own in its database, so its receipts and audits outlive a restart.
    let secret = match settings.session_secret.as_str() {
        "" => {
            let bus = EventBus::new(1, EventKey::random(), metrics.live_events_refused.clone());
            store::kept_secret(settings, bus).await?
        }
        secret => secret.to_string(),
    };
    let receipts = ReceiptKey::derive(&secret);
    let doors = Doors::new(&secret, settings.proof_terms());
    let bus = EventBus::new(
        4096,
        EventKey::derive(&secret),
        metrics.live_events_refused.clone(),
    );
    let store = store::connect(settings, bus.clone(), Some(receipts.public_hex())).await?;
    // The start-up pass: holds that fell due while no server ran go back before anyone is served.
    let returned = expiry::expire_all_due(store.as_ref(), |_| {}).await?;
    if returned > 0 {
        tracing::info!(
            returned,
            "returned holds that expired while the server was down"
        );
    }
    // Queues and draws that went live under an earlier version get the final audit that
    // version did not keep.
    let kept = store.keep_earlier_audits().await?;
    if kept > 0 {
        tracing::info!(
            kept,
            "kept the final audits of drops that went live earlier"
        );
    }
    let clock = Arc::new(ExpiryClock::default());
    tokio::spawn(expiry::run(
        store.clone(),
        clock.clone(),
        std::time::Duration::from_millis(settings.expiry_sweep_ms),
        metrics.clone(),
    ));
    tokio::spawn(http::idempotency::forget_old_keys(
        store.clone(),
        settings.idempotency_key_ttl(),
    ));
    tokio::spawn(queue::run(
        store.clone(),
        settings.queue_pace(),
        settings.queue_tick(),
        settings.beacon().map(|chain| Fetcher::new(chain.url)),
        metrics.clone(),
    ));
    let sessions = Sessions::new(
        store.clone(),
        settings.session_lifetime(),
        settings.session_cache_seconds > 0,
        settings.reserve_batch_max,
        metrics.clone(),
        Passkeys::new(&settings.public_origin).map_err(StartError::Passkeys)?,
    );
    if settings.session_cache_seconds > 0 {
        let every = std::time::Duration::from_secs(settings.session_cache_seconds);
        tokio::spawn(sessions.clone().forget_revoked_forever(every));
    }
    let snapshots = Snapshots::new(store.clone(), bus.clone());
    let inventory = Inventory::new(
        store,
        clock,
        settings.hold_terms(),
        settings.network_caps(),
        settings.idempotency_keys_per_buyer,
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
        // cargo-leptos writes the names' content hashes beside the server binary (release
        // builds); without that file (tests, a debug run) the names carry none.
        .hash_files(hash_file_present())
        .build();
    Ok(AppState::new(Shared {
        settings: settings.clone(),
        leptos_options,
        inventory,
        doors,
        auth: Auth::new(
            &settings.session_secret,
            &settings.admin_token,
            settings.cookie_secure,
        ),
        sessions,
        bus,
        snapshots,
        audits: http::audit::FinalAudits::default(),
        receipts,
        sockets: Arc::new(ws::SocketSlots::new(settings.ws_max_per_ip)),
        limits,
        proxies: Arc::new(http::proxies::Proxies::new(
            settings.client_ip_source.clone(),
            settings.trusted_proxies(),
        )),
        metrics,
        shutdown: CancellationToken::new(),
    }))
}

/// True when cargo-leptos left `hash.txt` (the content hashes of the `/pkg` file names) beside
/// this binary.
fn hash_file_present() -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("hash.txt")))
        .is_some_and(|file| file.exists())
}

/// Starts everything and serves until SIGINT or SIGTERM.
pub async fn serve(settings: Settings) -> Result<(), StartError> {
    let state = start(&settings).await?;
    let listen_error = |addr: String| move |source| StartError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(settings.addr())
        .await
        .map_err(listen_error(settings.site_addr.clone()))?;
    let connections = http::serve::Connections::new(&state);
    let shutdown = state.shutdown.clone();
    if let Some(addr) = settings.metrics_addr() {
        let metrics = http::routes::metrics_only(&state);
        let (bound, _) = http::serve::bind(addr, metrics, connections.clone(), shutdown.clone())
            .await
            .map_err(listen_error(settings.metrics_addr.clone()))?;
        tracing::info!(%bound, "metrics listening");
    }
    tracing::info!(
        addr = %settings.addr(),
        database = %redact(&settings.database_url),
        "dropline listening"
    );
    // On SIGTERM: stop accepting, let in-flight requests finish, close sockets with a reason.
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    http::serve::serve(listener, http::router(state), connections, shutdown).await;
    Ok(())
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
