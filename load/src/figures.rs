//! What the scenarios measure, as the report reads it: one type per table row (a cell of
//! the hot-drop or sell-out table, a fan-out row, ...), with the figures derived from it, and
//! the fixed numbers the report states about how the scenarios run.

use std::{collections::BTreeMap, time::Duration};

use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::{
    api::Route,
    audit::{self, Audit},
    cpu,
    measure::median,
    steps::Batches,
};

/// Watching sockets one process holds at most, a watcher process of the generator or a server
/// instance: the open-files limit is 20,000 per process here, and each needs some for itself.
pub const PER_PROCESS: usize = 10_000;

/// Connections the requests go out on: enough that, at the highest rate, a stall of about
/// 50 ms still finds a free one for every due request.
pub const CONNECTIONS: usize = 1_024;

/// One measured cell of the hot-drop table.
pub struct HotCell {
    pub concurrency: usize,
    pub route: Route,
    /// Requests answered inside the measured window.
    pub requests: u64,
    /// 201 answers (a unit held) inside the window.
    pub holds: u64,
    /// Other answers by status, inside the window.
    pub refused: BTreeMap<u16, u64>,
    /// Requests that got no HTTP answer (connection lost), inside the window.
    pub failed: u64,
    /// From the end of the warm-up to the last answer counted.
    pub window: Duration,
    /// Request latency in microseconds.
    pub latency: Histogram<u64>,
    /// The buyers ran out before the window ended (the window is then shorter).
    pub out_of_buyers: bool,
    pub cpu: cpu::Share,
    /// The server's reserve batches over the window, and where their time went.
    pub batches: Batches,
    /// 201 answers over the whole cell, warm-up included, to compare with the audit.
    pub holds_total: u64,
    pub audit: Audit,
}

impl HotCell {
    /// Successful holds per second.
    pub fn holds_per_second(&self) -> f64 {
        self.holds as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Answers per second.
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Latency at `quantile`, in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The audit holds and every 201 the buyers saw is one active hold.
    pub fn no_oversell(&self) -> bool {
        self.audit.oversold() == 0
            && self.audit.balanced()
            && self.audit.active_holds == self.holds_total as i64
    }
}

/// One measured cell.
pub struct SellOutCell {
    pub concurrency: usize,
    pub churn: bool,
    pub stock: i64,
    pub buyers: usize,
    /// 201 answers to reserves.
    pub held: u64,
    /// 409 `OUT_OF_STOCK` answers to reserves.
    pub sold_out: u64,
    /// Any other answer to a reserve, by status and error code.
    pub other: BTreeMap<String, u64>,
    /// Requests that got no HTTP answer.
    pub failed: u64,
    /// Purchases answered 200, cancels answered 200 or 204, and holds kept.
    pub purchased: u64,
    pub cancelled: u64,
    pub kept: u64,
    /// A purchase or cancel of one's own hold answered anything else.
    pub follow_up_failed: u64,
    /// From the first reserve sent to the last 201 answered.
    pub to_last_hold: Duration,
    /// From the first reserve sent to the last reserve answered.
    pub to_last_answer: Duration,
    /// Reserve latency in microseconds.
    pub latency: Histogram<u64>,
    pub cpu: cpu::Share,
    pub audit: Audit,
}

impl SellOutCell {
    /// 201 answers per second, up to the last one.
    pub fn held_per_second(&self) -> f64 {
        self.held as f64 / self.to_last_hold.as_secs_f64().max(1e-9)
    }

    /// 409 `OUT_OF_STOCK` answers per second, over the whole cell.
    pub fn sold_out_per_second(&self) -> f64 {
        self.sold_out as f64 / self.to_last_answer.as_secs_f64().max(1e-9)
    }

    /// Reserve latency at `quantile`, in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// What went wrong, if anything: each check a buyer or an auditor would make.
    pub fn faults(&self) -> Vec<String> {
        let a = &self.audit;
        let mut faults = Vec::new();
        if self.held + self.sold_out + self.failed + self.other.values().sum::<u64>()
            != self.buyers as u64
        {
            faults.push("answers do not add up to the buyers".into());
        }
        if !self.other.is_empty() || self.failed > 0 {
            faults.push(format!(
                "reserves answered neither 201 nor 409 OUT_OF_STOCK: {:?}, {} unanswered",
                self.other, self.failed
            ));
        }
        if self.follow_up_failed > 0 {
            faults.push(format!(
                "{} purchases or cancels of one's own hold failed",
                self.follow_up_failed
            ));
        }
        if a.oversold() > 0 || !a.balanced() {
            faults.push(format!(
                "available {} + held {} + bought {} vs total {} ({} distinct owners; API shows {})",
                a.available, a.active_holds, a.purchases, a.total, a.owners, a.api_available
            ));
        }
        if self.churn {
            if a.active_holds != self.kept as i64 || a.purchases != self.purchased as i64 {
                faults.push(format!(
                    "database holds {} / purchases {}, buyers kept {} / bought {}",
                    a.active_holds, a.purchases, self.kept, self.purchased
                ));
            }
        } else if self.held != self.stock as u64 || a.active_holds != self.stock {
            faults.push(format!(
                "{} buyers got a 201 and {} hold for {} units",
                self.held, a.active_holds, self.stock
            ));
        }
        faults
    }
}

/// One offered rate.
pub struct OpenLoopCell {
    pub rate: u32,
    pub sent: u64,
    /// 201 answers.
    pub held: u64,
    /// Anything else, or no answer.
    pub refused: u64,
    /// From the first due time to the last answer.
    pub window: Duration,
    /// Due time → whole answer read, microseconds.
    pub latency: Histogram<u64>,
    /// How late the generator woke to send a request it was waiting for (due time → awake),
    /// microseconds: its own lag, which the latency above includes. Requests that found no
    /// free connection at their due time are not in it (that wait is the server's).
    pub send_lag: Histogram<u64>,
}

impl OpenLoopCell {
    /// Answered reserves per second.
    pub fn answered_per_second(&self) -> f64 {
        (self.held + self.refused) as f64 / self.window.as_secs_f64().max(1e-9)
    }

    /// Latency at `quantile`, in milliseconds.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// One row of the fan-out table.
pub struct Fanout {
    pub clients: usize,
    /// Server instances the clients were spread over (one database).
    pub instances: usize,
    /// Reserves committed per second, as achieved.
    pub commits_per_second: f64,
    /// Stock frames all clients received per second.
    pub frames_per_second: f64,
    /// Click (reserve sent) → client has that version or newer, in microseconds; a miss is
    /// recorded at the ceiling.
    pub latency: Histogram<u64>,
    /// (click, client) pairs whose version never reached the client.
    pub missed: u64,
    /// How late the generator woke for its scheduled clicks, in microseconds.
    pub wake_lag: Histogram<u64>,
    /// Server memory growth per connected client (over every instance), in KiB.
    pub kib_per_connection: f64,
    pub connect_time: Duration,
    pub cpu: cpu::Share,
    /// Latency of the reserves made meanwhile, in microseconds.
    pub reserve_latency: Histogram<u64>,
    /// The hot drop that ran meanwhile, if any.
    pub hot: Option<HotCell>,
}

impl Fanout {
    /// p99 click to screen, milliseconds.
    pub fn p99_ms(&self) -> f64 {
        self.latency.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// The expiry row.
pub struct Expiry {
    pub holds: usize,
    pub ttl: Duration,
    /// How long placing every hold took.
    pub placing: Duration,
    /// Every hold was placed before the first deadline (otherwise the matching is unsound).
    pub placed_before_first_deadline: bool,
    /// Deadline → unit seen back in stock by a watching client, in microseconds (0 for a unit
    /// seen back before its matched deadline).
    pub seen: Histogram<u64>,
    /// Units seen back before their matched deadline: none if the worker never returns a unit
    /// early and the clocks agree.
    pub early: usize,
    /// The server's own histogram: the bucket p50 and p99 fall in, in milliseconds.
    pub server_p50_ms: Bucket,
    pub server_p99_ms: Bucket,
    /// Sockets watching besides the one that measures.
    pub watchers: usize,
    /// The hot drop over the deadlines, if the run was busy.
    pub hot: Option<HotCell>,
}

impl Expiry {
    /// p99 lateness as screens saw it, milliseconds.
    pub fn p99_ms(&self) -> f64 {
        self.seen.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// Where a quantile of a Prometheus histogram lies: between two bucket bounds, milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bucket {
    /// No data.
    Empty,
    /// Above the first bound and at most the second.
    Within(f64, f64),
    /// Past the last finite bound.
    Above(f64),
}

impl std::fmt::Display for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "no data"),
            Self::Within(low, high) => write!(f, "{low}–{high}"),
            Self::Above(low) => write!(f, "> {low}"),
        }
    }
}

/// One row of the go-live table.
pub struct GoLive {
    pub buyers: usize,
    /// Buyers with the dashboard open; the rest joined and walked away.
    pub screens: usize,
    pub units: i64,
    pub joins_per_second: f64,
    /// Join latency, µs.
    pub join_latency: Histogram<u64>,
    /// Joins that were not answered 201.
    pub joins_refused: usize,
    pub connect_time: Duration,
    /// From `starts_at` to the 201 of the last unit's hold; `None` when not all were held.
    pub all_held_after: Option<Duration>,
    pub held: usize,
    /// Turns the sockets heard of, and over how long (first to last).
    pub admitted: usize,
    pub admitting_for: Duration,
    /// Place updates: `at` → read by the socket, µs.
    pub place_latency: Histogram<u64>,
    /// Waiting sockets that never heard their place.
    pub never_placed: usize,
    /// The most buyers in the shop plus sold seen at any sample, and how many that is past the
    /// rule (0 when it held at every sample).
    pub worst_in_shop: i64,
    pub over_admitted: i64,
    pub samples: usize,
    /// From `starts_at` to the lobby in order (the database's `lined_up_at`).
    pub lined_up_after: Duration,
    pub audit: audit::Audit,
    pub cpu: cpu::Share,
}

impl GoLive {
    /// Admissions per second while the line was letting buyers in.
    pub fn admissions_per_second(&self) -> f64 {
        self.admitted as f64 / self.admitting_for.as_secs_f64().max(0.001)
    }

    /// p99 of the place updates, milliseconds.
    pub fn place_p99_ms(&self) -> f64 {
        self.place_latency.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// One row of the draw table.
pub struct Draw {
    pub entries: usize,
    /// Entrants with the dashboard open.
    pub screens: usize,
    pub units: i64,
    pub entries_per_second: f64,
    /// Entries not answered 201.
    pub entries_refused: usize,
    /// From `starts_at` to every winner's hold committed; `None` when not within [`PATIENCE`].
    pub all_held_after: Option<Duration>,
    /// From `starts_at` to each screen reading its result, µs.
    pub told: Histogram<u64>,
    /// Screens never told within [`PATIENCE`] (counted in `told` as that long).
    pub never_told: usize,
    /// Screens told they won; holds in the database.
    pub winners_told: usize,
    pub holds: i64,
    pub audit: audit::Audit,
    pub cpu: cpu::Share,
}

impl Draw {
    /// p99 of the time to tell a screen its result, milliseconds.
    pub fn told_p99_ms(&self) -> f64 {
        self.told.value_at_quantile(0.99) as f64 / 1000.0
    }
}

/// One response, raw and as sent.
#[derive(Clone, Debug)]
pub struct Sent {
    pub path: String,
    /// Bytes of the content itself.
    pub raw: u64,
    /// Bytes on the wire when the client accepts brotli and gzip.
    pub sent: u64,
    /// The `Content-Encoding` it came with (`identity` for none).
    pub encoding: String,
    pub cache_control: String,
}

impl Sent {
    /// True for the WASM, JS and CSS a page runs on (what the size target counts).
    pub fn is_code(&self) -> bool {
        self.path.starts_with("/pkg/")
            && [".wasm", ".js", ".css"]
                .iter()
                .any(|ext| self.path.ends_with(ext))
    }
}

/// Milliseconds of one throttled load.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct PhoneLoad {
    pub hydrated_ms: f64,
    pub fcp_ms: Option<f64>,
}

/// Lighthouse's scores (0 to 100) and the audits that cost points.
#[derive(Clone, Debug, Default)]
pub struct Lighthouse {
    pub performance: f64,
    pub accessibility: f64,
    /// `category: audit title (score)` of each weighted audit below a full score.
    pub losses: Vec<String>,
}

/// Everything measured about the page.
#[derive(Clone, Debug)]
pub struct PageReport {
    pub html: Sent,
    pub files: Vec<Sent>,
    pub phone: std::result::Result<Vec<PhoneLoad>, String>,
    /// Every Lighthouse run, or why one failed.
    pub lighthouse: std::result::Result<Vec<Lighthouse>, String>,
}

impl PageReport {
    /// Bytes on the wire of the page's WASM, JS and CSS.
    pub fn code_sent(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.is_code())
            .map(|f| f.sent)
            .sum()
    }

    /// Raw bytes of the page's WASM, JS and CSS.
    pub fn code_raw(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| f.is_code())
            .map(|f| f.raw)
            .sum()
    }

    /// The median of the phone's loads to a working page, in milliseconds.
    pub fn hydrated_median(&self) -> Option<f64> {
        let loads = self.phone.as_ref().ok()?;
        median(&loads.iter().map(|l| l.hydrated_ms).collect::<Vec<_>>())
    }
}

/// What the proof scenario measured.
pub struct ProofReport {
    pub floor: Solves,
    pub ceiling: Solves,
    /// Seconds of each solve at the floor in a throttled phone's browser, or why not.
    pub phone: std::result::Result<Vec<f64>, String>,
    pub farm: Farm,
}

/// Solves measured at one setting of the doors.
#[derive(Clone, Debug, Default)]
pub struct Solves {
    /// The server's mean tries (`PROOF_FLOOR` or `PROOF_CEILING`) and iterations per try.
    pub mean_tries: u32,
    pub cost: u32,
    /// Each solve's counter (the tries it took) and seconds on one core.
    pub counters: Vec<u32>,
    pub seconds: Vec<f64>,
}

impl Solves {
    /// Mean seconds of one solve.
    pub fn mean_s(&self) -> f64 {
        self.seconds.iter().sum::<f64>() / self.seconds.len().max(1) as f64
    }

    /// CPU-seconds one script spends on `entries` entries.
    pub fn cpu_s_for(&self, entries: usize) -> f64 {
        self.mean_s() * entries as f64
    }
}

/// What a farm got at one queue's door, next to the real buyers.
#[derive(Clone, Debug, Default)]
pub struct Farm {
    pub accounts: usize,
    /// Of them, made before the drop's `accounts_before`.
    pub aged: usize,
    pub networks: usize,
    /// Tickets per IPv4 /24 the server allows.
    pub cap: u32,
    /// The farm's answers by what they were: `joined`, or the refusal's code; per kind of try.
    pub without_proof: BTreeMap<String, usize>,
    pub with_anothers_proof: BTreeMap<String, usize>,
    pub with_own_proof: BTreeMap<String, usize>,
    pub real_buyers: usize,
    pub real_joined: usize,
}
