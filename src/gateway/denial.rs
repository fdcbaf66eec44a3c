//! Why the gateway refused a request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::keys::KeyFormatError;

/// Which limit a rate or budget denial is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The key's own limit.
    Key,
    /// The org's limit shared by all its keys.
    Org,
}

impl Scope {
    /// `key` or `org`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::Org => "org",
        }
    }
}

/// Why a request was refused. Each reason has a stable [`Denial::code`].
///
/// ```
/// # let store = orgstore::Store::open_temporary().unwrap();
/// use orgstore::{Denial, Request};
/// let gw = store.gateway();
/// let err = gw.check(&Request::new("sk-agentcc-nope", "gpt-4o", "10.0.0.1".parse().unwrap())).unwrap_err();
/// assert_eq!(err.code(), "malformed_key");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// The key string is not a key (prefix, length, characters or checksum).
    MalformedKey(KeyFormatError),
    /// Well-formed, but no such key.
    UnknownKey,
    /// The key was revoked.
    Revoked,
    /// The key has expired.
    Expired,
    /// The key's org is suspended.
    OrgSuspended,
    /// The key's org was deleted.
    OrgDeleted,
    /// The model name is empty or longer than [`crate::MAX_MODEL_NAME_BYTES`] bytes (a bad
    /// request: no allow-list can hold it).
    InvalidModel,
    /// The model is outside the org's or the key's allow-list.
    ModelNotAllowed,
    /// The client address is denied by the org's or the key's IP rules.
    IpNotAllowed,
    /// A Cedar policy forbids it, or none permits it (ids of the deciding policies).
    PolicyDenied {
        /// Deciding policy ids; empty when no policy permits.
        policies: Arc<[String]>,
    },
    /// A requests- or tokens-per-minute limit is reached.
    RateLimited {
        /// Key or org limit.
        scope: Scope,
        /// `true` for tokens per minute, `false` for requests per minute.
        tokens: bool,
        /// When a retry can succeed.
        retry_after: Duration,
    },
    /// A hard budget cannot take this request's estimate.
    BudgetExceeded {
        /// Key or org budget.
        scope: Scope,
        /// When the budget period resets (`None` for a total budget).
        resets_at: Option<crate::Timestamp>,
        /// What is left in the period (spend and in-flight reservations counted).
        remaining: crate::Usd,
        /// The estimate the request asked to reserve.
        requested: crate::Usd,
    },
    /// The store could not publish its latest state; the gateway fails closed.
    Unavailable,
}

impl Denial {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Denial::MalformedKey(_) => "malformed_key",
            Denial::UnknownKey => "unknown_key",
            Denial::Revoked => "revoked",
            Denial::Expired => "expired",
            Denial::OrgSuspended => "org_suspended",
            Denial::OrgDeleted => "org_deleted",
            Denial::InvalidModel => "invalid_model",
            Denial::ModelNotAllowed => "model_not_allowed",
            Denial::IpNotAllowed => "ip_not_allowed",
            Denial::PolicyDenied { .. } => "policy_denied",
            Denial::RateLimited { .. } => "rate_limited",
            Denial::BudgetExceeded { .. } => "budget_exceeded",
            Denial::Unavailable => "unavailable",
        }
    }

    /// The HTTP status a gateway should answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            Denial::MalformedKey(_) | Denial::UnknownKey | Denial::Revoked | Denial::Expired => 401,
            Denial::InvalidModel => 400,
            Denial::RateLimited { .. } | Denial::BudgetExceeded { .. } => 429,
            Denial::Unavailable => 503,
            _ => 403,
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::MalformedKey(e) => write!(f, "malformed key: {e}"),
            Denial::UnknownKey => {
                f.write_str("unknown key: check that the key was copied whole and not deleted")
            }
            Denial::Revoked => f.write_str("key revoked: create or rotate a key"),
            Denial::Expired => f.write_str("key expired: create a new key"),
            Denial::OrgSuspended => f.write_str("org suspended: ask an org owner"),
            Denial::OrgDeleted => f.write_str("org deleted"),
            Denial::InvalidModel => write!(
                f,
                "invalid model name: give the model's name, 1 to {} bytes",
                crate::MAX_MODEL_NAME_BYTES
            ),
            Denial::ModelNotAllowed => f.write_str("model not allowed for this key or org"),
            Denial::IpNotAllowed => f.write_str("client address not allowed for this key or org"),
            Denial::PolicyDenied { policies } if policies.is_empty() => {
                f.write_str("denied: no policy permits this request")
            }
            Denial::PolicyDenied { policies } => {
                write!(f, "denied by policy {}", policies.join(", "))
            }
            Denial::RateLimited {
                scope,
                tokens,
                retry_after,
            } => write!(
                f,
                "{} {} limit reached: retry after {} ms",
                scope.as_str(),
                if *tokens {
                    "tokens-per-minute"
                } else {
                    "requests-per-minute"
                },
                retry_after.as_millis()
            ),
            Denial::BudgetExceeded {
                scope,
                resets_at,
                remaining,
                requested,
            } => {
                write!(
                    f,
                    "{} budget would be exceeded: ${remaining} left, request reserves ${requested}",
                    scope.as_str()
                )?;
                match resets_at {
                    Some(t) => write!(f, "; resets at {t}"),
                    None => f.write_str("; the budget is for all time"),
                }
            }
            Denial::Unavailable => f.write_str("key store unavailable: retry shortly"),
        }
    }
}

impl std::error::Error for Denial {}
