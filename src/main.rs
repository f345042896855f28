//! The `dropline` server binary: read settings, start, serve.

use std::process::ExitCode;

use dropline::server::{self, settings::Settings};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info")),
        )
        .init();
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("dropline: {error}");
            return ExitCode::from(2);
        }
    };
    match server::serve(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dropline: {error}");
            ExitCode::FAILURE
        }
    }
}
