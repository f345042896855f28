//! `dropline-load`: the load generator behind `make bench`.
//!
//! It starts the release server itself (`target/release/dropline`), first on a fresh SQLite
//! file and then on a fresh PostgreSQL database that it creates and drops, and measures:
//! hot-drop reserve throughput and latency at several numbers of concurrent buyers (each request
//! a distinct signed-in buyer, with an oversell audit after each run), WebSocket fan-out latency
//! and memory per connection, expiry lateness, and the size of what a browser downloads. The
//! results go to `BENCHMARKS.md` as tables, with each target marked met or missed.
//!
//! Everything runs on one machine: the generator competes with the server (and PostgreSQL) for
//! the same cores, and the report shows how much CPU each used.

mod api;
mod audit;
mod cpu;
mod draw;
mod error;
mod expiry;
mod fanout;
mod figures;
mod golive;
mod hot;
mod measure;
mod openloop;
mod options;
mod page;
mod proof;
mod report;
mod sellout;
mod server;
mod steps;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use api::Route;
use error::{BenchError, Result};
use options::Options;
use report::Runs;
use server::{Database, Db, Launch, Server, ADMIN_TOKEN};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // One of a fan-out run's watcher processes, started by the generator itself.
    let watcher = args.first().map(String::as_str) == Some(fanout::WATCHER_FLAG);
    let options = if watcher {
        None
    } else {
        match Options::parse(args.iter().cloned()) {
            Ok(options) => Some(options),
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::from(2);
            }
        }
    };
    // Thousands of sockets on each side: the generator's limit, which the server inherits.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if !watcher => eprintln!("open files limit: {limit}"),
        Ok(_) => {}
        Err(error) => eprintln!("could not raise the open files limit: {error}"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dropline-load: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match options {
        Some(options) => runtime.block_on(run(options)),
        None => runtime.block_on(fanout::watcher_process(&args[1..])),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dropline-load: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<()> {
    let started = Instant::now();
    let work = PathBuf::from("target/bench");
    std::fs::create_dir_all(&work)?;
    let mut report = report::Report::new(&options);
    if !options.server.exists() {
        return Err(BenchError::Unexpected(format!(
            "{} is missing; run `make build` first",
            options.server.display()
        )));
    }
    // Run a private copy: a build in a shared target directory must not swap the binary
    // between two scenarios.
    let binary = work.join("dropline-server");
    std::fs::copy(&options.server, &binary)?;
    // The content hashes of the site's file names, which the server reads beside itself.
    let hashes = options.server.with_file_name("hash.txt");
    if hashes.exists() {
        std::fs::copy(&hashes, work.join("hash.txt"))?;
    }
    let options = Options {
        server: binary,
        ..options
    };
    for &db in &options.databases {
        eprintln!("== {}", db.name());
        if let Err(error) = run_database(db, &options, &work, &mut report).await {
            eprintln!("{}: {error}", db.name());
            report.failures.push(format!("{}: {error}", db.name()));
        }
    }
    if options.runs("page") {
        eprintln!("== page");
        if let Err(error) = measure_page(&options, &work, &mut report).await {
            eprintln!("page: {error}");
            report.failures.push(format!("page: {error}"));
        }
    }
    if options.runs("proof") {
        eprintln!("== proof");
        if let Err(error) = measure_proof(&options, &work, &mut report).await {
            eprintln!("proof: {error}");
            report.failures.push(format!("proof: {error}"));
        }
    }
    report.elapsed = started.elapsed();
    report.machine.postgres = postgres_version(&options.postgres).await;
    report.write(&options.out)?;
    eprintln!(
        "wrote {} in {:.0} s",
        options.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Every scenario on one database; they share the database and its signed-in buyers.
async fn run_database(
    db: Db,
    options: &Options,
    work: &Path,
    report: &mut report::Report,
) -> Result<()> {
    let database = Database::create(db, "run", work, &options.postgres).await?;
    let outcome = run_scenarios(db, &database, options, work, report).await;
    database.remove().await?;
    outcome
}

/// A server the hot-drop cells run on: its settings beyond every run's, and its cells (buyers
/// at once, route).
struct HotServer {
    label: String,
    env: Vec<(&'static str, String)>,
    cells: Vec<(usize, Route)>,
    /// Runs of each cell on this start (the rest on later starts of the same settings).
    runs: usize,
}

async fn run_scenarios(
    db: Db,
    database: &Database,
    options: &Options,
    work: &Path,
    report: &mut report::Report,
) -> Result<()> {
    let duration = Duration::from_secs(options.seconds);
    let key = match db {
        Db::Sqlite => "sqlite",
        Db::Postgres => "postgres",
    };
    let mut buyers: Option<Arc<Vec<String>>> = None;
    let mut best_rate = 0.0_f64;
    let needed = options
        .buyers
        .max(options.holds)
        .max(options.rate as usize * options.seconds as usize + 1_000);

    if options.runs("hot") {
        // Each server's settings, and its cells: every number of buyers by REST; with the
        // default batching, the largest also by the other routes.
        let most = options.most_buyers();
        let mut servers: Vec<HotServer> = Vec::new();
        for (i, variant) in report::batching_variants().into_iter().enumerate() {
            let env: Vec<(&str, String)> = variant
                .value
                .map(|v| vec![("RESERVE_BATCH_MAX", v.to_string())])
                .unwrap_or_default();
            let mut cells: Vec<(usize, Route)> = options
                .concurrency
                .iter()
                .map(|&c| (c, Route::Rest))
                .collect();
            if i == 0 {
                cells.push((most, Route::RestIdempotent));
                cells.push((most, Route::Rpc));
                // The same hot drop sold by size, next to the one-size cell in the same run.
                cells.push((most, Route::RestSized));
            }
            servers.push(HotServer {
                label: variant.label,
                env,
                cells,
                runs: options.runs,
            });
        }
        // What syncing every commit to disk costs SQLite: the largest cell with FULL and with
        // NORMAL, one run of each in turn on a new start, so neither always meets the database
        // first (a checkpoint, a cold cache) and both meet it as the runs before left it.
        if let (Db::Sqlite, Some(first)) = (db, servers.first()) {
            let (label, base) = (first.label.clone(), first.env.clone());
            for sync in ["full", "normal"]
                .into_iter()
                .cycle()
                .take(2 * options.runs)
            {
                let mut env = base.clone();
                env.push(("SQLITE_SYNCHRONOUS", sync.into()));
                servers.push(HotServer {
                    label: format!("{label}, SQLITE_SYNCHRONOUS={sync}"),
                    env,
                    cells: vec![(most, Route::Rest)],
                    runs: 1,
                });
            }
        }
        for (i, server) in servers.into_iter().enumerate() {
            let HotServer {
                label,
                env,
                cells,
                runs: runs_here,
            } = server;
            let server = Server::start(Launch {
                binary: &options.server,
                site: &options.site,
                database,
                label: &format!("{key}-hot-{i}"),
                work,
                ttl_seconds: 3_600,
                seed_demo: false,
                env: &env,
            })
            .await?;
            ensure_buyers(&mut buyers, &server, needed, db, report).await?;
            let warmup = Duration::from_millis(500);
            for (concurrency, route) in cells {
                let mut runs = Vec::with_capacity(runs_here);
                for _ in 0..runs_here {
                    // A cell must not run out of distinct buyers: size the pool by the best rate
                    // seen so far, and if a cell still runs out, double it and run it again.
                    let mut attempt = 0;
                    let mut at_least = 0;
                    let cell = loop {
                        attempt += 1;
                        let enough = ((best_rate * (warmup + duration).as_secs_f64() * 1.3)
                            as usize)
                            .max(at_least);
                        let pool = ensure_buyers(&mut buyers, &server, enough, db, report).await?;
                        // Should this run out, the rerun gets twice as many.
                        at_least = 2 * pool.len();
                        let name = format!("Hot drop ({concurrency} buyers, {})", route.label());
                        let stock = pool.len() as i64;
                        let drop = match route {
                            Route::RestSized => {
                                api::create_sized_drop(server.addr, ADMIN_TOKEN, &name, stock)
                                    .await?
                            }
                            _ => api::create_drop(server.addr, ADMIN_TOKEN, &name, stock).await?,
                        };
                        let cell = hot::run(hot::Setup {
                            db,
                            db_url: &database.url,
                            addr: server.addr,
                            parties: database.parties(&server),
                            drop,
                            buyers: pool,
                            concurrency,
                            route,
                            warmup,
                            duration,
                        })
                        .await?;
                        best_rate = best_rate.max(cell.requests_per_second());
                        if !cell.out_of_buyers || attempt == 2 {
                            break cell;
                        }
                        eprintln!(
                            "ran out of buyers at {concurrency}; signing in more and rerunning"
                        );
                    };
                    eprintln!(
                    "hot {} {} {} c={concurrency}: {:.0} holds/s, p50 {:.1} ms, p99 {:.1} ms, oversell {}",
                    db.name(),
                    label,
                    route.label(),
                    cell.holds_per_second(),
                    cell.latency_ms(0.5),
                    cell.latency_ms(0.99),
                    cell.audit.oversold()
                );
                    runs.push(cell);
                }
                let same = report.hot.iter_mut().find(|row| {
                    row.db == db
                        && row.settings == label
                        && row.cell().route == route
                        && row.cell().concurrency == concurrency
                });
                match same {
                    Some(row) => row.add(runs),
                    None => report
                        .hot
                        .push(report::HotRow::new(db, label.clone(), runs)),
                }
            }
            if i == 0 {
                sell_out(db, database, &server, &mut buyers, options, report).await?;
                open_loop(db, &server, &mut buyers, options, report).await?;
            }
            server.stop().await?;
        }
    }

    if options.runs("fanout") {
        // Every number of clients on a quiet server; the most one instance takes again while
        // the most buyers of the hot-drop cells reserve another drop back to back. Past
        // `PER_PROCESS` clients the sockets spread over several instances of one database,
        // which only PostgreSQL serves. Each cell runs `options.runs` times, the cells in turn,
        // each run on new starts.
        let cells: Vec<(usize, Option<usize>)> = options
            .clients
            .iter()
            .map(|&clients| (clients, None))
            .chain([(
                options.most_clients_on_one_instance(),
                Some(options.most_buyers()),
            )])
            .filter(|&(clients, _)| match (db, clients.div_ceil(figures::PER_PROCESS)) {
                (_, 0 | 1) | (Db::Postgres, _) => true,
                (Db::Sqlite, _) => {
                    eprintln!("fan-out {clients} clients: more than one instance takes; not on SQLite");
                    false
                }
            })
            .collect();
        let runs = (0..options.runs).flat_map(|run| cells.iter().map(move |&cell| (run, cell)));
        for (run, (clients, busy)) in runs {
            let mut servers = Vec::new();
            for instance in 0..clients.div_ceil(figures::PER_PROCESS).max(1) {
                servers.push(
                    Server::start(Launch {
                        binary: &options.server,
                        site: &options.site,
                        database,
                        label: &format!(
                            "{key}-fanout-{clients}{}-{run}-{instance}",
                            if busy.is_some() { "-hot" } else { "" }
                        ),
                        work,
                        ttl_seconds: 3_600,
                        seed_demo: false,
                        env: &[],
                    })
                    .await?,
                );
            }
            let server = &servers[0];
            // The hot drop's buyers are the same as the clicks' (a buyer may hold a unit of
            // each drop): enough for the best rate seen so far, or 10,000 reserves/s.
            let enough = needed
                .max((best_rate.max(10_000.0) * (duration.as_secs_f64() + 1.0) * 1.3) as usize);
            let pool = ensure_buyers(&mut buyers, server, enough, db, report).await?;
            let drop = api::create_drop(
                server.addr,
                ADMIN_TOKEN,
                &format!("Watched drop ({clients} clients)"),
                pool.len() as i64,
            )
            .await?;
            let hot = match busy {
                Some(concurrency) => Some(
                    hot_beside(
                        db,
                        database,
                        server,
                        &pool,
                        concurrency,
                        &format!("Hot drop beside {clients} watchers"),
                    )
                    .await?,
                ),
                None => None,
            };
            let result = fanout::run(fanout::Setup {
                instances: servers.iter().map(|s| s.addr).collect(),
                parties: cpu::Parties {
                    servers: servers.iter().map(|s| s.pid).collect(),
                    ..database.parties(server)
                },
                drop,
                buyers: pool,
                clients,
                rate: options.rate,
                duration,
                hot,
            })
            .await?;
            eprintln!(
                "fan-out {} {clients} clients on {} instance(s){}: p50 {:.1} ms, p99 {:.1} ms, \
                 {} never seen, {:.1} KiB/connection, {:.0} reserves/s (p99 {:.1} ms)",
                db.name(),
                servers.len(),
                result.hot.as_ref().map_or(String::new(), |hot| format!(
                    " beside a hot drop ({:.0} holds/s, oversell {})",
                    hot.holds_per_second(),
                    hot.audit.oversold()
                )),
                result.latency.value_at_quantile(0.5) as f64 / 1000.0,
                result.p99_ms(),
                result.missed,
                result.kib_per_connection,
                result.commits_per_second,
                result.reserve_latency.value_at_quantile(0.99) as f64 / 1000.0,
            );
            Runs::add(&mut report.fanout, db, result, |a, b| {
                a.clients == b.clients && a.hot.is_some() == b.hot.is_some()
            });
            for server in servers {
                server.stop().await?;
            }
        }
    }

    if options.runs("expiry") {
        // On a quiet server, then with as many sockets watching as the busy fan-out run and
        // the most buyers of the hot-drop cells reserving another drop over the deadlines.
        // Each `options.runs` times, in turn, each run on a new start.
        let watchers = options.most_clients_on_one_instance();
        let runs = (0..options.runs).flat_map(|run| [(run, false), (run, true)]);
        for (run, busy) in runs {
            let server = Server::start(Launch {
                binary: &options.server,
                site: &options.site,
                database,
                label: &format!("{key}-expiry{}-{run}", if busy { "-busy" } else { "" }),
                work,
                ttl_seconds: options.ttl,
                seed_demo: false,
                env: &[],
            })
            .await?;
            let enough = needed.max((best_rate.max(10_000.0) * 5.0 * 1.3) as usize);
            let pool = ensure_buyers(&mut buyers, &server, enough, db, report).await?;
            let drop = api::create_drop(
                server.addr,
                ADMIN_TOKEN,
                "Expiring drop",
                options.holds as i64,
            )
            .await?;
            let busy = if busy {
                Some(expiry::Busy {
                    watchers,
                    hot: hot_beside(
                        db,
                        database,
                        &server,
                        &pool,
                        options.most_buyers(),
                        "Hot drop while holds expire",
                    )
                    .await?,
                })
            } else {
                None
            };
            let result = expiry::run(expiry::Setup {
                addr: server.addr,
                drop,
                buyers: pool,
                holds: options.holds,
                ttl: Duration::from_secs(options.ttl),
                busy,
            })
            .await?;
            eprintln!(
                "expiry {}{}: p50 {:.1} ms, p99 {:.1} ms",
                db.name(),
                result.hot.as_ref().map_or(String::new(), |hot| format!(
                    " beside {} watchers and a hot drop ({:.0} holds/s, oversell {})",
                    result.watchers,
                    hot.holds_per_second(),
                    hot.audit.oversold()
                )),
                result.seen.value_at_quantile(0.5) as f64 / 1000.0,
                result.seen.value_at_quantile(0.99) as f64 / 1000.0
            );
            Runs::add(&mut report.expiry, db, result, |a, b| {
                a.hot.is_some() == b.hot.is_some()
            });
            server.stop().await?;
        }
    }

    if options.runs("golive") {
        for run in 0..options.runs {
            let server = Server::start(Launch {
                binary: &options.server,
                site: &options.site,
                database,
                label: &format!("{key}-golive-{run}"),
                work,
                ttl_seconds: 60,
                seed_demo: false,
                env: &[],
            })
            .await?;
            let pool = ensure_buyers(&mut buyers, &server, options.buyers, db, report).await?;
            let pool = Arc::new(pool[..options.buyers.min(pool.len())].to_vec());
            let result = golive::run(golive::Setup {
                db,
                db_url: &database.url,
                addr: server.addr,
                parties: database.parties(&server),
                buyers: pool,
                units: options.units as i64,
                window: Duration::from_secs(options.lobby),
            })
            .await?;
            eprintln!(
                "go-live {}: {:.0} joins/s, every unit held after {}, place updates p99 {:.1} ms, \
                 over-admitted {}",
                db.name(),
                result.joins_per_second,
                result.all_held_after.map_or_else(
                    || "never".to_string(),
                    |d| format!("{:.2} s", d.as_secs_f64())
                ),
                result.place_p99_ms(),
                result.over_admitted,
            );
            Runs::add(&mut report.golive, db, result, |_, _| true);
            server.stop().await?;
        }
    }

    if options.runs("draw") {
        for run in 0..options.runs {
            let server = Server::start(Launch {
                binary: &options.server,
                site: &options.site,
                database,
                label: &format!("{key}-draw-{run}"),
                work,
                ttl_seconds: 60,
                seed_demo: false,
                env: &[],
            })
            .await?;
            let pool = ensure_buyers(&mut buyers, &server, options.entries, db, report).await?;
            let result = draw::run(golive::Setup {
                db,
                db_url: &database.url,
                addr: server.addr,
                parties: database.parties(&server),
                buyers: Arc::new(pool[..options.entries.min(pool.len())].to_vec()),
                units: options.units as i64,
                window: Duration::from_secs(options.draw_window),
            })
            .await?;
            eprintln!(
                "draw {}: {:.0} entries/s, every winner held after {}, told p99 {:.1} ms, {} never told",
                db.name(),
                result.entries_per_second,
                result.all_held_after.map_or_else(
                    || "never".to_string(),
                    |d| format!("{:.2} s", d.as_secs_f64())
                ),
                result.told_p99_ms(),
                result.never_told,
            );
            Runs::add(&mut report.draw, db, result, |_, _| true);
            server.stop().await?;
        }
    }
    Ok(())
}

/// Buyers in a sell-out cell, each sending one reserve; the drop has stock for 5 % of them.
const SELL_OUT_BUYERS: usize = 10_000;

/// The sell-out cells on a running server: reserves only, then reserves with purchases and
/// cancels, at the largest number of concurrent buyers; each `options.runs` times, in turn.
async fn sell_out(
    db: Db,
    database: &Database,
    server: &Server,
    buyers: &mut Option<Arc<Vec<String>>>,
    options: &Options,
    report: &mut report::Report,
) -> Result<()> {
    let pool = ensure_buyers(buyers, server, SELL_OUT_BUYERS, db, report).await?;
    let concurrency = options.most_buyers();
    let stock = (SELL_OUT_BUYERS / 20) as i64;
    let runs = (0..options.runs).flat_map(|_| [false, true]);
    for churn in runs {
        let drop = api::create_drop(
            server.addr,
            ADMIN_TOKEN,
            &format!(
                "Sell-out ({concurrency} buyers{})",
                if churn { ", churn" } else { "" }
            ),
            stock,
        )
        .await?;
        let cell = sellout::run(sellout::Setup {
            db,
            db_url: &database.url,
            addr: server.addr,
            parties: database.parties(server),
            drop,
            stock,
            buyers: sellout::buyers(&pool, SELL_OUT_BUYERS)?,
            concurrency,
            churn,
        })
        .await?;
        eprintln!(
            "sell-out {} c={concurrency} churn={churn}: {:.0} 201/s, {:.0} 409/s, p99 {:.1} ms, faults {:?}",
            db.name(),
            cell.held_per_second(),
            cell.sold_out_per_second(),
            cell.latency_ms(0.99),
            cell.faults(),
        );
        Runs::add(&mut report.sell_out, db, cell, |a, b| a.churn == b.churn);
    }
    Ok(())
}

/// The open-loop cells on a running server, one per offered rate; each `options.runs` times,
/// the rates in turn.
async fn open_loop(
    db: Db,
    server: &Server,
    buyers: &mut Option<Arc<Vec<String>>>,
    options: &Options,
    report: &mut report::Report,
) -> Result<()> {
    let duration = Duration::from_secs(options.seconds);
    let runs = (0..options.runs).flat_map(|_| options.rates.iter().copied());
    for rate in runs {
        let rate = u32::try_from(rate).unwrap_or(u32::MAX);
        let requests = openloop::requests(rate, duration);
        let pool = ensure_buyers(buyers, server, requests, db, report).await?;
        let drop = api::create_drop(
            server.addr,
            ADMIN_TOKEN,
            &format!("Open loop ({rate}/s)"),
            requests as i64,
        )
        .await?;
        let cell = openloop::run(openloop::Setup {
            addr: server.addr,
            drop,
            buyers: pool,
            rate,
            duration,
        })
        .await?;
        eprintln!(
            "open loop {} {rate}/s: {:.0} answered/s, p50 {:.1} ms, p99 {:.1} ms, {} refused",
            db.name(),
            cell.answered_per_second(),
            cell.latency_ms(0.5),
            cell.latency_ms(0.99),
            cell.refused,
        );
        Runs::add(&mut report.open_loop, db, cell, |a, b| a.rate == b.rate);
    }
    Ok(())
}

/// A hot drop to run beside another measurement: a new drop with a unit for every buyer of
/// `pool`, reserved over REST by `concurrency` buyers, a new one each request. Its warm-up and
/// duration are set by the measurement it runs beside.
async fn hot_beside<'a>(
    db: Db,
    database: &'a Database,
    server: &Server,
    pool: &Arc<Vec<String>>,
    concurrency: usize,
    name: &str,
) -> Result<hot::Setup<'a>> {
    Ok(hot::Setup {
        db,
        db_url: &database.url,
        addr: server.addr,
        parties: database.parties(server),
        drop: api::create_drop(server.addr, ADMIN_TOKEN, name, pool.len() as i64).await?,
        buyers: pool.clone(),
        concurrency,
        route: Route::Rest,
        warmup: Duration::ZERO,
        duration: Duration::ZERO,
    })
}

/// Makes sure at least `count` buyers are signed in, signing in the missing ones on `server`.
/// Every server of a database shares the session secret, so cookies stay valid across them.
async fn ensure_buyers(
    buyers: &mut Option<Arc<Vec<String>>>,
    server: &Server,
    count: usize,
    db: Db,
    report: &mut report::Report,
) -> Result<Arc<Vec<String>>> {
    let have = buyers.as_ref().map_or(0, |b| b.len());
    if have >= count {
        if let Some(buyers) = buyers {
            return Ok(buyers.clone());
        }
    }
    eprintln!("signing in {} buyers on {}", count - have, db.name());
    let started = Instant::now();
    let more = api::sign_in_many(server.addr, have, count - have, 64, "buyer").await?;
    report.sign_in.push((
        db,
        more.len(),
        more.len() as f64 / started.elapsed().as_secs_f64(),
    ));
    let mut all = buyers
        .as_ref()
        .map_or_else(Vec::new, |b| b.as_ref().clone());
    all.extend(more);
    let all = Arc::new(all);
    *buyers = Some(all.clone());
    Ok(all)
}

/// The dashboard as a phone gets it from a release server with the demo drops: bytes as
/// sent, time to a working page on a throttled phone, Lighthouse's scores.
async fn measure_page(options: &Options, work: &Path, report: &mut report::Report) -> Result<()> {
    let database = Database::create(Db::Sqlite, "page", work, &options.postgres).await?;
    let server = Server::start(Launch {
        binary: &options.server,
        site: &options.site,
        database: &database,
        label: "page",
        work,
        ttl_seconds: 60,
        seed_demo: true,
        env: &[],
    })
    .await?;
    let page = page::measure(server.addr, work, options.runs).await;
    server.stop().await?;
    database.remove().await?;
    report.page = Some(page?);
    Ok(())
}

/// The doors' proof of work on SQLite (what it costs is the client's CPU, not the database's):
/// a script's solves at the default floor and at the default ceiling, then the farm run.
async fn measure_proof(options: &Options, work: &Path, report: &mut report::Report) -> Result<()> {
    let defaults = |key: &str| -> Result<u32> {
        report::leptos_default(key)
            .ok_or_else(|| BenchError::Unexpected(format!("no {key} in Leptos.toml")))
    };
    let (floor, ceiling, cost) = (
        defaults("proof_floor")?,
        defaults("proof_ceiling")?,
        defaults("proof_cost")?,
    );
    let mut measured = Vec::new();
    let mut phone = Err("not measured".to_string());
    for (label, tries, solves) in [("floor", floor, 100), ("ceiling", ceiling, 5)] {
        let database = Database::create(Db::Sqlite, "proof", work, &options.postgres).await?;
        let env = [
            ("PROOF_FLOOR", tries.to_string()),
            ("PROOF_CEILING", tries.to_string()),
        ];
        let server = Server::start(Launch {
            binary: &options.server,
            site: &options.site,
            database: &database,
            label: &format!("proof-{label}"),
            work,
            ttl_seconds: 60,
            seed_demo: false,
            env: &env,
        })
        .await?;
        let solves = proof::script_cost(server.addr, solves, tries, cost).await;
        if label == "floor" {
            let url = format!("http://{}", server.addr);
            phone = tokio::task::spawn_blocking(move || proof::phone_solves(&url, 5)).await?;
        }
        server.stop().await?;
        database.remove().await?;
        let solves = solves?;
        eprintln!(
            "proof {label}: {:.3} s a solve, {:.0} CPU-s for 10,000 entries",
            solves.mean_s(),
            solves.cpu_s_for(10_000)
        );
        measured.push(solves);
    }
    let database = Database::create(Db::Sqlite, "farm", work, &options.postgres).await?;
    let cap = 3;
    let env = [
        ("PROOF_FLOOR", "5".to_string()),
        ("PROOF_CEILING", "5".to_string()),
        ("PROOF_COST", "1".to_string()),
        ("JOIN_CAP_PER_IPV4_24", cap.to_string()),
        ("TRUSTED_PROXIES", "127.0.0.1/32".to_string()),
        ("CLIENT_IP_SOURCE", "RightmostXForwardedFor".to_string()),
    ];
    let server = Server::start(Launch {
        binary: &options.server,
        site: &options.site,
        database: &database,
        label: "proof-farm",
        work,
        ttl_seconds: 60,
        seed_demo: false,
        env: &env,
    })
    .await?;
    let farm = proof::farm_run(server.addr, 1_000, 100, 4, cap, 50).await;
    server.stop().await?;
    database.remove().await?;
    let ceiling = measured.pop().unwrap_or_default();
    let floor = measured.pop().unwrap_or_default();
    report.proof = Some(figures::ProofReport {
        floor,
        ceiling,
        phone,
        farm: farm?,
    });
    Ok(())
}

/// `SHOW server_version`, or why not.
async fn postgres_version(url: &str) -> String {
    use sqlx::Connection;
    match sqlx::PgConnection::connect(url).await {
        Ok(mut conn) => sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| format!("unknown ({e})")),
        Err(error) => format!("unreachable ({error})"),
    }
}
