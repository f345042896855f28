//! The PostgreSQL bridge between instances: each instance LISTENs on the events channel and
//! hands what its peers committed, once its seal is checked, to its own bus; and it keeps
//! checking that the connection still hears, by a heartbeat it sends itself.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::server::events::{EventBus, Heard};

/// The PostgreSQL channel that carries committed events between instances, sealed. (Not the
/// unsealed channel's name of earlier versions: during a rolling upgrade the old and the new
/// instances simply do not hear each other, rather than the new ones refusing every payload
/// of the old and the old ones resyncing every socket on every payload of the new.)
pub const PG_CHANNEL: &str = "dropline_sealed_events";

/// The PostgreSQL channel each instance sends its heartbeat on, to hear it back on its own
/// LISTEN connection.
pub const PG_HEARTBEAT: &str = "dropline_heartbeat";

/// Opens this instance's LISTEN connection — its own, not one of the request pool's — then
/// keeps it open in the background and re-broadcasts what arrives. Returns once events
/// flow, so nothing committed after start-up is missed.
///
/// A connection can die without a word (a NAT or load balancer dropping it, a failover):
/// `recv` would then wait forever while the instance delivers nothing. So the instance
/// sends a heartbeat through `pool` and expects to hear it back on the LISTEN connection;
/// when none arrives within `heartbeat_timeout`, it counts the connection dead: `/readyz`
/// says so, the connection is rebuilt, and every client gets a fresh snapshot once it is
/// back (whatever was sent meanwhile is lost).
pub async fn listen_postgres(
    bus: &EventBus,
    options: PgConnectOptions,
    pool: PgPool,
    heartbeat_timeout: Duration,
) -> Result<(), sqlx::Error> {
    let listener = Listener::open(&options).await?;
    bus.set_listening(true);
    let instance = format!("{:032x}", rand::random::<u128>());
    tokio::spawn(send_heartbeats(
        pool,
        instance.clone(),
        heartbeat_timeout / 3,
    ));
    tokio::spawn(relay(
        bus.clone(),
        options,
        listener,
        instance,
        heartbeat_timeout,
    ));
    Ok(())
}

async fn relay(
    bus: EventBus,
    options: PgConnectOptions,
    mut listener: Listener,
    instance: String,
    heartbeat_timeout: Duration,
) {
    // Kept across reconnects: a payload recorded off the channel and sent again after one
    // is still one heard before.
    let mut heard = Heard::default();
    loop {
        let why = forward(
            &bus,
            &mut listener,
            &instance,
            heartbeat_timeout,
            &mut heard,
        )
        .await;
        bus.set_listening(false);
        tracing::warn!(%why, "LISTEN connection lost; rebuilding it");
        // Closes the old connection, whatever state it is in.
        drop(listener);
        let mut backoff = Duration::from_millis(100);
        listener = loop {
            tokio::time::sleep(backoff).await;
            match tokio::time::timeout(heartbeat_timeout, Listener::open(&options)).await {
                Ok(Ok(listener)) => break listener,
                Ok(Err(error)) => tracing::warn!(%error, "LISTEN reconnect failed"),
                Err(_) => tracing::warn!("LISTEN reconnect timed out"),
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        };
        tracing::info!("LISTEN connection up again");
        bus.set_listening(true);
        bus.resync();
    }
}

/// Re-broadcasts notifications until the connection fails or falls silent; answers why.
async fn forward(
    bus: &EventBus,
    listener: &mut Listener,
    instance: &str,
    heartbeat_timeout: Duration,
    heard: &mut Heard,
) -> String {
    let mut silent_after = tokio::time::Instant::now() + heartbeat_timeout;
    loop {
        let received = tokio::select! {
            received = listener.listener.try_recv() => received,
            () = tokio::time::sleep_until(silent_after) => {
                return format!("no heartbeat for {heartbeat_timeout:?}");
            }
        };
        match received {
            Err(error) => return error.to_string(),
            Ok(Some(notification)) if notification.channel() == PG_HEARTBEAT => {
                if notification.payload() == instance {
                    silent_after = tokio::time::Instant::now() + heartbeat_timeout;
                }
            }
            Ok(Some(notification)) => bus.receive(notification.payload(), heard),
            // The connection dropped and sqlx has already re-established it: whatever was
            // sent in between is lost, so every client reloads from a snapshot.
            Ok(None) => {
                tracing::warn!("LISTEN connection lost and re-established");
                bus.resync();
            }
        }
    }
}

/// Sends this instance's heartbeat every `every`, through the request pool (a heartbeat that
/// cannot be sent is a heartbeat not heard).
async fn send_heartbeats(pool: PgPool, instance: String, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let sent = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(PG_HEARTBEAT)
            .bind(&instance)
            .execute(&pool);
        match tokio::time::timeout(every, sent).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "heartbeat not sent"),
            Err(_) => tracing::debug!("heartbeat timed out"),
        }
    }
}

/// The LISTEN connection, on a pool of its own (one connection), so it never takes one of
/// the connections requests need.
struct Listener {
    listener: PgListener,
    _pool: PgPool,
}

impl Listener {
    async fn open(options: &PgConnectOptions) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen_all([PG_CHANNEL, PG_HEARTBEAT]).await?;
        Ok(Self {
            listener,
            _pool: pool,
        })
    }
}
