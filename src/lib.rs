#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod config;
mod error;
#[cfg(feature = "fleet")]
mod fleet;
#[cfg(feature = "fleet")]
pub use fleet::{
    BudgetLease, DEFAULT_POLL_INTERVAL, DEFAULT_RETENTION, FleetBuilder, FleetStatus, RateShare,
    ReplicaStatus,
};
#[cfg(feature = "fuzzing")]
pub mod fuzz_support;
mod gateway;
#[cfg(feature = "tower")]
pub mod http;
mod keys;
mod limits;
mod model;
mod policy;
#[cfg(feature = "server")]
pub mod server;
mod snapshot;
mod store;

pub use config::{
    BudgetPolicy, ConfigChange, IpAcl, MAX_CONFIG_BYTES, OrgConfig, RateLimiting,
    parse_whole_number,
};
pub use error::{Error, ErrorKind, PermissionDenied};
pub use gateway::{
    DEFAULT_ESTIMATE, Denial, Gateway, Grant, Limits, RateHeaders, Request, ResolvedKey, Scope,
    Usage,
};
pub use keys::{
    HeaderError, KEY_LEN, KEY_PREFIX, KeyDigest, KeyFormatError, SecretKey, check_key_format,
    digest as key_digest, display_prefix, key_from_headers,
};
pub use model::{
    Actor, Budget, Email, Invite, InviteId, InviteStatus, KeyId, KeyInfo, KeySource, KeySpec,
    KeyStatus, MAX_MODEL_NAME_BYTES, Member, Org, OrgId, OrgStatus, Period, Role, Timestamp, Usd,
};
pub use policy::{
    AdminAction, AdminRequest, Explanation, GatewayContext, GatewayDecision, MAX_POLICY_FILE_BYTES,
    Policies, Target,
};
pub use store::StatusChange;
#[cfg(feature = "fuzzing")]
pub use store::records::support as record_support;
pub use store::{
    AcceptedInvite, CreatedInvite, DEFAULT_INVITE_VALIDITY, INVITE_TOKEN_PREFIX, InviteToken,
    Invites,
};
pub use store::{
    Audit, AuditEntry, AuditOutcome, ConfigVersion, CreatedKey, ExplainReport, ImportKey, Keys,
    Members, OrgConfigs, Orgs, Store, StoreBuilder,
};
pub use store::{BudgetStatus, RateUse, UsageReport};
pub use store::{
    DecisionChange, ImpactReport, PolicyAuditEntry, PolicyFileChange, PolicySets, PolicyVersion,
    SAMPLE_MODELS,
};

/// The examples of `docs/api.md`, the list of the public API, run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/api.md")]
struct ApiExamples;
