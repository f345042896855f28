//! `BENCHMARKS.md`: the machine, the tables, and each target met or missed by how much. A
//! hand-written notes block between the `notes:begin` / `notes:end` markers survives reruns.

use std::{fmt::Write as _, path::Path, time::Duration};

use chrono::{DateTime, Utc};

use crate::{
    api::Route,
    draw::Draw,
    expiry::Expiry,
    fanout::Fanout,
    golive::GoLive,
    hot::Cell,
    openloop,
    page::PageReport,
    sellout,
    server::{Db, SETTINGS},
    Options, Result,
};

const NOTES_BEGIN: &str = "<!-- notes:begin (kept by make bench) -->";
const NOTES_END: &str = "<!-- notes:end -->";
/// Cores used by other work on the box past which the report warns that it was not quiet.
const BUSY_BOX: f64 = 0.25;

/// Reserves per second one hot drop should sustain, on either database.
const TARGET_HOLDS_PER_SECOND: f64 = 20_000.0;
/// PostgreSQL's reserves per second at 256 buyers, as a share of SQLite's in the same run.
const TARGET_POSTGRES_SHARE_PERCENT: f64 = 90.0;
/// p99 reserve latency at 256 buyers, milliseconds.
const TARGET_RESERVE_P99_MS: f64 = 50.0;
/// p99 fan-out latency at 5,000 clients, milliseconds.
const TARGET_FANOUT_P99_MS: f64 = 200.0;
/// p99 expiry lateness, milliseconds.
const TARGET_EXPIRY_P99_MS: f64 = 50.0;
/// Joins per second into a queue's lobby.
const TARGET_JOINS_PER_SECOND: f64 = 10_000.0;
/// From go-live to every unit held, seconds.
const TARGET_ALL_HELD_S: f64 = 5.0;
/// p99 place-update delivery to the waiting sockets, milliseconds.
const TARGET_PLACE_P99_MS: f64 = 1_000.0;
/// WASM + JS + CSS as sent, bytes (100 KB, with KB = 1,000 bytes).
const TARGET_CODE_SENT: u64 = 100_000;
/// Issue 16: every winner of a 100,000-entry draw holds a unit this soon after the draw.
const TARGET_DRAW_HELD_S: f64 = 2.0;
/// Issue 16: every entrant's screen is told the result this soon after the draw (p99).
const TARGET_DRAW_TOLD_P99_MS: f64 = 2_000.0;
/// The dashboard's HTML, as sent.
const TARGET_HTML_SENT: u64 = 10_000;
/// Median time to a working Reserve button on a throttled phone.
const TARGET_PHONE_READY_MS: f64 = 2_000.0;
/// Lighthouse's Performance and Accessibility scores.
const TARGET_LIGHTHOUSE: f64 = 95.0;

/// One hot-drop row: the runs of one cell.
pub struct HotRow {
    pub db: Db,
    /// The server's settings beyond those every run gets (batching, SQLite's sync).
    pub settings: String,
    /// Every run, by holds per second.
    pub runs: Vec<Cell>,
}

impl HotRow {
    /// A row of one or more runs of the same cell.
    pub fn new(db: Db, settings: String, mut runs: Vec<Cell>) -> Self {
        assert!(!runs.is_empty(), "a hot-drop row needs a run");
        runs.sort_by(|a, b| a.holds_per_second().total_cmp(&b.holds_per_second()));
        Self { db, settings, runs }
    }

    /// Adds runs of the same cell made on another server start (runs interleaved with
    /// another cell's).
    pub fn add(&mut self, runs: Vec<Cell>) {
        self.runs.extend(runs);
        self.runs
            .sort_by(|a, b| a.holds_per_second().total_cmp(&b.holds_per_second()));
    }

    /// The run with the median holds per second: the figures the row and the targets show.
    pub fn cell(&self) -> &Cell {
        &self.runs[(self.runs.len() - 1) / 2]
    }

    /// Every run passed its oversell audit.
    pub fn no_oversell(&self) -> bool {
        self.runs.iter().all(Cell::no_oversell)
    }

    /// "median (min–max)" of `figure` over the runs, the median being the median run's.
    fn spread(&self, figure: impl Fn(&Cell) -> f64, show: impl Fn(f64) -> String) -> String {
        let values: Vec<f64> = self.runs.iter().map(&figure).collect();
        spread(&values, figure(self.cell()), show)
    }
}

/// Every run of one cell on one database (the same scenario and settings, run again on a new
/// drop and, where the scenario starts its own server, a new server). The report shows each
/// figure as its median over the runs, with the lowest and highest in brackets.
pub struct Runs<T> {
    pub db: Db,
    /// In the order they ran; never empty.
    pub runs: Vec<T>,
}

impl<T> Runs<T> {
    /// Adds `run` to the row in `rows` of the same database and cell (`same` compares a run
    /// already there with it), or starts that row.
    pub fn add(rows: &mut Vec<Self>, db: Db, run: T, same: impl Fn(&T, &T) -> bool) {
        match rows
            .iter_mut()
            .find(|row| row.db == db && same(&row.runs[0], &run))
        {
            Some(row) => row.runs.push(run),
            None => rows.push(Self {
                db,
                runs: vec![run],
            }),
        }
    }

    /// The first run: for what every run of the cell shares (its clients, units, ...).
    pub fn first(&self) -> &T {
        &self.runs[0]
    }

    /// The median of `figure` over the runs.
    pub fn median(&self, figure: impl Fn(&T) -> f64) -> f64 {
        median(&self.runs.iter().map(figure).collect::<Vec<_>>()).unwrap_or(0.0)
    }

    /// The most of some fault in any run: one run with any is one too many.
    pub fn worst(&self, faults: impl Fn(&T) -> usize) -> usize {
        self.runs.iter().map(faults).max().unwrap_or(0)
    }

    /// "median (lowest–highest)" of `figure` over the runs, or the one run's figure.
    pub fn spread(&self, figure: impl Fn(&T) -> f64, show: impl Fn(f64) -> String) -> String {
        let values: Vec<f64> = self.runs.iter().map(figure).collect();
        spread(&values, median(&values).unwrap_or(0.0), show)
    }
}

/// "middle (lowest–highest)" of `values`, or `middle` alone when there is only one value.
fn spread(values: &[f64], middle: f64, show: impl Fn(f64) -> String) -> String {
    if values.len() < 2 {
        return show(middle);
    }
    let (low, high) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    format!("{} ({}–{})", show(middle), show(low), show(high))
}

/// The median of some numbers (the upper one of an even count; `None` for none).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (!sorted.is_empty()).then(|| sorted[sorted.len() / 2])
}

/// The box the numbers come from.
#[derive(Default)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory: String,
    pub kernel: String,
    pub rustc: String,
    pub postgres: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".into(), |(_, v)| v.trim().to_string());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kib: f64 = m
                    .lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |k| format!("Linux {}", k.trim()));
        Self {
            cpu,
            cores,
            memory,
            kernel,
            rustc: command_line("rustc", &["--version"]),
            postgres: String::new(),
        }
    }
}

/// One way to run the hot drop: with the server's reserve batching at some setting, or as is.
pub struct Variant {
    pub label: String,
    /// `RESERVE_BATCH_MAX` to pass, if this build has the setting.
    pub value: Option<u32>,
}

/// Batched and unbatched when this build knows `reserve_batch_max` (listed in `Leptos.toml`),
/// else one run as is.
pub fn batching_variants() -> Vec<Variant> {
    let default = std::fs::read_to_string("Leptos.toml")
        .ok()
        .and_then(|toml| {
            toml.lines().find_map(|line| {
                let (key, value) = line.split_once('=')?;
                (key.trim() == "reserve_batch_max").then(|| value.trim().parse::<u32>().ok())?
            })
        });
    match default {
        None => vec![Variant {
            label: "none (no RESERVE_BATCH_MAX in this build)".into(),
            value: None,
        }],
        Some(default) => {
            let on = if default > 1 { default } else { 64 };
            vec![
                Variant {
                    label: format!("RESERVE_BATCH_MAX={on}"),
                    value: Some(on),
                },
                Variant {
                    label: "RESERVE_BATCH_MAX=1 (off)".into(),
                    value: Some(1),
                },
            ]
        }
    }
}

/// Everything measured in one run.
pub struct Report {
    pub date: DateTime<Utc>,
    pub commit: String,
    pub machine: Machine,
    pub elapsed: Duration,
    pub seconds: u64,
    /// Runs of each cell.
    pub runs: usize,
    pub rate: u32,
    pub hot: Vec<HotRow>,
    pub sell_out: Vec<Runs<sellout::Cell>>,
    pub open_loop: Vec<Runs<openloop::Cell>>,
    pub fanout: Vec<Runs<Fanout>>,
    pub expiry: Vec<Runs<Expiry>>,
    pub golive: Vec<Runs<GoLive>>,
    pub draw: Vec<Runs<Draw>>,
    pub page: Option<PageReport>,
    /// (database, buyers, sign-ins per second).
    pub sign_in: Vec<(Db, usize, f64)>,
    pub failures: Vec<String>,
    databases: Vec<Db>,
}

impl Report {
    /// An empty report for this run.
    pub fn new(options: &Options) -> Self {
        let head = command_line("git", &["rev-parse", "--short", "HEAD"]);
        let dirty = !command_line(
            "git",
            &[
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":!BENCHMARKS.md",
            ],
        )
        .is_empty();
        Self {
            date: Utc::now(),
            commit: if dirty {
                format!("{head} + uncommitted changes")
            } else {
                head
            },
            machine: Machine::read(),
            elapsed: Duration::ZERO,
            seconds: options.seconds,
            runs: options.runs,
            rate: options.rate,
            hot: Vec::new(),
            sell_out: Vec::new(),
            open_loop: Vec::new(),
            fanout: Vec::new(),
            expiry: Vec::new(),
            golive: Vec::new(),
            draw: Vec::new(),
            page: None,
            sign_in: Vec::new(),
            failures: Vec::new(),
            databases: options.databases.clone(),
        }
    }

    /// Writes the report, keeping the notes block of the file it replaces.
    pub fn write(&self, path: &Path) -> Result<()> {
        let previous = std::fs::read_to_string(path).unwrap_or_default();
        let notes = previous
            .split_once(NOTES_BEGIN)
            .and_then(|(_, rest)| rest.split_once(NOTES_END))
            .map_or_else(
                || "\n_No notes yet._\n".to_string(),
                |(notes, _)| notes.to_string(),
            );
        std::fs::write(path, self.render(&notes))?;
        Ok(())
    }

    fn render(&self, notes: &str) -> String {
        let mut out = String::new();
        let m = &self.machine;
        let _ = writeln!(
            out,
            "# Dropline benchmarks\n\n\
             Written by `make bench` (`load/`) on {} at commit `{}`; the run took \
             {:.0} s. Rerun it to refresh every table; only the notes at the end are hand-written.\n\n\
             ## Machine\n\n\
             | | |\n| --- | --- |\n\
             | CPU | {} × {} logical cores |\n| memory | {} |\n| kernel | {} |\n\
             | Rust | {} |\n| PostgreSQL | {} (local, default configuration) |\n\
             | SQLite | bundled with sqlx (WAL) |\n\n\
             One box runs everything: the release server, PostgreSQL and the load generator, which \
             competes with them for the same cores. The CPU column (cores busy on average: server / \
             PostgreSQL / generator / anything else on the box) shows who used what; 2.0 in all is \
             the whole machine.\n\n\
             Every server the generator starts gets these settings beyond its address, database \
             and secrets (a run that changes one more says so): {}. The rate limits are lifted \
             because every simulated buyer is a script on this one machine's address.\n\n\
             Every cell runs {} times, the cells of a scenario in turn (run 1 of each, then run \
             2, ...), so a slow spell of the box falls on one run of several cells rather than \
             on every run of one. A figure with a range in brackets is the median of its runs \
             with the lowest and highest; a figure without one is the median alone, except in \
             the hot-drop tables, which show their median run (by holds/s). A target is judged \
             on the median; a fault (oversell, a screen never told, a unit never held) in any \
             run counts.\n",
            self.date.format("%Y-%m-%d %H:%M UTC"),
            self.commit,
            self.elapsed.as_secs_f64(),
            m.cpu,
            m.cores,
            m.memory,
            m.kernel,
            m.rustc,
            m.postgres,
            SETTINGS
                .iter()
                .map(|(key, value)| format!("`{key}={value}`"))
                .collect::<Vec<_>>()
                .join(", "),
            self.runs,
        );
        let busiest = self
            .hot
            .iter()
            .flat_map(|r| r.runs.iter().map(|c| c.cpu.other))
            .chain(
                self.fanout
                    .iter()
                    .flat_map(|r| &r.runs)
                    .map(|r| r.cpu.other),
            )
            .fold(0.0_f64, f64::max);
        if busiest > BUSY_BOX {
            let _ = writeln!(
                out,
                "**Something else used up to {busiest:.2} cores during this run** (the `other` \
                 CPU figure): its numbers are lower than a quiet machine gives; rerun it when the \
                 box is idle.\n"
            );
        }
        self.render_targets(&mut out);
        self.render_hot(&mut out);
        self.render_sell_out(&mut out);
        self.render_open_loop(&mut out);
        self.render_fanout(&mut out);
        self.render_expiry(&mut out);
        self.render_golive(&mut out);
        self.render_draw(&mut out);
        self.render_page(&mut out);
        if !self.failures.is_empty() {
            let _ = writeln!(out, "## Runs that failed\n");
            for failure in &self.failures {
                let _ = writeln!(out, "- {failure}");
            }
            out.push('\n');
        }
        let _ = write!(out, "## Notes\n\n{NOTES_BEGIN}{notes}{NOTES_END}\n");
        out
    }

    fn render_targets(&self, out: &mut String) {
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
                let score = |figure: fn(&crate::page::Lighthouse) -> f64| {
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

    fn render_hot(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Hot drop: reserves over HTTP\n\n\
             One drop with stock for every request. C buyers, each on its own keep-alive HTTP/1.1 \
             connection, send `POST /api/v1/drops/{{id}}/reservations` back to back (the next one \
             when the previous is answered), every request as a different signed-in buyer. \
             0.5 s of warm-up, then {} s measured. Holds/s counts 201 answers; latency is from \
             sending a request to reading its whole answer. After each run the drop is audited in \
             the database: available + active holds + purchases = total, no more units held than \
             exist, nobody holds two, and every 201 is one active hold. The route is REST \
             (as a script reserves) unless it says otherwise: with the default batching, 256 \
             buyers also reserve with an `Idempotency-Key` on every request, and through \
             `/rpc/reserve_unit` as the web app's form does (a success there is 200). Each cell \
             runs {} time(s), each on a new drop: a row shows the run with the median holds/s, \
             with the lowest and highest holds/s and p99 of its runs in brackets, and the \
             targets use that median run. On SQLite the largest cell also runs on servers with \
             `SQLITE_SYNCHRONOUS=full` (as shipped: a commit is answered once synced to disk) \
             and `normal` (once in the write-ahead log), one run of each in turn, each on a new \
             start: what syncing every commit costs.\n",
            self.seconds, self.runs
        );
        for db in &self.databases {
            let batches: Vec<_> = self.sign_in.iter().filter(|(d, ..)| d == db).collect();
            if batches.is_empty() {
                continue;
            }
            let buyers: usize = batches.iter().map(|(_, n, _)| n).sum();
            let rates: Vec<String> = batches.iter().map(|(.., r)| thousands(*r)).collect();
            let _ = writeln!(
                out,
                "{}: {} distinct buyers signed in over 64 connections ({} sign-ins/s), shared by \
                 all its runs; each run reserves a new drop.",
                db.name(),
                thousands(buyers as f64),
                rates.join(", then ")
            );
        }
        let _ = writeln!(
            out,
            "\n| database | server settings | route | buyers | holds/s | requests/s | p50 ms | p99 ms | max ms | refused | CPU srv/pg/gen/other | oversell |\n\
             | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
        );
        for row in &self.hot {
            let c = row.cell();
            let refused = if c.refused.is_empty() && c.failed == 0 {
                "0".to_string()
            } else {
                let mut parts: Vec<String> = c
                    .refused
                    .iter()
                    .map(|(status, n)| format!("{n}× {status}"))
                    .collect();
                if c.failed > 0 {
                    parts.push(format!("{}× no answer", c.failed));
                }
                parts.join(", ")
            };
            // The median run's audit, or the first that failed.
            let audited = row.runs.iter().find(|r| !r.no_oversell()).unwrap_or(c);
            let audit = &audited.audit;
            let oversell = if row.no_oversell() {
                format!(
                    "0 ✓ in {} run{} ({} held of {} in the median one)",
                    row.runs.len(),
                    if row.runs.len() == 1 { "" } else { "s" },
                    audit.active_holds,
                    audit.total
                )
            } else {
                format!(
                    "**{} oversold; available {} + held {} + bought {} vs total {}; API shows {}; 201s seen {}**",
                    audit.oversold(),
                    audit.available,
                    audit.active_holds,
                    audit.purchases,
                    audit.total,
                    audit.api_available,
                    audited.holds_total
                )
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {}{} | {} | {} | {:.1} | {} | {:.1} | {} | {} | {} |",
                row.db.name(),
                row.settings,
                c.route.label(),
                c.concurrency,
                if c.out_of_buyers {
                    format!(" (buyers ran out after {:.1} s)", c.window.as_secs_f64())
                } else {
                    String::new()
                },
                row.spread(Cell::holds_per_second, thousands),
                thousands(c.requests_per_second()),
                c.latency_ms(0.5),
                row.spread(|c| c.latency_ms(0.99), |v| format!("{v:.1}")),
                c.latency.max() as f64 / 1000.0,
                refused,
                cpu(&c.cpu),
                oversell
            );
        }
        out.push('\n');
        self.render_batch_steps(out);
    }

    /// Where a reserve batch's time goes in each REST cell's median run.
    fn render_batch_steps(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "### Where a reserve batch's time goes\n\n\
             The server times each step of every reserve batch's transaction \
             (`dropline_write_step_seconds` in `/metrics`); the means over the measured window \
             of each REST row's median run, in milliseconds. `begin` opens the transaction (on \
             SQLite it includes waiting for the writer's turn), `lock` takes the drop's row, \
             `check`, `insert` and `stock` are the batch's statements, `commit` includes \
             sending its events. A drop's batches run one after another on an instance, so batches/s × \
             total ms is the share of the window a batch was running.\n\n\
             | database | server settings | buyers | batches/s | buyers per batch | {} | total ms |\n\
             | --- | --- | ---: | ---: | ---: | {}---: |",
            crate::steps::STEPS.join(" | "),
            "---: | ".repeat(crate::steps::STEPS.len())
        );
        for row in self
            .hot
            .iter()
            .filter(|row| row.cell().route == Route::Rest)
        {
            let c = row.cell();
            let b = &c.batches;
            let steps: Vec<String> = b.step_ms.iter().map(|ms| format!("{ms:.2}")).collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {} | {:.2} |",
                row.db.name(),
                row.settings,
                c.concurrency,
                thousands(b.batches / c.window.as_secs_f64().max(1e-9)),
                b.mean_size(),
                steps.join(" | "),
                b.total_ms()
            );
        }
        out.push('\n');
    }

    fn render_sell_out(&self, out: &mut String) {
        if self.sell_out.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Sell-out: twenty buyers for every unit\n\n\
             A new drop with stock for 5 % of the buyers; each buyer sends one reserve, C at a \
             time on their own connections, until every buyer has had an answer. A buyer must \
             get 201 or 409 `OUT_OF_STOCK`, nothing else; exactly `stock` get a 201; nobody holds \
             two (distinct owners of holds and purchases, counted in the database); every unit \
             is available, held or bought. With churn, a buyer with a hold then buys it (half), \
             cancels it (a quarter) or keeps it, so units come back while the drop sells out; \
             the holds left must be the ones kept and the purchases the ones bought. 201/s runs \
             to the last 201, 409/s over the whole cell.\n\n\
             | database | cell | buyers / units | 201 | 409 sold out | 201/s | 409/s | p50 ms | p99 ms | bought / cancelled / kept | CPU srv/pg/gen/other | audit |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"
        );
        for row in &self.sell_out {
            let c = row.first();
            let faults: Vec<String> = row.runs.iter().flat_map(sellout::Cell::faults).collect();
            let audit = if faults.is_empty() {
                let a = &row.runs[row.runs.len() - 1].audit;
                format!(
                    "✓ in {} run{}; the last: available {} + held {} + bought {} = {}, {} owners",
                    row.runs.len(),
                    plural(row.runs.len()),
                    a.available,
                    a.active_holds,
                    a.purchases,
                    a.total,
                    a.owners
                )
            } else {
                format!("**{}**", faults.join("; "))
            };
            let count = |v: f64| format!("{v:.0}");
            let _ = writeln!(
                out,
                "| {} | {} buyers{} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.db.name(),
                c.concurrency,
                if c.churn { ", churn" } else { "" },
                thousands(c.buyers as f64),
                c.stock,
                row.spread(|c| c.held as f64, count),
                row.spread(|c| c.sold_out as f64, count),
                row.spread(sellout::Cell::held_per_second, thousands),
                row.spread(sellout::Cell::sold_out_per_second, thousands),
                one_place(row.median(|c| c.latency_ms(0.5))),
                row.spread(|c| c.latency_ms(0.99), one_place),
                if c.churn {
                    format!(
                        "{:.0} / {:.0} / {:.0}",
                        row.median(|c| c.purchased as f64),
                        row.median(|c| c.cancelled as f64),
                        row.median(|c| c.kept as f64)
                    )
                } else {
                    "—".into()
                },
                median_cpu(row, |c| &c.cpu),
                audit
            );
        }
        out.push('\n');
    }

    fn render_open_loop(&self, out: &mut String) {
        if self.open_loop.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Open loop: reserves at a fixed offered rate\n\n\
             The hot drop above is closed-loop: a buyer waiting for an answer sends nothing, so \
             a stall shows up as fewer requests rather than as latency. Here reserves are due at \
             a fixed rate (request i at start + i / rate, each by another buyer, over {} \
             keep-alive connections, for {} s) and latency runs from each request's due time, \
             as wrk2 measures: a request held back by a stall is charged for the wait. The \
             generator's own wake-up lag (due time to awake, for requests it was waiting to \
             send) is shown beside it: it is included in the latency.\n",
            openloop::CONNECTIONS,
            self.seconds,
        );
        for db in &self.databases {
            let rows: Vec<_> = self.open_loop.iter().filter(|r| r.db == *db).collect();
            if rows.is_empty() {
                continue;
            }
            let held = rows
                .iter()
                .filter(|r| {
                    r.worst(|c| c.refused as usize) == 0
                        && r.median(|c| c.latency_ms(0.99)) <= TARGET_RESERVE_P99_MS
                })
                .map(|r| r.first().rate)
                .max();
            let _ = writeln!(
                out,
                "{}: the highest offered rate answered with p99 ≤ {TARGET_RESERVE_P99_MS} ms and \
                 nothing refused: **{}**.\n",
                db.name(),
                held.map_or_else(
                    || "none of those tried".into(),
                    |r| format!("{} /s", thousands(f64::from(r)))
                ),
            );
        }
        let _ = writeln!(
            out,
            "| database | offered /s | sent | answered /s | p50 ms | p99 ms | max ms | refused | generator lag p99 ms |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        for row in &self.open_loop {
            let c = row.first();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {} | {:.1} | {} | {:.1} |",
                row.db.name(),
                thousands(f64::from(c.rate)),
                thousands(row.median(|c| c.sent as f64)),
                row.spread(openloop::Cell::answered_per_second, thousands),
                row.median(|c| c.latency_ms(0.5)),
                row.spread(|c| c.latency_ms(0.99), one_place),
                row.median(|c| c.latency.max() as f64 / 1000.0),
                row.spread(|c| c.refused as f64, |v| format!("{v:.0}")),
                row.median(|c| c.send_lag.value_at_quantile(0.99) as f64 / 1000.0),
            );
        }
        out.push('\n');
    }

    fn render_fanout(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## WebSocket fan-out\n\n\
             N clients hold `/ws` open (each has read its snapshot) while 32 connections reserve \
             one drop at {} reserves/s for {} s. Latency is click to screen, for every (click, \
             client) pair: from sending the reserve to the moment that client has received a \
             stock event of the version the reserve answered, or newer, i.e. what its screen \
             shows; both ends on the machine's clock. Stock events are coalesced per drop \
             (latest version wins), so a client receives fewer frames than there are clicks; a \
             click counts until a frame at least that new arrives. A click a client never hears \
             of counts as infinitely late (60 s, the histogram's ceiling) and is also counted \
             under *never seen*. *Wake lag* is how late the generator woke for its scheduled \
             clicks (p99): its own share of the figures. Memory per connection is the server's \
             resident memory (VmRSS) after connecting minus before, over N. The row with a hot \
             drop has as many clients watching as one instance takes at most while, over the same {} s, the most buyers of the hot-drop table reserve another \
             drop back to back (REST, a new buyer each request, audited after): every socket \
             also carries that drop's stock, and the clicks queue with the hot drop's writes. \
             *Hot drop meanwhile* gives its buyers, holds/s, p99 and audit. A process may hold \
             only 20,000 open files on this box (a hard limit the generator cannot raise), so \
             the generator's watching sockets live in child processes of at most {} each, and a \
             run with more clients than that spreads them over as many server instances of one \
             PostgreSQL database (the clicks go to the first; the others hear of them through \
             the database, as in production): SQLite serves one instance, so it has no such row. \
             Memory per connection sums the instances.\n\n\
             | database | clients | hot drop meanwhile | reserves/s | stock frames/s (all clients) | p50 ms | p99 ms | max ms | never seen | wake lag p99 ms | KiB/connection | connect time | CPU srv/pg/gen/other |\n\
             | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            self.rate,
            self.seconds,
            self.seconds,
            thousands(crate::fanout::PER_PROCESS as f64)
        );
        for row in &self.fanout {
            let r = row.first();
            let hot = if r.hot.is_some() {
                hot_drop(
                    &row.runs
                        .iter()
                        .filter_map(|r| r.hot.as_ref())
                        .collect::<Vec<_>>(),
                )
            } else {
                "—".to_string()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {:.1} | {} | {:.1} | {} | {:.1} | {:.1} | {:.1} s | {} |",
                row.db.name(),
                match r.instances {
                    1 => thousands(r.clients as f64),
                    n => format!("{} ({n} instances)", thousands(r.clients as f64)),
                },
                hot,
                row.median(|r| r.commits_per_second),
                thousands(row.median(|r| r.frames_per_second)),
                row.median(|r| r.latency.value_at_quantile(0.5) as f64 / 1000.0),
                row.spread(Fanout::p99_ms, one_place),
                row.median(|r| r.latency.max() as f64 / 1000.0),
                row.spread(|r| r.missed as f64, |v| format!("{v:.0}")),
                row.median(|r| r.wake_lag.value_at_quantile(0.99) as f64 / 1000.0),
                row.median(|r| r.kib_per_connection),
                row.median(|r| r.connect_time.as_secs_f64()),
                median_cpu(row, |r| &r.cpu)
            );
        }
        out.push('\n');
    }

    fn render_draw(&self, out: &mut String) {
        if self.draw.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Draw\n\n\
             Every buyer of the pool enters a draw drop over 256 connections while its entries \
             are open; the buyers with the dashboard open (one `/ws` each, with their session: \
             as many as the open-files limit lets the generator and the server both hold) wait \
             for their result. At `starts_at` the server draws: it reveals the seed, orders the \
             entries, gives each winner a hold and puts the rest on the waitlist, in one \
             transaction. *Every winner holding* runs from `starts_at` to the moment the \
             database (polled every 10 ms) shows every winner's hold. *Told* runs from \
             `starts_at` to the moment each open screen has read its own `TICKET_UPDATED` \
             (`won` or `waitlisted`), on the same machine's clock; a screen never told counts as \
             60 s. Settings as shipped (`queue_tick_ms` 200: the draw starts within one tick of \
             its time).\n\n\
             | database | entries (screens open) | units | entries/s | every winner holding after | told p50 / p99 / max ms | never told | winners told | oversell | CPU srv/pg/gen/other |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
        );
        for row in &self.draw {
            let d = row.first();
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} | {:.1} / {} / {:.1} | {} | {:.0} | {} | {} |",
                row.db.name(),
                thousands(d.entries as f64),
                thousands(row.median(|d| d.screens as f64)),
                d.units,
                match row.worst(|d| d.entries_refused) {
                    0 => row.spread(|d| d.entries_per_second, thousands),
                    n => format!(
                        "{} (**{n} not 201 in a run**)",
                        row.spread(|d| d.entries_per_second, thousands)
                    ),
                },
                held_after(row, |d| d.all_held_after, |d| d.holds.to_string()),
                row.median(|d| d.told.value_at_quantile(0.5) as f64 / 1000.0),
                row.spread(Draw::told_p99_ms, one_place),
                row.median(|d| d.told.max() as f64 / 1000.0),
                row.spread(|d| d.never_told as f64, |v| format!("{v:.0}")),
                row.median(|d| d.winners_told as f64),
                oversell(row, |d| &d.audit),
                median_cpu(row, |d| &d.cpu)
            );
        }
        out.push('\n');
    }

    fn render_golive(&self, out: &mut String) {
        if self.golive.is_empty() {
            return;
        }
        let _ = writeln!(
            out,
            "## Go-live: a queue drop\n\n\
             Every buyer of the pool joins the lobby of a queue drop over 256 connections; the \
             drop goes live when its lobby time is up. The buyers with the dashboard open (one \
             `/ws` each, with their session: as many as the open-files limit lets the generator \
             and the server both hold) reserve, over 64 shared connections, the moment their \
             socket says it is their turn; the others walked away after joining, so their turns \
             lapse unused (the case over-admission is for). *Every unit held* runs from `starts_at` \
             to the 201 of the last unit's hold. *Admissions/s* counts the turns the sockets \
             heard of, from the first to the last. *Place updates* run from the `at` the server \
             stamps a `TICKET_UPDATED` (with a place) or `QUEUE_MOVED` with (database clock) to \
             the moment a waiting socket has read it (the same machine's clock). *In the shop* is \
             sampled from the database every 10 ms from go-live on: admitted-unused + holds + \
             sold, which the admission rule keeps at or under 1.5 × the units. Settings as \
             shipped (`queue_admit_per_second` 200, `queue_over_admission` 1.5, \
             `queue_tick_ms` 200) but for the rate limits and `ws_max_per_ip`, lifted for a crowd \
             that comes from one address.\n\n\
             | database | buyers (screens open) | units | joins/s | join p99 ms | screens opened in | lobby in order after | every unit held after | admitted | admissions/s | place updates p50 / p99 / max ms | never placed | most in the shop (limit) | oversell | CPU srv/pg/gen/other |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
        );
        for row in &self.golive {
            let g = row.first();
            let buyers = format!(
                "{} ({})",
                thousands(g.buyers as f64),
                thousands(row.median(|g| g.screens as f64))
            );
            let limit = (g.units as f64 * 1.5).floor();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} | {:.1} s | {:.2} s | {} | {} | {:.0} | {:.1} / {} / {:.1} | {} | {} ({}) | {} | {} |",
                row.db.name(),
                buyers,
                g.units,
                match row.worst(|g| g.joins_refused) {
                    0 => row.spread(|g| g.joins_per_second, thousands),
                    n => format!(
                        "{} (**{n} not 201 in a run**)",
                        row.spread(|g| g.joins_per_second, thousands)
                    ),
                },
                row.median(|g| g.join_latency.value_at_quantile(0.99) as f64 / 1000.0),
                row.median(|g| g.connect_time.as_secs_f64()),
                row.median(|g| g.lined_up_after.as_secs_f64()),
                held_after(row, |g| g.all_held_after, |g| g.held.to_string()),
                thousands(row.median(|g| g.admitted as f64)),
                row.median(GoLive::admissions_per_second),
                row.median(|g| g.place_latency.value_at_quantile(0.5) as f64 / 1000.0),
                row.spread(GoLive::place_p99_ms, one_place),
                row.median(|g| g.place_latency.max() as f64 / 1000.0),
                row.spread(|g| g.never_placed as f64, |v| format!("{v:.0}")),
                row.runs.iter().map(|g| g.worst_in_shop).max().unwrap_or(0),
                limit,
                oversell(row, |g| &g.audit),
                median_cpu(row, |g| &g.cpu)
            );
        }
        out.push('\n');
    }

    fn render_expiry(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "## Expiry lateness\n\n\
             Distinct buyers place holds on one drop as fast as 64 connections can (so the \
             deadlines spread over the time that takes), nobody buys, and the holds run out. \
             *Seen* matches the k-th unit a watching WebSocket client sees come back with the \
             k-th earliest deadline (the worker returns holds in deadline order) and takes the \
             receive time minus the deadline: unit back in stock, as a buyer's screen shows it. \
             *Server* is the server's own `dropline_expiry_lateness_seconds` histogram (deadline \
             to the commit that returned the unit), given as the bucket each quantile falls in \
             (its buckets are 5, 10, 25, 50, 100 ms, ...): anything finer would be interpolated, \
             not measured. *Early* counts units seen back before their matched deadline (they \
             count as 0 ms late); it should be 0. The second run of each database is busy: \
             as many sockets as the busy fan-out run watch from when the holds are placed, \
             and the most buyers of the hot-drop table reserve another drop back to back from a \
             second before the first deadline to a second after the last (REST, a new buyer \
             each request, audited after); *meanwhile* gives the sockets and that hot drop.\n\n\
             | database | meanwhile | holds | hold time | placed in | seen p50 ms | seen p99 ms | seen max ms | early | server p50 ms | server p99 ms | valid |\n\
             | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        );
        for row in &self.expiry {
            let r = row.first();
            let meanwhile = if r.hot.is_some() {
                format!(
                    "{} sockets; hot drop: {}",
                    thousands(r.watchers as f64),
                    hot_drop(
                        &row.runs
                            .iter()
                            .filter_map(|r| r.hot.as_ref())
                            .collect::<Vec<_>>()
                    )
                )
            } else {
                "—".into()
            };
            let buckets = |bucket: fn(&Expiry) -> crate::expiry::Bucket| {
                let mut seen: Vec<String> = Vec::new();
                for b in row.runs.iter().map(|r| bucket(r).to_string()) {
                    if !seen.contains(&b) {
                        seen.push(b);
                    }
                }
                seen.join(" or ")
            };
            let invalid = row
                .runs
                .iter()
                .filter(|r| !r.placed_before_first_deadline)
                .count();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} s | {:.1} s | {:.1} | {} | {:.1} | {} | {} | {} | {} |",
                row.db.name(),
                meanwhile,
                thousands(r.holds as f64),
                r.ttl.as_secs(),
                row.median(|r| r.placing.as_secs_f64()),
                row.median(|r| r.seen.value_at_quantile(0.5) as f64 / 1000.0),
                row.spread(Expiry::p99_ms, one_place),
                row.median(|r| r.seen.max() as f64 / 1000.0),
                row.spread(|r| r.early as f64, |v| format!("{v:.0}")),
                buckets(|r| r.server_p50_ms),
                buckets(|r| r.server_p99_ms),
                match invalid {
                    0 => "yes".to_string(),
                    n => format!(
                        "**no** in {n} run{}: holds were still being placed when the first ran out",
                        plural(n)
                    ),
                }
            );
        }
        out.push('\n');
    }

    fn render_page(&self, out: &mut String) {
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
                let score = |figure: fn(&crate::page::Lighthouse) -> f64| {
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

/// "met" or "missed by how much" for a floor.
fn at_least(value: f64, target: f64, unit: &str) -> String {
    if value >= target {
        format!(
            "met: {}{unit} ({:.0}% above)",
            thousands(value),
            (value / target - 1.0) * 100.0
        )
    } else {
        format!(
            "**missed**: {}{unit}, {}{unit} short ({:.0}% of the target; ×{:.1} needed)",
            thousands(value),
            thousands(target - value),
            value / target * 100.0,
            target / value.max(1e-9)
        )
    }
}

/// The hot drops that ran beside the runs of another measurement, in one cell: buyers,
/// holds/s and p99 (median and range over the runs), audit.
fn hot_drop(runs: &[&crate::hot::Cell]) -> String {
    let holds: Vec<f64> = runs.iter().map(|c| c.holds_per_second()).collect();
    let p99: Vec<f64> = runs.iter().map(|c| c.latency_ms(0.99)).collect();
    let failed: Vec<_> = runs.iter().filter(|c| !c.no_oversell()).collect();
    format!(
        "{} buyers, {} holds/s, p99 {} ms, {}",
        runs.first().map_or(0, |c| c.concurrency),
        spread(&holds, median(&holds).unwrap_or(0.0), thousands),
        spread(&p99, median(&p99).unwrap_or(0.0), one_place),
        if failed.is_empty() {
            "oversell 0 ✓".to_string()
        } else {
            format!(
                "**audit failed in {} run{}, {} units oversold**",
                failed.len(),
                plural(failed.len()),
                failed.iter().map(|c| c.audit.oversold()).sum::<i64>()
            )
        }
    )
}

/// A row's *held after* cell: the median time with its range, or the run that never got there.
fn held_after<T>(
    row: &Runs<T>,
    after: impl Fn(&T) -> Option<Duration>,
    held: impl Fn(&T) -> String,
) -> String {
    match row.runs.iter().find(|r| after(r).is_none()) {
        Some(r) => format!("never in a run ({} held)", held(r)),
        None => row.spread(
            |r| after(r).unwrap_or_default().as_secs_f64(),
            |s| format!("{s:.2} s"),
        ),
    }
}

/// An *every unit held within* target: met or missed on the median time, missed outright if
/// a run never got there.
fn held_within<T>(
    row: &Runs<T>,
    after: impl Fn(&T) -> Option<Duration>,
    held: impl Fn(&T) -> String,
    target_s: f64,
) -> String {
    match row.runs.iter().find(|r| after(r).is_none()) {
        Some(r) => format!("**MISSED**: {} held in a run", held(r)),
        None => at_most(
            row.median(|r| after(r).unwrap_or_default().as_secs_f64()),
            target_s,
            " s",
        ),
    }
}

/// A row's oversell cell from every run's audit.
fn oversell<T>(row: &Runs<T>, audit: impl Fn(&T) -> &crate::audit::Audit) -> String {
    match row
        .runs
        .iter()
        .map(&audit)
        .find(|a| a.oversold() != 0 || !a.balanced())
    {
        None => format!("0 ✓ in {} run{}", row.runs.len(), plural(row.runs.len())),
        Some(a) => format!("**{} oversold**", a.oversold()),
    }
}

/// The median of each party's CPU over a row's runs.
fn median_cpu<T>(row: &Runs<T>, share: impl Fn(&T) -> &crate::cpu::Share) -> String {
    cpu(&crate::cpu::Share {
        server: row.median(|r| share(r).server),
        postgres: row.median(|r| share(r).postgres),
        generator: row.median(|r| share(r).generator),
        other: row.median(|r| share(r).other),
    })
}

fn one_place(value: f64) -> String {
    format!("{value:.1}")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// "met" or "missed by how much" for a ceiling.
fn at_most(value: f64, target: f64, unit: &str) -> String {
    if value <= target {
        format!(
            "met: {value:.1}{unit} ({:.0}% headroom)",
            (1.0 - value / target) * 100.0
        )
    } else {
        format!(
            "**missed**: {value:.1}{unit}, {:.1}{unit} over (×{:.1} the target)",
            value - target,
            value / target
        )
    }
}

fn cpu(share: &crate::cpu::Share) -> String {
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2}",
        share.server, share.postgres, share.generator, share.other
    )
}

/// `12,345` for 12345.4.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The first line a command prints, or "" when it cannot run.
fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_shows_the_median_of_its_runs_with_the_lowest_and_highest() {
        let mut rows: Vec<Runs<(u32, f64)>> = Vec::new();
        for run in [(1, 30.0), (2, 5.0), (1, 10.0), (1, 20.0)] {
            Runs::add(&mut rows, Db::Sqlite, run, |a, b| a.0 == b.0);
        }
        Runs::add(&mut rows, Db::Postgres, (1, 7.0), |a, b| a.0 == b.0);
        assert_eq!(rows.len(), 3, "one row per database and cell");
        let show = |v: f64| format!("{v:.0}");
        assert_eq!(rows[0].runs.len(), 3);
        assert_eq!(rows[0].median(|r| r.1), 20.0);
        assert_eq!(rows[0].spread(|r| r.1, show), "20 (10–30)");
        assert_eq!(rows[1].spread(|r| r.1, show), "5", "one run has no range");
        assert_eq!(rows[2].db, Db::Postgres);
    }

    #[test]
    fn a_run_that_never_held_every_unit_misses_the_target_whatever_the_median() {
        let mut rows: Vec<Runs<Option<Duration>>> = Vec::new();
        for after in [Some(1.0), None, Some(1.5)] {
            Runs::add(
                &mut rows,
                Db::Sqlite,
                after.map(Duration::from_secs_f64),
                |_, _| true,
            );
        }
        let verdict = held_within(&rows[0], |r| *r, |_| "499 of 500".into(), 2.0);
        assert_eq!(verdict, "**MISSED**: 499 of 500 held in a run");
        rows[0].runs[1] = Some(Duration::from_secs(3));
        let verdict = held_within(&rows[0], |r| *r, |_| String::new(), 2.0);
        assert!(verdict.starts_with("met: 1.5 s"), "{verdict}");
    }

    #[test]
    fn a_fault_in_any_run_counts() {
        let mut rows: Vec<Runs<usize>> = Vec::new();
        for missed in [0, 4, 0] {
            Runs::add(&mut rows, Db::Sqlite, missed, |_, _| true);
        }
        assert_eq!(rows[0].median(|&m| m as f64), 0.0);
        assert_eq!(rows[0].worst(|&m| m), 4);
    }
}
