//! What every scenario measures with: the clock, latency histograms, a median, and the
//! buyers' screens (WebSockets opened together, each reading its snapshot first).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use futures::StreamExt;
use hdrhistogram::Histogram;
use hyper::header::COOKIE;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::{
    connect_async,
    tungstenite::{client::IntoClientRequest, Message},
};
use tokio_util::sync::CancellationToken;

use crate::error::{BenchError, Result};

/// WebSocket handshakes in flight at once while the screens open.
const CONNECTING_AT_ONCE: usize = 200;

/// File descriptors the generator and the server keep for everything but the screens.
const SPARE_FILES: u64 = 4_000;

/// Microseconds since the epoch, on the machine's clock.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A latency histogram in microseconds, 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The median of some numbers (the upper one of an even count; `None` for none).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (!sorted.is_empty()).then(|| sorted[sorted.len() / 2])
}

/// Reads a new socket's first frame, the snapshot; fails if the socket closes first.
pub async fn snapshot_read<S>(ws: &mut S) -> Result<()>
where
    S: futures::Stream<Item = std::result::Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(_))) => return Ok(()),
            Some(Ok(_)) => {}
            _ => {
                return Err(BenchError::Unexpected(
                    "socket closed before its snapshot".into(),
                ))
            }
        }
    }
}

/// How many of `buyers` can have a screen open: each is a descriptor here and one in the
/// server, whose open-files limit is this one's.
pub fn screens_for(buyers: usize) -> usize {
    let files = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    buyers.min(files.saturating_sub(SPARE_FILES) as usize)
}

/// `count` screens, each `screen(index, ready, gate)`; answers their handles once every one
/// has read its snapshot (and cancels `stop` if one could not).
pub async fn open_screens<T, F, Fut>(
    count: usize,
    stop: &CancellationToken,
    screen: F,
) -> Result<Vec<tokio::task::JoinHandle<T>>>
where
    F: Fn(usize, mpsc::Sender<Result<()>>, Arc<Semaphore>) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let (ready_tx, mut ready) = mpsc::channel(count.max(1));
    let screens: Vec<_> = (0..count)
        .map(|i| tokio::spawn(screen(i, ready_tx.clone(), gate.clone())))
        .collect();
    drop(ready_tx);
    for _ in 0..count {
        match ready.recv().await {
            Some(Ok(())) => {}
            Some(Err(error)) => {
                stop.cancel();
                return Err(error);
            }
            None => return Err(BenchError::Unexpected("a screen ended early".into())),
        }
    }
    Ok(screens)
}

/// One buyer's dashboard: connects with their session (at most `gate`'s permits handshake at
/// once), says so on `ready` once its snapshot is read, then hands every text frame with the
/// moment it was read (µs since the epoch) to `frame`, until `stop`.
pub async fn watch(
    addr: SocketAddr,
    cookie: String,
    ready: mpsc::Sender<Result<()>>,
    gate: Arc<Semaphore>,
    stop: CancellationToken,
    mut frame: impl FnMut(&str, i64),
) {
    let permit = gate.acquire_owned().await;
    let request = format!("ws://{addr}/ws")
        .into_client_request()
        .map_err(BenchError::from)
        .and_then(|mut request| {
            let value = cookie
                .parse()
                .map_err(|_| BenchError::Unexpected("a cookie that is no header".into()))?;
            request.headers_mut().insert(COOKIE, value);
            Ok(request)
        });
    let connected = match request {
        Ok(request) => connect_async(request).await.map_err(BenchError::from),
        Err(error) => Err(error),
    };
    let mut ws = match connected {
        Ok((ws, _)) => ws,
        Err(error) => {
            let _ = ready.send(Err(error)).await;
            return;
        }
    };
    if let Err(error) = snapshot_read(&mut ws).await {
        let _ = ready.send(Err(error)).await;
        return;
    }
    drop(permit);
    let _ = ready.send(Ok(())).await;
    loop {
        let text = tokio::select! {
            () = stop.cancelled() => break,
            message = ws.next() => match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(_)) => continue,
                _ => break,
            },
        };
        frame(text.as_str(), now_micros());
    }
}
