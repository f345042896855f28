//! What a browser downloads: the release WASM, JS and CSS under the site's `pkg/`, and the
//! dashboard's HTML, raw and gzip-compressed.

use std::{io::Write, path::Path};

use flate2::{write::GzEncoder, Compression};

use crate::Result;

/// One file's size.
pub struct Asset {
    pub name: String,
    pub raw: u64,
    pub gzip: u64,
}

impl Asset {
    /// Measures `bytes` under `name`.
    pub fn of(name: impl Into<String>, bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            raw: bytes.len() as u64,
            gzip: gzip_len(bytes)?,
        })
    }
}

/// Size after `gzip -9`, as a server precompressing its assets would send them.
fn gzip_len(bytes: &[u8]) -> Result<u64> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len() as u64)
}

/// The WASM, JS and CSS files the release build wrote to `<site>/pkg`, by name.
pub fn site_files(site: &Path) -> Result<Vec<Asset>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(site.join("pkg"))? {
        let path = entry?.path();
        let wanted = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "wasm" | "js" | "css"));
        if !wanted {
            continue;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push(Asset::of(name, &std::fs::read(&path)?)?);
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}
