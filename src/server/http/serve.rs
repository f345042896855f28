//! The accept loop: every connection the server takes, and how long it may take to say what it
//! wants. `axum::serve` reads request heads with no deadline and takes any number of
//! connections from one address, so 200 half-sent heads from one script held 200 connections
//! (and their memory) for as long as it liked. Here hyper reads each head — the first one too,
//! so a connection that sends nothing at all — within `header_read_timeout_ms` (also the most an
//! idle kept-alive connection waits for the next), and one address (an IPv6 client by its /64)
//! holds at most `max_connections_per_ip` open connections — the next is answered 429 and
//! closed. A trusted proxy's connections are not counted: it carries many buyers. Upgraded
//! live-feed sockets leave hyper and count against `ws_max_per_ip` instead.
//!
//! The server speaks HTTP/1.1. Browsers speak HTTP/2 only over TLS, which a proxy in front
//! terminates; serving HTTP/2 in clear text here would be a second protocol whose first bytes
//! (the connection preface) no header timeout covers.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use axum::{extract::ConnectInfo, http::Request, Router};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{io::AsyncWriteExt, net::TcpListener};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use super::proxies::{bucket, Proxies};
use crate::server::AppState;

/// How long the loop waits for open connections to finish once it stops accepting.
const DRAIN: Duration = Duration::from_secs(10);

/// What a connection may do: how long its heads may take, how many one address may hold.
pub struct Connections {
    header_read_timeout: Duration,
    max_per_ip: usize,
    proxies: Arc<Proxies>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Connections {
    /// The limits the server's settings give, with its proxies.
    pub fn new(state: &AppState) -> Arc<Self> {
        Arc::new(Self {
            header_read_timeout: state.settings.timeouts().header_read,
            max_per_ip: state.settings.max_connections_per_ip,
            proxies: state.proxies.clone(),
            open: Mutex::default(),
        })
    }

    /// A place for one more connection from `ip`, held until the returned slot drops; `None`
    /// when the address already holds its share.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        if self.proxies.is_proxy(ip) {
            return Some(Slot(None));
        }
        let ip = bucket(ip);
        let mut open = self.open();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(Slot(Some((self.clone(), ip))))
    }

    fn open(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Nothing panics while holding the lock, and the map is consistent between calls.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place among its address's connections.
struct Slot(Option<(Arc<Connections>, IpAddr)>);

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((connections, ip)) = self.0.take() else {
            return;
        };
        let mut open = connections.open();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }
}

/// What an address past its share of connections is told before its connection closes.
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\n\
    retry-after: 1\r\ncontent-type: application/json\r\ncontent-length: 85\r\n\r\n\
    {\"error\":{\"code\":\"RATE_LIMITED\",\"message\":\"Too many connections from this address.\"}}";

/// Serves `app` on `listener` until `shutdown` is cancelled, then lets open requests finish
/// (at most [`DRAIN`]). Each request knows its peer (`ConnectInfo`); WebSocket upgrades work.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(connections.header_read_timeout);
    let open = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(error) => {
                    tracing::debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        // Small writes (a stock event, a reserve answer) go out at once instead of waiting for
        // the peer's delayed ACK of the previous one (Nagle).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let Some(slot) = connections.take(peer.ip()) else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let shutdown = shutdown.clone();
        open.spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                // Shutting down: finish the request in hand, take no other.
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%error, %peer, "connection ended");
            }
        });
    }
    drop(listener);
    open.close();
    if tokio::time::timeout(DRAIN, open.wait()).await.is_err() {
        tracing::warn!("connections still open after {DRAIN:?}; stopping anyway");
    }
}

/// Tells an address past its share that it must wait, and hangs up.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(TOO_MANY)).await;
    let _ = stream.shutdown().await;
}

/// Binds `addr` and serves `app` on it (see [`serve`]); answers the bound address and the
/// serving task.
pub async fn bind(
    addr: SocketAddr,
    app: Router,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(serve(listener, app, connections, shutdown));
    Ok((local, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_answer() {
        let text = std::str::from_utf8(TOO_MANY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let parsed: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(parsed["error"]["code"], "RATE_LIMITED");
    }

    #[test]
    fn one_address_holds_only_its_share_and_a_proxy_is_not_counted() {
        let connections = Arc::new(Connections {
            header_read_timeout: Duration::from_secs(1),
            max_per_ip: 2,
            proxies: Arc::new(Proxies::new(
                axum_client_ip::ClientIpSource::RightmostXForwardedFor,
                vec!["10.0.0.1/32".parse().unwrap()],
            )),
            open: Mutex::default(),
        });
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = connections.take(ip("192.0.2.1")).unwrap();
        // The same address written as IPv4-mapped IPv6 (a dual-stack listener) is the same.
        let _second = connections.take(ip("::ffff:192.0.2.1")).unwrap();
        assert!(connections.take(ip("192.0.2.1")).is_none());
        drop(first);
        assert!(connections.take(ip("192.0.2.1")).is_some());
        // An IPv6 client counts by its /64: hopping inside it buys no more connections.
        let _a = connections.take(ip("2001:db8:1:2::1")).unwrap();
        let _b = connections.take(ip("2001:db8:1:2::2")).unwrap();
        assert!(connections.take(ip("2001:db8:1:2::3")).is_none());
        let many: Vec<_> = (0..10)
            .map(|_| connections.take(ip("::ffff:10.0.0.1")))
            .collect();
        assert!(many.iter().all(Option::is_some));
    }
}
