//! What a browser downloads: the built site's files precompressed and cached for good when
//! their names carry a content hash, pages and JSON compressed on the fly, pages never reused
//! without asking.

mod common;

use axum::{
    body::Body,
    http::{header, Request, StatusCode},
};
use common::{Api, Backend};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A hashed name, as cargo-leptos writes them.
const WASM: &str = "pkg/dropline.AbCdEfGhIjKlMnOpQrStUv.wasm";

/// A site root holding one hashed WASM file with its brotli and gzip copies, as a release build
/// with `--precompress` leaves it.
fn built_site() -> tempfile::TempDir {
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join(WASM), vec![0u8; 4096]).unwrap();
    std::fs::write(site.path().join(format!("{WASM}.br")), b"brotli bytes").unwrap();
    std::fs::write(site.path().join(format!("{WASM}.gz")), b"gzip bytes").unwrap();
    site
}

/// `GET path` with `Accept-Encoding: accept`: status, headers and the bytes on the wire.
async fn get(api: &Api, path: &str, accept: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = Request::builder()
        .uri(path)
        .header(header::ACCEPT_ENCODING, accept)
        .header(header::ACCEPT, "text/html,application/json")
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn hashed_assets_come_precompressed_and_cached_for_good() {
    let site = built_site();
    let root = site.path().display().to_string();
    let api = Api::configured(Backend::Sqlite, |s| s.site_root = root).await;

    let (status, headers, body) = get(&api, &format!("/{WASM}"), "br, gzip").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    assert_eq!(body, b"brotli bytes");
    assert_eq!(headers[header::CONTENT_TYPE], "application/wasm");
    assert_eq!(
        headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(headers[header::VARY]
        .to_str()
        .unwrap()
        .contains("accept-encoding"));

    let (_, headers, body) = get(&api, &format!("/{WASM}"), "gzip").await;
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");
    assert_eq!(body, b"gzip bytes");

    // A client that takes no encoding gets the file itself.
    let (_, headers, body) = get(&api, &format!("/{WASM}"), "identity").await;
    assert!(!headers.contains_key(header::CONTENT_ENCODING));
    assert_eq!(body.len(), 4096);

    // What is not there is not cached for a year.
    let (status, headers, _) = get(&api, "/pkg/dropline.BbCdEfGhIjKlMnOpQrStUv.js", "br").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
}

#[tokio::test]
async fn pages_and_json_are_compressed_and_pages_are_not_reused() {
    let api = Api::configured(Backend::Sqlite, |s| s.seed_demo = true).await;

    let (status, headers, _) = get(&api, "/", "br, gzip").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "br");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(headers[header::CACHE_CONTROL], "no-cache");

    let (status, headers, _) = get(&api, "/api/v1/drops", "gzip").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_ENCODING], "gzip");

    // A client that asks for no encoding reads the page as it is.
    let (_, headers, body) = get(&api, "/", "identity").await;
    assert!(!headers.contains_key(header::CONTENT_ENCODING));
    assert!(String::from_utf8(body)
        .unwrap()
        .contains("Aurora Runner OG"));
}
