//! Starts and stops the release server under test, on a fresh database, and reads what the
//! kernel says about it (memory, CPU time).

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use sqlx::Connection;
use tokio::process::{Child, Command};

use crate::{
    api, cpu,
    error::{BenchError, Result},
};

/// The admin token every server under test gets.
pub const ADMIN_TOKEN: &str = "bench-admin-token-bench-admin-token";
/// Signs sessions; fixed so a restarted server on the same database keeps its buyers signed in.
const SESSION_SECRET: &str = "bench-session-secret-bench-session-secret";
/// High enough that the rate limits never answer 429 to the generator (every buyer shares one IP).
const NO_LIMIT: &str = "1000000000";

/// Every setting the generator gives the server beyond its addresses, database and secrets
/// (each run may add its own): the report prints them.
pub const SETTINGS: [(&str, &str); 9] = [
    // Every simulated buyer comes from this one machine's address, and each is a script that
    // signs in by name (what Argon2id costs a sign-in is not what these runs measure). The
    // doors' proof of work is measured on its own (what it costs a script, not the server).
    ("DEMO_SIGN_IN", "true"),
    ("PROOF_FLOOR", "0"),
    ("RATE_LIMIT_SESSION_PER_SECOND", NO_LIMIT),
    ("RATE_LIMIT_SESSION_BURST", NO_LIMIT),
    ("RATE_LIMIT_IP_PER_SECOND", NO_LIMIT),
    ("RATE_LIMIT_IP_BURST", NO_LIMIT),
    ("WS_MAX_PER_IP", "1000000"),
    ("MAX_CONNECTIONS_PER_IP", "10000000"),
    ("RUST_LOG", "warn"),
];

/// Which database a server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    /// How the report names it.
    pub fn name(self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::Postgres => "PostgreSQL",
        }
    }
}

/// A database made for one scenario and removed after it.
pub struct Database {
    pub url: String,
    /// SQLite: the file (and its -wal, -shm) to remove. PostgreSQL: the database to drop.
    sqlite_file: Option<PathBuf>,
    pg: Option<(String, String)>,
}

impl Database {
    /// A fresh empty database named after `label`.
    pub async fn create(db: Db, label: &str, work: &Path, postgres_admin: &str) -> Result<Self> {
        match db {
            Db::Sqlite => {
                let file = work.join(format!("{label}.db"));
                remove_sqlite(&file);
                Ok(Self {
                    url: format!("sqlite://{}?mode=rwc", file.display()),
                    sqlite_file: Some(file),
                    pg: None,
                })
            }
            Db::Postgres => {
                let name = format!("dropline_bench_{label}_{}", std::process::id());
                let mut admin = sqlx::PgConnection::connect(postgres_admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await?;
                let base = postgres_admin
                    .rsplit_once('/')
                    .map_or(postgres_admin, |(base, _)| base);
                Ok(Self {
                    url: format!("{base}/{name}"),
                    sqlite_file: None,
                    pg: Some((postgres_admin.to_string(), name)),
                })
            }
        }
    }

    /// Whose CPU time counts for a server on this database.
    pub fn parties(&self, server: &Server) -> cpu::Parties {
        cpu::Parties {
            servers: vec![server.pid],
            pg_database: self.pg.as_ref().map(|(_, name)| name.clone()),
            helpers: Vec::new(),
        }
    }

    /// Removes the database.
    pub async fn remove(self) -> Result<()> {
        if let Some(file) = &self.sqlite_file {
            remove_sqlite(file);
        }
        if let Some((admin, name)) = &self.pg {
            let mut admin = sqlx::PgConnection::connect(admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await?;
        }
        Ok(())
    }
}

fn remove_sqlite(file: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = file.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(path);
    }
}

/// How to start one server.
pub struct Launch<'a> {
    pub binary: &'a Path,
    /// The built site the server serves (`SITE_ROOT`).
    pub site: &'a Path,
    pub database: &'a Database,
    pub label: &'a str,
    pub work: &'a Path,
    pub ttl_seconds: u64,
    pub seed_demo: bool,
    /// Extra settings, e.g. `RESERVE_BATCH_MAX`.
    pub env: &'a [(&'a str, String)],
}

/// A running server process.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

impl Server {
    /// Starts the server and waits until `/readyz` answers 200.
    pub async fn start(launch: Launch<'_>) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(launch.work.join(format!("{}.log", launch.label)))?;
        let mut command = Command::new(launch.binary);
        command
            .env("SITE_ADDR", addr.to_string())
            .env("LEPTOS_SITE_ADDR", addr.to_string())
            .env("SITE_ROOT", launch.site)
            .env("LEPTOS_SITE_ROOT", launch.site)
            .env("DATABASE_URL", &launch.database.url)
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SESSION_SECRET", SESSION_SECRET)
            .env("SEED_DEMO", launch.seed_demo.to_string())
            .env("RESERVATION_TTL_SECONDS", launch.ttl_seconds.to_string())
            .envs(SETTINGS)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        for (key, value) in launch.env {
            command.env(key, value);
        }
        let mut child = command.spawn().map_err(|e| {
            BenchError::Unexpected(format!(
                "cannot start {} ({e}); run `make build` first",
                launch.binary.display()
            ))
        })?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Unexpected("server exited at once".into()))?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Err(BenchError::Unexpected(format!(
                    "server {} exited with {status}; see {}/{}.log",
                    launch.label,
                    launch.work.display(),
                    launch.label
                )));
            }
            if api::get(addr, "/readyz").await.is_ok() {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err(BenchError::Unexpected(format!(
                    "server {} not ready after 60 s",
                    launch.label
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, addr, pid })
    }

    /// Asks the server to shut down (SIGTERM), as an operator would, and waits for it.
    pub async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await;
        match tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => {
                self.child.kill().await?;
            }
        }
        Ok(())
    }
}
