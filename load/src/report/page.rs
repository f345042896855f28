//! The page a phone gets: bytes as sent, a throttled load, Lighthouse.

use std::fmt::Write as _;

use super::{format::plural, rows::spread, Report};
use crate::{figures::Lighthouse, measure::median};

impl Report {
    pub(super) fn render_page(&self, out: &mut String) {
        let Some(page) = &self.page else {
            return;
        };
        let _ = writeln!(
            out,
            "## What a phone downloads at go-live\n\n\
             The release server's dashboard (3 demo drops) and every file it references, fetched \
             with `Accept-Encoding: br, gzip`: \"as sent\" counts the bytes on the wire, \"raw\" \
             the content. KB = 1,000 bytes.\n\n\
             | path | raw KB | as sent KB | encoding | Cache-Control |\n\
             | --- | ---: | ---: | --- | --- |"
        );
        for file in std::iter::once(&page.html).chain(&page.files) {
            let _ = writeln!(
                out,
                "| `{}` | {:.1} | {:.1} | {} | {} |",
                file.path,
                file.raw as f64 / 1000.0,
                file.sent as f64 / 1000.0,
                file.encoding,
                file.cache_control
            );
        }
        let _ = writeln!(
            out,
            "| **WASM + JS + CSS** | **{:.1}** | **{:.1}** | | |\n",
            page.code_raw() as f64 / 1000.0,
            page.code_sent() as f64 / 1000.0
        );
        match &page.phone {
            Ok(loads) => {
                let ready: Vec<f64> = loads.iter().map(|l| l.hydrated_ms).collect();
                let paint: Vec<f64> = loads.iter().filter_map(|l| l.fcp_ms).collect();
                let range = |values: &[f64]| {
                    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = values.iter().copied().fold(0.0, f64::max);
                    format!("{min:.0}–{max:.0}")
                };
                let _ = writeln!(
                    out,
                    "A phone on a slow network (Playwright in Debian's Chromium through the Chrome \
                     DevTools Protocol: 1.6 Mbit/s down, 750 kbit/s up, 150 ms latency per request, \
                     CPU slowed 4×; {} cold loads): first contentful paint median **{:.0} ms** \
                     ({} ms), working Reserve button (every island awake) median **{:.0} ms** \
                     ({} ms).\n",
                    loads.len(),
                    median(&paint).unwrap_or(0.0),
                    range(&paint),
                    median(&ready).unwrap_or(0.0),
                    range(&ready),
                );
            }
            Err(error) => {
                let _ = writeln!(out, "The throttled phone could not be measured: {error}\n");
            }
        }
        match &page.lighthouse {
            Ok(runs) if !runs.is_empty() => {
                let score = |figure: fn(&Lighthouse) -> f64| {
                    let values: Vec<f64> = runs.iter().map(figure).collect();
                    spread(&values, median(&values).unwrap_or(0.0), |v| {
                        format!("{v:.0}")
                    })
                };
                let _ = write!(
                    out,
                    "Lighthouse 12 (npm, mobile preset, simulated throttling) against Debian's \
                     Chromium, {} run{} (median, lowest–highest): Performance **{}**, \
                     Accessibility **{}**.",
                    runs.len(),
                    plural(runs.len()),
                    score(|l| l.performance),
                    score(|l| l.accessibility)
                );
                // The losses of the run with the median performance.
                let mut by_performance: Vec<_> = runs.iter().collect();
                by_performance.sort_by(|a, b| a.performance.total_cmp(&b.performance));
                let l = by_performance[by_performance.len() / 2];
                if l.losses.is_empty() {
                    let _ = writeln!(out, "\n");
                } else {
                    let _ = writeln!(out, " The audits that cost points in the median run:\n");
                    for loss in &l.losses {
                        let _ = writeln!(out, "- {loss}");
                    }
                    let _ = writeln!(out);
                }
            }
            Ok(_) => {}
            Err(error) => {
                let _ = writeln!(out, "Lighthouse could not run: {error}\n");
            }
        }
    }
}
