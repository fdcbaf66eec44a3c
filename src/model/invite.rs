//! Invitations by email: a pending membership that the invited person accepts with a
//! single-use token.

use std::fmt;

use super::{Email, OrgId, Role, Timestamp};
use crate::error::Error;

/// An invitation's id: `inv_` and 16 hex digits. Not a secret (the token is).
///
/// ```
/// use orgstore::InviteId;
/// let id = InviteId::parse("inv_00112233445566ff").unwrap();
/// assert_eq!(id.to_string(), "inv_00112233445566ff");
/// assert!(InviteId::parse("inv_xyz").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InviteId([u8; 8]);

impl InviteId {
    /// Parses `inv_<16 hex digits>` (lower or upper case).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(
                "invite id",
                "give an invite id as printed by `member invites`: inv_ followed by 16 hex digits",
            )
        };
        let hex = s.strip_prefix("inv_").ok_or_else(bad)?;
        if hex.len() != 16 {
            return Err(bad());
        }
        let mut out = [0u8; 8];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = hex.get(i * 2..i * 2 + 2).ok_or_else(bad)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }

    /// The raw bytes.
    pub(crate) fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }

    /// An id from raw bytes (as stored).
    pub(crate) fn from_bytes(b: [u8; 8]) -> Self {
        Self(b)
    }
}

impl fmt::Display for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("inv_")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InviteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InviteId({self})")
    }
}

/// Where an invitation stands.
///
/// ```
/// assert_eq!(orgstore::InviteStatus::Pending.as_str(), "pending");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum InviteStatus {
    /// Waiting to be accepted.
    Pending,
    /// Accepted: the invited person is a member.
    Accepted,
    /// Revoked before it was accepted.
    Revoked,
    /// Not accepted before it expired.
    Expired,
}

impl InviteStatus {
    /// The status as a word: `pending`, `accepted`, `revoked` or `expired`.
    pub fn as_str(self) -> &'static str {
        match self {
            InviteStatus::Pending => "pending",
            InviteStatus::Accepted => "accepted",
            InviteStatus::Revoked => "revoked",
            InviteStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for InviteStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invitation to join an org with a role. The token that accepts it is never part of
/// it: it is handed out once, when the invitation is made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Invite {
    /// Its id.
    pub id: InviteId,
    /// The org.
    pub org: OrgId,
    /// The invited person, normalised like every email.
    pub email: Email,
    /// The role they get when they accept.
    pub role: Role,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it (`operator` or an email).
    pub created_by: String,
    /// When it stops being acceptable.
    pub expires_at: Timestamp,
    /// Where it stands (an expired invitation reads as [`InviteStatus::Expired`]).
    pub status: InviteStatus,
    /// When it was accepted or revoked.
    pub closed_at: Option<Timestamp>,
}
