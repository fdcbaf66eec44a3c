//! Stored record shapes that are not public API.

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::keys::KeyDigest;
use crate::model::{Budget, KeyId, KeyInfo, KeySource, KeyStatus, Timestamp};

/// One config version.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ConfigRecord {
    pub version: u64,
    pub created_at: Timestamp,
    pub created_by: String,
    /// Canonical JSON text (secrets included: the file is created 0600).
    pub json: String,
    /// e.g. "update", "rollback to 3", "initial".
    pub note: String,
}

/// A key: public info plus the digest of its secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub info: KeyInfo,
    pub digest: KeyDigest,
}

/// The fields of a stored key that the gateway snapshot needs, borrowed from the record's
/// bytes: opening a store of a million keys decodes every key, and this view allocates
/// nothing for names, prefixes and metadata.
pub(crate) struct KeyGate<'a> {
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

impl<'a> KeyGate<'a> {
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

    /// Decodes the view straight from a stored key record.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Error> {
        let r: KeyRecordRef<'a> = super::codec::decode_borrowed("key", bytes)?;
        let s = r.info.spec;
        Ok(Self {
            id: KeyId::from_bytes(r.info.id),
            org: r.info.org,
            revoked: r.info.status == KeyStatus::Revoked,
            rpm: s.rate_limit_rpm,
            tpm: s.rate_limit_tpm,
            models: s.allowed_models,
            ips: s.allowed_ips,
            budget: s.budget,
            expires_at: s.expires_at.map(Timestamp::from_micros),
            digest: r.digest,
        })
    }
}

// Borrowed mirrors of `KeyRecord` / `KeyInfo` / `KeySpec`, field for field (bincode is
// positional), decoded by bincode's native decoder: serde's decodes the digest and the id one
// byte at a time, a third of opening a large store. Newtypes appear as what they wrap
// (`KeyId` as its bytes, `Timestamp` as its micros); fields whose serde form checks their
// values (status, source, budget) still go through serde.
// `tests::borrowed_mirror_matches_owned` guards the correspondence.
#[derive(bincode::BorrowDecode)]
struct KeyRecordRef<'a> {
    info: KeyInfoRef<'a>,
    digest: KeyDigest,
}

#[derive(bincode::BorrowDecode)]
struct KeyInfoRef<'a> {
    id: [u8; 16],
    org: &'a str,
    _prefix: &'a str,
    #[bincode(with_serde)]
    status: KeyStatus,
    spec: KeySpecRef<'a>,
    _created_by: &'a str,
    _created_at: i64,
    _revoked_at: Option<i64>,
    _rotated_at: Option<i64>,
    #[bincode(with_serde)]
    _source: KeySource,
    _version: u64,
}

#[derive(bincode::BorrowDecode)]
struct KeySpecRef<'a> {
    _name: &'a str,
    rate_limit_rpm: Option<u32>,
    rate_limit_tpm: Option<u64>,
    allowed_models: Vec<&'a str>,
    allowed_ips: Vec<&'a str>,
    #[bincode(with_serde)]
    budget: Option<Budget>,
    expires_at: Option<i64>,
    _metadata: Vec<(&'a str, &'a str)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KeyInfo, KeySpec, OrgId, Period, Usd};

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
        let bytes = super::super::codec::encode(&rec).unwrap();
        let g = KeyGate::decode(&bytes).unwrap();
        let o = KeyGate::of(&rec);
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
