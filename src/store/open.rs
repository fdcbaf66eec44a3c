//! Opening a store file: creation with mode 0600, read-only and must-exist modes, format
//! checks and migrations, table creation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::codec::{decode, encode};
use super::secrets::{Sealer, key_path};
use super::tables::*;
use super::{Db, Store};
use crate::error::{Error, ErrorKind};
use crate::policy::Policies;
use redb::ReadableTable;

/// Options for opening a store. The defaults: durable commits (every acknowledged write
/// survives a crash); the store enforces its stored policy set (see [`Store::policy_set`]).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use orgstore::StoreBuilder;
/// let store = StoreBuilder::new().open(dir.path().join("org.redb")).unwrap();
/// # drop(store);
/// ```
#[derive(Clone, Debug, Default)]
pub struct StoreBuilder {
    watch_dir: Option<PathBuf>,
    recover_policies: bool,
    non_durable: bool,
    spend_flush: Option<Duration>,
    spend_sync: bool,
    skip_integrity_check: bool,
    read_only: bool,
    must_exist: bool,
    on_invite: Option<super::invites::InviteHook>,
}

/// The store format this build writes (`meta.format`). 2 added per-org audit numbers and
/// the table of every key digest ever issued; a format 1 file is migrated when it is first
/// opened for writing (see `migrate_1_to_2`). 3 added the store-held policy set (the
/// `policy_sets` and `policy_audit` tables); a format 2 file needs no change of data and is
/// marked 3 when it is first opened for writing. Older builds refuse a newer file with
/// `TooNew` instead of writing it without keeping those tables, or enforcing the built-in
/// policies alone on a file whose operator policies they cannot read.
pub(crate) const STORE_FORMAT: u64 = 3;

/// The first format that numbers audit entries per org.
pub(crate) const PER_ORG_AUDIT_FORMAT: u64 = 2;

/// How often gateway spend is written to the store file unless told otherwise.
pub const DEFAULT_SPEND_FLUSH: Duration = Duration::from_secs(1);

impl StoreBuilder {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens a store whose stored active policy set does not load with this build (a newer
    /// build's schema or built-in files refuse it) by enforcing the built-in set alone,
    /// so that the operator can roll back to a version that loads or apply a new one
    /// ([`Store::policy_set`]). The refusal is written to the policy log (unless the store
    /// is read-only) and [`Store::policy_recovery`] says why until such a version is
    /// active. Without it, opening such a store fails with `Invalid`, naming the version
    /// and this way out: operator policies (their forbids included) are never dropped
    /// silently. `orgstore policy` commands that read or change the set open with it.
    ///
    /// ```
    /// let store = orgstore::StoreBuilder::new().recover_policies().open_temporary()?;
    /// assert_eq!(store.policy_recovery(), None); // its set loads
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn recover_policies(mut self) -> Self {
        self.recover_policies = true;
        self
    }

    /// Watches `dir` for the lifetime of the store: a background thread reads its `*.cedar`
    /// files four times a second and, whenever they change, applies them as the operator
    /// (a new version of the store's policy set, see [`Store::policy_set`]). Files that do
    /// not validate (a file an editor has half written, a typo) keep the active set, are
    /// written to the policy log as refused, and are tried again at their next change. Not
    /// for read-only stores (nothing is watched there).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = orgstore::StoreBuilder::new().watch_policies(dir.path()).open_temporary()?;
    /// # drop(store);
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn watch_policies(mut self, dir: impl Into<PathBuf>) -> Self {
        self.watch_dir = Some(dir.into());
        self
    }

    /// Hands every new invitation and its token to `hook`, after the invitation is
    /// committed: the store sends no mail, the host does (e.g. a link with the token to the
    /// invited email). The token is given here and to the caller of
    /// [`Invites::create`](super::Invites::create), and kept by the store only as its
    /// SHA-256.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use orgstore::{Actor, Email, OrgId, Role, StoreBuilder};
    /// let sent = Arc::new(Mutex::new(Vec::new()));
    /// let outbox = sent.clone();
    /// let store = StoreBuilder::new()
    ///     .on_invite(move |invite, token| {
    ///         outbox.lock().unwrap().push((invite.email.to_string(), token.to_owned()))
    ///     })
    ///     .open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io")?)?;
    /// let made = store.invites().create(&Actor::Operator, &acme, &Email::parse("n@acme.io")?, Role::Member)?;
    /// assert_eq!(sent.lock().unwrap()[0], ("n@acme.io".to_owned(), made.token.expose().to_owned()));
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn on_invite(
        mut self,
        hook: impl Fn(&crate::model::Invite, &str) + Send + Sync + 'static,
    ) -> Self {
        self.on_invite = Some(super::invites::InviteHook(std::sync::Arc::new(hook)));
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

    /// Opens the file read-only: reads, `Gateway::check` and usage reports work; every
    /// change fails with `Storage` on `db` ("is open read-only"). A missing file is refused
    /// (`NotFound`), and nothing is ever written: no migration, no key file (without one,
    /// sealed provider secrets read as unreadable), no spend. For a file this process may
    /// read but not write (mode 0400, a read-only mount, a backup). redb refuses a read-only
    /// open of a file that another store has open, and of one that was not closed cleanly
    /// (it needs a repair, which writes). The integrity check at open does not run (redb
    /// does it only for writable files); a damaged page still gives `Corrupt`.
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Refuses to create a missing file: `NotFound` on `db`, naming the path and how to
    /// create a store. For tools whose command only reads, where a mistyped path would
    /// otherwise create an empty store and show nothing.
    pub fn must_exist(mut self) -> Self {
        self.must_exist = true;
        self
    }

    /// This builder without its watched policy directory, and that: a replica opens its
    /// file first and watches it once it writes through the fleet.
    #[cfg(feature = "fleet")]
    pub(crate) fn take_watch_dir(mut self) -> (Self, Option<PathBuf>) {
        let w = self.watch_dir.take();
        (self, w)
    }

    /// Opens (or creates, with mode 0600) the store file at `path`. Provider secrets in
    /// configs are encrypted under the key in `<path>.key`, created (mode 0600) if absent:
    /// back it up with the store file. With [`StoreBuilder::read_only`] or
    /// [`StoreBuilder::must_exist`] a missing file is refused instead of created.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Store, Error> {
        let path = path.as_ref();
        if (self.read_only || self.must_exist) && !path.try_exists().unwrap_or(true) {
            return Err(missing_store(path));
        }
        if self.read_only {
            return self.open_read_only(path);
        }
        create_private(path)?;
        // redb panics on some damaged pages instead of returning an error (see
        // `contain_damage`): the first full scan happens here.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let db = redb::Database::builder()
                .set_check_integrity_on_open(!self.skip_integrity_check)
                .create(path)
                .map_err(|e| open_error(path, e))?;
            self.finish(Db::Writable(db), || Sealer::load_or_create(&key_path(path)))
        }))
        .unwrap_or_else(|_| {
            let damaged = redb::StorageError::Corrupted("a page could not be read".into());
            Err(open_error(path, redb::DatabaseError::Storage(damaged)))
        })
    }

    fn open_read_only(&self, path: &Path) -> Result<Store, Error> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let db = redb::Database::builder()
                .open_read_only(path)
                .map_err(|e| open_error(path, e))?;
            check_format(&db)?;
            let db = Db::ReadOnly {
                db,
                path: path.display().to_string(),
            };
            self.finish(db, || Sealer::load_existing(&key_path(path)))
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
        self.finish(Db::Writable(db), Sealer::random)
    }

    fn finish(
        &self,
        db: Db,
        sealer: impl FnOnce() -> Result<Sealer, Error>,
    ) -> Result<Store, Error> {
        let read_only = db.is_read_only();
        if let Db::Writable(db) = &db {
            init_tables(db)?;
        }
        let sealer = sealer()?;
        let stored = db
            .begin_read()
            .map_err(|e| Error::storage("starting a read", e))
            .and_then(|r| super::policy_set::load_active(&r));
        let mut rejected = None;
        let policies = match stored {
            Ok(Some(p)) => p,
            Ok(None) => default_policies()?,
            Err(e) if e.kind() == ErrorKind::Invalid && self.recover_policies => {
                rejected = Some(format!(
                    "{}; the built-in policy set alone is enforced until a version that loads is applied or rolled back to",
                    e.message()
                ));
                default_policies()?
            }
            Err(e) if e.kind() == ErrorKind::Invalid => {
                return Err(Error::invalid(
                    "policies",
                    format!(
                        "{}; to recover, roll back to a version that loads (`orgstore policy history`, then `orgstore policy rollback N`) or apply a set that does (`orgstore policy apply DIR`): those commands open the store enforcing the built-in set alone (StoreBuilder::recover_policies)",
                        e.message()
                    ),
                ));
            }
            Err(e) => return Err(e),
        };
        let durability = if self.non_durable {
            redb::Durability::None
        } else {
            redb::Durability::Immediate
        };
        let store = Store::from_parts(
            db,
            policies,
            durability,
            self.spend_sync,
            sealer,
            self.on_invite.clone(),
        );
        store.rebuild_snapshot()?;
        if let Some(why) = rejected {
            if !read_only {
                let _writer = store.inner.writer.lock();
                // A log that cannot be written must not keep the way out shut.
                let _ = super::policy_set::log(
                    &store.inner,
                    &crate::model::Actor::Operator,
                    format!("opened in recovery: {why}"),
                    super::AuditOutcome::Denied,
                );
            }
            *store.inner.rejected_policies.lock() = Some(why);
        }
        if let (Some(dir), false) = (&self.watch_dir, read_only) {
            super::watch::spawn(&store.inner, dir.clone());
        }
        if !self.spend_sync && !read_only {
            store.spawn_flusher(self.spend_flush.unwrap_or(DEFAULT_SPEND_FLUSH));
        }
        Ok(store)
    }
}

/// The compiled-in policy set, compiled once per process: it is immutable and the same for
/// every store, and compiling and validating it costs far more than opening a store.
pub(crate) fn default_policies() -> Result<Policies, Error> {
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
                "cannot create `{}`; check the directory exists and is writable",
                path.display()
            ),
        )
        .with_source(e)),
    }
}

/// The error for a store file that does not exist where it must.
#[cold]
fn missing_store(path: &Path) -> Error {
    let p = path.display();
    Error::not_found(
        "db",
        format!(
            "there is no store file `{p}`; check the path, or create a store there (open it \
             without `must_exist`, then org create its first org)"
        ),
    )
}

#[cold]
fn open_error(path: &Path, e: redb::DatabaseError) -> Error {
    let p = path.display();
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::PermissionDenied
                || io.kind() == std::io::ErrorKind::ReadOnlyFilesystem =>
        {
            permission_error(path, &io)
        }
        redb::DatabaseError::RepairAborted => Error::new(
            ErrorKind::Storage,
            "db",
            format!(
                "`{p}` was not closed cleanly and needs a repair, which a read-only open cannot \
                 do; open it once with write access (any command as a user who may write it)"
            ),
        ),
        redb::DatabaseError::DatabaseAlreadyOpen => Error::new(
            ErrorKind::Busy,
            "db",
            format!(
                "`{p}` is already open (by another process, or by another Store in this process or a Gateway \
                 handle still held from one); \
                 close that one first or open another file"
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
            format!("`{p}` is corrupt; restore it from a backup"),
        )
        .with_source(msg),
        other => Error::new(
            ErrorKind::Corrupt,
            "db",
            format!(
                "`{p}` cannot be opened as an orgstore file; check the path or restore a backup"
            ),
        )
        .with_source(other),
    }
}

/// The error for a store file this process may not open as asked: a permission problem,
/// not damage.
#[cold]
pub(crate) fn permission_error(path: &Path, io: &std::io::Error) -> Error {
    Error::new(
        ErrorKind::Storage,
        "db",
        format!(
            "`{}` cannot be opened for writing: this is a permission problem, the file is \
             not damaged; give this user read and write access to it (chmod u+rw, or run as its \
             owner), or open it read-only",
            path.display()
        ),
    )
    .with_source(std::io::Error::new(io.kind(), io.to_string()))
}

/// Refuses a file of a newer store format (read-only opens, which cannot run `init_tables`).
fn check_format(db: &redb::ReadOnlyDatabase) -> Result<(), Error> {
    use redb::ReadableDatabase;
    let r = db
        .begin_read()
        .map_err(|e| Error::storage("reading the store", e))?;
    let found = match r.open_table(META) {
        Ok(meta) => meta
            .get("format")
            .map_err(|e| Error::storage("reading the store", e))?
            .map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(Error::storage("reading the store", e)),
    };
    match found {
        Some(v) if v > STORE_FORMAT => Err(too_new(v)),
        Some(_) => Ok(()),
        None => Err(Error::new(
            ErrorKind::Corrupt,
            "db",
            "the file holds no orgstore tables; check the path (a read-only open never initialises a file)",
        )),
    }
}

#[cold]
fn too_new(v: u64) -> Error {
    Error::new(
        ErrorKind::TooNew,
        "db",
        format!(
            "the store was written by a newer orgstore (format {v}, this one reads up to {STORE_FORMAT}); upgrade orgstore"
        ),
    )
}

/// Creates every table, checks (or writes) the store format and migrates older formats.
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
        let migrate_from = match found {
            Some(v) if v > STORE_FORMAT => return Err(too_new(v)),
            Some(v) if v < STORE_FORMAT => Some(v),
            Some(_) => None,
            None => {
                meta.insert("format", STORE_FORMAT)
                    .map_err(|e| Error::storage("initialising the store", e))?;
                None
            }
        };
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
        txn.open_table(ISSUED_DIGESTS).map_err(w)?;
        txn.open_table(INVITES).map_err(w)?;
        txn.open_table(INVITES_BY_ORG).map_err(w)?;
        txn.open_table(INVITE_DIGESTS).map_err(w)?;
        txn.open_table(super::policy_set::POLICY_SETS).map_err(w)?;
        txn.open_table(super::policy_set::POLICY_AUDIT).map_err(w)?;
        if let Some(from) = migrate_from {
            if from < PER_ORG_AUDIT_FORMAT {
                migrate_1_to_2(&txn)?;
            }
            // 2 -> 3 adds only the policy tables, created above.
            txn.open_table(META)
                .map_err(w)?
                .insert("format", STORE_FORMAT)
                .map_err(|e| Error::storage("migrating the store", e))?;
        }
    }
    txn.commit()
        .map_err(|e| Error::storage("initialising the store", e))
}

/// Format 1 -> 2, in the transaction that opens the file (all or nothing):
///
/// * every digest in the digest index (the live and revoked keys' secrets) goes into
///   `issued_digests`; secrets rotated away under format 1 were not kept, so they cannot be
///   added;
/// * audit entries, numbered store-wide in format 1, are renumbered 1, 2, 3, ... per org in
///   their original order (keys and the `seq` inside each entry), and the store-wide
///   counter is dropped;
/// * memberships stored under an address that is not in today's normal form (see
///   [`crate::Email`]) are re-keyed under it (`merge_look_alike_members`).
fn migrate_1_to_2(txn: &redb::WriteTransaction) -> Result<(), Error> {
    let w = |e: redb::TableError| Error::storage("migrating the store", e);
    let s = |e: redb::StorageError| Error::storage("migrating the store", e);
    {
        let digests = txn.open_table(KEY_DIGESTS).map_err(w)?;
        let mut issued = txn.open_table(ISSUED_DIGESTS).map_err(w)?;
        for item in digests.iter().map_err(s)? {
            let (d, id) = item.map_err(s)?;
            issued.insert(d.value(), id.value()).map_err(s)?;
        }
    }
    let mut audit = txn.open_table(AUDIT).map_err(w)?;
    let keys: Vec<(String, u64)> = audit
        .iter()
        .map_err(s)?
        .map(|item| item.map(|(k, _)| (k.value().0.to_owned(), k.value().1)))
        .collect::<Result<_, _>>()
        .map_err(s)?;
    // Ascending within each org the new number never exceeds the old one, and every old
    // key below the one being moved has been moved already: no entry is overwritten.
    let mut prev: Option<&str> = None;
    let mut n = 0u64;
    for (org, old) in &keys {
        n = if prev == Some(org.as_str()) { n + 1 } else { 1 };
        prev = Some(org.as_str());
        if n == *old {
            continue;
        }
        let bytes = match audit.remove((org.as_str(), *old)).map_err(s)? {
            Some(v) => v.value().to_vec(),
            None => continue,
        };
        let mut entry: super::AuditEntry = decode("audit entry", &bytes)?;
        entry.seq = n;
        audit
            .insert((org.as_str(), n), encode(&entry)?.as_slice())
            .map_err(s)?;
    }
    drop(audit);
    merge_look_alike_members(txn)?;
    let mut meta = txn.open_table(META).map_err(w)?;
    meta.remove("audit_seq").map_err(s)?;
    Ok(())
}

/// Re-keys memberships whose stored address is not in normal form. Two stored addresses
/// with one normal form (`zoë` composed and decomposed, `ANN` full-width and plain) are one
/// person now: they become one membership with the lower of the two roles (least
/// privilege), unless that would leave the org without an Owner, in which case it keeps
/// Owner. `owner_count` is recounted and each merge is recorded in the org's audit log
/// (`MergeMembers`, by `operator`).
fn merge_look_alike_members(txn: &redb::WriteTransaction) -> Result<(), Error> {
    use crate::model::{Email, Member, Org, Role};
    use std::collections::BTreeMap;
    let w = |e: redb::TableError| Error::storage("migrating the store", e);
    let s = |e: redb::StorageError| Error::storage("migrating the store", e);
    let mut members = txn.open_table(MEMBERS).map_err(w)?;
    let mut index = txn.open_table(MEMBER_ORGS).map_err(w)?;
    let stale: Vec<(String, String, Vec<u8>)> = members
        .iter()
        .map_err(s)?
        .filter_map(|item| match item {
            Ok((k, v)) => {
                let (org, email) = k.value();
                (Email::normalize(email) != email)
                    .then(|| Ok((org.to_owned(), email.to_owned(), v.value().to_vec())))
            }
            Err(e) => Some(Err(s(e))),
        })
        .collect::<Result<_, _>>()?;
    if stale.is_empty() {
        return Ok(());
    }
    // (org, normal address) -> (merged membership, Owner claim, merged). The Owner claim is
    // 2 when the row already stored in normal form was an Owner, 1 when only a look-alike
    // row was: it decides who keeps Owner when the org would be left without one.
    let mut moved: BTreeMap<(String, String), (Member, u8, bool)> = BTreeMap::new();
    for (org, old, bytes) in stale {
        let mut m: Member = decode("member", &bytes)?;
        // An address that is not valid in its normal form stays as it was stored.
        let Ok(email) = Email::parse(&old) else {
            continue;
        };
        m.email = email;
        members.remove((org.as_str(), old.as_str())).map_err(s)?;
        index.remove((old.as_str(), org.as_str())).map_err(s)?;
        let key = (org.clone(), m.email.as_str().to_owned());
        let existing = match moved.remove(&key) {
            Some(x) => Some(x),
            None => match members.get((org.as_str(), m.email.as_str())).map_err(s)? {
                Some(v) => {
                    let e = decode::<Member>("member", v.value())?;
                    let claim = if e.role == Role::Owner { 2 } else { 0 };
                    Some((e, claim, false))
                }
                None => None,
            },
        };
        let merged = match existing {
            None => (m, 0, false),
            Some((e, claim, _)) => {
                let claim = claim.max(u8::from(m.role == Role::Owner));
                let keep = if m.role.level() < e.role.level() {
                    m
                } else {
                    e
                };
                (keep, claim, true)
            }
        };
        moved.insert(key, merged);
    }
    let mut orgs = txn.open_table(ORGS).map_err(w)?;
    let mut affected: BTreeMap<String, Vec<(String, u8)>> = BTreeMap::new();
    for ((org, email), (m, claim, merged)) in &moved {
        members
            .insert((org.as_str(), email.as_str()), encode(m)?.as_slice())
            .map_err(s)?;
        index
            .insert((email.as_str(), org.as_str()), m.role.level())
            .map_err(s)?;
        if *merged {
            affected
                .entry(org.clone())
                .or_default()
                .push((email.clone(), *claim));
        }
    }
    for (org, mut merges) in affected {
        merges.sort_by_key(|(_, claim)| std::cmp::Reverse(*claim));
        let count_owners = |members: &redb::Table<(&str, &str), &[u8]>| -> Result<u32, Error> {
            let mut n = 0u32;
            for item in members
                .range((org.as_str(), "")..(org.as_str(), "\u{10ffff}"))
                .map_err(s)?
            {
                let (_, v) = item.map_err(s)?;
                if decode::<Member>("member", v.value())?.role == Role::Owner {
                    n += 1;
                }
            }
            Ok(n)
        };
        let mut owners = count_owners(&members)?;
        let mut notes = Vec::new();
        for (email, claim) in &merges {
            let key = (org.clone(), email.clone());
            let Some((m, _, _)) = moved.get_mut(&key) else {
                continue;
            };
            if owners == 0 && *claim > 0 {
                m.role = Role::Owner;
                members
                    .insert((org.as_str(), email.as_str()), encode(&*m)?.as_slice())
                    .map_err(s)?;
                index
                    .insert((email.as_str(), org.as_str()), m.role.level())
                    .map_err(s)?;
                owners = count_owners(&members)?;
            }
            notes.push((email.clone(), m.role));
        }
        let org_rec = match orgs.get(org.as_str()).map_err(s)? {
            Some(v) => Some(decode::<Org>("org", v.value())?),
            None => None,
        };
        if let Some(mut o) = org_rec {
            o.owner_count = owners;
            orgs.insert(org.as_str(), encode(&o)?.as_slice())
                .map_err(s)?;
        }
        let mut audit = txn.open_table(AUDIT).map_err(w)?;
        for (email, role) in notes {
            let last = match audit
                .range((org.as_str(), 0u64)..=(org.as_str(), u64::MAX))
                .map_err(s)?
                .next_back()
            {
                Some(item) => item.map_err(s)?.0.value().1,
                None => 0,
            };
            let org_id = crate::model::OrgId::parse(&org)?;
            let entry = super::AuditEntry {
                seq: last + 1,
                at: crate::model::Timestamp::now(),
                actor: "operator".into(),
                org: org_id,
                action: super::audit::MERGE_MEMBERS.into(),
                target: email.clone(),
                summary: format!(
                    "look-alike addresses of {email} merged into one member with role {role} \
                     (addresses are normalised: NFKC and case folding)"
                ),
                outcome: super::AuditOutcome::Applied,
            };
            audit
                .insert((org.as_str(), last + 1), encode(&entry)?.as_slice())
                .map_err(s)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_is_a_permission_problem_not_damage() {
        let path = Path::new("/srv/orgstore.redb");
        for kind in [
            std::io::ErrorKind::PermissionDenied,
            std::io::ErrorKind::ReadOnlyFilesystem,
        ] {
            let io = std::io::Error::from(kind);
            let e = open_error(
                path,
                redb::DatabaseError::Storage(redb::StorageError::Io(io)),
            );
            assert_eq!((e.kind(), e.field()), (ErrorKind::Storage, "db"), "{e}");
            assert!(e.message().contains("permission problem"), "{e}");
            assert!(e.message().contains("/srv/orgstore.redb"), "{e}");
            assert!(e.message().contains("read-only"), "{e}");
            assert!(!e.message().contains("backup"), "{e}");
        }
        // Other I/O errors are not reported as permission problems.
        let io = std::io::Error::other("boom");
        let e = open_error(
            path,
            redb::DatabaseError::Storage(redb::StorageError::Io(io)),
        );
        assert!(!e.message().contains("permission problem"), "{e}");
        let e = open_error(path, redb::DatabaseError::RepairAborted);
        assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
        assert!(e.message().contains("not closed cleanly"), "{e}");
    }
}
