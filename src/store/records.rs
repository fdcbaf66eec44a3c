//! Stored record shapes that are not public API.

use serde::{Deserialize, Serialize};

use crate::keys::KeyDigest;
use crate::model::{KeyInfo, Timestamp};

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
