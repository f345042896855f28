//! The public audit of a queue or a draw as HTTP serves it. Once final (go-live put the queue's
//! lobby in order, the draw was made) it is one document that never changes, so an instance
//! encodes it once — a brotli and a gzip copy beside it, each with a strong `ETag` from the
//! document's SHA-256 — and
//! answers every later request from memory: `Cache-Control: public, immutable`, 304 for a copy
//! the client already holds. Building it costs a read of every ticket and half a second of
//! CPU at 50,000 entries; serving it costs a memory copy.

use std::{io::Write, sync::Arc};

use axum::{
    body::{Body, Bytes},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use moka::future::Cache;
use sha2::{Digest, Sha256};

use crate::{
    model::{ApiError, DropId, ErrorCode},
    server::{inventory::Inventory, receipts::ReceiptKey},
};

/// What the final audits an instance keeps in memory may weigh together (bytes, all encodings).
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// One encoding of a final audit and its strong `ETag`.
struct Copy {
    etag: HeaderValue,
    body: Bytes,
}

/// A final audit, encoded once for every client. Each encoding is its own representation, so
/// each has its own strong `ETag` (RFC 9110): `"<sha256 of the document>"`, with `-br` or
/// `-gzip` for the compressed copies — the same on every instance. `signature` is the
/// receipt key's over the document (`Dropline-Signature`), the same on every instance too.
pub struct Encoded {
    identity: Copy,
    brotli: Copy,
    gzip: Copy,
    signature: HeaderValue,
}

/// The header a final audit's signature travels in.
pub const SIGNATURE_HEADER: &str = "dropline-signature";

/// The final audits this instance has encoded. Cheap to clone.
#[derive(Clone)]
pub struct FinalAudits {
    cache: Cache<DropId, Arc<Encoded>>,
}

impl Default for FinalAudits {
    fn default() -> Self {
        Self {
            cache: Cache::builder()
                .weigher(|_, audit: &Arc<Encoded>| {
                    let bytes =
                        audit.identity.body.len() + audit.brotli.body.len() + audit.gzip.body.len();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .max_capacity(CACHE_BYTES)
                .build(),
        }
    }
}

impl FinalAudits {
    /// The drop's final audit, encoded; read and encoded on first use, by one request while
    /// any others asking meanwhile wait for it. Refusals (not final yet, no such drop) are not
    /// kept.
    pub async fn get(
        &self,
        inventory: &Inventory,
        key: &ReceiptKey,
        drop: DropId,
    ) -> Result<Arc<Encoded>, ApiError> {
        self.cache
            .try_get_with(drop, async {
                let document = inventory.final_audit(drop).await?;
                let signature = key.sign_audit(document.as_bytes());
                encode(document, signature).await.map(Arc::new)
            })
            .await
            .map_err(|error: Arc<ApiError>| (*error).clone())
    }
}

/// Encodes a document off the async threads (brotli of megabytes takes a while), with its
/// signature (hex).
async fn encode(document: String, signature: String) -> Result<Encoded, ApiError> {
    tokio::task::spawn_blocking(move || {
        let sha256 = format!("{:x}", Sha256::digest(document.as_bytes()));
        let copy = |suffix: &str, body: Vec<u8>| Copy {
            etag: HeaderValue::from_str(&format!("\"{sha256}{suffix}\""))
                .expect("hex digits are header text"),
            body: Bytes::from(body),
        };
        let mut brotli = Vec::new();
        {
            let mut writer = brotli::CompressorWriter::new(&mut brotli, 64 * 1024, 5, 22);
            writer.write_all(document.as_bytes())?;
        }
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(document.as_bytes())?;
        Ok::<_, std::io::Error>(Encoded {
            brotli: copy("-br", brotli),
            gzip: copy("-gzip", gzip.finish()?),
            identity: copy("", document.into_bytes()),
            signature: HeaderValue::from_str(&signature).expect("hex digits are header text"),
        })
    })
    .await
    .map_err(|error| {
        tracing::error!(%error, "encoding an audit failed");
        ApiError::refusal(ErrorCode::Internal)
    })?
    .map_err(|error| {
        tracing::error!(%error, "encoding an audit failed");
        ApiError::refusal(ErrorCode::Internal)
    })
}

impl Encoded {
    /// The answer to a request with these headers: the document in the best encoding it
    /// accepts, or 304 when `If-None-Match` names the copy it would get.
    pub fn respond(&self, headers: &HeaderMap) -> Response {
        let (copy, encoding) = if accepts(headers, "br") {
            (&self.brotli, Some("br"))
        } else if accepts(headers, "gzip") {
            (&self.gzip, Some("gzip"))
        } else {
            (&self.identity, None)
        };
        let common = [
            (header::ETAG, copy.etag.clone()),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
            (
                header::HeaderName::from_static(SIGNATURE_HEADER),
                self.signature.clone(),
            ),
        ];
        if holds(headers, &copy.etag) {
            return (StatusCode::NOT_MODIFIED, common).into_response();
        }
        let mut response = (
            common,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Body::from(copy.body.clone()),
        )
            .into_response();
        if let Some(encoding) = encoding {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
        }
        response
    }
}

/// True when `If-None-Match` names `etag` (or any version, `*`).
fn holds(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.to_str().unwrap_or_default();
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// True when `Accept-Encoding` takes `coding` (listed without `q=0`).
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            name.eq_ignore_ascii_case(coding) && !refused
        })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[tokio::test]
    async fn one_document_every_encoding_and_a_304_for_a_copy_held() {
        let document = format!(
            "{{\"audit\":{{\"tickets\":[{}]}}}}",
            "1,".repeat(5000) + "1"
        );
        let encoded = encode(document.clone(), "ab".into()).await.unwrap();
        let etag = encoded.identity.etag.to_str().unwrap().to_string();
        let sha256 = format!("{:x}", Sha256::digest(document.as_bytes()));
        assert_eq!(etag, format!("\"{sha256}\""));
        assert_eq!(encoded.brotli.etag, format!("\"{sha256}-br\"").as_str());

        let mut unpacked = String::new();
        brotli::Decompressor::new(&encoded.brotli.body[..], 4096)
            .read_to_string(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, document);
        let mut unpacked = String::new();
        flate2::read::GzDecoder::new(&encoded.gzip.body[..])
            .read_to_string(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, document);

        let plain = encoded.respond(&headers(&[]));
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let br = encoded.respond(&headers(&[("accept-encoding", "gzip, deflate, br")]));
        assert_eq!(br.headers()[header::CONTENT_ENCODING], "br");
        let gzip = encoded.respond(&headers(&[("accept-encoding", "br;q=0, gzip")]));
        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
        let mut held = HeaderMap::new();
        held.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"other\", {etag}")).unwrap(),
        );
        let not_modified = encoded.respond(&held);
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(not_modified.headers()[header::ETAG], etag.as_str());
        // A compressed copy is held under its own tag.
        held.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        assert_eq!(encoded.respond(&held).status(), StatusCode::OK);
        held.insert(header::IF_NONE_MATCH, encoded.brotli.etag.clone());
        assert_eq!(encoded.respond(&held).status(), StatusCode::NOT_MODIFIED);
    }
}
