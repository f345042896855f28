//! What to run, from the command line.

use std::path::PathBuf;

use crate::{figures::PER_PROCESS, server::Db};

const USAGE: &str = "\
usage: dropline-load [options]   (run from the repository root, after `make build`)
  --out PATH            report file                       [BENCHMARKS.md]
  --server PATH         server binary                     [target/release/dropline]
  --site PATH           built site (pkg/ with WASM/JS/CSS) [target/site]
  --postgres URL        PostgreSQL admin URL; a database is created and dropped there
                        [$DROPLINE_BENCH_POSTGRES_URL or postgres://postgres@127.0.0.1:5432/postgres]
  --databases LIST      sqlite,postgres                   [sqlite,postgres]
  --only LIST           hot,fanout,expiry,golive,draw,page,proof [all]
  --seconds N           measured seconds per hot-drop and fan-out run [5]
  --buyers N            buyers signed in first per database; more are signed in when a
                        hot-drop run needs them (one per reserve) [20000]
  --concurrency LIST    concurrent buyers per hot-drop run [16,64,256]
  --runs N              runs of each cell, and of Lighthouse (the report shows the median
                        with the lowest and highest) [3]
  --rates LIST          offered reserves per second of the open-loop runs [5000,10000,15000,20000]
  --clients LIST        WebSocket clients per fan-out run; past 10,000 they spread over
                        server instances of 10,000 each (PostgreSQL only) [1000,5000,20000]
  --rate N              reserves per second during fan-out [100]
  --holds N             holds in the expiry run            [10000]
  --ttl N               hold time in the expiry run, seconds [15]
  --units N             units of the go-live queue drop (every buyer joins its lobby) [500]
  --lobby N             seconds the go-live lobby is open before go-live [15]
  --entries N           entries in the draw (a draw drop of --units units) [100000]
  --draw-window N       seconds entries are open before the draw [120]";

/// Every scenario, in the order they run.
const SCENARIOS: [&str; 7] = ["hot", "fanout", "expiry", "golive", "draw", "page", "proof"];

/// What to run, from the command line.
pub struct Options {
    pub out: PathBuf,
    pub server: PathBuf,
    pub site: PathBuf,
    pub postgres: String,
    pub databases: Vec<Db>,
    pub scenarios: Vec<String>,
    pub seconds: u64,
    pub buyers: usize,
    pub concurrency: Vec<usize>,
    pub runs: usize,
    pub rates: Vec<usize>,
    pub clients: Vec<usize>,
    pub rate: u32,
    pub holds: usize,
    pub ttl: u64,
    pub units: u64,
    pub lobby: u64,
    pub entries: usize,
    pub draw_window: u64,
}

impl Options {
    pub fn parse(args: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut o = Options {
            out: "BENCHMARKS.md".into(),
            server: "target/release/dropline".into(),
            site: "target/site".into(),
            postgres: std::env::var("DROPLINE_BENCH_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            databases: vec![Db::Sqlite, Db::Postgres],
            scenarios: SCENARIOS.map(String::from).into(),
            seconds: 5,
            buyers: 20_000,
            concurrency: vec![16, 64, 256],
            runs: 3,
            rates: vec![5_000, 10_000, 15_000, 20_000],
            clients: vec![1_000, 5_000, 20_000],
            rate: 100,
            holds: 10_000,
            ttl: 15,
            units: 500,
            lobby: 15,
            entries: 100_000,
            draw_window: 120,
        };
        let mut args = args.peekable();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Err(USAGE.into());
            }
            let value = args
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = |v: &str| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{flag}: expected a positive number, got {v:?}"))
            };
            let list = |v: &str| {
                v.split(',')
                    .map(|n| number(n.trim()).map(|n| n as usize))
                    .collect::<Result<Vec<_>, _>>()
            };
            match flag.as_str() {
                "--out" => o.out = value.into(),
                "--server" => o.server = value.into(),
                "--site" => o.site = value.into(),
                "--postgres" => o.postgres = value,
                "--databases" => {
                    o.databases = value
                        .split(',')
                        .map(|d| match d.trim() {
                            "sqlite" => Ok(Db::Sqlite),
                            "postgres" => Ok(Db::Postgres),
                            other => Err(format!("--databases: unknown database {other:?}")),
                        })
                        .collect::<Result<_, _>>()?
                }
                "--only" => {
                    o.scenarios = value.split(',').map(|s| s.trim().to_string()).collect();
                    if let Some(bad) = o
                        .scenarios
                        .iter()
                        .find(|s| !SCENARIOS.contains(&s.as_str()))
                    {
                        return Err(format!("--only: unknown scenario {bad:?}"));
                    }
                }
                "--seconds" => o.seconds = number(&value)?,
                "--buyers" => o.buyers = number(&value)? as usize,
                "--concurrency" => o.concurrency = list(&value)?,
                "--runs" => o.runs = number(&value)? as usize,
                "--rates" => o.rates = list(&value)?,
                "--clients" => o.clients = list(&value)?,
                "--rate" => o.rate = u32::try_from(number(&value)?).map_err(|e| e.to_string())?,
                "--holds" => o.holds = number(&value)? as usize,
                "--ttl" => o.ttl = number(&value)?,
                "--units" => o.units = number(&value)?,
                "--lobby" => o.lobby = number(&value)?,
                "--entries" => o.entries = number(&value)? as usize,
                "--draw-window" => o.draw_window = number(&value)?,
                other => return Err(format!("unknown option {other}\n{USAGE}")),
            }
        }
        Ok(o)
    }

    /// The most WebSocket clients of a fan-out run on one server instance: the sockets that
    /// watch beside a hot drop and while holds expire.
    pub fn most_clients_on_one_instance(&self) -> usize {
        self.clients
            .iter()
            .copied()
            .filter(|&c| c <= PER_PROCESS)
            .max()
            .unwrap_or(PER_PROCESS)
    }

    /// The largest number of concurrent buyers of the hot-drop runs.
    pub fn most_buyers(&self) -> usize {
        self.concurrency.iter().copied().max().unwrap_or(256)
    }

    pub fn runs(&self, scenario: &str) -> bool {
        self.scenarios.iter().any(|s| s == scenario)
    }
}
