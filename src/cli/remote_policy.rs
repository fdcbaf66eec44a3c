//! The policy-set commands against a live store: `policy show|pull|export|history|log|
//! diff|apply|rollback|test` and `policy explain --policies` through the admin API.

use orgstore::{ImpactReport, PolicyAuditEntry, PolicyFileChange, PolicyVersion};
use serde_json::{Value, json};

use super::CliError;
use super::remote::{Remote, shape};

/// Files as the admin API takes them: `[{"name", "text"}]`.
pub(crate) fn files_json(files: &[(String, String)]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|(name, text)| json!({ "name": name, "text": text }))
            .collect(),
    )
}

/// A version and the impact that came with it.
fn with_impact(v: &Value, version: &str) -> Result<(PolicyVersion, ImpactReport), CliError> {
    let decode = |k: &str| v[k].clone();
    Ok((
        serde_json::from_value(decode(version)).map_err(|e| shape(&e))?,
        serde_json::from_value(decode("impact")).map_err(|e| shape(&e))?,
    ))
}

impl Remote {
    /// `policy show|pull|export`: one version (the active one for `None`).
    pub(crate) fn policy_version(&self, version: Option<u64>) -> Result<PolicyVersion, CliError> {
        let path = match version {
            Some(v) => format!("/v1/policy-set?version={v}"),
            None => "/v1/policy-set".to_owned(),
        };
        self.get("GET", &path, None)
    }

    /// `policy history`.
    pub(crate) fn policy_history(&self) -> Result<Vec<PolicyVersion>, CliError> {
        self.get("GET", "/v1/policy-set/versions", None)
    }

    /// `policy diff A B`.
    pub(crate) fn policy_diff(&self, a: u64, b: u64) -> Result<Vec<PolicyFileChange>, CliError> {
        self.get("GET", &format!("/v1/policy-set/diff?from={a}&to={b}"), None)
    }

    /// `policy log`.
    pub(crate) fn policy_log(&self, limit: usize) -> Result<Vec<PolicyAuditEntry>, CliError> {
        self.get("GET", &format!("/v1/policy-set/log?limit={limit}"), None)
    }

    /// `policy apply --dry-run`: the active version and the impact of `files`.
    pub(crate) fn policy_impact(
        &self,
        files: &[(String, String)],
    ) -> Result<(PolicyVersion, ImpactReport), CliError> {
        let body = json!({ "files": files_json(files) });
        let v = self.call("POST", "/v1/policy-set/impact", Some(&body))?;
        with_impact(&v, "active")
    }

    /// `policy apply`: the new (or unchanged) version and the impact of the change.
    pub(crate) fn policy_apply(
        &self,
        files: &[(String, String)],
    ) -> Result<(PolicyVersion, ImpactReport), CliError> {
        let body = json!({ "files": files_json(files) });
        let v = self.call("PUT", "/v1/policy-set", Some(&body))?;
        with_impact(&v, "version")
    }

    /// `policy rollback N`.
    pub(crate) fn policy_rollback(&self, version: u64) -> Result<PolicyVersion, CliError> {
        let body = json!({ "version": version });
        self.get("POST", "/v1/policy-set/rollback", Some(&body))
    }
}
