//! `/metrics` in Prometheus text format: reserves by outcome, hold expiries and how late they
//! were, open WebSockets, and request latency. One registry per server, no globals.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The server's instruments. Cheap to clone (every field is a shared handle).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reserve attempts by outcome (`held` or the refusal code).
    pub reserves: IntCounterVec,
    pub expiries: IntCounter,
    /// Seconds between a hold's deadline and its unit being back in stock.
    pub expiry_lateness: Histogram,
    /// Requests per group-commit transaction, by write (`reserve`, `join`).
    pub batch_size: HistogramVec,
    /// Seconds each step of a batch's transaction took (`begin`, `lock`, ..., `commit`), by
    /// write: where a batch's time goes.
    pub write_steps: HistogramVec,
    pub websockets: IntGauge,
    /// Buyers a queue let in, and admissions that lapsed unused.
    pub queue_admissions: IntCounter,
    pub queue_lapses: IntCounter,
    /// Draws this instance made, and units it passed down a draw's waitlist.
    pub draws: IntCounter,
    pub draw_units_passed_on: IntCounter,
    /// Live events refused, by why (see `events::refusal_counter`).
    pub live_events_refused: IntCounterVec,
    pub(crate) requests: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new_custom(Some("dropline".into()), None).expect("valid prefix");
        let reserves = IntCounterVec::new(
            Opts::new("reserves_total", "Reserve attempts by outcome"),
            &["outcome"],
        )
        .expect("valid metric");
        let expiries = IntCounter::new("hold_expiries_total", "Holds expired by the worker")
            .expect("valid metric");
        let expiry_lateness = Histogram::with_opts(
            HistogramOpts::new(
                "expiry_lateness_seconds",
                "Time from a hold's deadline to its unit being back in stock",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        let batch_size = HistogramVec::new(
            HistogramOpts::new(
                "write_batch_size",
                "Requests of one drop written together in one transaction, by write",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
            &["write"],
        )
        .expect("valid metric");
        let write_steps = HistogramVec::new(
            HistogramOpts::new(
                "write_step_seconds",
                "Time each step of a batch's transaction took, by write and step",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            ]),
            &["write", "step"],
        )
        .expect("valid metric");
        let websockets =
            IntGauge::new("websockets_open", "Open live-feed WebSockets").expect("valid metric");
        let queue_admissions = IntCounter::new("queue_admissions_total", "Buyers a queue let in")
            .expect("valid metric");
        let queue_lapses =
            IntCounter::new("queue_lapses_total", "Queue admissions that ran out unused")
                .expect("valid metric");
        let draws =
            IntCounter::new("draws_total", "Draws this instance made").expect("valid metric");
        let draw_units_passed_on = IntCounter::new(
            "draw_units_passed_on_total",
            "Units a draw's winner left unused, given to the next on the waitlist",
        )
        .expect("valid metric");
        let live_events_refused = super::events::refusal_counter();
        let requests = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        for collector in [
            Box::new(reserves.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(expiries.clone()),
            Box::new(expiry_lateness.clone()),
            Box::new(batch_size.clone()),
            Box::new(write_steps.clone()),
            Box::new(websockets.clone()),
            Box::new(queue_admissions.clone()),
            Box::new(queue_lapses.clone()),
            Box::new(draws.clone()),
            Box::new(draw_units_passed_on.clone()),
            Box::new(live_events_refused.clone()),
            Box::new(requests.clone()),
        ] {
            registry
                .register(collector)
                .expect("metric names are unique");
        }
        Self {
            registry,
            reserves,
            expiries,
            expiry_lateness,
            batch_size,
            write_steps,
            websockets,
            queue_admissions,
            queue_lapses,
            draws,
            draw_units_passed_on,
            live_events_refused,
            requests,
        }
    }
}

impl Metrics {
    /// Everything in the text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
