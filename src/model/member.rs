//! Memberships.

use super::{Email, OrgId, Role, Timestamp};

/// One person's membership in one org.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Member {
    /// The org.
    pub org: OrgId,
    /// The person.
    pub email: Email,
    /// Their role in this org.
    pub role: Role,
    /// When they joined.
    pub added_at: Timestamp,
    /// Who added them (`operator` or an email).
    pub added_by: String,
}
