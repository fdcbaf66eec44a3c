//! Shared set-up for the integration tests: parsing shorthands, a store with one org, file
//! stores in temporary directories, the one harness that runs the `orgstore` binary, and
//! the one seeded random number generator.
//!
//! Every test module uses a different subset of it.
#![allow(dead_code)]

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use rand::SeedableRng;
use serde_json::Value;

use orgstore::{Actor, AuditEntry, Email, KeyDigest, KeySpec, OrgId, Store, StoreBuilder};

/// The operator: every admin call in these tests acts as it.
pub const OP: Actor = Actor::Operator;

/// The id of the org [`Fixture::new`] creates.
pub const ORG: &str = "acme";
/// The email of its first owner.
pub const OWNER: &str = "owner@acme.io";

/// Parses an org id.
pub fn org(id: &str) -> OrgId {
    OrgId::parse(id).unwrap()
}

/// Parses an email.
pub fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

/// Creates org `id` named after itself with `owner` as its owner, as the operator.
pub fn create_org(store: &Store, id: &str, owner: &str) -> OrgId {
    let id = org(id);
    store
        .orgs()
        .create(&OP, &id, &id.to_string().to_uppercase(), &email(owner))
        .unwrap();
    id
}

/// A store with one org, `acme`, owned by `owner@acme.io`.
pub struct Fixture {
    pub store: Store,
    pub org: OrgId,
    pub owner: Email,
}

impl Fixture {
    /// An in-memory store with the org.
    pub fn new() -> Self {
        Self::with_store(Store::open_temporary().unwrap())
    }

    /// `store` with the org added.
    pub fn with_store(store: Store) -> Self {
        let org = create_org(&store, ORG, OWNER);
        Self {
            store,
            org,
            owner: email(OWNER),
        }
    }

    /// The org's whole audit log, newest first.
    pub fn audit(&self) -> Vec<AuditEntry> {
        audit_all(&self.store, &self.org)
    }

    /// Applies a config patch as the operator.
    pub fn update_config(&self, patch: &str) -> orgstore::ConfigVersion {
        self.store
            .org_configs()
            .update(&OP, &self.org, patch)
            .unwrap()
    }

    /// Creates a key with only a name.
    pub fn create_key(&self, name: &str) -> orgstore::CreatedKey {
        self.store
            .keys()
            .create(&OP, &self.org, KeySpec::new(name))
            .unwrap()
    }
}

/// The whole audit log of `org`, newest first.
pub fn audit_all(store: &Store, org: &OrgId) -> Vec<AuditEntry> {
    store.audit().list(&OP, org, usize::MAX).unwrap()
}

/// The path of a store file inside `dir`.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("orgstore.redb")
}

/// Opens (creating) the store file in `dir` with the default (durable) settings.
pub fn open_file(dir: &Path) -> Store {
    Store::open(db_path(dir)).unwrap()
}

/// Opens (creating) the store file in `dir` without fsync, for tests that write a lot.
pub fn open_file_fast(dir: &Path) -> Store {
    StoreBuilder::new()
        .non_durable()
        .open(db_path(dir))
        .unwrap()
}

/// Lower-case hex of a digest, as `ImportKey` takes it.
pub fn hex(digest: &KeyDigest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 hex of a key string, computed independently of the library.
pub fn sha256_hex(key: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(key.as_bytes()).into())
}

/// A distinct upstream-style key (`sk-agentcc-` + 48 hex digits) for import tests.
pub fn legacy_key(n: u64) -> String {
    format!("sk-agentcc-{n:048x}")
}

/// Whether `needle` occurs anywhere in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// An org's config (the active version, or `version`) with its secrets in clear, as the
/// operator sees it through `reveal`.
pub fn revealed(store: &Store, org: &OrgId, version: Option<u64>) -> serde_json::Value {
    store
        .org_configs()
        .reveal(&OP, org, version)
        .unwrap()
        .config
        .revealed_value()
}

/// The ids of the orgs an operator lists, in listing order.
/// A config's JSON as a value (the library hands out JSON text).
pub trait ConfigJson {
    /// [`orgstore::OrgConfig::to_masked_json`], parsed.
    fn masked_value(&self) -> Value;
    /// [`orgstore::OrgConfig::to_revealed_json`], parsed.
    fn revealed_value(&self) -> Value;
}

impl ConfigJson for orgstore::OrgConfig {
    fn masked_value(&self) -> Value {
        serde_json::from_str(&self.to_masked_json()).unwrap()
    }
    fn revealed_value(&self) -> Value {
        serde_json::from_str(&self.to_revealed_json()).unwrap()
    }
}

pub fn org_ids(store: &Store) -> Vec<OrgId> {
    store
        .orgs()
        .list(&OP)
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect()
}

/// The random number generator of the tests: seeded, so a failure replays exactly.
pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

// ---------------------------------------------------------------------------------------
// The `orgstore` binary

/// One run of the `orgstore` binary, to be configured and then [`Invocation::run`]. It never
/// inherits `ORGSTORE_DB` (unless [`Invocation::env`] sets it), and its stdin is empty unless
/// [`Invocation::stdin`] gives one.
pub struct Invocation {
    cmd: Command,
    args: Vec<OsString>,
    db: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

/// The binary with `args`.
pub fn orgstore<S: AsRef<OsStr>>(args: &[S]) -> Invocation {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_orgstore"));
    cmd.env_remove("ORGSTORE_DB");
    Invocation {
        cmd,
        args: args.iter().map(|a| a.as_ref().to_owned()).collect(),
        db: None,
        stdin: None,
    }
}

impl Invocation {
    /// Passes `--db path` before the arguments.
    pub fn db(mut self, path: impl AsRef<Path>) -> Self {
        self.db = Some(path.as_ref().to_owned());
        self
    }

    /// Sets an environment variable of the child.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    /// Runs the child in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    /// Gives the child `input` on stdin (then closes it).
    pub fn stdin(mut self, input: impl AsRef<[u8]>) -> Self {
        self.stdin = Some(input.as_ref().to_owned());
        self
    }

    /// Runs the child as this user and group.
    #[cfg(unix)]
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        use std::os::unix::process::CommandExt;
        self.cmd.uid(uid).gid(gid);
        self
    }

    /// Runs the child to its end.
    pub fn run(mut self) -> Run {
        if let Some(db) = &self.db {
            self.cmd.arg("--db").arg(db);
        }
        self.cmd.args(&self.args);
        let mut child = self
            .cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = &self.stdin {
            // Dropped at the end of the statement: the child sees the end of its input.
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let text = |b: Vec<u8>, what: &str| {
            String::from_utf8(b).unwrap_or_else(|e| panic!("{args:?}: {what} is not UTF-8: {e}"))
        };
        Run {
            status: out.status,
            stdout: text(out.stdout, "stdout"),
            stderr: text(out.stderr, "stderr"),
            args,
        }
    }
}

/// How a run of the binary ended and what it printed.
#[derive(Debug)]
pub struct Run {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
    /// The arguments it was given (without `--db`), for messages.
    pub args: Vec<String>,
}

impl Run {
    /// Its exit code (`None` when a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Whether it exited with 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Asserts that it succeeded; returns its stdout.
    pub fn ok(self) -> String {
        assert!(
            self.success(),
            "{:?} failed with {:?}: {}",
            self.args,
            self.code(),
            self.stderr
        );
        self.stdout
    }

    /// Asserts that it failed with `code`; returns its stderr. Our own errors (all but
    /// clap's usage errors, code 2) are exactly one line `error: ...` with nothing on
    /// stdout.
    pub fn fail(self, code: i32) -> String {
        let args = &self.args;
        let stderr = &self.stderr;
        assert_eq!(self.code(), Some(code), "{args:?}: {stderr}");
        if code != 2 {
            assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(self.stdout.is_empty(), "{args:?} printed on stdout");
        }
        self.stderr
    }

    /// Its stdout parsed as JSON, whatever its exit code.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "{:?}: stdout is not JSON ({e}): {}{}",
                self.args, self.stdout, self.stderr
            )
        })
    }
}

/// A store file in a fresh temporary directory, driven through the binary. The runs'
/// working directory is that directory.
pub struct Cli {
    pub dir: tempfile::TempDir,
    /// The store file (`org.redb` in `dir`; it exists once a command created it).
    pub db: PathBuf,
}

impl Cli {
    /// An empty directory: the first command creates the store.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("org.redb");
        Self { dir, db }
    }

    /// A store with org `acme` ("Acme Inc") owned by `ann@acme.io`.
    pub fn with_acme() -> Self {
        let cli = Self::new();
        cli.ok(&[
            "org",
            "create",
            "acme",
            "--name",
            "Acme Inc",
            "--owner",
            "ann@acme.io",
        ]);
        cli
    }

    /// The binary on this store with `args`, to configure further.
    pub fn cmd(&self, args: &[&str]) -> Invocation {
        orgstore(args).db(&self.db).current_dir(self.dir.path())
    }

    /// Runs `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.cmd(args).run()
    }

    /// Runs `args` with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        self.cmd(args).stdin(input).run()
    }

    /// Runs `args` with `--as email` before them.
    pub fn run_as(&self, email: &str, args: &[&str]) -> Run {
        let mut all = vec!["--as", email];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok()
    }

    /// Runs a command with `--json` that must succeed; returns its stdout parsed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let stdout = self.run(&all).ok();
        serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout}"))
    }

    /// Runs a command that must fail with `code` (see [`Run::fail`]); returns its stderr.
    pub fn fail(&self, args: &[&str], code: i32) -> String {
        self.run(args).fail(code)
    }
}
