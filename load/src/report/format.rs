//! How the report writes a figure: a verdict against a target, a number, a CPU share.

use std::time::Duration;

use super::rows::{spread, Runs};
use crate::{audit::Audit, cpu::Share, figures::HotCell, measure::median};

/// "met" or "missed by how much" for a floor.
pub(super) fn at_least(value: f64, target: f64, unit: &str) -> String {
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

/// "met" or "missed by how much" for a ceiling.
pub(super) fn at_most(value: f64, target: f64, unit: &str) -> String {
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

/// A row's *held after* cell: the median time with its range, or the run that never got there.
pub(super) fn held_after<T>(
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
pub(super) fn held_within<T>(
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
pub(super) fn oversell<T>(row: &Runs<T>, audit: impl Fn(&T) -> &Audit) -> String {
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
pub(super) fn median_cpu<T>(row: &Runs<T>, share: impl Fn(&T) -> &Share) -> String {
    cpu(&Share {
        server: row.median(|r| share(r).server),
        postgres: row.median(|r| share(r).postgres),
        generator: row.median(|r| share(r).generator),
        other: row.median(|r| share(r).other),
    })
}

/// The hot drops that ran beside the runs of another measurement, in one cell: buyers,
/// holds/s and p99 (median and range over the runs), audit.
pub(super) fn hot_drop(runs: &[&HotCell]) -> String {
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

pub(super) fn cpu(share: &Share) -> String {
    format!(
        "{:.2} / {:.2} / {:.2} / {:.2}",
        share.server, share.postgres, share.generator, share.other
    )
}

/// `12,345` for 12345.4.
pub(super) fn thousands(value: f64) -> String {
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

pub(super) fn one_place(value: f64) -> String {
    format!("{value:.1}")
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The first line a command prints, or "" when it cannot run.
pub(super) fn command_line(program: &str, args: &[&str]) -> String {
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
    use std::time::Duration;

    use super::*;
    use crate::server::Db;

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
}
