//! The routes of the store's policy set (`orgstore policy show|history|diff|log|apply|
//! rollback`): its versions, the policy log, the impact of a proposed set, apply and
//! rollback. Each calls the store's `PolicySets` as the acting principal, which decides
//! `ManagePolicies` by Cedar for a person, as a direct call does.

use axum::body::Body;
use axum::extract::State as Extract;
use http::{HeaderMap, Uri};
use serde::Deserialize;
use serde_json::json;

use super::reply::{ApiError, to_json};
use super::routes::{Answer, Shared, actor, blocking, json_body, ok, query_number, versions};
use crate::policy::Policies;

/// One policy file of a request body: `{"name": "a.cedar", "text": "..."}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    /// The file name (a plain `*.cedar` name; for a what-if, any name used in messages).
    pub(super) name: String,
    /// The Cedar text.
    pub(super) text: String,
}

/// The body of `PUT /v1/policy-set` and `POST /v1/policy-set/impact`: the operator's files
/// (the built-in files are added).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Files {
    files: Vec<File>,
}

const FILES_SHAPE: &str = r#"{"files": [{"name": "no-deletes.cedar", "text": "@id(\"no-deletes\")\nforbid (principal, action == Action::\"DeleteOrg\", resource);"}]}"#;

/// The files of the body, and the set they make, validated strictly (422 naming the file
/// and line when it does not validate: nothing is stored).
async fn proposed(
    s: &super::routes::State,
    h: &HeaderMap,
    body: Body,
) -> Result<(Vec<(String, String)>, Policies), ApiError> {
    let b: Files = json_body(s, h, body, FILES_SHAPE).await?;
    let files: Vec<(String, String)> = b.files.into_iter().map(|f| (f.name, f.text)).collect();
    let policies = Policies::from_files(&files)?;
    Ok((files, policies))
}

/// `GET /v1/policy-set[?version=N]`: one version (the active one by default). The policy
/// set is not secret: any principal may read it.
pub(super) async fn version(Extract(s): Shared, h: HeaderMap, uri: Uri) -> Answer {
    actor(&h)?;
    let version = query_number(&uri, "version")?;
    let v = blocking(&s, &h, move |st| st.policy_set().version(version)).await?;
    ok(to_json(&v)?)
}

/// `GET /v1/policy-set/versions`: every version, oldest first.
pub(super) async fn history(Extract(s): Shared, h: HeaderMap) -> Answer {
    actor(&h)?;
    let all = blocking(&s, &h, |st| st.policy_set().history()).await?;
    ok(to_json(&all)?)
}

/// `GET /v1/policy-set/diff?from=A&to=B`: how the operator files differ.
pub(super) async fn diff(Extract(s): Shared, h: HeaderMap, uri: Uri) -> Answer {
    actor(&h)?;
    let (from, to) = versions(&uri)?;
    let changes = blocking(&s, &h, move |st| st.policy_set().diff(from, to)).await?;
    ok(to_json(&changes)?)
}

/// `GET /v1/policy-set/log[?limit=N]`: the policy log, newest first (operator only).
pub(super) async fn log(Extract(s): Shared, h: HeaderMap, uri: Uri) -> Answer {
    let a = actor(&h)?;
    let limit = query_number(&uri, "limit")?.unwrap_or(50);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let log = blocking(&s, &h, move |st| st.policy_set().audit(&a, limit)).await?;
    ok(to_json(&log)?)
}

/// `POST /v1/policy-set/impact` (`policy apply --dry-run`): the decisions the files would
/// change and the active version; nothing is stored.
pub(super) async fn impact(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    let a = actor(&h)?;
    let (_, policies) = proposed(&s, &h, body).await?;
    let (active, impact) = blocking(&s, &h, move |st| {
        let impact = st.policy_set().impact(&a, &policies)?;
        Ok((st.policy_set().active()?, impact))
    })
    .await?;
    ok(json!({ "active": to_json(&active)?, "impact": to_json(&impact)? }))
}

/// `PUT /v1/policy-set` (`policy apply`): the impact of the files, then the files as the new
/// active version (`changed: false` when they equal the active one's).
pub(super) async fn apply(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    let a = actor(&h)?;
    let (files, policies) = proposed(&s, &h, body).await?;
    let (v, impact) = blocking(&s, &h, move |st| {
        let impact = st.policy_set().impact(&a, &policies)?;
        Ok((st.policy_set().apply(&a, &files)?, impact))
    })
    .await?;
    ok(json!({ "version": to_json(&v)?, "impact": to_json(&impact)? }))
}

/// `POST /v1/policy-set/rollback` (`{"version": N}`): version N's files as the new active
/// version.
pub(super) async fn rollback(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rollback {
        version: u64,
    }
    let a = actor(&h)?;
    let r: Rollback = json_body(&s, &h, body, r#"{"version": 1}"#).await?;
    let v = blocking(&s, &h, move |st| st.policy_set().rollback(&a, r.version)).await?;
    ok(to_json(&v)?)
}
