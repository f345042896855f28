//! The targets table: each target, met or missed by how much, per database.

use std::fmt::Write as _;

use super::{
    format::{at_least, at_most, held_within, thousands},
    Report,
};
use crate::{
    api::Route,
    figures::{Draw, Expiry, Fanout, GoLive, Lighthouse, PageReport},
    measure::median,
    server::Db,
};

/// Reserves per second one hot drop should sustain, on either database.
pub(super) const TARGET_HOLDS_PER_SECOND: f64 = 20_000.0;
/// PostgreSQL's reserves per second at 256 buyers, as a share of SQLite's in the same run.
pub(super) const TARGET_POSTGRES_SHARE_PERCENT: f64 = 90.0;
/// The hot drop spread over ten sizes, as a share of the one-size cell in the same run.
pub(super) const TARGET_SIZED_SHARE_PERCENT: f64 = 95.0;
/// p99 reserve latency at 256 buyers, milliseconds.
pub(super) const TARGET_RESERVE_P99_MS: f64 = 50.0;
/// p99 fan-out latency at 5,000 clients, milliseconds.
pub(super) const TARGET_FANOUT_P99_MS: f64 = 200.0;
/// p99 expiry lateness, milliseconds.
pub(super) const TARGET_EXPIRY_P99_MS: f64 = 50.0;
/// Joins per second into a queue's lobby.
pub(super) const TARGET_JOINS_PER_SECOND: f64 = 10_000.0;
/// From go-live to every unit held, seconds.
pub(super) const TARGET_ALL_HELD_S: f64 = 5.0;
/// p99 place-update delivery to the waiting sockets, milliseconds.
pub(super) const TARGET_PLACE_P99_MS: f64 = 1_000.0;
/// WASM + JS + CSS as sent, bytes (100 KB, with KB = 1,000 bytes).
pub(super) const TARGET_CODE_SENT: u64 = 100_000;
/// Issue 16: every winner of a 100,000-entry draw holds a unit this soon after the draw.
pub(super) const TARGET_DRAW_HELD_S: f64 = 2.0;
/// Issue 16: every entrant's screen is told the result this soon after the draw (p99).
pub(super) const TARGET_DRAW_TOLD_P99_MS: f64 = 2_000.0;
/// The dashboard's HTML, as sent.
pub(super) const TARGET_HTML_SENT: u64 = 10_000;
/// Median time to a working Reserve button on a throttled phone.
pub(super) const TARGET_PHONE_READY_MS: f64 = 2_000.0;
/// Lighthouse's Performance and Accessibility scores.
pub(super) const TARGET_LIGHTHOUSE: f64 = 95.0;

impl Report {
    pub(super) fn render_targets(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Targets\n\n\
             | target | {} |\n| --- |{}",
            self.databases
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(" | "),
            " --- |".repeat(self.databases.len())
        );
        let row = |out: &mut String, name: &str, verdict: &dyn Fn(Db) -> String| {
            let cells: Vec<String> = self.databases.iter().map(|&db| verdict(db)).collect();
            let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
        };
        let main_cell = |db: Db| {
            let first_label = self.hot.iter().find(|r| r.db == db).map(|r| &r.settings);
            self.hot
                .iter()
                .filter(|r| {
                    r.db == db && Some(&r.settings) == first_label && r.cell().route == Route::Rest
                })
                .max_by_key(|r| r.cell().concurrency)
        };
        row(
            out,
            "≥ 20,000 reserves/s on one hot drop (256 buyers)",
            &|db| match main_cell(db) {
                Some(r) => at_least(r.cell().holds_per_second(), TARGET_HOLDS_PER_SECOND, "/s"),
                None => "not measured".into(),
            },
        );
        row(
            out,
            "p99 ≤ 50 ms at 256 buyers",
            &|db| match main_cell(db) {
                Some(r) => at_most(r.cell().latency_ms(0.99), TARGET_RESERVE_P99_MS, " ms"),
                None => "not measured".into(),
            },
        );
        row(
            out,
            "PostgreSQL ≥ 90 % of SQLite's reserves/s at 256 buyers (this run)",
            &|db| match (db, main_cell(Db::Sqlite), main_cell(Db::Postgres)) {
                (Db::Sqlite, ..) => "(the reference)".into(),
                (Db::Postgres, Some(sqlite), Some(postgres)) => at_least(
                    100.0 * postgres.cell().holds_per_second() / sqlite.cell().holds_per_second(),
                    TARGET_POSTGRES_SHARE_PERCENT,
                    " %",
                ),
                _ => "not measured".into(),
            },
        );
        row(
            out,
            "a hot drop of 10 sizes ≥ 95 % of the one-size cell's reserves/s (256 buyers, this run)",
            &|db| {
                let sized = self.hot.iter().find(|r| {
                    r.db == db
                        && main_cell(db).is_some_and(|m| m.settings == r.settings)
                        && r.cell().route == Route::RestSized
                });
                match (main_cell(db), sized) {
                    (Some(one), Some(sized)) => at_least(
                        100.0 * sized.cell().holds_per_second() / one.cell().holds_per_second(),
                        TARGET_SIZED_SHARE_PERCENT,
                        " %",
                    ),
                    _ => "not measured".into(),
                }
            },
        );
        row(out, "no oversell (every run)", &|db| {
            let hot: Vec<_> = self.hot.iter().filter(|r| r.db == db).collect();
            let sell_out: Vec<_> = self
                .sell_out
                .iter()
                .filter(|r| r.db == db)
                .flat_map(|r| &r.runs)
                .collect();
            let beside_watchers: Vec<_> = self
                .fanout
                .iter()
                .filter(|r| r.db == db)
                .flat_map(|r| &r.runs)
                .filter_map(|run| run.hot.as_ref())
                .chain(
                    self.expiry
                        .iter()
                        .filter(|r| r.db == db)
                        .flat_map(|r| &r.runs)
                        .filter_map(|run| run.hot.as_ref()),
                )
                .collect();
            if hot.is_empty() && sell_out.is_empty() && beside_watchers.is_empty() {
                "not measured".into()
            } else if hot.iter().all(|r| r.no_oversell())
                && sell_out.iter().all(|cell| cell.faults().is_empty())
                && beside_watchers.iter().all(|cell| cell.no_oversell())
            {
                format!(
                    "met ({} runs audited, {} of them selling out)",
                    hot.iter().map(|r| r.runs.len()).sum::<usize>()
                        + sell_out.len()
                        + beside_watchers.len(),
                    sell_out.len()
                )
            } else {
                "**MISSED**: see the hot-drop, sell-out, fan-out and expiry tables".into()
            }
        });
        for (target, busy, several) in [
            (
                "fan-out p99 ≤ 200 ms at 5,000 clients (click to screen)",
                false,
                false,
            ),
            ("the same beside a hot drop", true, false),
            (
                "the same at 20,000 clients, over instances of 10,000",
                false,
                true,
            ),
        ] {
            row(out, target, &|db| match self
                .fanout
                .iter()
                .filter(|r| {
                    r.db == db
                        && r.first().hot.is_some() == busy
                        && (r.first().instances > 1) == several
                })
                .max_by_key(|r| r.first().clients)
            {
                Some(r) => at_most(r.median(Fanout::p99_ms), TARGET_FANOUT_P99_MS, " ms"),
                None if several && db == Db::Sqlite => {
                    "not possible (SQLite serves one instance)".into()
                }
                None => "not measured".into(),
            });
        }
        for (target, busy) in [
            ("expiry lateness p99 ≤ 50 ms", false),
            ("the same beside a hot drop and 5,000 watchers", true),
        ] {
            row(out, target, &|db| match self
                .expiry
                .iter()
                .find(|r| r.db == db && r.first().hot.is_some() == busy)
            {
                Some(r) => at_most(r.median(Expiry::p99_ms), TARGET_EXPIRY_P99_MS, " ms"),
                None => "not measured".into(),
            });
        }
        let golive = |db: Db| self.golive.iter().find(|r| r.db == db);
        row(out, "go-live: ≥ 10,000 joins/s into the lobby", &|db| {
            golive(db).map_or_else(
                || "not measured".into(),
                |g| {
                    at_least(
                        g.median(|g| g.joins_per_second),
                        TARGET_JOINS_PER_SECOND,
                        "/s",
                    )
                },
            )
        });
        row(
            out,
            "go-live: every unit held ≤ 5 s after go-live",
            &|db| match golive(db) {
                Some(g) => held_within(
                    g,
                    |g| g.all_held_after,
                    |g| format!("{} of {}", g.held, g.units),
                    TARGET_ALL_HELD_S,
                ),
                None => "not measured".into(),
            },
        );
        row(out, "go-live: place updates p99 ≤ 1 s", &|db| {
            golive(db).map_or_else(
                || "not measured".into(),
                |g| match g.worst(|g| g.never_placed) {
                    0 => at_most(g.median(GoLive::place_p99_ms), TARGET_PLACE_P99_MS, " ms"),
                    n => {
                        format!("**MISSED**: {n} waiting sockets never heard their place in a run")
                    }
                },
            )
        });
        row(
            out,
            "go-live: never over-admitted",
            &|db| match golive(db) {
                Some(g) => match g.worst(|g| usize::try_from(g.over_admitted).unwrap_or(0)) {
                    0 => format!(
                        "met ({} samples)",
                        thousands(g.runs.iter().map(|g| g.samples as f64).sum())
                    ),
                    n => format!("**MISSED**: {n} over the rule in a run"),
                },
                None => "not measured".into(),
            },
        );
        let draw = |db: Db| self.draw.iter().find(|r| r.db == db);
        row(
            out,
            "draw of 100,000 entries: every winner holds a unit ≤ 2 s after the draw",
            &|db| match draw(db) {
                Some(d) => held_within(
                    d,
                    |d| d.all_held_after,
                    |d| format!("{} of {}", d.holds, d.units),
                    TARGET_DRAW_HELD_S,
                ),
                None => "not measured".into(),
            },
        );
        row(
            out,
            "draw: every entrant's screen told the result, p99 ≤ 2 s",
            &|db| match draw(db) {
                Some(d) => match d.worst(|d| d.never_told) {
                    0 => at_most(d.median(Draw::told_p99_ms), TARGET_DRAW_TOLD_P99_MS, " ms"),
                    n => format!("**MISSED**: {n} screens never told in a run"),
                },
                None => "not measured".into(),
            },
        );
        let page = |measure: &dyn Fn(&PageReport) -> String| match &self.page {
            Some(page) => measure(page),
            None => "not measured".into(),
        };
        let row = |value: String| vec![value; self.databases.len().max(1)].join(" | ");
        let code = page(&|p| {
            at_most(
                p.code_sent() as f64 / 1000.0,
                TARGET_CODE_SENT as f64 / 1000.0,
                " KB",
            )
        });
        let html = page(&|p| {
            at_most(
                p.html.sent as f64 / 1000.0,
                TARGET_HTML_SENT as f64 / 1000.0,
                " KB",
            )
        });
        let ready = page(&|p| match p.hydrated_median() {
            Some(ms) => at_most(ms, TARGET_PHONE_READY_MS, " ms"),
            None => "not measured".into(),
        });
        let lighthouse = page(&|p| match &p.lighthouse {
            Ok(runs) if !runs.is_empty() => {
                let score = |figure: fn(&Lighthouse) -> f64| {
                    let values: Vec<f64> = runs.iter().map(figure).collect();
                    at_least(median(&values).unwrap_or(0.0), TARGET_LIGHTHOUSE, "")
                };
                format!(
                    "Performance {}, Accessibility {}",
                    score(|l| l.performance),
                    score(|l| l.accessibility)
                )
            }
            _ => "not measured".into(),
        });
        let _ = writeln!(
            out,
            "| WASM + JS + CSS ≤ 100 KB as sent (the same server for both) | {} |\n\
             | dashboard HTML ≤ 10 KB as sent | {} |\n\
             | working Reserve button ≤ 2.0 s on a throttled phone (median of 5) | {} |\n\
             | Lighthouse (mobile) Performance and Accessibility ≥ 95 | {} |\n",
            row(code),
            row(html),
            row(ready),
            row(lighthouse),
        );
        let _ = writeln!(
            out,
            "A missed target says by how much; why is in the notes at the end.\n"
        );
    }
}
