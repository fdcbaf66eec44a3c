//! The on-disk record shapes and their conversions to and from the public types.
//!
//! Every byte a record holds is defined here, by the private `*V1` structs below (store
//! record format 1): their fields in declaration order, strings and lists with a length,
//! integers in bincode's variable-length form, and every enum as an explicit integer tag
//! from a table in this file. The public types (`Org`, `Member`, `KeyInfo`, `AuditEntry`, ...)
//! are converted to a shape before encoding and from it after decoding, so adding a field to
//! a public struct, reordering an enum's variants or changing a public type's serde form
//! changes no byte on disk. A tag or value that no public value has (an unknown enum tag, a
//! negative amount, an invalid org id) is a `Corrupt` error naming the record.
//!
//! `codec` does the encoding. The index tables (`tables.rs`) store plain strings, ids and
//! numbers (a member's role level in `member_orgs`, the upstream numeric level of
//! `Role::level`); the spend ledger's scope names are written out here too
//! ([`key_ledger_name`], [`org_ledger_name`]), not taken from a public type's `Display`.

use std::collections::BTreeMap;

use bincode::{BorrowDecode, Decode, Encode};

use super::audit::{AuditEntry, AuditOutcome};
use super::policy_set::PolicyAuditEntry;
use crate::error::Error;
use crate::keys::KeyDigest;
use crate::model::{
    Budget, Email, Invite, InviteId, InviteStatus, KeyId, KeyInfo, KeySource, KeySpec, KeyStatus,
    Member, Org, OrgId, OrgStatus, Period, Role, Timestamp, Usd,
};

/// A value stored as one record: its private on-disk shape and the conversions both ways.
pub(crate) trait Record: Sized {
    /// The shape whose encoding is the record's bytes.
    type Disk: Encode + Decode<()>;
    /// The shape of this value.
    fn to_disk(&self) -> Self::Disk;
    /// The value of a decoded shape; `what` names the record in errors.
    fn from_disk(d: Self::Disk, what: &'static str) -> Result<Self, Error>;
}

/// An enum stored as an integer tag. The tables are written out per enum, in both
/// directions, and never derived from the order the variants are declared in.
trait Tagged: Copy + Sized {
    /// The field's name in errors.
    const FIELD: &'static str;
    fn tag(self) -> u32;
    fn from_tag(tag: u32) -> Option<Self>;
}

macro_rules! tags {
    ($ty:ty, $field:literal { $($variant:path = $tag:literal),+ $(,)? }) => {
        impl Tagged for $ty {
            const FIELD: &'static str = $field;
            fn tag(self) -> u32 {
                match self {
                    $($variant => $tag),+
                }
            }
            fn from_tag(tag: u32) -> Option<Self> {
                match tag {
                    $($tag => Some($variant),)+
                    _ => None,
                }
            }
        }
    };
}

// Format 1 tags. A new variant gets a new number; a number is never reused or reassigned.
tags!(Role, "role" { Role::Viewer = 0, Role::Member = 1, Role::Admin = 2, Role::Owner = 3 });
tags!(OrgStatus, "org status" {
    OrgStatus::Active = 0,
    OrgStatus::Suspended = 1,
    OrgStatus::Deleted = 2,
});
tags!(KeyStatus, "key status" { KeyStatus::Active = 0, KeyStatus::Revoked = 1 });
tags!(KeySource, "key source" { KeySource::Generated = 0, KeySource::Imported = 1 });
tags!(Period, "budget period" {
    Period::Daily = 0,
    Period::Weekly = 1,
    Period::Monthly = 2,
    Period::Total = 3,
});
tags!(AuditOutcome, "audit outcome" { AuditOutcome::Applied = 0, AuditOutcome::Denied = 1 });
tags!(InviteStatus, "invite status" {
    InviteStatus::Pending = 0,
    InviteStatus::Accepted = 1,
    InviteStatus::Revoked = 2,
    InviteStatus::Expired = 3,
});

/// The spend ledger's scope of a key: `k:key_` and the id's 32 lower-case hex digits.
pub(crate) fn key_ledger_name(id: &KeyId) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(38);
    s.push_str("k:key_");
    for b in id.as_bytes() {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The spend ledger's scope of an org: `o:` and the org id.
pub(crate) fn org_ledger_name(id: &OrgId) -> String {
    let mut s = String::with_capacity(2 + id.as_str().len());
    s.push_str("o:");
    s.push_str(id.as_str());
    s
}

fn untag<T: Tagged>(what: &'static str, tag: u32) -> Result<T, Error> {
    T::from_tag(tag).ok_or_else(|| Error::corrupt(what, format!("unknown {} tag {tag}", T::FIELD)))
}

fn org_id(what: &'static str, s: String) -> Result<OrgId, Error> {
    OrgId::from_stored(s).ok_or_else(|| Error::corrupt(what, "invalid org id"))
}

fn usd(what: &'static str, micros: i64) -> Result<Usd, Error> {
    Usd::from_micros(micros)
        .map_err(|_| Error::corrupt(what, format!("amount {micros} out of range")))
}

fn ts(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros)
}

/// `Org`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct OrgV1 {
    id: String,
    name: String,
    created_at: i64,
    status: u32,
    config_version: u64,
    latest_version: u64,
    owner_count: u32,
}

impl Record for Org {
    type Disk = OrgV1;
    fn to_disk(&self) -> OrgV1 {
        OrgV1 {
            id: self.id.as_str().to_owned(),
            name: self.name.clone(),
            created_at: self.created_at.as_micros(),
            status: self.status.tag(),
            config_version: self.config_version,
            latest_version: self.latest_version,
            owner_count: self.owner_count,
        }
    }
    fn from_disk(d: OrgV1, what: &'static str) -> Result<Self, Error> {
        Ok(Org {
            id: org_id(what, d.id)?,
            name: d.name,
            created_at: ts(d.created_at),
            status: untag(what, d.status)?,
            config_version: d.config_version,
            latest_version: d.latest_version,
            owner_count: d.owner_count,
        })
    }
}

/// `Member`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct MemberV1 {
    org: String,
    email: String,
    role: u32,
    added_at: i64,
    added_by: String,
}

impl Record for Member {
    type Disk = MemberV1;
    fn to_disk(&self) -> MemberV1 {
        MemberV1 {
            org: self.org.as_str().to_owned(),
            email: self.email.as_str().to_owned(),
            role: self.role.tag(),
            added_at: self.added_at.as_micros(),
            added_by: self.added_by.clone(),
        }
    }
    fn from_disk(d: MemberV1, what: &'static str) -> Result<Self, Error> {
        Ok(Member {
            org: org_id(what, d.org)?,
            // Normalised when read: a record written before the current rule compares
            // equal to the address as parsed now.
            email: Email::from_stored(&d.email),
            role: untag(what, d.role)?,
            added_at: ts(d.added_at),
            added_by: d.added_by,
        })
    }
}

/// One config version.
#[derive(Clone, Debug)]
pub(crate) struct ConfigRecord {
    pub version: u64,
    pub created_at: Timestamp,
    pub created_by: String,
    /// Canonical JSON text (secrets included: the file is created 0600).
    pub json: String,
    /// e.g. "update", "rollback to 3", "initial".
    pub note: String,
}

/// `ConfigRecord`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct ConfigV1 {
    version: u64,
    created_at: i64,
    created_by: String,
    json: String,
    note: String,
}

impl Record for ConfigRecord {
    type Disk = ConfigV1;
    fn to_disk(&self) -> ConfigV1 {
        ConfigV1 {
            version: self.version,
            created_at: self.created_at.as_micros(),
            created_by: self.created_by.clone(),
            json: self.json.clone(),
            note: self.note.clone(),
        }
    }
    fn from_disk(d: ConfigV1, _what: &'static str) -> Result<Self, Error> {
        Ok(ConfigRecord {
            version: d.version,
            created_at: ts(d.created_at),
            created_by: d.created_by,
            json: d.json,
            note: d.note,
        })
    }
}

/// A key: public info plus the digest of its secret.
#[derive(Clone, Debug)]
pub(crate) struct KeyRecord {
    pub info: KeyInfo,
    pub digest: KeyDigest,
}

/// `KeyRecord`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct KeyV1 {
    info: KeyInfoV1,
    digest: [u8; 32],
}

/// `KeyInfo`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct KeyInfoV1 {
    id: [u8; 16],
    org: String,
    prefix: String,
    status: u32,
    spec: KeySpecV1,
    created_by: String,
    created_at: i64,
    revoked_at: Option<i64>,
    rotated_at: Option<i64>,
    source: u32,
    version: u64,
}

/// `KeySpec`, format 1.
#[derive(Encode, Decode)]
struct KeySpecV1 {
    name: String,
    rate_limit_rpm: Option<u32>,
    rate_limit_tpm: Option<u64>,
    allowed_models: Vec<String>,
    allowed_ips: Vec<String>,
    budget: Option<BudgetV1>,
    expires_at: Option<i64>,
    metadata: BTreeMap<String, String>,
}

/// `Budget`, format 1 (also inside the borrowed key view).
#[derive(Clone, Copy, Encode, Decode)]
struct BudgetV1 {
    limit_micros: i64,
    period: u32,
    hard: bool,
}

impl BudgetV1 {
    fn of(b: &Budget) -> Self {
        Self {
            limit_micros: b.limit.micros(),
            period: b.period.tag(),
            hard: b.hard,
        }
    }

    fn budget(self, what: &'static str) -> Result<Budget, Error> {
        let b = Budget::new(usd(what, self.limit_micros)?, untag(what, self.period)?);
        Ok(if self.hard { b } else { b.soft() })
    }
}

impl Record for KeyRecord {
    type Disk = KeyV1;
    fn to_disk(&self) -> KeyV1 {
        KeyV1 {
            info: self.info.to_disk(),
            digest: self.digest,
        }
    }
    fn from_disk(d: KeyV1, what: &'static str) -> Result<Self, Error> {
        Ok(KeyRecord {
            info: KeyInfo::from_disk(d.info, what)?,
            digest: d.digest,
        })
    }
}

/// The key part of a key record (also fuzzed on its own).
impl Record for KeyInfo {
    type Disk = KeyInfoV1;
    fn to_disk(&self) -> KeyInfoV1 {
        let s = &self.spec;
        KeyInfoV1 {
            id: *self.id.as_bytes(),
            org: self.org.as_str().to_owned(),
            prefix: self.prefix.clone(),
            status: self.status.tag(),
            spec: KeySpecV1 {
                name: s.name.clone(),
                rate_limit_rpm: s.rate_limit_rpm,
                rate_limit_tpm: s.rate_limit_tpm,
                allowed_models: s.allowed_models.clone(),
                allowed_ips: s.allowed_ips.clone(),
                budget: s.budget.as_ref().map(BudgetV1::of),
                expires_at: s.expires_at.map(Timestamp::as_micros),
                metadata: s.metadata.clone(),
            },
            created_by: self.created_by.clone(),
            created_at: self.created_at.as_micros(),
            revoked_at: self.revoked_at.map(Timestamp::as_micros),
            rotated_at: self.rotated_at.map(Timestamp::as_micros),
            source: self.source.tag(),
            version: self.version,
        }
    }
    fn from_disk(i: KeyInfoV1, what: &'static str) -> Result<Self, Error> {
        let s = i.spec;
        let mut spec = KeySpec::new(s.name);
        spec.rate_limit_rpm = s.rate_limit_rpm;
        spec.rate_limit_tpm = s.rate_limit_tpm;
        spec.allowed_models = s.allowed_models;
        spec.allowed_ips = s.allowed_ips;
        spec.budget = s.budget.map(|b| b.budget(what)).transpose()?;
        spec.expires_at = s.expires_at.map(ts);
        spec.metadata = s.metadata;
        Ok(KeyInfo {
            id: KeyId::from_bytes(i.id),
            org: org_id(what, i.org)?,
            prefix: i.prefix,
            status: untag(what, i.status)?,
            spec,
            created_by: i.created_by,
            created_at: ts(i.created_at),
            revoked_at: i.revoked_at.map(ts),
            rotated_at: i.rotated_at.map(ts),
            source: untag(what, i.source)?,
            version: i.version,
        })
    }
}

/// `AuditEntry`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct AuditV1 {
    seq: u64,
    at: i64,
    actor: String,
    org: String,
    action: String,
    target: String,
    summary: String,
    outcome: u32,
}

impl Record for AuditEntry {
    type Disk = AuditV1;
    fn to_disk(&self) -> AuditV1 {
        AuditV1 {
            seq: self.seq,
            at: self.at.as_micros(),
            actor: self.actor.clone(),
            org: self.org.as_str().to_owned(),
            action: self.action.clone(),
            target: self.target.clone(),
            summary: self.summary.clone(),
            outcome: self.outcome.tag(),
        }
    }
    fn from_disk(d: AuditV1, what: &'static str) -> Result<Self, Error> {
        Ok(AuditEntry {
            seq: d.seq,
            at: ts(d.at),
            actor: d.actor,
            org: org_id(what, d.org)?,
            action: d.action,
            target: d.target,
            summary: d.summary,
            outcome: untag(what, d.outcome)?,
        })
    }
}

/// Record encoding for tests outside the crate (`tests/it/records.rs` compares it with the
/// bytes of a format 1 file). Only with the `fuzzing` feature; not covered by semver.
#[cfg(feature = "fuzzing")]
pub mod support {
    use super::{ConfigRecord, KeyRecord, Record};
    use crate::error::Error;
    use crate::keys::KeyDigest;
    use crate::model::{KeyId, KeyInfo, Member, Org, OrgId};
    use crate::store::AuditEntry;
    use crate::store::codec::{decode, encode};

    /// The record bytes of an org.
    pub fn encode_org(org: &Org) -> Result<Vec<u8>, Error> {
        encode(org)
    }

    /// The record bytes of a membership.
    pub fn encode_member(member: &Member) -> Result<Vec<u8>, Error> {
        encode(member)
    }

    /// The record bytes of a key with the digest of its secret.
    pub fn encode_key(info: &KeyInfo, digest: &KeyDigest) -> Result<Vec<u8>, Error> {
        encode(&KeyRecord {
            info: info.clone(),
            digest: *digest,
        })
    }

    /// The record bytes of an audit entry.
    pub fn encode_audit(entry: &AuditEntry) -> Result<Vec<u8>, Error> {
        encode(entry)
    }

    /// The spend ledger's scope name of a key.
    pub fn key_ledger_name(id: &KeyId) -> String {
        super::key_ledger_name(id)
    }

    /// The spend ledger's scope name of an org.
    pub fn org_ledger_name(id: &OrgId) -> String {
        super::org_ledger_name(id)
    }

    /// Decodes a record of the table `table` (`orgs`, `configs`, `members`, `keys` or
    /// `audit`) into the value the store works with and encodes that value again.
    pub fn reencode(table: &str, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        fn again<T: Record>(what: &'static str, bytes: &[u8]) -> Result<Vec<u8>, Error> {
            encode(&decode::<T>(what, bytes)?)
        }
        match table {
            "orgs" => again::<Org>("org", bytes),
            "configs" => again::<ConfigRecord>("config version", bytes),
            "members" => again::<Member>("member", bytes),
            "keys" => again::<KeyRecord>("key", bytes),
            "audit" => again::<AuditEntry>("audit entry", bytes),
            _ => Err(Error::invalid(
                "table",
                "use one of orgs, configs, members, keys, audit",
            )),
        }
    }
}

/// The fields of a stored key that the gateway snapshot needs, borrowed from the record's
/// bytes: opening a store of a million keys decodes every key, and this view allocates
/// nothing for names, prefixes and metadata.
pub(crate) struct KeyView<'a> {
    pub id: KeyId,
    pub org: &'a str,
    pub revoked: bool,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub models: Vec<&'a str>,
    pub ips: Vec<&'a str>,
    pub budget: Option<Budget>,
    pub expires_at: Option<Timestamp>,
    pub digest: KeyDigest,
}

impl<'a> KeyView<'a> {
    /// The view of a decoded record.
    pub fn of(rec: &'a KeyRecord) -> Self {
        let s = &rec.info.spec;
        Self {
            id: rec.info.id,
            org: rec.info.org.as_str(),
            revoked: rec.info.status == KeyStatus::Revoked,
            rpm: s.rate_limit_rpm,
            tpm: s.rate_limit_tpm,
            models: s.allowed_models.iter().map(String::as_str).collect(),
            ips: s.allowed_ips.iter().map(String::as_str).collect(),
            budget: s.budget,
            expires_at: s.expires_at,
            digest: rec.digest,
        }
    }

    /// Decodes the view straight from a stored key record. It accepts exactly the records
    /// the owned decoder accepts (the same checks of tags, amounts and the org id).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        const WHAT: &str = "key";
        let r: KeyRecordRef<'a> = super::codec::decode_borrowed(WHAT, bytes)?;
        let i = r.info;
        let s = i.spec;
        if !crate::model::org_id_ok(i.org) {
            return Err(Error::corrupt(WHAT, "invalid org id"));
        }
        untag::<KeySource>(WHAT, i.source)?;
        Ok(Self {
            id: KeyId::from_bytes(i.id),
            org: i.org,
            revoked: untag::<KeyStatus>(WHAT, i.status)? == KeyStatus::Revoked,
            rpm: s.rate_limit_rpm,
            tpm: s.rate_limit_tpm,
            models: s.allowed_models,
            ips: s.allowed_ips,
            budget: s.budget.map(|b| b.budget(WHAT)).transpose()?,
            expires_at: s.expires_at.map(ts),
            digest: r.digest,
        })
    }
}

// Borrowed mirrors of `KeyV1` / `KeyInfoV1` / `KeySpecV1`, field for field (bincode is
// positional): strings borrowed from the record, skipped fields decoded and dropped.
// `tests::borrowed_mirror_matches_owned` guards the correspondence.
#[derive(BorrowDecode)]
struct KeyRecordRef<'a> {
    info: KeyInfoRef<'a>,
    digest: KeyDigest,
}

#[derive(BorrowDecode)]
struct KeyInfoRef<'a> {
    id: [u8; 16],
    org: &'a str,
    _prefix: &'a str,
    status: u32,
    spec: KeySpecRef<'a>,
    _created_by: &'a str,
    _created_at: i64,
    _revoked_at: Option<i64>,
    _rotated_at: Option<i64>,
    source: u32,
    _version: u64,
}

#[derive(BorrowDecode)]
struct KeySpecRef<'a> {
    _name: &'a str,
    rate_limit_rpm: Option<u32>,
    rate_limit_tpm: Option<u64>,
    allowed_models: Vec<&'a str>,
    allowed_ips: Vec<&'a str>,
    budget: Option<BudgetV1>,
    expires_at: Option<i64>,
    _metadata: Vec<(&'a str, &'a str)>,
}

// ---- The store's policy set (`policy_set.rs`): versions and the policy log.

/// One stored version.
#[derive(Clone, Debug)]
pub(crate) struct PolicySetRecord {
    pub version: u64,
    pub created_at: Timestamp,
    pub created_by: String,
    pub note: String,
    /// The operator's files, `(file name, text)`.
    pub files: Vec<(String, String)>,
}

/// `PolicySetRecord`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct PolicySetV1 {
    version: u64,
    created_at: i64,
    created_by: String,
    note: String,
    files: Vec<(String, String)>,
}

impl Record for PolicySetRecord {
    type Disk = PolicySetV1;
    fn to_disk(&self) -> PolicySetV1 {
        PolicySetV1 {
            version: self.version,
            created_at: self.created_at.as_micros(),
            created_by: self.created_by.clone(),
            note: self.note.clone(),
            files: self.files.clone(),
        }
    }
    fn from_disk(d: PolicySetV1, _what: &'static str) -> Result<Self, Error> {
        Ok(PolicySetRecord {
            version: d.version,
            created_at: ts(d.created_at),
            created_by: d.created_by,
            note: d.note,
            files: d.files,
        })
    }
}

/// One policy log entry.
pub(crate) struct PolicyAuditRecord(pub(crate) PolicyAuditEntry);

/// `PolicyAuditRecord`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct PolicyAuditV1 {
    seq: u64,
    at: i64,
    actor: String,
    action: String,
    summary: String,
    outcome: u32,
}

impl Record for PolicyAuditRecord {
    type Disk = PolicyAuditV1;
    fn to_disk(&self) -> PolicyAuditV1 {
        let e = &self.0;
        PolicyAuditV1 {
            seq: e.seq,
            at: e.at.as_micros(),
            actor: e.actor.clone(),
            action: e.action.clone(),
            summary: e.summary.clone(),
            outcome: e.outcome.tag(),
        }
    }
    fn from_disk(d: PolicyAuditV1, what: &'static str) -> Result<Self, Error> {
        let outcome = untag(what, d.outcome)?;
        Ok(PolicyAuditRecord(PolicyAuditEntry {
            seq: d.seq,
            at: ts(d.at),
            actor: d.actor,
            action: d.action,
            summary: d.summary,
            outcome,
        }))
    }
}

// ---- Invitations (`invites.rs`).

/// An invitation and the digest of its token.
#[derive(Clone, Debug)]
pub(crate) struct InviteRecord {
    /// The invitation as stored: `Pending`, `Accepted` or `Revoked` (expiry is read from
    /// `expires_at` when it is shown).
    pub invite: Invite,
    /// SHA-256 of the token.
    pub digest: [u8; 32],
}

/// `InviteRecord`, format 1.
#[derive(Encode, Decode)]
pub(crate) struct InviteV1 {
    id: [u8; 8],
    org: String,
    email: String,
    role: u32,
    created_at: i64,
    created_by: String,
    expires_at: i64,
    status: u32,
    closed_at: Option<i64>,
    digest: [u8; 32],
}

impl Record for InviteRecord {
    type Disk = InviteV1;
    fn to_disk(&self) -> InviteV1 {
        let i = &self.invite;
        InviteV1 {
            id: *i.id.as_bytes(),
            org: i.org.as_str().to_owned(),
            email: i.email.as_str().to_owned(),
            role: i.role.tag(),
            created_at: i.created_at.as_micros(),
            created_by: i.created_by.clone(),
            expires_at: i.expires_at.as_micros(),
            status: i.status.tag(),
            closed_at: i.closed_at.map(Timestamp::as_micros),
            digest: self.digest,
        }
    }
    fn from_disk(d: InviteV1, what: &'static str) -> Result<Self, Error> {
        Ok(InviteRecord {
            invite: Invite {
                id: InviteId::from_bytes(d.id),
                org: org_id(what, d.org)?,
                email: Email::from_stored(&d.email),
                role: untag(what, d.role)?,
                created_at: ts(d.created_at),
                created_by: d.created_by,
                expires_at: ts(d.expires_at),
                status: untag(what, d.status)?,
                closed_at: d.closed_at.map(ts),
            },
            digest: d.digest,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyInfo, KeySpec, OrgId, Period, Usd};
    use crate::store::codec::{decode, encode};

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn acme() -> OrgId {
        OrgId::parse("acme").unwrap()
    }

    fn org() -> Org {
        Org {
            id: acme(),
            name: "Acme".into(),
            created_at: Timestamp::from_micros(1_700_000_000_000_000),
            status: OrgStatus::Suspended,
            config_version: 2,
            latest_version: 3,
            owner_count: 1,
        }
    }

    fn member() -> Member {
        Member {
            org: acme(),
            email: Email::parse("ann@x.io").unwrap(),
            role: Role::Admin,
            added_at: Timestamp::from_micros(5),
            added_by: "operator".into(),
        }
    }

    fn config() -> ConfigRecord {
        ConfigRecord {
            version: 2,
            created_at: Timestamp::from_micros(-1),
            created_by: "operator".into(),
            json: "{}".into(),
            note: "initial".into(),
        }
    }

    fn key() -> KeyRecord {
        let spec = KeySpec::new("svc")
            .rpm(5)
            .tpm(300)
            .models(["m"])
            .ips(["10.0.0.0/8"])
            .budget(Budget::new(Usd::parse("2.5").unwrap(), Period::Weekly).soft())
            .expires_at(Timestamp::from_micros(99))
            .meta("k", "v");
        KeyRecord {
            info: KeyInfo {
                id: KeyId::from_bytes([0xab; 16]),
                org: acme(),
                prefix: "sk-A...".into(),
                status: KeyStatus::Revoked,
                spec,
                created_by: "operator".into(),
                created_at: Timestamp::from_micros(1),
                revoked_at: Some(Timestamp::from_micros(2)),
                rotated_at: None,
                source: KeySource::Imported,
                version: 3,
            },
            digest: [7; 32],
        }
    }

    fn audit() -> AuditEntry {
        AuditEntry {
            seq: 4,
            at: Timestamp::from_micros(10),
            actor: "operator".into(),
            org: acme(),
            action: "key.revoke".into(),
            target: "k".into(),
            summary: "s".into(),
            outcome: AuditOutcome::Denied,
        }
    }

    /// Each kind's bytes, written out field by field: format byte 01, then the fields of its
    /// `*V1` shape (varint integers: below 251 one byte, else fb/fc/fd and 2/4/8 bytes;
    /// signed ones zigzag; strings and lists with a length; `Option` as 00, or 01 and the
    /// value; enums as the tags of this file). A change anywhere that moves one of these
    /// bytes fails here.
    const PINNED: [(&str, &str); 5] = [
        (
            "org",
            // id "acme", name "Acme", created_at 1.7e15 us, status Suspended = 1,
            // config_version 2, latest_version 3, owner_count 1
            "01 0461636d65 0441636d65 fd00803c3048140c00 01 02 03 01",
        ),
        (
            "member",
            // org, email, role Admin = 2, added_at 5, added_by
            "01 0461636d65 08616e6e40782e696f 02 0a 086f70657261746f72",
        ),
        (
            "config version",
            // version 2, created_at -1, created_by, json "{}", note
            "01 02 01 086f70657261746f72 027b7d 07696e697469616c",
        ),
        (
            "key",
            // id, org, prefix, status Revoked = 1,
            // spec: name, rpm Some(5), tpm Some(300), models ["m"], ips ["10.0.0.0/8"],
            //   budget Some($2.5, Weekly = 1, soft), expires_at Some(99), metadata {k: v};
            // created_by, created_at 1, revoked_at Some(2), rotated_at None,
            // source Imported = 1, version 3, digest
            "01 abababababababababababababababab 0461636d65 07736b2d412e2e2e 01 \
             03737663 0105 01fb2c01 01016d 010a31302e302e302e302f38 \
             01fc404b4c000100 01c6 01016b0176 \
             086f70657261746f72 02 0104 00 01 03 \
             0707070707070707070707070707070707070707070707070707070707070707",
        ),
        (
            "audit entry",
            // seq 4, at 10, actor, org, action, target "k", summary "s", outcome Denied = 1
            "01 04 14 086f70657261746f72 0461636d65 0a6b65792e7265766f6b65 016b 0173 01",
        ),
    ];

    fn encoded() -> [(&'static str, Vec<u8>); 5] {
        [
            ("org", encode(&org()).unwrap()),
            ("member", encode(&member()).unwrap()),
            ("config version", encode(&config()).unwrap()),
            ("key", encode(&key()).unwrap()),
            ("audit entry", encode(&audit()).unwrap()),
        ]
    }

    fn pinned(what: &str) -> Vec<u8> {
        let (_, h) = PINNED.iter().find(|(w, _)| *w == what).unwrap();
        unhex(&h.replace(' ', ""))
    }

    #[test]
    fn policy_set_records_are_pinned() {
        let v = PolicySetRecord {
            version: 2,
            created_at: Timestamp::from_micros(1_700_000_000_000_000),
            created_by: "operator".into(),
            note: "apply".into(),
            files: vec![("a.cedar".into(), "// x".into())],
        };
        let bytes = encode(&v).unwrap();
        assert_eq!(
            hex(&bytes),
            // format 1, version 2, created_at (zigzag varint: fd + 8 bytes), "operator",
            // "apply", one file: "a.cedar", "// x"
            "01 02 fd 00803c3048140c00 08 6f70657261746f72 05 6170706c79 01 07 612e6365646172 04 2f2f2078"
                .replace(' ', "")
        );
        let back: PolicySetRecord = decode("policy set version", &bytes).unwrap();
        assert_eq!((back.version, back.files), (2, v.files));
        let e = PolicyAuditRecord(PolicyAuditEntry {
            seq: 1,
            at: Timestamp::from_micros(5),
            actor: "a@b.io".into(),
            action: "ManagePolicies".into(),
            summary: "denied by policy".into(),
            outcome: AuditOutcome::Denied,
        });
        let bytes = encode(&e).unwrap();
        let back: PolicyAuditRecord = decode("policy log entry", &bytes).unwrap();
        assert_eq!(back.0, e.0);
        // The outcome is the audit log's tag (Denied = 1), the last byte.
        assert_eq!(bytes.last(), Some(&1));
    }

    #[test]
    fn invite_records_are_pinned() {
        let rec = InviteRecord {
            invite: Invite {
                id: InviteId::from_bytes([0xab; 8]),
                org: acme(),
                email: Email::parse("n@a.io").unwrap(),
                role: Role::Admin,
                created_at: Timestamp::from_micros(1),
                created_by: "operator".into(),
                expires_at: Timestamp::from_micros(2),
                status: InviteStatus::Accepted,
                closed_at: Some(Timestamp::from_micros(3)),
            },
            digest: [7; 32],
        };
        let bytes = encode(&rec).unwrap();
        assert_eq!(
            hex(&bytes),
            // format 1, id (8 bytes), "acme", "n@a.io", role Admin = 2, created_at 1 (zigzag
            // 2), "operator", expires_at 2 (4), status Accepted = 1, closed_at Some(3) (6),
            // digest (32 bytes)
            format!(
                "01 {} 04 61636d65 06 6e40612e696f 02 02 08 6f70657261746f72 04 01 01 06 {}",
                "ab".repeat(8),
                "07".repeat(32)
            )
            .replace(' ', "")
        );
        let back: InviteRecord = decode("invite", &bytes).unwrap();
        assert_eq!((back.invite, back.digest), (rec.invite, rec.digest));
        // A status no invitation has is a corrupt record.
        let mut bad = bytes.clone();
        let at = bytes.len() - 32 - 3;
        bad[at] = 9;
        let e = decode::<InviteRecord>("invite", &bad).unwrap_err();
        assert!(chain(&e).contains("invite status tag 9"), "{}", chain(&e));
    }

    #[test]
    fn spend_scopes_are_pinned() {
        let id = KeyId::from_bytes([0xab; 16]);
        assert_eq!(key_ledger_name(&id), format!("k:key_{}", "ab".repeat(16)));
        assert_eq!(key_ledger_name(&id), format!("k:{id}"));
        assert_eq!(org_ledger_name(&acme()), "o:acme");
    }

    #[test]
    fn record_bytes_are_pinned() {
        for (what, bytes) in encoded() {
            assert_eq!(hex(&bytes), hex(&pinned(what)), "{what}");
        }
    }

    #[test]
    fn pinned_bytes_decode_to_the_values() {
        assert_eq!(decode::<Org>("org", &pinned("org")).unwrap(), org());
        assert_eq!(
            decode::<Member>("member", &pinned("member")).unwrap(),
            member()
        );
        let c = decode::<ConfigRecord>("config version", &pinned("config version")).unwrap();
        let want = config();
        assert_eq!(
            (c.version, c.created_at, c.created_by, c.json, c.note),
            (
                want.version,
                want.created_at,
                want.created_by,
                want.json,
                want.note
            )
        );
        let k = decode::<KeyRecord>("key", &pinned("key")).unwrap();
        assert_eq!((k.info, k.digest), (key().info, key().digest));
        assert_eq!(
            decode::<AuditEntry>("audit entry", &pinned("audit entry")).unwrap(),
            audit()
        );
    }

    fn tags_of<T: Tagged + PartialEq + std::fmt::Debug>(all: &[T]) {
        let mut seen = std::collections::HashSet::new();
        for v in all {
            assert!(seen.insert(v.tag()), "{v:?}: tag used twice");
            assert_eq!(T::from_tag(v.tag()), Some(*v));
        }
        let unused = (0..=all.len() as u32).find(|t| !seen.contains(t)).unwrap();
        assert_eq!(T::from_tag(unused), None);
        assert_eq!(T::from_tag(u32::MAX), None);
    }

    #[test]
    fn every_tag_is_distinct_and_maps_back() {
        tags_of(&Role::ALL);
        tags_of(&[OrgStatus::Active, OrgStatus::Suspended, OrgStatus::Deleted]);
        tags_of(&[KeyStatus::Active, KeyStatus::Revoked]);
        tags_of(&[KeySource::Generated, KeySource::Imported]);
        tags_of(&[
            Period::Daily,
            Period::Weekly,
            Period::Monthly,
            Period::Total,
        ]);
        tags_of(&[AuditOutcome::Applied, AuditOutcome::Denied]);
    }

    /// A pinned record with one byte replaced.
    fn with(what: &str, at: usize, byte: u8) -> Vec<u8> {
        let mut b = pinned(what);
        b[at] = byte;
        b
    }

    /// The error's line and its causes: the reason is the cause (`source()`), not part of
    /// the error's own line.
    fn chain(e: &crate::Error) -> String {
        let mut chain = e.message().to_owned();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            chain.push_str(&format!(" / {c}"));
            cause = c.source();
        }
        chain
    }

    fn corrupt<T: Record + std::fmt::Debug>(what: &'static str, bytes: &[u8], says: &str) {
        let e = decode::<T>(what, bytes).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{e}");
        let chain = chain(&e);
        assert!(
            e.message().starts_with(what) && chain.contains(says),
            "{what}: {chain}"
        );
    }

    #[test]
    fn values_no_public_value_has_are_corrupt_records() {
        corrupt::<Org>("org", &with("org", 20, 3), "unknown org status tag 3");
        corrupt::<Org>("org", &with("org", 2, b'A'), "invalid org id");
        corrupt::<Member>("member", &with("member", 15, 4), "unknown role tag 4");
        corrupt::<AuditEntry>("audit entry", &with("audit entry", 32, 2), "outcome tag 2");
        // key: status at 30, budget period at 62, source at 84
        let k = pinned("key");
        assert_eq!((k[30], k[62], k[84]), (1, 1, 1));
        for (at, says) in [
            (30, "unknown key status tag 9"),
            (62, "unknown budget period tag 9"),
            (84, "unknown key source tag 9"),
        ] {
            let bad = with("key", at, 9);
            corrupt::<KeyRecord>("key", &bad, says);
            // The borrowed view refuses what the owned decoder refuses.
            let e = KeyView::decode(&bad).err().unwrap();
            assert!(chain(&e).contains(says), "{}", chain(&e));
        }
        // A negative budget (an odd zigzag value is negative).
        let bad = with("key", 58, 0x41);
        corrupt::<KeyRecord>("key", &bad, "out of range");
        assert!(KeyView::decode(&bad).is_err());
        let bad = with("key", 18, b'!');
        corrupt::<KeyRecord>("key", &bad, "invalid org id");
        assert!(KeyView::decode(&bad).is_err());
    }

    #[test]
    fn borrowed_mirror_matches_owned() {
        let spec = KeySpec::new("name")
            .rpm(5)
            .tpm(7)
            .models(["a", "b"])
            .ips(["10.0.0.0/8"])
            .budget(Budget::new(Usd::parse("2.5").unwrap(), Period::Weekly))
            .expires_at(Timestamp::from_micros(99))
            .meta("k", "v")
            .meta("k2", "v2");
        let rec = KeyRecord {
            info: KeyInfo {
                id: KeyId::random(),
                org: OrgId::parse("acme").unwrap(),
                prefix: "sk-agentcc-A...".into(),
                status: KeyStatus::Revoked,
                spec,
                created_by: "ann@x.io".into(),
                created_at: Timestamp::from_micros(1),
                revoked_at: Some(Timestamp::from_micros(2)),
                rotated_at: None,
                source: KeySource::Imported,
                version: 3,
            },
            digest: [7; 32],
        };
        let bytes = encode(&rec).unwrap();
        let g = KeyView::decode(&bytes).unwrap();
        let o = KeyView::of(&rec);
        assert_eq!(
            (g.id, g.org, g.revoked, g.rpm, g.tpm),
            (o.id, o.org, o.revoked, o.rpm, o.tpm)
        );
        assert_eq!(
            (g.models, g.ips, g.budget, g.expires_at, g.digest),
            (o.models, o.ips, o.budget, o.expires_at, o.digest)
        );
    }
}
