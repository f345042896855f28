//! The live tables: fan-out to the screens, expiry lateness, go-live, the draw.

use std::fmt::Write as _;

use super::{
    format::{held_after, hot_drop, median_cpu, one_place, oversell, plural, thousands},
    Report,
};
use crate::figures::{Bucket, Draw, Expiry, Fanout, GoLive, PER_PROCESS};

impl Report {
    pub(super) fn render_fanout(&self, out: &mut String) {
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
            thousands(PER_PROCESS as f64)
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

    pub(super) fn render_expiry(&self, out: &mut String) {
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
            let buckets = |bucket: fn(&Expiry) -> Bucket| {
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

    pub(super) fn render_golive(&self, out: &mut String) {
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

    pub(super) fn render_draw(&self, out: &mut String) {
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
}
