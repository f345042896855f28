//! How the built site reaches a browser: `/pkg` (WASM, JS, CSS) precompressed at build
//! (`cargo leptos build --release --precompress` writes a `.br` and a `.gz` beside each file)
//! and served by `Accept-Encoding`, cached for a year when the name carries a content hash
//! (`hash-files`); everything the server renders (HTML, JSON) compressed on the fly, and the
//! dashboard's HTML never reused without asking (it carries live stock).

use axum::{
    extract::Request,
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::Response,
    routing::{get_service, MethodRouter},
};
use leptos::prelude::LeptosOptions;
use tower_http::{
    compression::{
        predicate::{NotForContentType, Predicate},
        CompressionLayer, DefaultPredicate,
    },
    services::ServeDir,
};

use crate::server::AppState;

/// The route `/pkg` files are served on.
pub const PKG_ROUTE: &str = "/pkg/{*path}";

/// Serves `/pkg` from the site root: the precompressed file the client accepts, `Vary:
/// Accept-Encoding`, and a year of caching for a name with a content hash (it never changes
/// under that name), none for any other.
pub fn pkg(options: &LeptosOptions) -> MethodRouter<AppState> {
    let files = ServeDir::new(options.site_root.as_ref())
        .precompressed_br()
        .precompressed_gzip();
    get_service(files).layer(middleware::from_fn(cache_hashed_forever))
}

async fn cache_hashed_forever(request: Request, next: Next) -> Response {
    let hashed = has_content_hash(request.uri().path());
    let mut response = next.run(request).await;
    let found = matches!(response.status(), StatusCode::OK | StatusCode::NOT_MODIFIED);
    let headers = response.headers_mut();
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let cache = if hashed && found {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// True for `name.<hash>.ext`, the names cargo-leptos gives hashed files: 22 characters of
/// unpadded base64url between the name and the extension.
fn has_content_hash(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or_default();
    let parts: Vec<&str> = file.split('.').collect();
    parts.len() >= 3
        && parts[parts.len() - 2].len() == 22
        && parts[parts.len() - 2]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Compresses what the server renders (HTML, JSON) for clients that accept it: brotli or gzip,
/// never WASM (it is precompressed) nor anything tiny.
pub fn compression() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(
        DefaultPredicate::new().and(NotForContentType::const_new("application/wasm")),
    )
}

/// Marks HTML `no-cache` unless its route said otherwise: a page carries live stock, so a
/// browser must ask again (a 304 costs nothing) rather than show a stale one.
pub async fn html_not_reused(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/html"));
    if is_html && !response.headers().contains_key(header::CACHE_CONTROL) {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hashed_names_are_cached_forever() {
        assert!(has_content_hash(
            "/pkg/dropline.Ab3dEf_h-jKlMnOpQrStUv.wasm"
        ));
        assert!(!has_content_hash("/pkg/dropline.wasm"));
        assert!(!has_content_hash("/pkg/dropline_bg.wasm"));
        assert!(!has_content_hash("/pkg/dropline.short.js"));
    }
}
