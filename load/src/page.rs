//! What a buyer's phone gets at go-live, from the running release server: the dashboard and
//! every file it references, counted as sent (`Accept-Encoding: br, gzip`, bytes on the wire);
//! how long a throttled phone takes to a working Reserve button (Playwright in Debian's
//! Chromium, `end2end/perf/phone.mjs`); and Lighthouse's mobile scores.

use std::{net::SocketAddr, path::Path, process::Command};

use hyper::{
    header::{ACCEPT, ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING},
    Method, StatusCode,
};

use crate::{
    api::Conn,
    error::Result,
    figures::{Lighthouse, PageReport, PhoneLoad, Sent},
};

/// Measures the dashboard the server at `addr` serves, with Lighthouse `runs` times (`work`
/// holds Lighthouse's report).
pub async fn measure(addr: SocketAddr, work: &Path, runs: usize) -> Result<PageReport> {
    let html = fetch(addr, "/").await?;
    let page = fetch_body(addr, "/").await?;
    let mut files = Vec::new();
    for path in references(&String::from_utf8_lossy(&page)) {
        files.push(fetch(addr, &path).await?);
    }
    let url = format!("http://{addr}/");
    Ok(PageReport {
        html,
        files,
        phone: phone_loads(&url, 5),
        lighthouse: (0..runs).map(|_| lighthouse(&url, work)).collect(),
    })
}

/// `GET path` as a browser asks for it, and again for the raw content.
async fn fetch(addr: SocketAddr, path: &str) -> Result<Sent> {
    let mut conn = Conn::open(addr).await?;
    let reply = conn
        .call(
            Method::GET,
            path,
            &[(ACCEPT_ENCODING, "br, gzip"), (ACCEPT, "text/html,*/*")],
            None,
        )
        .await?
        .expect(StatusCode::OK, path)?;
    let header = |name| {
        reply
            .headers
            .get(name)
            .and_then(|v: &hyper::header::HeaderValue| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let encoding = match header(CONTENT_ENCODING) {
        e if e.is_empty() => "identity".to_string(),
        e => e,
    };
    let cache_control = header(CACHE_CONTROL);
    let raw = fetch_body(addr, path).await?.len() as u64;
    Ok(Sent {
        path: path.to_string(),
        raw,
        sent: reply.body.len() as u64,
        encoding,
        cache_control,
    })
}

/// The content of `path`, asked for with no encoding.
async fn fetch_body(addr: SocketAddr, path: &str) -> Result<hyper::body::Bytes> {
    let mut conn = Conn::open(addr).await?;
    let reply = conn
        .call(Method::GET, path, &[(ACCEPT_ENCODING, "identity")], None)
        .await?
        .expect(StatusCode::OK, path)?;
    Ok(reply.body)
}

/// The site paths a page's `href` and `src` attributes name, each once, in order.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        let mut rest = html;
        while let Some(at) = rest.find(attribute) {
            rest = &rest[at + attribute.len()..];
            let Some(end) = rest.find('"') else { break };
            let path = &rest[..end];
            let is_file = path.starts_with('/') && !path.starts_with("//") && path.len() > 1;
            if is_file && !found.iter().any(|p| p == path) {
                found.push(path.to_string());
            }
        }
    }
    found
}

/// Five cold loads of `url` on a throttled phone (`end2end/perf/phone.mjs`).
fn phone_loads(url: &str, loads: usize) -> std::result::Result<Vec<PhoneLoad>, String> {
    node_lines("perf/phone.mjs", &[url, &loads.to_string()])
}

/// Runs one of `end2end/perf`'s Node scripts and reads the JSON line it prints per measure.
pub fn node_lines<T: serde::de::DeserializeOwned>(
    script: &str,
    args: &[&str],
) -> std::result::Result<Vec<T>, String> {
    let output = Command::new("node")
        .arg(script)
        .args(args)
        .current_dir("end2end")
        .output()
        .map_err(|e| format!("cannot run node {script}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{script} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).map_err(|e| format!("{e}: {line}")))
        .collect()
}

/// Lighthouse (npm, mobile preset with its simulated throttling) against Debian's Chromium.
fn lighthouse(url: &str, work: &Path) -> std::result::Result<Lighthouse, String> {
    let report = work.join("lighthouse.json");
    let output = Command::new("end2end/node_modules/.bin/lighthouse")
        .arg(url)
        .args([
            "--only-categories=performance,accessibility",
            "--output=json",
            "--quiet",
            "--chrome-flags=--headless=new --no-sandbox --disable-gpu --no-first-run \
             --disable-background-networking --disable-component-update --disable-sync",
        ])
        .arg(format!("--output-path={}", report.display()))
        .env(
            "CHROME_PATH",
            std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into()),
        )
        .output()
        .map_err(|e| format!("cannot run lighthouse: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "lighthouse failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let json: serde_json::Value = std::fs::read(&report)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))?;
    let score = |category: &str| {
        json["categories"][category]["score"]
            .as_f64()
            .unwrap_or(0.0)
            * 100.0
    };
    let mut losses = Vec::new();
    for category in ["performance", "accessibility"] {
        for audit in json["categories"][category]["auditRefs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let weighted = audit["weight"].as_f64().unwrap_or(0.0) > 0.0;
            let id = audit["id"].as_str().unwrap_or_default();
            let result = &json["audits"][id];
            let score = result["score"].as_f64();
            if weighted && score.is_some_and(|s| s < 1.0) {
                losses.push(format!(
                    "{category}: {} ({}{})",
                    result["title"].as_str().unwrap_or(id),
                    result["displayValue"]
                        .as_str()
                        .map(|v| format!("{v}, "))
                        .unwrap_or_default(),
                    format_args!("score {:.2}", score.unwrap_or(0.0)),
                ));
            }
        }
    }
    Ok(Lighthouse {
        performance: score("performance"),
        accessibility: score("accessibility"),
        losses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_the_pages_own_files_once() {
        let html = r#"<link href="/pkg/a.css"><link rel="preload" href="/pkg/a.wasm">
            <img src="/images/x.svg"><a href="/">home</a><img src="/images/x.svg">
            <link href="//cdn.example/x.js">"#;
        assert_eq!(
            references(html),
            ["/pkg/a.css", "/pkg/a.wasm", "/images/x.svg"]
        );
    }
}
