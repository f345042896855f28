//! A table's row: every run of one cell, shown as the median with the lowest and highest.

use crate::{figures::HotCell, measure::median, server::Db};

/// One hot-drop row: the runs of one cell.
pub struct HotRow {
    pub db: Db,
    /// The server's settings beyond those every run gets (batching, SQLite's sync).
    pub settings: String,
    /// Every run, by holds per second.
    pub runs: Vec<HotCell>,
}

impl HotRow {
    /// A row of one or more runs of the same cell.
    pub fn new(db: Db, settings: String, mut runs: Vec<HotCell>) -> Self {
        assert!(!runs.is_empty(), "a hot-drop row needs a run");
        runs.sort_by(|a, b| a.holds_per_second().total_cmp(&b.holds_per_second()));
        Self { db, settings, runs }
    }

    /// Adds runs of the same cell made on another server start (runs interleaved with
    /// another cell's).
    pub fn add(&mut self, runs: Vec<HotCell>) {
        self.runs.extend(runs);
        self.runs
            .sort_by(|a, b| a.holds_per_second().total_cmp(&b.holds_per_second()));
    }

    /// The run with the median holds per second: the figures the row and the targets show.
    pub fn cell(&self) -> &HotCell {
        &self.runs[(self.runs.len() - 1) / 2]
    }

    /// Every run passed its oversell audit.
    pub fn no_oversell(&self) -> bool {
        self.runs.iter().all(HotCell::no_oversell)
    }

    /// "median (min–max)" of `figure` over the runs, the median being the median run's.
    pub(super) fn spread(
        &self,
        figure: impl Fn(&HotCell) -> f64,
        show: impl Fn(f64) -> String,
    ) -> String {
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
pub(super) fn spread(values: &[f64], middle: f64, show: impl Fn(f64) -> String) -> String {
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
    fn a_fault_in_any_run_counts() {
        let mut rows: Vec<Runs<usize>> = Vec::new();
        for missed in [0, 4, 0] {
            Runs::add(&mut rows, Db::Sqlite, missed, |_, _| true);
        }
        assert_eq!(rows[0].median(|&m| m as f64), 0.0);
        assert_eq!(rows[0].worst(|&m| m), 4);
    }
}
