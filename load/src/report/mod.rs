//! `BENCHMARKS.md`: the machine, the tables, and each target met or missed by how much. A
//! hand-written notes block between the `notes:begin` / `notes:end` markers survives reruns.

mod format;
mod live;
mod page;
mod proof;
mod rows;
mod targets;
mod writes;

use std::{fmt::Write as _, path::Path, time::Duration};

use chrono::{DateTime, Utc};

pub use rows::{HotRow, Runs};

use crate::{
    error::Result,
    figures::{Draw, Expiry, Fanout, GoLive, OpenLoopCell, PageReport, ProofReport, SellOutCell},
    options::Options,
    server::{Db, SETTINGS},
};
use format::command_line;

const NOTES_BEGIN: &str = "<!-- notes:begin (kept by make bench) -->";
const NOTES_END: &str = "<!-- notes:end -->";
/// Cores used by other work on the box past which the report warns that it was not quiet.
const BUSY_BOX: f64 = 0.25;

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

/// A numeric setting's default as this build's `Leptos.toml` lists it, if it does.
pub fn leptos_default(key: &str) -> Option<u32> {
    std::fs::read_to_string("Leptos.toml")
        .ok()
        .and_then(|toml| {
            toml.lines().find_map(|line| {
                let (name, value) = line.split_once('=')?;
                (name.trim() == key).then(|| value.trim().parse::<u32>().ok())?
            })
        })
}

/// Batched and unbatched when this build knows `reserve_batch_max` (listed in `Leptos.toml`),
/// else one run as is.
pub fn batching_variants() -> Vec<Variant> {
    let default = leptos_default("reserve_batch_max");
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
    pub sell_out: Vec<Runs<SellOutCell>>,
    pub open_loop: Vec<Runs<OpenLoopCell>>,
    pub fanout: Vec<Runs<Fanout>>,
    pub expiry: Vec<Runs<Expiry>>,
    pub golive: Vec<Runs<GoLive>>,
    pub draw: Vec<Runs<Draw>>,
    pub page: Option<PageReport>,
    pub proof: Option<ProofReport>,
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
            proof: None,
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
        self.render_proof(&mut out);
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
}
