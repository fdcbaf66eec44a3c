//! The store's policy set: versioned like org configs (version N+1 per change, history,
//! diff, rollback), every change authorized by the Cedar action `ManagePolicies` and
//! audited in the policy log. Every process that opens the store enforces its active version.

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use super::codec::{decode, encode};
use super::journal;
use super::records::{PolicyAuditRecord, PolicySetRecord};
use super::{AuditOutcome, Store, contain_damage};
use crate::error::{Error, ErrorKind};
use crate::model::{Actor, Timestamp};
use crate::policy::Policies;

/// version -> encoded `PolicySetV1`. Absent or empty: the store enforces the built-in set,
/// which reads as version 1.
pub(crate) const POLICY_SETS: TableDefinition<u64, &[u8]> = TableDefinition::new("policy_sets");
/// sequence (from 1) -> encoded `PolicyAuditV1`: every change of the policy set and every
/// refused attempt.
pub(crate) const POLICY_AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("policy_audit");
/// The `meta` entry holding the active version.
pub(crate) const ACTIVE: &str = "policy_version";

/// One version of the store's policy set.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PolicyVersion {
    /// Version number, from 1 (version 1 is the built-in set).
    pub version: u64,
    /// Whether this version is the one enforced.
    pub active: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it (`operator`, an email, or `orgstore` for the built-in version 1).
    pub created_by: String,
    /// `built-in`, `apply` or `rollback to N`.
    pub note: String,
    /// The operator's files, `(file name, text)` in load order; the built-in files
    /// ([`Policies::builtin_files`]) come before them in every version. (Their serde form
    /// is a list of `{"name", "text"}` objects.)
    #[cfg_attr(feature = "serde", serde(with = "named_files"))]
    pub files: Vec<(String, String)>,
    /// For [`PolicySets::apply`] and [`PolicySets::rollback`]: whether a version was
    /// written (`false` when the files equal the active version's; then nothing was
    /// written or audited).
    pub changed: bool,
}

impl PolicyVersion {
    /// The whole set of this version as one Cedar text: the built-in files of this build
    /// ([`Policies::builtin_files`]), then the version's operator files, each after a
    /// `// ---- file name` comment line and separated by a blank line. The `cedar` CLI
    /// reads it with `policies/schema.cedarschema`; `orgstore policy export` writes it laid
    /// out as `cedar format` does.
    ///
    /// ```
    /// let store = orgstore::Store::open_temporary()?;
    /// let text = store.policy_set().active()?.combined();
    /// assert!(text.starts_with("// ---- roles.cedar\n") && text.contains("@id(\"viewer-read\")"));
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn combined(&self) -> String {
        let builtin = Policies::builtin_files();
        let all = builtin
            .iter()
            .map(|(n, t)| (*n, *t))
            .chain(self.files.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        let parts: Vec<String> = all
            .map(|(name, text)| format!("// ---- {name}\n{}\n", text.trim_end()))
            .collect();
        parts.join("\n")
    }
}

/// How one file differs between two versions.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PolicyFileChange {
    /// The file name.
    pub file: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    /// The differing lines, `-` (only in the first) and `+` (only in the second) prefixed,
    /// in file order.
    pub lines: Vec<String>,
}

/// Policy files in their serde form: `[{"name": "a.cedar", "text": "..."}]`.
#[cfg(feature = "serde")]
pub(crate) mod named_files {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// One file.
    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(crate) struct File {
        /// Its name, e.g. `a.cedar`.
        pub(crate) name: String,
        /// Its Cedar text.
        pub(crate) text: String,
    }

    pub(crate) fn serialize<S: Serializer>(
        files: &[(String, String)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(files.iter().map(|(name, text)| File {
            name: name.clone(),
            text: text.clone(),
        }))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, String)>, D::Error> {
        let files = Vec::<File>::deserialize(d)?;
        Ok(files.into_iter().map(|f| (f.name, f.text)).collect())
    }
}

/// A [`PolicyFileChange`] read back from its serde form: `status` is one of its three
/// words.
#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for PolicyFileChange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wire {
            file: String,
            status: String,
            lines: Vec<String>,
        }
        let w = Wire::deserialize(d)?;
        let status = ["added", "removed", "changed"]
            .into_iter()
            .find(|s| *s == w.status)
            .ok_or_else(|| serde::de::Error::custom("status is added, removed or changed"))?;
        Ok(Self {
            file: w.file,
            status,
            lines: w.lines,
        })
    }
}

/// One entry of the policy log.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PolicyAuditEntry {
    /// Its number, from 1.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// Who (`operator` or an email).
    pub actor: String,
    /// `ManagePolicies`.
    pub action: String,
    /// What happened, e.g. `apply: version 3; files a.cedar` or `denied by policy`.
    pub summary: String,
    /// Applied or denied.
    pub outcome: AuditOutcome,
}

/// The store's policy set. Get one with [`Store::policy_set`].
///
/// ```
/// use orgstore::{Actor, Store};
/// let store = Store::open_temporary()?;
/// assert_eq!(store.policy_set().active()?.version, 1);
/// let rule = "@id(\"no-deletes\")\nforbid (principal, action == Action::\"DeleteOrg\", resource);\n";
/// let v2 = store.policy_set().apply(&Actor::Operator, &[("no-deletes.cedar".into(), rule.into())])?;
/// assert_eq!((v2.version, v2.changed), (2, true));
/// assert!(store.policies().policy_ids().contains(&"no-deletes".to_owned()));
/// store.policy_set().rollback(&Actor::Operator, 1)?;
/// assert_eq!(store.policy_set().active()?.version, 3);
/// # Ok::<(), orgstore::Error>(())
/// ```
pub struct PolicySets<'a> {
    pub(super) store: &'a Store,
}

impl PolicySets<'_> {
    /// The active version. The policy set is not secret: reading it needs no permission.
    pub fn active(&self) -> Result<PolicyVersion, Error> {
        self.version(None)
    }

    /// One version (the active one for `None`); an unknown version is `NotFound`.
    pub fn version(&self, version: Option<u64>) -> Result<PolicyVersion, Error> {
        self.read(|r| {
            let active = active_version(r)?;
            let v = version.unwrap_or(active);
            let rec = record(r, v)?.ok_or_else(|| no_version(v, last_version(r).unwrap_or(1)))?;
            Ok(rec.to_version(active))
        })
    }

    /// Every version, oldest first.
    pub fn history(&self) -> Result<Vec<PolicyVersion>, Error> {
        self.read(|r| {
            let active = active_version(r)?;
            let last = last_version(r)?;
            (1..=last)
                .map(|v| {
                    record(r, v)?
                        .map(|rec| rec.to_version(active))
                        .ok_or_else(|| no_version(v, last))
                })
                .collect()
        })
    }

    /// How the operator files differ from version `a` to version `b`.
    pub fn diff(&self, a: u64, b: u64) -> Result<Vec<PolicyFileChange>, Error> {
        let va = self.version(Some(a))?;
        let vb = self.version(Some(b))?;
        Ok(diff_files(&va.files, &vb.files))
    }

    /// The newest `limit` entries of the policy log, newest first (operator only: a person
    /// is refused).
    pub fn audit(&self, actor: &Actor, limit: usize) -> Result<Vec<PolicyAuditEntry>, Error> {
        if let Actor::Member(_) = actor {
            return Err(Error::new(
                ErrorKind::Denied,
                "actor",
                "only the operator may read the policy log",
            ));
        }
        self.read(|r| {
            let t = match r.open_table(POLICY_AUDIT) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(Error::storage("reading the policy log", e)),
            };
            let mut out = Vec::new();
            for item in t
                .iter()
                .map_err(|e| Error::storage("reading the policy log", e))?
                .rev()
                .take(limit)
            {
                let (_, v) = item.map_err(|e| Error::storage("reading the policy log", e))?;
                let rec: PolicyAuditRecord = decode("policy log entry", v.value())?;
                out.push(rec.0);
            }
            Ok(out)
        })
    }

    /// The decisions of the store that `proposed` would change ([`Store::policy_impact`]),
    /// as `actor` asks: the report names the members and keys of every org, so a person
    /// needs what [`PolicySets::apply`] needs (a policy permitting `ManagePolicies`); a
    /// refusal is `Denied` and written to the policy log.
    ///
    /// ```
    /// use orgstore::{Actor, Email, Policies, Store};
    /// let store = Store::open_temporary()?;
    /// let rule = "@id(\"no-deletes\")\nforbid (principal, action == Action::\"DeleteOrg\", resource);\n";
    /// let proposed = Policies::from_files(&[("d.cedar".into(), rule.into())])?;
    /// assert_eq!(store.policy_set().impact(&Actor::Operator, &proposed)?.changes.len(), 0);
    /// let person = Actor::member(Email::parse("a@acme.io")?);
    /// assert!(store.policy_set().impact(&person, &proposed).is_err());
    /// assert_eq!(store.policy_set().audit(&Actor::Operator, 1)?[0].summary, "denied by policy");
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn impact(&self, actor: &Actor, proposed: &Policies) -> Result<super::ImpactReport, Error> {
        let inner = &self.store.inner;
        if let Actor::Member(email) = actor
            && let Err(d) = inner.policies.load().authorize_policy_change(email)
        {
            let _writer = inner.writer.lock();
            // The denial is the answer; a failure to log it must not hide it.
            let _ = log(inner, actor, denied_summary(&d), AuditOutcome::Denied);
            return Err(Error::denied(d));
        }
        self.store.policy_impact(proposed)
    }

    /// Makes the built-in files plus `files` the new active version (N+1), enforced at once
    /// by this store's admin operations and gateway (every memoized gateway decision is
    /// invalidated) and by every later open of the file. The set is validated strictly
    /// first (see [`Policies::from_files`]): an invalid set is `Invalid` naming the file and
    /// line, and changes nothing. Files equal to the active version's write nothing
    /// (`changed: false`). A person needs a policy permitting `ManagePolicies` (none does by
    /// default); every change and every refusal is written to the policy log.
    pub fn apply(&self, actor: &Actor, files: &[(String, String)]) -> Result<PolicyVersion, Error> {
        let next = Policies::from_files(files)?;
        commit(&self.store.inner, actor, next, files.to_vec(), None)
    }

    /// [`PolicySets::apply`] with the `*.cedar` files of `dir` (file names only).
    pub fn apply_dir(&self, actor: &Actor, dir: &Path) -> Result<PolicyVersion, Error> {
        self.apply(actor, &Policies::read_files(dir)?)
    }

    /// Makes version `version`'s files the new active version (its content as N+1), like
    /// [`PolicySets::apply`]. Rolling back to the active version, or to a copy of it, writes
    /// nothing.
    pub fn rollback(&self, actor: &Actor, version: u64) -> Result<PolicyVersion, Error> {
        let old = self.version(Some(version))?;
        let next = Policies::from_files(&old.files)?;
        commit(&self.store.inner, actor, next, old.files, Some(version))
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, Error>,
    ) -> Result<T, Error> {
        contain_damage(|| {
            let r = self
                .store
                .inner
                .db
                .begin_read()
                .map_err(|e| Error::storage("starting a read", e))?;
            f(&r)
        })
    }
}

/// Makes `files` (compiled as `next`) the new active version as `actor`, under the writer
/// lock: decides `ManagePolicies` for a person, writes the version, `meta` and the log entry
/// in one transaction, then swaps the set in and invalidates the gateway memo.
pub(crate) fn commit(
    inner: &super::Inner,
    actor: &Actor,
    next: Policies,
    files: Vec<(String, String)>,
    rollback_to: Option<u64>,
) -> Result<PolicyVersion, Error> {
    contain_damage(|| {
        let _writer = inner.writer.lock();
        // Decided inside the transaction, on the policy set it commits on (a replicated
        // store is caught up first).
        let mut refused = None;
        let done = inner.commit(|tx| {
            if let Actor::Member(email) = actor
                && let Err(d) = inner.policies.load().authorize_policy_change(email)
            {
                refused = Some(d.clone());
                return Err(Error::denied(d));
            }
            write_version(tx, actor, files, rollback_to)
        });
        let (written, _) = match done {
            Ok(v) => v,
            Err(e) => {
                if let Some(d) = refused {
                    // The denial is the answer; a failure to log it must not hide it.
                    let _ = log(inner, actor, denied_summary(&d), AuditOutcome::Denied);
                }
                return Err(e);
            }
        };
        let (mut v, changed) = written;
        if changed {
            let next = Arc::new(next);
            inner.policies.store(next.clone());
            *inner.rejected_policies.lock() = None;
            inner
                .snapshot
                .apply(crate::snapshot::Update::policies(next))?;
            v.changed = true;
        }
        Ok(v)
    })
}

/// The policy log's summary of a refused change.
fn denied_summary(d: &crate::error::PermissionDenied) -> String {
    if d.policies.is_empty() {
        "denied by policy".to_owned()
    } else {
        format!("denied by {}", d.policies.join(", "))
    }
}

/// Stores `files` as a new active version without validating them (the set in memory
/// becomes the built-in one), as a build whose schema accepted them would have: for the
/// tests of a store whose stored set this build refuses.
#[cfg(feature = "fuzzing")]
pub(crate) fn commit_unchecked(
    store: &Store,
    files: Vec<(String, String)>,
) -> Result<PolicyVersion, Error> {
    commit(
        &store.inner,
        &Actor::Operator,
        Policies::default_set()?,
        files,
        None,
    )
}

/// Writes `files` as the next version unless they equal the active one: the version, the
/// boxed version 1 on the first change, `meta`'s active version and the log entry.
fn write_version(
    tx: &mut super::tx::WriteTx,
    actor: &Actor,
    files: Vec<(String, String)>,
    rollback_to: Option<u64>,
) -> Result<(PolicyVersion, bool), Error> {
    let txn = &tx.txn;
    let now = tx.now;
    let w = |e: redb::Error| Error::storage("writing the policy set", e);
    let active = active_version(txn)?;
    let current = record(txn, active)?.unwrap_or_else(builtin_record);
    if current.files == files {
        return Ok((current.to_version(active), false));
    }
    let mut last = last_version(txn)?;
    let note = rollback_to.map_or_else(|| "apply".to_owned(), |v| format!("rollback to {v}"));
    let changes = diff_files(&current.files, &files);
    let mut t = journal::open(txn, &tx.journal, POLICY_SETS).map_err(|e| w(e.into()))?;
    if t.is_empty().map_err(|e| w(e.into()))? {
        // The implicit built-in version 1 becomes a record.
        let b = encode(&builtin_record())?;
        t.insert(1, b.as_slice()).map_err(|e| w(e.into()))?;
        last = 1;
    }
    let rec = PolicySetRecord {
        version: last + 1,
        created_at: now,
        created_by: actor.to_string(),
        note: note.clone(),
        files,
    };
    let bytes = encode(&rec)?;
    t.insert(rec.version, bytes.as_slice())
        .map_err(|e| w(e.into()))?;
    let mut meta = journal::open(txn, &tx.journal, super::tables::META).map_err(|e| w(e.into()))?;
    meta.insert(ACTIVE, rec.version).map_err(|e| w(e.into()))?;
    let names: Vec<&str> = changes.iter().map(|c| c.file.as_str()).collect();
    let summary = format!(
        "{note}: version {}; files changed: {}",
        rec.version,
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    );
    drop(t);
    drop(meta);
    append_log(tx, actor, summary, AuditOutcome::Applied)?;
    Ok((rec.to_version(rec.version), true))
}

/// Writes one log entry in a transaction of its own (the caller holds the writer lock).
pub(crate) fn log(
    inner: &super::Inner,
    actor: &Actor,
    summary: String,
    outcome: AuditOutcome,
) -> Result<(), Error> {
    inner
        .commit(|tx| append_log(tx, actor, summary, outcome))
        .map(drop)
}

fn append_log(
    tx: &super::tx::WriteTx,
    actor: &Actor,
    summary: String,
    outcome: AuditOutcome,
) -> Result<(), Error> {
    let w = |e: redb::Error| Error::storage("writing the policy log", e);
    let mut t = journal::open(&tx.txn, &tx.journal, POLICY_AUDIT).map_err(|e| w(e.into()))?;
    let seq = t
        .last()
        .map_err(|e| w(e.into()))?
        .map_or(0, |(k, _)| k.value())
        + 1;
    let rec = PolicyAuditRecord(PolicyAuditEntry {
        seq,
        at: tx.now,
        actor: actor.to_string(),
        action: crate::policy::MANAGE_POLICIES.to_owned(),
        summary,
        outcome,
    });
    let bytes = encode(&rec)?;
    t.insert(seq, bytes.as_slice()).map_err(|e| w(e.into()))?;
    Ok(())
}

/// The active policy set stored in the file the read transaction `r` reads (the built-in
/// set when none was ever applied), compiled. A stored set that no longer compiles (a
/// newer build's schema refuses it) is `Invalid` naming the version.
pub(crate) fn load_active(r: &impl Readable) -> Result<Option<Policies>, Error> {
    let active = active_version(r)?;
    let Some(rec) = record(r, active)? else {
        return Ok(None);
    };
    if rec.files.is_empty() {
        return Ok(None);
    }
    Policies::from_files(&rec.files).map(Some).map_err(|e| {
        Error::invalid(
            "policies",
            format!(
                "the store's active policy set (version {active}) does not load: {}",
                e.message()
            ),
        )
    })
}

fn rio(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::storage("reading the policy set", e)
}

/// Reading the policy tables from either kind of transaction; a missing table reads as
/// empty (a file that was never opened for writing by this build).
pub(crate) trait Readable {
    /// The record of `version`; version 1 without a record is the built-in set.
    fn record(&self, version: u64) -> Result<Option<PolicySetRecord>, Error>;
    /// The highest version (1 when none was ever written).
    fn last(&self) -> Result<u64, Error>;
    /// The active version (1 when none was ever applied).
    fn active(&self) -> Result<u64, Error>;
}

fn record_in(
    t: &impl ReadableTable<u64, &'static [u8]>,
    version: u64,
) -> Result<Option<PolicySetRecord>, Error> {
    t.get(version)
        .map_err(rio)?
        .map(|v| decode("policy set version", v.value()))
        .transpose()
}

fn last_in(t: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64, Error> {
    Ok(t.last().map_err(rio)?.map_or(1, |(k, _)| k.value()))
}

fn or_builtin(version: u64, rec: Option<PolicySetRecord>) -> Option<PolicySetRecord> {
    match rec {
        None if version == 1 => Some(builtin_record()),
        other => other,
    }
}

impl Readable for redb::ReadTransaction {
    fn record(&self, version: u64) -> Result<Option<PolicySetRecord>, Error> {
        let rec = match table_opt(self.open_table(POLICY_SETS))? {
            Some(t) => record_in(&t, version)?,
            None => None,
        };
        Ok(or_builtin(version, rec))
    }
    fn last(&self) -> Result<u64, Error> {
        match table_opt(self.open_table(POLICY_SETS))? {
            Some(t) => last_in(&t),
            None => Ok(1),
        }
    }
    fn active(&self) -> Result<u64, Error> {
        let Some(t) = table_opt(self.open_table(super::tables::META))? else {
            return Ok(1);
        };
        Ok(t.get(ACTIVE).map_err(rio)?.map_or(1, |v| v.value()))
    }
}

impl Readable for redb::WriteTransaction {
    fn record(&self, version: u64) -> Result<Option<PolicySetRecord>, Error> {
        let t = self.open_table(POLICY_SETS).map_err(rio)?;
        Ok(or_builtin(version, record_in(&t, version)?))
    }
    fn last(&self) -> Result<u64, Error> {
        let t = self.open_table(POLICY_SETS).map_err(rio)?;
        last_in(&t)
    }
    fn active(&self) -> Result<u64, Error> {
        let t = self.open_table(super::tables::META).map_err(rio)?;
        Ok(t.get(ACTIVE).map_err(rio)?.map_or(1, |v| v.value()))
    }
}

fn table_opt<T>(r: Result<T, redb::TableError>) -> Result<Option<T>, Error> {
    match r {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(rio(e)),
    }
}

fn active_version(r: &impl Readable) -> Result<u64, Error> {
    r.active()
}

fn last_version(r: &impl Readable) -> Result<u64, Error> {
    r.last()
}

fn record(r: &impl Readable, version: u64) -> Result<Option<PolicySetRecord>, Error> {
    r.record(version)
}

fn no_version(v: u64, last: u64) -> Error {
    Error::not_found(
        "version",
        format!("no policy set version {v}; versions run from 1 to {last} (see policy history)"),
    )
}

/// The implicit version 1: the built-in files alone.
fn builtin_record() -> PolicySetRecord {
    PolicySetRecord {
        version: 1,
        created_at: Timestamp::from_micros(0),
        created_by: "orgstore".to_owned(),
        note: "built-in".to_owned(),
        files: Vec::new(),
    }
}

/// Per file: added, removed, or changed with its differing lines.
fn diff_files(a: &[(String, String)], b: &[(String, String)]) -> Vec<PolicyFileChange> {
    let mut out = Vec::new();
    for (name, text) in a {
        match b.iter().find(|(n, _)| n == name) {
            None => out.push(PolicyFileChange {
                file: name.clone(),
                status: "removed",
                lines: text.lines().map(|l| format!("-{l}")).collect(),
            }),
            Some((_, t2)) if t2 != text => out.push(PolicyFileChange {
                file: name.clone(),
                status: "changed",
                lines: line_diff(text, t2),
            }),
            Some(_) => {}
        }
    }
    for (name, text) in b {
        if !a.iter().any(|(n, _)| n == name) {
            out.push(PolicyFileChange {
                file: name.clone(),
                status: "added",
                lines: text.lines().map(|l| format!("+{l}")).collect(),
            });
        }
    }
    out
}

/// The lines outside a longest common subsequence of lines (policy files are small).
fn line_diff(a: &str, b: &str) -> Vec<String> {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    if a.len().saturating_mul(b.len()) > 4_000_000 {
        let mut out: Vec<String> = a.iter().map(|l| format!("-{l}")).collect();
        out.extend(b.iter().map(|l| format!("+{l}")));
        return out;
    }
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+{}", b[j]));
            j += 1;
        } else {
            out.push(format!("-{}", a[i]));
            i += 1;
        }
    }
    out
}

impl PolicySetRecord {
    fn to_version(&self, active: u64) -> PolicyVersion {
        PolicyVersion {
            version: self.version,
            active: self.version == active,
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            note: self.note.clone(),
            files: self.files.clone(),
            changed: false,
        }
    }
}
