//! The write path's tables: the hot drop, its batches' steps, the sell-out, the open loop.

use std::fmt::Write as _;

use super::{
    format::{cpu, median_cpu, one_place, plural, thousands},
    targets::TARGET_RESERVE_P99_MS,
    Report,
};
use crate::{
    api::Route,
    figures::{HotCell, OpenLoopCell, SellOutCell, CONNECTIONS},
    steps::STEPS,
};

impl Report {
    pub(super) fn render_hot(&self, out: &mut String) {
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
                row.spread(HotCell::holds_per_second, thousands),
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
    pub(super) fn render_batch_steps(&self, out: &mut String) {
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
            STEPS.join(" | "),
            "---: | ".repeat(STEPS.len())
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

    pub(super) fn render_sell_out(&self, out: &mut String) {
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
            let faults: Vec<String> = row.runs.iter().flat_map(SellOutCell::faults).collect();
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
                row.spread(SellOutCell::held_per_second, thousands),
                row.spread(SellOutCell::sold_out_per_second, thousands),
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

    pub(super) fn render_open_loop(&self, out: &mut String) {
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
            CONNECTIONS, self.seconds,
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
                row.spread(OpenLoopCell::answered_per_second, thousands),
                row.median(|c| c.latency_ms(0.5)),
                row.spread(|c| c.latency_ms(0.99), one_place),
                row.median(|c| c.latency.max() as f64 / 1000.0),
                row.spread(|c| c.refused as f64, |v| format!("{v:.0}")),
                row.median(|c| c.send_lag.value_at_quantile(0.99) as f64 / 1000.0),
            );
        }
        out.push('\n');
    }
}
