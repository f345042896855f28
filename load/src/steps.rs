//! Where a reserve batch's time goes, as the server counts it: the deltas of its
//! `dropline_write_batch_size` and `dropline_write_step_seconds` histograms over a measured
//! window, read from `/metrics` before and after. Each step is timed inside the batch's
//! transaction, from the end of the step before: `begin` opens it (on SQLite, after waiting
//! for the writer's turn), `lock` takes the drop's row, `check`, `insert` and `stock` are the
//! batch's statements, and `commit` includes sending its events.

use std::{collections::BTreeMap, net::SocketAddr};

use crate::{api, error::Result};

/// The steps of a reserve batch, in order.
pub const STEPS: [&str; 6] = ["begin", "lock", "check", "insert", "stock", "commit"];

/// One reading of the server's sums and counts, by series (`name{labels}`).
#[derive(Clone, Debug, Default)]
pub struct Reading(BTreeMap<String, f64>);

impl Reading {
    /// Reads `/metrics` now.
    pub async fn take(addr: SocketAddr) -> Result<Self> {
        let reply = api::get(addr, "/metrics").await?;
        let text = String::from_utf8_lossy(&reply.body);
        Ok(Self(
            text.lines()
                .filter(|line| line.starts_with("dropline_write_"))
                .filter_map(|line| {
                    let (series, value) = line.rsplit_once(' ')?;
                    Some((series.to_string(), value.parse().ok()?))
                })
                .collect(),
        ))
    }

    fn get(&self, series: &str) -> f64 {
        self.0.get(series).copied().unwrap_or(0.0)
    }

    /// What reserve batches did between `before` and this reading.
    pub fn since(&self, before: &Reading) -> Batches {
        let delta = |series: String| self.get(&series) - before.get(&series);
        let batches = delta(r#"dropline_write_batch_size_count{write="reserve"}"#.into());
        let buyers = delta(r#"dropline_write_batch_size_sum{write="reserve"}"#.into());
        let step_ms = STEPS.map(|step| {
            let labels = format!(r#"{{step="{step}",write="reserve"}}"#);
            let count = delta(format!("dropline_write_step_seconds_count{labels}"));
            let seconds = delta(format!("dropline_write_step_seconds_sum{labels}"));
            if count > 0.0 {
                seconds * 1000.0 / count
            } else {
                0.0
            }
        });
        Batches {
            batches,
            buyers,
            step_ms,
        }
    }
}

/// Reserve batches over a window: how many, how many buyers they served, and the mean
/// milliseconds of each step.
#[derive(Clone, Debug, Default)]
pub struct Batches {
    pub batches: f64,
    pub buyers: f64,
    pub step_ms: [f64; STEPS.len()],
}

impl Batches {
    /// Buyers per batch.
    pub fn mean_size(&self) -> f64 {
        self.buyers / self.batches.max(1.0)
    }

    /// Milliseconds from a batch's start to its commit, on average.
    pub fn total_ms(&self) -> f64 {
        self.step_ms.iter().sum()
    }
}
