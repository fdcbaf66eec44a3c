//! The store: one redb file, the source of truth. Every operation is one transaction; after
//! each commit the changed entries are published to the gateway snapshot.

mod audit;
#[cfg(feature = "fleet")]
pub(crate) mod bootstrap;
pub(crate) mod codec;
mod configs;
mod explain;
mod feed;
mod impact;
mod invites;
pub(crate) mod journal;
mod keys;
mod members;
pub(crate) mod open;
mod orgs;
pub(crate) mod policy_set;
pub(crate) mod records;
#[cfg(feature = "fleet")]
pub(crate) mod replica;
pub(crate) mod secrets;
pub(crate) mod spend;
pub(crate) mod tables;
pub(crate) mod tx;
pub(crate) mod usage;
mod watch;

pub use audit::{Audit, AuditEntry, AuditOutcome};
pub use configs::{ConfigVersion, OrgConfigs};
pub use explain::ExplainReport;
pub use impact::{DecisionChange, ImpactReport, SAMPLE_MODELS};
pub use invites::{
    AcceptedInvite, CreatedInvite, DEFAULT_INVITE_VALIDITY, INVITE_TOKEN_PREFIX, InviteToken,
    Invites,
};
pub use keys::{CreatedKey, ImportKey, Keys};
pub use members::Members;
pub use open::StoreBuilder;
pub use orgs::{Orgs, StatusChange};
pub use policy_set::{PolicyAuditEntry, PolicyFileChange, PolicySets, PolicyVersion};
pub use usage::{BudgetStatus, RateUse, UsageReport};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use redb::ReadableDatabase;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, PermissionDenied};
use crate::model::{Actor, KeyId, Org, OrgId, Role, Timestamp};
use crate::policy::{AdminAction, AdminRequest, Policies, Target};
use crate::snapshot::SnapshotCell;
use tx::{Changes, ReadRecords, ReadTx, WriteTx};

/// An orgstore database.
///
/// ```
/// use orgstore::{Actor, Email, KeySpec, OrgId, Store};
/// let store = Store::open_temporary()?;
/// let op = Actor::Operator;
/// let acme = OrgId::parse("acme")?;
/// store.orgs().create(&op, &acme, "Acme", &Email::parse("owner@acme.io")?)?;
/// let created = store.keys().create(&op, &acme, KeySpec::new("backend").rpm(100))?;
/// assert!(created.key.expose().starts_with("sk-agentcc-"));
/// # Ok::<(), orgstore::Error>(())
/// ```
#[derive(Clone)]
pub struct Store {
    /// Dropped with the last `Store` handle: closes the gateway (see [`Open`]).
    _open: Arc<Open>,
    inner: Arc<Inner>,
    gateway: crate::gateway::Gateway,
    /// Noted in the audit entries of this handle's changes ([`Store::via`]).
    via: Option<Arc<str>>,
}

/// Shared by the handles of one store. When the last is dropped, gateway handles that
/// outlive it fail closed and the spend so far is flushed; `Inner` (the file) lives on
/// while a gateway handle does, so their later spend is flushed when the last one goes.
struct Open(Arc<Inner>);

impl Drop for Open {
    fn drop(&mut self) {
        #[cfg(feature = "fleet")]
        if let Some(log) = self.0.log.get() {
            log.close();
        }
        let _ = self.0.snapshot.apply(crate::snapshot::Update::close());
        // An error cannot be reported here; the spend stays queued for the next flush.
        let _ = spend::flush(&self.0);
    }
}

/// The redb file, open for writing or (see [`StoreBuilder::read_only`]) for reading only.
pub(crate) enum Db {
    /// The normal mode.
    Writable(redb::Database),
    /// Every write fails with `Storage` on `db`, naming the file.
    ReadOnly {
        /// The file.
        db: redb::ReadOnlyDatabase,
        /// Its path, for the error.
        path: String,
    },
}

impl Db {
    /// Starts a read transaction.
    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction, redb::TransactionError> {
        match self {
            Db::Writable(db) => db.begin_read(),
            Db::ReadOnly { db, .. } => db.begin_read(),
        }
    }

    /// Starts a write transaction; refused on a read-only store.
    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction, Error> {
        match self {
            Db::Writable(db) => db
                .begin_write()
                .map_err(|e| Error::storage("starting a write", e)),
            Db::ReadOnly { path, .. } => Err(Error::new(
                ErrorKind::Storage,
                "db",
                format!(
                    "`{path}` is open read-only, so nothing can be changed; open it without \
                     read-only (the file must be writable by this user) to make changes"
                ),
            )),
        }
    }

    /// Whether this store was opened read-only.
    pub(crate) fn is_read_only(&self) -> bool {
        matches!(self, Db::ReadOnly { .. })
    }
}

pub(crate) struct Inner {
    db: Db,
    writer: Mutex<()>,
    policies: ArcSwap<Policies>,
    durability: redb::Durability,
    snapshot: Arc<SnapshotCell>,
    /// Encrypts provider secrets in stored configs.
    sealer: secrets::Sealer,
    /// Why the stored active policy set was not loaded at open and the built-in set is
    /// enforced instead ([`StoreBuilder::recover_policies`]); cleared by the next apply or
    /// rollback.
    rejected_policies: Mutex<Option<String>>,
    /// Told of every new invitation and its token ([`StoreBuilder::on_invite`]).
    invite_hook: Option<invites::InviteHook>,
    /// The fleet's change log, when this store is a replica (set once, at open).
    #[cfg(feature = "fleet")]
    log: std::sync::OnceLock<Arc<dyn replica::Log>>,
}

impl Inner {
    /// A write transaction at the store's durability; `journaled` keeps its record writes
    /// (see [`journal`]).
    fn begin_tx(&self, journaled: bool) -> Result<WriteTx, Error> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(self.durability)
            .map_err(|e| Error::storage("setting durability", e))?;
        Ok(WriteTx {
            txn,
            now: Timestamp::now(),
            changes: Changes::default(),
            journal: journal::Journal::new(journaled),
            via: None,
        })
    }

    /// One write transaction of local bookkeeping, without audit or publication, never
    /// replicated (spend flushes: the ledger is this process's own).
    pub(crate) fn write_unaudited(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<(), Error>,
    ) -> Result<(), Error> {
        contain_damage(|| {
            let _writer = self.writer.lock();
            let mut tx = self.begin_tx(false)?;
            f(&mut tx)?;
            tx.txn.commit().map_err(|e| Error::storage("committing", e))
        })
    }

    /// The one commit path of every change of the store's records (admin operations, their
    /// audit entries, the policy set), called with the writer lock held: runs `f` in one
    /// write transaction and commits it, all or nothing, returning what it changed for the
    /// snapshot. A replicated store commits it to the fleet's log first (see
    /// `replica::commit`).
    pub(crate) fn commit<T>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, Error>,
    ) -> Result<(T, Changes), Error> {
        #[cfg(feature = "fleet")]
        if let Some(log) = self.log.get() {
            return replica::commit(self, log.as_ref(), f);
        }
        let mut tx = self.begin_tx(false)?;
        let v = f(&mut tx)?;
        let WriteTx { txn, changes, .. } = tx;
        txn.commit().map_err(|e| Error::storage("committing", e))?;
        Ok((v, changes))
    }

    /// Publishes a commit's changes to the gateway snapshot. Called with the writer lock
    /// held, so snapshots follow commit order. If publication fails the snapshot is rebuilt;
    /// if that fails too, gateway checks fail closed until a later rebuild succeeds.
    fn publish(&self, changes: &Changes) {
        if changes.orgs.is_empty() && changes.keys.is_empty() {
            return;
        }
        let cell = &self.snapshot;
        let ok = self
            .db
            .begin_read()
            .map_err(|e| Error::storage("starting a read", e))
            .and_then(|r| feed::publish(cell, &r, changes, Timestamp::now().as_micros()));
        if ok.is_err() {
            cell.stale.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Builds the snapshot from the store file.
    fn rebuild_snapshot(&self) -> Result<(), Error> {
        let r = self
            .db
            .begin_read()
            .map_err(|e| Error::storage("starting a read", e))?;
        let update = feed::full(&r, Timestamp::now().as_micros())?;
        self.snapshot.apply(update)
    }
}

/// Runs `f`, turning a panic into a `Corrupt` error: redb panics (`unreachable!`) on some
/// damaged pages of a store file instead of returning an error, and a damaged file must
/// give a clear error, not take the process down. A damaged store keeps failing this way
/// (fail closed) until it is restored.
pub(crate) fn contain_damage<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Corrupt,
            "db",
            "the store file is damaged (a page could not be read); restore it from a backup",
        ))
    })
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropped with the last store or gateway handle: the last chance to make the
        // gateway's spend durable; an error cannot be reported here.
        let _ = spend::flush(self);
    }
}

impl Store {
    /// Opens (creating if absent, with mode 0600) the store file at `path` with the
    /// defaults of [`StoreBuilder`].
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        StoreBuilder::new().open(path)
    }

    /// Opens an existing store file read-only: reads and gateway checks work, every change
    /// fails. See [`StoreBuilder::read_only`].
    pub fn open_read_only(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        StoreBuilder::new().read_only().open(path)
    }

    /// A store held in memory only, for demos and tests.
    pub fn open_temporary() -> Result<Self, Error> {
        StoreBuilder::new().open_temporary()
    }

    /// A handle of this store whose changes (and refusals) are audited as made with the
    /// credential `via`, e.g. `token tok_0123456789abcdef` for a request of the admin API
    /// authenticated by that token: the words are appended to each audit entry's summary.
    /// Never pass a secret: the audit log is readable by the org's owners and admins.
    ///
    /// ```
    /// use orgstore::{Actor, Email, OrgId, Store};
    /// let store = Store::open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// let api = store.via("token tok_0123456789abcdef");
    /// api.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("o@acme.io")?)?;
    /// let log = store.audit().list(&Actor::Operator, &acme, 1)?;
    /// assert!(log[0].summary.ends_with("(with token tok_0123456789abcdef)"));
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn via(&self, via: &str) -> Store {
        let mut s = self.clone();
        s.via = Some(Arc::from(via));
        s
    }

    /// Orgs: create, show, list, delete, suspend, resume.
    pub fn orgs(&self) -> Orgs<'_> {
        Orgs { store: self }
    }

    /// Versioned org config (the SDK's `org_configs`).
    pub fn org_configs(&self) -> OrgConfigs<'_> {
        OrgConfigs { store: self }
    }

    /// Members and roles.
    pub fn members(&self) -> Members<'_> {
        Members { store: self }
    }

    /// Invitations by email: invite, list, revoke, accept.
    pub fn invites(&self) -> Invites<'_> {
        Invites { store: self }
    }

    /// Virtual keys.
    pub fn keys(&self) -> Keys<'_> {
        Keys { store: self }
    }

    /// The audit log.
    pub fn audit(&self) -> Audit<'_> {
        Audit { store: self }
    }

    /// The store's policy set: its versions, history, diff, apply and rollback.
    pub fn policy_set(&self) -> PolicySets<'_> {
        PolicySets { store: self }
    }

    /// The policy set this store enforces: the built-in files plus the active version's
    /// operator files ([`Store::policy_set`]).
    pub fn policies(&self) -> Arc<Policies> {
        self.inner.policies.load_full()
    }

    /// Whether this store was opened read-only ([`StoreBuilder::read_only`]): then every
    /// change fails with `Storage` on `db`.
    pub fn is_read_only(&self) -> bool {
        self.inner.db.is_read_only()
    }

    /// The gateway handle for the hot path: `Send + Sync`, and cheap to clone when a
    /// thread or task needs its own; grants borrow the handle they came from.
    ///
    /// ```
    /// use orgstore::{Request, Store};
    /// let store = Store::open_temporary()?;
    /// let ip = "10.0.0.1".parse().unwrap();
    /// // Borrowed for a check on this thread...
    /// let denial = store.gateway().check(&Request::new("sk-nope", "gpt-4o", ip)).unwrap_err();
    /// assert_eq!(denial.code(), "malformed_key");
    /// // ...or cloned into a worker.
    /// let gw = store.gateway().clone();
    /// std::thread::spawn(move || assert_eq!(gw.key_count(), 0)).join().unwrap();
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn gateway(&self) -> &crate::gateway::Gateway {
        &self.gateway
    }

    /// Why this store enforces the built-in policy set alone instead of its stored active
    /// version: `Some` only for a store opened with [`StoreBuilder::recover_policies`]
    /// whose active version does not load with this build, until a version that loads is
    /// applied or rolled back to ([`Store::policy_set`]).
    ///
    /// ```
    /// let store = orgstore::Store::open_temporary()?;
    /// assert_eq!(store.policy_recovery(), None);
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn policy_recovery(&self) -> Option<String> {
        self.inner.rejected_policies.lock().clone()
    }

    fn from_parts(
        db: Db,
        policies: Policies,
        durability: redb::Durability,
        spend_sync: bool,
        sealer: secrets::Sealer,
        invite_hook: Option<invites::InviteHook>,
    ) -> Self {
        let policies = Arc::new(policies);
        let inner = Arc::new(Inner {
            db,
            writer: Mutex::new(()),
            snapshot: Arc::new(SnapshotCell::new(policies.clone())),
            policies: ArcSwap::new(policies),
            durability,
            sealer,
            rejected_policies: Mutex::new(None),
            invite_hook,
            #[cfg(feature = "fleet")]
            log: std::sync::OnceLock::new(),
        });
        let gateway =
            crate::gateway::Gateway::new(inner.snapshot.clone(), inner.clone(), spend_sync);
        Self {
            _open: Arc::new(Open(inner.clone())),
            inner,
            gateway,
            via: None,
        }
    }

    /// Starts the background spend flusher; it stops when the store is dropped.
    fn spawn_flusher(&self, every: std::time::Duration) {
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new()
            .name("orgstore-spend".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let Some(inner) = weak.upgrade() else { break };
                    // A failed flush keeps the amounts in memory for the next round.
                    let _ = spend::flush(&inner);
                }
            });
        // Without a thread, spend is still flushed by `flush()` and on close.
        drop(spawned);
    }

    /// Runs `f` in one read transaction; a denial is audited.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&ReadTx) -> Result<T, Error>) -> Result<T, Error> {
        let out = contain_damage(|| {
            let r = self
                .inner
                .db
                .begin_read()
                .map_err(|e| Error::storage("starting a read", e))?;
            f(&r)
        });
        self.audit_if_denied(out)
    }

    /// Runs `f` in one write transaction: all or nothing. On success the changes are
    /// published before this returns; a denial is audited in a transaction of its own.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteTx) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let out = contain_damage(|| {
            let _writer = self.inner.writer.lock();
            let via = self.via.clone();
            let (v, changes) = self.inner.commit(|tx| {
                tx.via = via;
                f(tx)
            })?;
            self.inner.publish(&changes);
            Ok(v)
        });
        self.audit_if_denied(out)
    }

    /// The gateway snapshot this store publishes to: what a fleet's limits thread shares.
    #[cfg(feature = "fleet")]
    #[cfg_attr(not(feature = "fuzzing"), allow(dead_code))]
    pub(crate) fn snapshot_cell(&self) -> Arc<SnapshotCell> {
        self.inner.snapshot.clone()
    }

    /// How many distinct model names the gateway snapshot has interned: those of org and
    /// key allow-lists and of gateway policies, never names seen only in requests, so
    /// callers cannot grow the gateway's memory by asking for made-up models. A gauge for
    /// monitoring; it grows as allow-lists name new models and is not shrunk until the
    /// store is reopened.
    ///
    /// ```
    /// use orgstore::{Actor, Email, OrgId, Store};
    /// # fn main() -> Result<(), orgstore::Error> {
    /// let store = Store::open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("ann@acme.io")?)?;
    /// let before = store.interned_model_names();
    /// store.org_configs().update(&Actor::Operator, &acme, r#"{"allowed_models":["gpt-4o"]}"#)?;
    /// assert_eq!(store.interned_model_names(), before + 1);
    /// # Ok(()) }
    /// ```
    pub fn interned_model_names(&self) -> usize {
        self.inner.snapshot.models.len()
    }

    /// How many gateway snapshots were published since the store was opened: each commit
    /// that changes what the gateway sees (orgs, their configs, keys) publishes one; a
    /// refused or no-op operation publishes none. A counter for monitoring how often the
    /// hot path's data changes.
    ///
    /// ```
    /// use orgstore::{Actor, Email, OrgId, Store};
    /// # fn main() -> Result<(), orgstore::Error> {
    /// let store = Store::open_temporary()?;
    /// let before = store.snapshot_publications();
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("ann@acme.io")?)?;
    /// assert!(store.snapshot_publications() > before);
    /// // A refused operation publishes nothing.
    /// let now = store.snapshot_publications();
    /// assert!(store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("ann@acme.io")?).is_err());
    /// assert_eq!(store.snapshot_publications(), now);
    /// # Ok(()) }
    /// ```
    pub fn snapshot_publications(&self) -> u64 {
        self.inner.snapshot.publications()
    }

    /// Heap bytes the gateway snapshot holds for keys (their entries and the tables that
    /// index them; about 200 bytes per key), for sizing a gateway host's memory. An
    /// estimate from the snapshot's own accounting, not an allocator measurement.
    ///
    /// ```
    /// use orgstore::{Actor, Email, KeySpec, OrgId, Store};
    /// # fn main() -> Result<(), orgstore::Error> {
    /// let store = Store::open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("ann@acme.io")?)?;
    /// let empty = store.snapshot_key_memory();
    /// store.keys().create(&Actor::Operator, &acme, KeySpec::new("svc"))?;
    /// assert!(store.snapshot_key_memory() > empty);
    /// # Ok(()) }
    /// ```
    pub fn snapshot_key_memory(&self) -> usize {
        self.inner.snapshot.key_memory_bytes()
    }

    /// Builds the snapshot from the store file.
    pub(crate) fn rebuild_snapshot(&self) -> Result<(), Error> {
        self.inner.rebuild_snapshot()
    }

    fn audit_if_denied<T>(&self, out: Result<T, Error>) -> Result<T, Error> {
        if let Err(e) = &out
            && let Some(d) = e.denial()
            && let Some(org) = &d.org
        {
            self.audit_denial(e.kind(), d, org);
        }
        out.map_err(Error::conceal)
    }

    /// Appends the refusal `d` (of an error of `kind`) to `org`'s log, in a transaction of
    /// its own. Denials are kept in the log of the org they were about; an id of no org (a
    /// refused CreateOrg) has no log to hold one.
    pub(crate) fn audit_denial(&self, kind: ErrorKind, d: &PermissionDenied, org: &OrgId) {
        // The denial is the answer; a failure to audit it must not hide it.
        let _ = contain_damage(|| {
            let _writer = self.inner.writer.lock();
            self.inner
                .commit(|tx| {
                    tx.via = self.via.clone();
                    if tx.find_org(org)?.is_none() {
                        return Ok(());
                    }
                    let summary = if kind != ErrorKind::Denied {
                        "denied: not a member (answered as not found)".to_owned()
                    } else if d.policies.is_empty() {
                        "denied by policy".to_owned()
                    } else {
                        format!("denied by {}", d.policies.join(", "))
                    };
                    append_entry(
                        tx,
                        &d.actor,
                        org,
                        &d.action,
                        &d.target,
                        summary,
                        AuditOutcome::Denied,
                    )
                })
                .map(drop)
        });
    }

    /// The refusal of `actor`, who is not a member of `org`: exactly the answer for an org
    /// that does not exist, audited in `org`'s log as a denial of `action`.
    fn not_a_member(
        &self,
        actor: &Actor,
        action: AdminAction,
        org: &OrgId,
        target: String,
    ) -> Error {
        let mut d = PermissionDenied::new(
            action.cedar_name(),
            None,
            vec![crate::policy::TENANCY.to_owned()],
            Vec::new(),
        );
        d.actor = actor.to_string();
        d.org = Some(org.clone());
        d.target = target;
        Error::concealed(tx::org_not_found(org), d)
    }

    /// The org `id` as `actor` may address it for `action`: for the operator and the org's
    /// members, the live org (a deleted one is `NotFound`, saying so); for anybody else, an
    /// org that exists answers exactly like one that does not (`NotFound`, the same
    /// message), and the attempt is audited in the org's log.
    pub(crate) fn org_for(
        &self,
        tx: &impl ReadRecords,
        actor: &Actor,
        id: &OrgId,
        action: AdminAction,
    ) -> Result<Org, Error> {
        let org = self.org_including_deleted_for(tx, actor, id, action)?;
        if org.status == crate::model::OrgStatus::Deleted {
            return tx.live_org(id);
        }
        Ok(org)
    }

    /// Like [`Store::org_for`], deleted orgs included (their audit log stays readable).
    pub(crate) fn org_including_deleted_for(
        &self,
        tx: &impl ReadRecords,
        actor: &Actor,
        id: &OrgId,
        action: AdminAction,
    ) -> Result<Org, Error> {
        let org = tx.org_including_deleted(id)?;
        if let Actor::Member(email) = actor
            && tx.member(id, email)?.is_none()
        {
            return Err(self.not_a_member(actor, action, id, "org".to_owned()));
        }
        Ok(org)
    }

    /// The key `id` and its live org as `actor` may address them for `action`: a key of an
    /// org the actor is not a member of answers exactly like a key that does not exist
    /// (`NotFound` on `key id`, the same message), and the attempt is audited in the key's
    /// org.
    pub(crate) fn key_for(
        &self,
        tx: &impl ReadRecords,
        actor: &Actor,
        id: &KeyId,
        action: AdminAction,
    ) -> Result<(records::KeyRecord, Org), Error> {
        let rec = tx.key(id)?.ok_or_else(|| key_not_found(id))?;
        if let Actor::Member(email) = actor
            && tx.member(&rec.info.org, email)?.is_none()
        {
            let e = self.not_a_member(actor, action, &rec.info.org, id.to_string());
            let d = e.denial().cloned().ok_or_else(|| key_not_found(id))?;
            return Err(Error::concealed(key_not_found(id), d));
        }
        let org = tx.live_org(&rec.info.org)?;
        Ok((rec, org))
    }

    /// Checks that `actor` may do `action` to `target` in `org`, using the store's own
    /// relations for the actor's role. Returns the actor's role (`None` for the operator).
    pub(crate) fn authorize(
        &self,
        tx: &impl ReadRecords,
        actor: &Actor,
        action: AdminAction,
        org: &Org,
        target: Target<'_>,
    ) -> Result<Option<Role>, Error> {
        let Actor::Member(email) = actor else {
            return Ok(None);
        };
        let role = tx.member(&org.id, email)?.map(|m| m.role);
        let target_name = target_name(&target);
        if role.is_none() && !action.open_to_non_members() {
            // Tenancy, before any policy: a non-member learns nothing, not even that the
            // org exists.
            return Err(self.not_a_member(actor, action, &org.id, target_name));
        }
        let req = AdminRequest {
            actor,
            actor_role: role,
            action,
            org: &org.id,
            owner_count: org.owner_count,
            target,
        };
        match self.inner.policies.load().authorize(&req) {
            Ok(()) => Ok(role),
            Err(mut d) => {
                d.org = Some(org.id.clone());
                d.actor = actor.to_string();
                d.target = target_name;
                Err(Error::denied(d))
            }
        }
    }
}

fn target_name(t: &Target<'_>) -> String {
    match t {
        Target::Org | Target::NewKey { .. } => "org".into(),
        Target::Config => "config".into(),
        Target::Membership { email, .. } => email.to_string(),
        Target::Key { id, .. } => id.to_string(),
    }
}

/// The answer for a key id of no key (or of a key the actor may not know about).
#[cold]
pub(crate) fn key_not_found(id: &KeyId) -> Error {
    Error::not_found(
        "key id",
        format!("no key {id}; check the id against the org's keys"),
    )
}

/// Appends an audit entry for `action` inside `tx`: the entry's action is the Cedar
/// action's name (see [`AuditEntry::action`]).
pub(crate) fn audit_append(
    tx: &mut WriteTx,
    actor: &str,
    org: &OrgId,
    action: AdminAction,
    target: &str,
    summary: String,
    outcome: AuditOutcome,
) -> Result<(), Error> {
    append_entry(
        tx,
        actor,
        org,
        action.cedar_name(),
        target,
        summary,
        outcome,
    )
}

/// Appends an audit entry whose action is already a name of the audit vocabulary.
fn append_entry(
    tx: &mut WriteTx,
    actor: &str,
    org: &OrgId,
    action: &str,
    target: &str,
    summary: String,
    outcome: AuditOutcome,
) -> Result<(), Error> {
    let seq = tx.next_audit_seq(org)?;
    let summary = match &tx.via {
        Some(via) => format!("{summary} (with {via})"),
        None => summary,
    };
    let entry = AuditEntry {
        seq,
        at: tx.now,
        actor: actor.to_owned(),
        org: org.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        summary,
        outcome,
    };
    let bytes = codec::encode(&entry)?;
    journal::open(&tx.txn, &tx.journal, tables::AUDIT)
        .map_err(|e| Error::storage("writing the audit log", e))?
        .insert((org.as_str(), seq), bytes.as_slice())
        .map_err(|e| Error::storage("writing the audit log", e))?;
    Ok(())
}
