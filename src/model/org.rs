//! Organizations.

use super::{OrgId, Timestamp};

/// Whether an org's keys may be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum OrgStatus {
    /// Keys work.
    Active,
    /// Keys are refused until the org is resumed.
    Suspended,
    /// Deleted: keys are refused for good and the id is never reused.
    Deleted,
}

impl OrgStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgStatus::Active => "active",
            OrgStatus::Suspended => "suspended",
            OrgStatus::Deleted => "deleted",
        }
    }
}

/// An organization as stored.
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Actor, Email, OrgId};
/// let org = store.orgs().create(&Actor::Operator, &OrgId::parse("acme").unwrap(), "Acme",
///     &Email::parse("owner@acme.io").unwrap()).unwrap();
/// assert_eq!(org.owner_count, 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Org {
    /// The org's id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Active, suspended or deleted.
    pub status: OrgStatus,
    /// The active config version (1 for a new org).
    pub config_version: u64,
    /// The newest config version (rollback creates a new one).
    pub latest_version: u64,
    /// How many Owners it has; kept by the store inside every membership write.
    pub owner_count: u32,
}
