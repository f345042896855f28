//! What can stop a measurement, and the generator's `Result`.

/// Why a measurement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Unexpected(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("HTTP request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("WebSocket: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Results of the generator's own steps.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
