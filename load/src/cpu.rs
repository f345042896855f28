//! What the kernel says about the processes sharing the box during a measurement: CPU time of
//! the server, of PostgreSQL (its backends for the benchmark's database and its shared helper
//! processes), of the generator itself, and of everything else on the machine (they all compete
//! for the same cores), and the server's resident memory.

use std::time::Instant;

use crate::error::{BenchError, Result};

/// Whose CPU time counts as the benchmark's.
#[derive(Clone, Debug)]
pub struct Parties {
    /// The server's process, or every instance's when a run has several.
    pub servers: Vec<u32>,
    /// The PostgreSQL database the server uses, if any: backends serving other databases
    /// (someone else's work on the same box) count as "other".
    pub pg_database: Option<String>,
    /// The generator's own child processes (fan-out's watchers), counted as the generator.
    pub helpers: Vec<u32>,
}

/// CPU time used so far by each party, in clock ticks.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    at: Instant,
    server: u64,
    postgres: u64,
    generator: u64,
    machine: u64,
}

/// Cores kept busy on average between two samples, by party.
#[derive(Clone, Copy, Debug, Default)]
pub struct Share {
    pub server: f64,
    pub postgres: f64,
    pub generator: f64,
    /// Everything else on the machine (other processes, the kernel's own work).
    pub other: f64,
}

impl Sample {
    /// Reads the counters now.
    pub fn take(parties: &Parties) -> Self {
        Self {
            at: Instant::now(),
            server: ticks_of(&parties.servers),
            postgres: postgres_ticks(parties.pg_database.as_deref()),
            generator: ticks("self").unwrap_or(0) + ticks_of(&parties.helpers),
            machine: machine_busy_ticks(),
        }
    }

    /// Average cores busy from `self` to `later`.
    pub fn share_until(&self, later: &Sample) -> Share {
        let seconds = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let hz = clock_ticks_per_second() as f64;
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / hz / seconds;
        let share = Share {
            server: cores(self.server, later.server),
            postgres: cores(self.postgres, later.postgres),
            generator: cores(self.generator, later.generator),
            other: 0.0,
        };
        let machine = cores(self.machine, later.machine);
        Share {
            other: (machine - share.server - share.postgres - share.generator).max(0.0),
            ..share
        }
    }
}

/// Busy time of all cores together (everything in the `cpu` line of `/proc/stat` but idle and
/// iowait).
fn machine_busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum()
}

/// utime + stime of these processes together (those gone count nothing).
fn ticks_of(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|pid| ticks(&pid.to_string())).sum()
}

/// utime + stime of one process (`pid` or `self`), from `/proc/<pid>/stat`.
fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields that follow it are plain numbers.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time of PostgreSQL's shared processes (postmaster, WAL writer, checkpointer, ...) and
/// of the backends connected to `database`.
fn postgres_ticks(database: Option<&str>) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.bytes().all(|b| b.is_ascii_digit()).then_some(name)
        })
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter(|pid| {
            let title = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            match backend_database(&title) {
                Some(db) => Some(db) == database,
                None => true,
            }
        })
        .filter_map(|pid| ticks(&pid))
        .sum()
}

/// The database a PostgreSQL client backend serves, from its process title
/// `postgres: [CLUSTER:] USER DATABASE HOST(PORT) ACTIVITY`; `None` for the postmaster and the
/// shared helper processes (checkpointer, WAL writer, ...).
fn backend_database(title: &str) -> Option<&str> {
    let mut words = title.split([' ', '\0']).filter(|w| !w.is_empty());
    if words.next() != Some("postgres:") {
        return None;
    }
    let mut rest: Vec<&str> = words.take(4).collect();
    if rest.first().is_some_and(|w| w.ends_with(':')) {
        rest.remove(0);
    }
    match rest.as_slice() {
        [_user, database, host, ..] if host.contains('(') || *host == "[local]" => Some(database),
        _ => None,
    }
}

/// The kernel's clock tick rate (`getconf CLK_TCK`), 100 on every Linux this runs on.
fn clock_ticks_per_second() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Resident memory of some processes together, in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pids: &[u32]) -> Result<u64> {
    let mut total = 0;
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        total += status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| BenchError::Unexpected(format!("no VmRSS for process {pid}")))?;
    }
    Ok(total)
}
