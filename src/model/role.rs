//! Roles and the acting principal.

use std::fmt;

use super::Email;
use crate::error::Error;

/// A member's role in one org. Roles are ordered: Owner > Admin > Member > Viewer.
///
/// ```
/// use orgstore::Role;
/// assert!(Role::Owner > Role::Admin);
/// assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Role {
    /// Read-only access.
    Viewer,
    /// Can view config and create keys.
    Member,
    /// Can manage providers, keys, routing, budgets and members below Owner.
    Admin,
    /// Full access, including deleting the org and granting Owner.
    Owner,
}

impl Role {
    /// All roles, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Member, Role::Admin, Role::Owner];

    /// The upstream gateway's numeric level (Owner 15, Admin 8, Member 3, Viewer 1).
    pub fn level(self) -> u8 {
        match self {
            Role::Owner => 15,
            Role::Admin => 8,
            Role::Member => 3,
            Role::Viewer => 1,
        }
    }

    /// Lower-case name as used in the CLI and in Cedar.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.level().cmp(&other.level())
    }
}

impl std::str::FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "owner" => Ok(Role::Owner),
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            _ => Err(Error::invalid(
                "role",
                "use one of owner, admin, member, viewer",
            )),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who performs an admin operation.
///
/// ```
/// use orgstore::{Actor, Email};
/// let ann = Actor::member(Email::parse("ann@example.com").unwrap());
/// assert_eq!(ann.to_string(), "ann@example.com");
/// assert_eq!(Actor::Operator.to_string(), "operator");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Actor {
    /// The holder of the store file: may do everything, still audited.
    Operator,
    /// A person acting through their memberships.
    Member(Email),
}

impl Actor {
    /// Shorthand for `Actor::Member(email)`.
    pub fn member(email: Email) -> Self {
        Actor::Member(email)
    }

    /// Parses an email into a member actor.
    pub fn from_email(s: &str) -> Result<Self, Error> {
        Email::parse(s).map(Actor::Member)
    }

    /// The member's email, if this is a member.
    pub fn email(&self) -> Option<&Email> {
        match self {
            Actor::Operator => None,
            Actor::Member(e) => Some(e),
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator => f.write_str("operator"),
            Actor::Member(e) => f.write_str(e.as_str()),
        }
    }
}
