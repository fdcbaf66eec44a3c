//! A throwaway PostgreSQL cluster for the fleet tests and benchmarks: `initdb` into a
//! temporary directory, a postmaster on a free loopback port (never another address), and
//! `pg_ctl stop` when dropped.
//!
//! The server binaries are found on `PATH` or under `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package). PostgreSQL refuses to run as root, so when the tests run as root
//! the cluster is created and run as the `postgres` system user.
//!
//! [`PgCluster::start`] returns `None` when no server can be started: the caller skips
//! with the printed message. Under `CI=true` it panics instead, so a CI run never passes by
//! skipping the fleet tests.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How the cluster is configured beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    /// `fsync` on (benchmarks of durable writes) or off (tests: faster, and a killed
    /// postmaster loses nothing the OS already has).
    pub fsync: bool,
}

/// A running throwaway cluster.
pub struct PgCluster {
    root: tempfile::TempDir,
    data: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

const USER: &str = "orgstore";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Where `initdb` and `pg_ctl` are.
fn server_bin_dir() -> Option<PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    l.local_addr().expect("local address").port()
}

fn is_root() -> bool {
    // The effective uid of this process, from /proc (no libc call).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl PgCluster {
    /// Starts a cluster with the default options; `None` (after printing why and how to
    /// run the fleet tests) when PostgreSQL is not available. Panics under `CI=true`.
    pub fn start() -> Option<Self> {
        Self::start_with(PgOptions::default())
    }

    /// Starts a cluster with `opts`; see [`PgCluster::start`].
    pub fn start_with(opts: PgOptions) -> Option<Self> {
        match Self::try_start(&opts) {
            Ok(c) => Some(c),
            Err(why) if in_ci() => panic!("CI=true and no PostgreSQL server could start: {why}"),
            Err(why) => {
                eprintln!(
                    "skipping a fleet test: {why}. Install PostgreSQL 15 or newer (Debian: \
                     `apt-get install postgresql`; `initdb` and `pg_ctl` on PATH or under \
                     /usr/lib/postgresql/*/bin) and run `cargo test --all-features` again"
                );
                None
            }
        }
    }

    fn try_start(opts: &PgOptions) -> Result<Self, String> {
        let bin = server_bin_dir().ok_or("no `initdb`/`pg_ctl` found")?;
        let as_postgres_user = is_root();
        let root = tempfile::Builder::new()
            .prefix("orgstore-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temporary directory: {e}"))?;
        let data = root.path().join("data");
        if as_postgres_user {
            // The temporary directory (and its parent chain, /tmp) must be usable by the
            // `postgres` user.
            std::os::unix::fs::chown(root.path(), Some(uid_of("postgres")?), None)
                .map_err(|e| format!("handing the cluster directory to `postgres`: {e}"))?;
        }
        let c = Self {
            root,
            data,
            bin,
            port: free_port(),
            as_postgres_user,
        };
        c.copy_template()?;
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = {}\nsynchronous_commit = {}\nfull_page_writes = {}\nmax_connections = 200\n\
             shared_buffers = 128MB\n",
            c.port,
            c.root.path().display(),
            if opts.fsync { "on" } else { "off" },
            if opts.fsync { "on" } else { "off" },
            if opts.fsync { "on" } else { "off" },
        );
        let auto = c.data.join("postgresql.auto.conf");
        std::fs::write(&auto, conf).map_err(|e| format!("writing {}: {e}", auto.display()))?;
        if c.as_postgres_user {
            let uid = uid_of("postgres")?;
            std::os::unix::fs::chown(&auto, Some(uid), None)
                .map_err(|e| format!("handing {} to `postgres`: {e}", auto.display()))?;
        }
        c.pg_ctl_start()?;
        Ok(c)
    }

    /// `initdb` once per build directory (it takes seconds), then a copy for each cluster
    /// (milliseconds). The template lives under cargo's target tmp dir and is made under a
    /// unique name and renamed, so concurrent test processes never see half of one.
    fn copy_template(&self) -> Result<(), String> {
        let base =
            PathBuf::from(option_env!("CARGO_TARGET_TMPDIR").unwrap_or(env!("CARGO_MANIFEST_DIR")));
        let template = base.join("orgstore-pg-template");
        if !template.join("PG_VERSION").is_file() {
            let work = base.join(format!("orgstore-pg-template.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)
                .map_err(|e| format!("creating {}: {e}", work.display()))?;
            if self.as_postgres_user {
                std::os::unix::fs::chown(&work, Some(uid_of("postgres")?), None)
                    .map_err(|e| format!("handing {} to `postgres`: {e}", work.display()))?;
            }
            let data = work.join("data");
            let init = self.run(
                "initdb",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-U".as_ref(),
                    USER.as_ref(),
                    "-A".as_ref(),
                    "trust".as_ref(),
                    "-E".as_ref(),
                    "UTF8".as_ref(),
                    "--no-instructions".as_ref(),
                ],
            )?;
            if !init.status.success() {
                return Err(format!(
                    "initdb failed: {}",
                    String::from_utf8_lossy(&init.stderr).trim()
                ));
            }
            // Another process may have won the race; its template is as good.
            if std::fs::rename(&data, &template).is_err() && !template.join("PG_VERSION").is_file()
            {
                return Err(format!(
                    "could not move the template to {}",
                    template.display()
                ));
            }
            let _ = std::fs::remove_dir_all(&work);
        }
        let out = Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(&self.data)
            .output()
            .map_err(|e| format!("running cp: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "copying the cluster template: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) -> Result<Output, String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&exe);
            cmd
        } else {
            Command::new(&exe)
        };
        cmd.args(args)
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running {}: {e}", exe.display()))
    }

    fn pg_ctl(&self, args: &[&str]) -> Result<Output, String> {
        let log = self.root.path().join("server.log");
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "-D".as_ref(),
            self.data.as_os_str(),
            "-l".as_ref(),
            log.as_os_str(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        self.run("pg_ctl", &all)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let out = self.pg_ctl(&["-w", "-t", "60", "start"])?;
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl start failed: {} {}",
                String::from_utf8_lossy(&out.stderr).trim(),
                log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
            ));
        }
        self.wait_accepting(Duration::from_secs(30))
    }

    fn wait_accepting(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("the server on port {} never accepted", self.port))
    }

    /// A connection URL for the cluster's `postgres` database (user `orgstore`, no
    /// password: trust on loopback).
    pub fn url(&self) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates database `name` and returns its URL: one cluster can serve several tests,
    /// each in a database of its own.
    pub fn database(&self, name: &str) -> String {
        let mut admin = postgres::Client::connect(&self.url(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to the cluster: {e}\n{}", self.log()));
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// The loopback port the cluster listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `pg_ctl -m fast restart`: clients are disconnected, committed data stays.
    pub fn restart_fast(&self) {
        let out = self
            .pg_ctl(&["-w", "-m", "fast", "restart"])
            .expect("pg_ctl");
        assert!(out.status.success(), "pg_ctl restart: {out:?}");
        self.wait_accepting(Duration::from_secs(30)).unwrap();
    }

    /// `pg_ctl -m immediate stop`: the postmaster and its backends are killed at once
    /// (a crash: the next start replays the WAL).
    pub fn crash(&self) {
        let out = self.pg_ctl(&["-m", "immediate", "stop"]).expect("pg_ctl");
        assert!(out.status.success(), "pg_ctl stop -m immediate: {out:?}");
    }

    /// `pg_ctl -m fast stop`.
    pub fn stop(&self) {
        let out = self.pg_ctl(&["-w", "-m", "fast", "stop"]).expect("pg_ctl");
        assert!(out.status.success(), "pg_ctl stop: {out:?}");
    }

    /// Starts the cluster again after [`PgCluster::crash`] or [`PgCluster::stop`].
    pub fn start_again(&self) {
        self.pg_ctl_start().unwrap();
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }

    /// The directory the cluster lives in.
    pub fn dir(&self) -> &Path {
        self.root.path()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

fn uid_of(user: &str) -> Result<u32, String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(user))
                .then(|| f.nth(1).and_then(|uid| uid.parse().ok()))
                .flatten()
        })
        .ok_or_else(|| format!("no `{user}` system user to run PostgreSQL as"))
}
