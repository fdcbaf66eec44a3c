//! Opening a store file: creation with mode 0600, format checks, table creation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Store;
use super::codec::FORMAT;
use super::secrets::{Sealer, key_path};
use super::tables::*;
use crate::error::{Error, ErrorKind};
use crate::policy::Policies;
use redb::ReadableTable;

/// Options for opening a store. The defaults: durable commits (every acknowledged write
/// survives a crash), the compiled-in policy set, no extra policy directory.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use orgstore::StoreBuilder;
/// let store = StoreBuilder::new().open(dir.path().join("org.redb")).unwrap();
/// # drop(store);
/// ```
#[derive(Clone, Debug, Default)]
pub struct StoreBuilder {
    policy_dir: Option<PathBuf>,
    non_durable: bool,
    spend_flush: Option<Duration>,
    spend_sync: bool,
    skip_integrity_check: bool,
}

/// How often gateway spend is written to the store file unless told otherwise.
pub const DEFAULT_SPEND_FLUSH: Duration = Duration::from_secs(1);

impl StoreBuilder {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every `*.cedar` file of `dir` to the compiled-in policy set at open.
    pub fn policy_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.policy_dir = Some(dir.into());
        self
    }

    /// Commits without fsync: much faster, but the last writes before a crash may be lost.
    /// For tests and benchmarks only; the default is durable.
    pub fn non_durable(mut self) -> Self {
        self.non_durable = true;
        self
    }

    /// How often the spend that `Gateway::record_usage` adds up is written to the file in
    /// one batched commit (default one second). On a crash, at most this much spend is lost
    /// (see [`StoreBuilder::lossless_spend`] for a mode that loses nothing).
    pub fn spend_flush_interval(mut self, every: Duration) -> Self {
        self.spend_flush = Some(every);
        self
    }

    /// Writes spend in every `record_usage` call (one commit each): nothing acknowledged is
    /// lost on a crash, at the price of a durable commit per request (~0.25 ms).
    pub fn lossless_spend(mut self) -> Self {
        self.spend_sync = true;
        self
    }

    /// Skips the integrity check at open. By default opening reads the whole file and
    /// verifies redb's page checksums, so a damaged file is refused at open (`Corrupt`)
    /// instead of failing later in the middle of an operation, where redb may abort the
    /// process. Skip it only for a file you trust and need to open faster.
    pub fn skip_integrity_check(mut self) -> Self {
        self.skip_integrity_check = true;
        self
    }

    /// Opens (or creates, with mode 0600) the store file at `path`. Provider secrets in
    /// configs are encrypted under the key in `<path>.key`, created (mode 0600) if absent:
    /// back it up with the store file.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Store, Error> {
        let path = path.as_ref();
        create_private(path)?;
        // redb panics on some damaged pages instead of returning an error (see
        // `contain_damage`): the first full scan happens here.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let db = redb::Database::builder()
                .set_check_integrity_on_open(!self.skip_integrity_check)
                .create(path)
                .map_err(|e| open_error(path, e))?;
            self.finish(db, || Sealer::load_or_create(&key_path(path)))
        }))
        .unwrap_or_else(|_| {
            let damaged = redb::StorageError::Corrupted("a page could not be read".into());
            Err(open_error(path, redb::DatabaseError::Storage(damaged)))
        })
    }

    /// Opens a store held in memory only.
    pub fn open_temporary(&self) -> Result<Store, Error> {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| Error::storage("creating an in-memory store", e))?;
        self.finish(db, Sealer::random)
    }

    fn finish(
        &self,
        db: redb::Database,
        sealer: impl FnOnce() -> Result<Sealer, Error>,
    ) -> Result<Store, Error> {
        init_tables(&db)?;
        let sealer = sealer()?;
        let mut policies = default_policies()?;
        if let Some(dir) = &self.policy_dir {
            policies = policies.with_dir(dir)?;
        }
        let durability = if self.non_durable {
            redb::Durability::None
        } else {
            redb::Durability::Immediate
        };
        let store = Store::from_parts(db, policies, durability, self.spend_sync, sealer);
        store.rebuild_snapshot()?;
        if !self.spend_sync {
            store.spawn_flusher(self.spend_flush.unwrap_or(DEFAULT_SPEND_FLUSH));
        }
        Ok(store)
    }
}

/// The compiled-in policy set, compiled once per process: it is immutable and the same for
/// every store, and compiling and validating it costs far more than opening a store.
fn default_policies() -> Result<Policies, Error> {
    static DEFAULT: std::sync::OnceLock<Policies> = std::sync::OnceLock::new();
    if let Some(p) = DEFAULT.get() {
        return Ok(p.clone());
    }
    let p = Policies::default_set()?;
    Ok(DEFAULT.get_or_init(|| p).clone())
}

/// Creates the file with mode 0600 if it does not exist yet.
fn create_private(path: &Path) -> Result<(), Error> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::new(
            ErrorKind::Storage,
            "db",
            format!(
                "cannot create `{}` ({e}); check the directory exists and is writable",
                path.display()
            ),
        )),
    }
}

#[cold]
fn open_error(path: &Path, e: redb::DatabaseError) -> Error {
    let p = path.display();
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::new(
            ErrorKind::Busy,
            "db",
            format!(
                "`{p}` is already open (by another process, or by another Store in this process or a Gateway \
                 handle still held from one); \
                 close that one first or use another --db"
            ),
        ),
        redb::DatabaseError::UpgradeRequired(v) => Error::new(
            ErrorKind::TooNew,
            "db",
            format!(
                "`{p}` uses redb file format {v}, which this orgstore cannot read; upgrade orgstore"
            ),
        ),
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(msg)) => Error::new(
            ErrorKind::Corrupt,
            "db",
            format!("`{p}` is corrupt ({msg}); restore it from a backup"),
        ),
        other => Error::new(
            ErrorKind::Corrupt,
            "db",
            format!(
                "`{p}` cannot be opened as an orgstore file ({other}); check the path or restore a backup"
            ),
        ),
    }
}

/// Creates every table and checks (or writes) the store format.
fn init_tables(db: &redb::Database) -> Result<(), Error> {
    let txn = db
        .begin_write()
        .map_err(|e| Error::storage("initialising the store", e))?;
    {
        let w = |e: redb::TableError| Error::storage("initialising the store", e);
        let mut meta = txn.open_table(META).map_err(w)?;
        let found = meta
            .get("format")
            .map_err(|e| Error::storage("reading the store", e))?
            .map(|v| v.value());
        match found {
            Some(v) if v > u64::from(FORMAT) => {
                return Err(Error::new(
                    ErrorKind::TooNew,
                    "db",
                    format!(
                        "the store was written by a newer orgstore (format {v}, this one reads up to {FORMAT}); upgrade orgstore"
                    ),
                ));
            }
            Some(_) => {}
            None => {
                meta.insert("format", u64::from(FORMAT))
                    .map_err(|e| Error::storage("initialising the store", e))?;
            }
        }
        drop(meta);
        txn.open_table(ORGS).map_err(w)?;
        txn.open_table(CONFIGS).map_err(w)?;
        txn.open_table(MEMBERS).map_err(w)?;
        txn.open_table(MEMBER_ORGS).map_err(w)?;
        txn.open_table(KEYS).map_err(w)?;
        txn.open_table(KEYS_BY_ORG).map_err(w)?;
        txn.open_table(KEY_DIGESTS).map_err(w)?;
        txn.open_table(AUDIT).map_err(w)?;
        txn.open_table(SPEND).map_err(w)?;
    }
    txn.commit()
        .map_err(|e| Error::storage("initialising the store", e))
}
