//! The routes: one per store operation, in the SDK's vocabulary. Each handler reads the
//! acting principal and its input, runs the store call on a blocking thread (the store
//! authorizes it by Cedar inside its transaction) and answers JSON.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use http::{HeaderMap, Request, Uri};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::{self, Media};
use super::policy_set;
use super::reply::{ApiError, json_response, text_json, to_json};
use super::tokens::{TokenHolder, Tokens};
use super::{ACT_AS_HEADER, TOKEN_ID_HEADER};
use crate::error::Error;
use crate::model::{Actor, Email, InviteId, KeyId, KeySpec, OrgId, Role, Timestamp};
use crate::store::{ConfigVersion, CreatedKey, ImportKey, Store};

/// The OpenAPI 3.1 document of the admin API, served at `/openapi.json`.
///
/// ```
/// let doc: serde_json::Value = serde_json::from_str(orgstore::server::OPENAPI).unwrap();
/// assert_eq!(doc["openapi"], "3.1.0");
/// ```
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// What every handler shares.
pub(crate) struct State {
    /// The store.
    pub(crate) store: Store,
    /// The body size limit.
    pub(crate) max_body: usize,
    /// The store's bearer tokens (`<db>.tokens`).
    pub(crate) tokens: Tokens,
}

pub(super) type Shared = Extract<Arc<State>>;
pub(super) type Answer = Result<Response, ApiError>;

type Route = (&'static str, &'static str, MethodRouter<Arc<State>>);

/// Every route: method, path, handler. The one list the router is built from and the
/// OpenAPI document is tested against.
fn table() -> Vec<Route> {
    vec![
        ("GET", "/openapi.json", get(openapi)),
        ("GET", "/v1/orgs", get(org_list)),
        ("POST", "/v1/orgs", post(org_create)),
        ("GET", "/v1/orgs/{org_id}", get(org_get)),
        ("DELETE", "/v1/orgs/{org_id}", delete(org_delete)),
        ("POST", "/v1/orgs/{org_id}/suspend", post(org_suspend)),
        ("POST", "/v1/orgs/{org_id}/resume", post(org_resume)),
        ("GET", "/v1/orgs/{org_id}/config", get(config_get)),
        ("PATCH", "/v1/orgs/{org_id}/config", patch(config_update)),
        (
            "GET",
            "/v1/orgs/{org_id}/config/versions",
            get(config_versions),
        ),
        ("GET", "/v1/orgs/{org_id}/config/diff", get(config_diff)),
        (
            "POST",
            "/v1/orgs/{org_id}/config/rollback",
            post(config_rollback),
        ),
        ("GET", "/v1/orgs/{org_id}/keys", get(key_list)),
        ("POST", "/v1/orgs/{org_id}/keys", post(key_create)),
        ("POST", "/v1/orgs/{org_id}/keys/import", post(key_import)),
        ("GET", "/v1/keys/{key_id}", get(key_show)),
        ("PATCH", "/v1/keys/{key_id}", patch(key_update)),
        ("DELETE", "/v1/keys/{key_id}", delete(key_revoke)),
        ("POST", "/v1/keys/{key_id}/rotate", post(key_rotate)),
        ("GET", "/v1/keys/{key_id}/usage", get(key_usage)),
        ("GET", "/v1/orgs/{org_id}/members", get(member_list)),
        ("POST", "/v1/orgs/{org_id}/members", post(member_add)),
        (
            "PATCH",
            "/v1/orgs/{org_id}/members/{email}",
            patch(member_set_role),
        ),
        (
            "DELETE",
            "/v1/orgs/{org_id}/members/{email}",
            delete(member_remove),
        ),
        ("GET", "/v1/members/{email}/orgs", get(member_orgs)),
        ("GET", "/v1/orgs/{org_id}/audit", get(audit_list)),
        ("GET", "/v1/orgs/{org_id}/usage", get(org_usage)),
        ("GET", "/v1/orgs/{org_id}/invites", get(invite_list)),
        ("POST", "/v1/orgs/{org_id}/invites", post(invite_create)),
        ("DELETE", "/v1/invites/{invite_id}", delete(invite_revoke)),
        ("POST", "/v1/invites/accept", post(invite_accept)),
        ("GET", "/v1/policy-set", get(policy_set::version)),
        ("PUT", "/v1/policy-set", put(policy_set::apply)),
        ("GET", "/v1/policy-set/versions", get(policy_set::history)),
        ("GET", "/v1/policy-set/diff", get(policy_set::diff)),
        ("GET", "/v1/policy-set/log", get(policy_set::log)),
        ("POST", "/v1/policy-set/impact", post(policy_set::impact)),
        (
            "POST",
            "/v1/policy-set/rollback",
            post(policy_set::rollback),
        ),
        ("GET", "/v1/orgs/{org_id}/entities", get(org_entities)),
        ("POST", "/v1/explain", post(explain)),
        ("POST", "/v1/check", post(check)),
        ("GET", "/v1/tokens", get(token_list)),
        ("POST", "/v1/tokens", post(token_create)),
        ("DELETE", "/v1/tokens/{token_id}", delete(token_revoke)),
    ]
}

/// The routes of the admin API as `(method, path)`, paths in OpenAPI's template syntax.
///
/// ```
/// let routes = orgstore::server::routes();
/// assert!(routes.contains(&("DELETE", "/v1/keys/{key_id}")));
/// ```
pub fn routes() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

/// The router over `state`.
pub(crate) fn router(state: Arc<State>) -> Router {
    table()
        .into_iter()
        .fold(Router::new(), |r, (_, path, handler)| {
            r.route(path, handler)
        })
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .with_state(state)
}

/// Serves one request through `router`, logging its method, path, status and whether it
/// acted as a member (never a body, a header value or a secret).
pub(crate) async fn handle(router: Router, req: Request<hyper::body::Incoming>) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let as_member = req.headers().contains_key(ACT_AS_HEADER);
    let mut router = router;
    let resp = match tower_service::Service::call(&mut router, req.map(Body::new)).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    tracing::info!(%method, path, status = resp.status().as_u16(), as_member, "admin request");
    resp
}

async fn no_route() -> ApiError {
    ApiError::new(
        404,
        "no_route",
        "no such route; see /openapi.json for the routes",
    )
}

async fn no_method() -> ApiError {
    ApiError::new(
        405,
        "method_not_allowed",
        "this route does not take that method; see /openapi.json",
    )
}

async fn openapi() -> Response {
    let mut resp = Response::new(Body::from(OPENAPI));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The acting principal: the operator, or the member named by [`ACT_AS_HEADER`].
pub(super) fn actor(headers: &HeaderMap) -> Result<Actor, ApiError> {
    let Some(v) = headers.get(ACT_AS_HEADER) else {
        return Ok(Actor::Operator);
    };
    let text = v.to_str().map_err(|_| {
        ApiError::field(
            400,
            "invalid_header",
            ACT_AS_HEADER,
            "give an email in ASCII",
        )
    })?;
    Email::parse(text)
        .map(Actor::Member)
        .map_err(|e| ApiError::field(400, "invalid_header", ACT_AS_HEADER, e.message()))
}

/// A value from the path, refused with 400 (naming the field) when it has the wrong shape.
fn from_path<T>(parse: impl FnOnce(&str) -> Result<T, Error>, text: &str) -> Result<T, ApiError> {
    parse(text).map_err(|e| ApiError::field(400, "invalid_path", e.field(), e.message()))
}

/// One query parameter (the values used here need no percent-decoding: numbers, booleans).
fn query<'a>(uri: &'a Uri, name: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A whole-number query parameter.
pub(super) fn query_number(uri: &Uri, name: &str) -> Result<Option<u64>, ApiError> {
    query(uri, name)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::field(400, "invalid_query", name, "give a whole number, e.g. 2")
            })
        })
        .transpose()
}

/// The two versions of a diff: `?from=1&to=2`, both required.
pub(super) fn versions(uri: &Uri) -> Result<(u64, u64), ApiError> {
    let need = |name: &str| {
        query_number(uri, name)?.ok_or_else(|| {
            ApiError::field(
                400,
                "invalid_query",
                name,
                "give both versions: ?from=1&to=2",
            )
        })
    };
    Ok((need("from")?, need("to")?))
}

/// Runs a store call on a blocking thread; a change made with a bearer token is audited
/// with the token's id.
pub(super) async fn blocking<T: Send + 'static>(
    state: &Arc<State>,
    headers: &HeaderMap,
    f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    let via = headers
        .get(TOKEN_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|id| format!("token {id}"));
    tokio::task::spawn_blocking(move || match via {
        Some(v) => f(&state.store.via(&v)),
        None => f(&state.store),
    })
    .await
    .map_err(|_| ApiError::new(500, "internal", "the operation failed unexpectedly; retry"))?
    .map_err(ApiError::from)
}

/// A body-less call on one id of the path: the id parsed (400 when it has the wrong
/// shape), `f` run as the acting principal, its result answered as JSON.
async fn on_id<I, T>(
    s: &Arc<State>,
    h: &HeaderMap,
    text: &str,
    parse: fn(&str) -> Result<I, Error>,
    f: impl FnOnce(&Store, &Actor, &I) -> Result<T, Error> + Send + 'static,
) -> Answer
where
    I: Send + 'static,
    T: serde::Serialize + Send + 'static,
{
    let a = actor(h)?;
    let id = from_path(parse, text)?;
    let v = blocking(s, h, move |st| f(st, &a, &id)).await?;
    ok(to_json(&v)?)
}

pub(super) fn ok(v: Value) -> Answer {
    Ok(json_response(200, &v))
}

fn created(v: Value) -> Answer {
    Ok(json_response(201, &v))
}

/// A config version as JSON: provider secrets masked unless `revealed`.
fn version_json(v: &ConfigVersion, revealed: bool) -> Value {
    text_json(&if revealed {
        v.to_revealed_json()
    } else {
        v.to_json()
    })
}

/// A new or rotated key: the full key, shown this once, and the stored key.
fn created_key_json(k: &CreatedKey) -> Result<Value, ApiError> {
    Ok(json!({ "key": k.key.expose(), "info": to_json(&k.info)? }))
}

/// A key spec from a JSON object: the fields given over the defaults of
/// [`KeySpec::new`], an unknown field refused.
fn key_spec(v: Value) -> Result<KeySpec, ApiError> {
    let shape = r#"{"name": "backend", "rate_limit_rpm": 100}"#;
    let Value::Object(given) = v else {
        return Err(ApiError::field(
            400,
            "invalid_body",
            "body",
            &format!("send a JSON object like {shape}"),
        ));
    };
    let mut spec = to_json(&KeySpec::new(""))?;
    let Value::Object(base) = &mut spec else {
        return Err(ApiError::new(
            500,
            "internal",
            "the key spec has no fields; report this",
        ));
    };
    for (k, v) in given {
        if !base.contains_key(&k) {
            let names: Vec<&str> = base.keys().map(String::as_str).collect();
            return Err(ApiError::field(
                400,
                "invalid_body",
                &k,
                &format!("is not a key setting; give one of {}", names.join(", ")),
            ));
        }
        base.insert(k, v);
    }
    serde_json::from_value(spec).map_err(|e| {
        ApiError::field(
            400,
            "invalid_body",
            "body",
            &format!("{e}; see /openapi.json"),
        )
    })
}

pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    state: &State,
    headers: &HeaderMap,
    body: Body,
    shape: &str,
) -> Result<T, ApiError> {
    body::media(headers, &[Media::Json])?;
    let bytes = body::read(body, state.max_body).await?;
    body::parse(&bytes, shape)
}

// ---- orgs

async fn org_list(Extract(s): Shared, h: HeaderMap) -> Answer {
    let a = actor(&h)?;
    let orgs = blocking(&s, &h, move |st| st.orgs().list(&a)).await?;
    ok(to_json(&orgs)?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrg {
    id: String,
    name: Option<String>,
    owner: String,
}

async fn org_create(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    let a = actor(&h)?;
    let n: NewOrg = json_body(
        &s,
        &h,
        body,
        r#"{"id": "acme", "name": "Acme", "owner": "o@acme.io"}"#,
    )
    .await?;
    let id = OrgId::parse(&n.id)?;
    let owner = Email::parse(&n.owner).map_err(|e| e.in_field("owner"))?;
    let name = n.name.unwrap_or_else(|| n.id.clone());
    let org = blocking(&s, &h, move |st| st.orgs().create(&a, &id, &name, &owner)).await?;
    created(to_json(&org)?)
}

async fn org_get(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    on_id(&s, &h, &org, OrgId::parse, |st, a, id| st.orgs().get(a, id)).await
}

async fn org_delete(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    on_id(&s, &h, &org, OrgId::parse, |st, a, id| {
        st.orgs().delete(a, id)
    })
    .await
}

async fn org_status(s: Arc<State>, h: HeaderMap, org: String, suspend: bool) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let c = blocking(&s, &h, move |st| {
        if suspend {
            st.orgs().suspend(&a, &id)
        } else {
            st.orgs().resume(&a, &id)
        }
    })
    .await?;
    ok(json!({ "org": to_json(&c.org)?, "before": c.before.as_str(), "changed": c.changed }))
}

async fn org_suspend(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    org_status(s, h, org, true).await
}

async fn org_resume(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    org_status(s, h, org, false).await
}

// ---- config

async fn config_get(Extract(s): Shared, h: HeaderMap, uri: Uri, Path(org): Path<String>) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let version = query_number(&uri, "version")?;
    let reveal = matches!(query(&uri, "reveal"), Some("true" | "1"));
    let v = blocking(&s, &h, move |st| {
        if reveal {
            st.org_configs().reveal(&a, &id, version)
        } else {
            st.org_configs().version(&a, &id, version)
        }
    })
    .await?;
    ok(version_json(&v, reveal))
}

/// `PATCH`: the SDK's `{"config": {...}}` (a merge patch in the `config` member) as
/// `application/json`, or a bare merge patch as `application/merge-patch+json`.
async fn config_update(
    Extract(s): Shared,
    h: HeaderMap,
    Path(org): Path<String>,
    body: Body,
) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let media = body::media(&h, &[Media::Json, Media::MergePatch])?;
    let bytes = body::read(body, s.max_body).await?;
    let patch = match media {
        Media::MergePatch => String::from_utf8(bytes.to_vec()).map_err(|_| {
            ApiError::field(
                400,
                "invalid_json",
                "body",
                "send the merge patch as UTF-8 JSON",
            )
        })?,
        Media::Json => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Update {
                config: Value,
            }
            let u: Update = body::parse(&bytes, r#"{"config": {"rate_limiting": {"rpm": 1000}}}"#)?;
            u.config.to_string()
        }
    };
    let v = blocking(&s, &h, move |st| st.org_configs().update(&a, &id, &patch)).await?;
    ok(version_json(&v, false))
}

async fn config_versions(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let vs = blocking(&s, &h, move |st| st.org_configs().history(&a, &id)).await?;
    ok(Value::Array(
        vs.iter().map(|v| version_json(v, false)).collect(),
    ))
}

async fn config_diff(
    Extract(s): Shared,
    h: HeaderMap,
    uri: Uri,
    Path(org): Path<String>,
) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let (from, to) = versions(&uri)?;
    let changes = blocking(&s, &h, move |st| st.org_configs().diff(&a, &id, from, to)).await?;
    let value = |v: &Option<String>| v.as_deref().map(text_json);
    let list: Vec<Value> = changes
        .iter()
        .map(|c| json!({"path": c.path, "old": value(&c.old), "new": value(&c.new)}))
        .collect();
    ok(Value::Array(list))
}

async fn config_rollback(
    Extract(s): Shared,
    h: HeaderMap,
    Path(org): Path<String>,
    body: Body,
) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rollback {
        version: u64,
    }
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let r: Rollback = json_body(&s, &h, body, r#"{"version": 2}"#).await?;
    let v = blocking(&s, &h, move |st| {
        st.org_configs().rollback(&a, &id, r.version)
    })
    .await?;
    ok(version_json(&v, false))
}

// ---- keys

async fn key_list(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    on_id(&s, &h, &org, OrgId::parse, |st, a, id| {
        st.keys().list(a, id)
    })
    .await
}

async fn key_create(
    Extract(s): Shared,
    h: HeaderMap,
    Path(org): Path<String>,
    body: Body,
) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let spec = key_spec(json_body(&s, &h, body, r#"{"name": "backend"}"#).await?)?;
    let k = blocking(&s, &h, move |st| st.keys().create(&a, &id, spec)).await?;
    created(created_key_json(&k)?)
}

async fn key_import(
    Extract(s): Shared,
    h: HeaderMap,
    Path(org): Path<String>,
    body: Body,
) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct One {
        sha256: String,
        spec: Value,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Import {
        keys: Vec<One>,
    }
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let shape = r#"{"keys": [{"sha256": "<64 hex>", "spec": {"name": "svc"}}]}"#;
    let i: Import = json_body(&s, &h, body, shape).await?;
    let keys = i
        .keys
        .into_iter()
        .map(|k| Ok(ImportKey::new(k.sha256, key_spec(k.spec)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    let infos = blocking(&s, &h, move |st| st.keys().import(&a, &id, &keys)).await?;
    created(to_json(&infos)?)
}

async fn key_show(Extract(s): Shared, h: HeaderMap, Path(key): Path<String>) -> Answer {
    on_id(&s, &h, &key, KeyId::parse, |st, a, id| {
        st.keys().show(a, id)
    })
    .await
}

async fn key_update(
    Extract(s): Shared,
    h: HeaderMap,
    Path(key): Path<String>,
    body: Body,
) -> Answer {
    let a = actor(&h)?;
    let id = from_path(KeyId::parse, &key)?;
    let spec = key_spec(json_body(&s, &h, body, r#"{"name": "backend"}"#).await?)?;
    let k = blocking(&s, &h, move |st| st.keys().update(&a, &id, spec)).await?;
    ok(to_json(&k)?)
}

async fn key_revoke(Extract(s): Shared, h: HeaderMap, Path(key): Path<String>) -> Answer {
    on_id(&s, &h, &key, KeyId::parse, |st, a, id| {
        st.keys().revoke(a, id)
    })
    .await
}

async fn key_rotate(Extract(s): Shared, h: HeaderMap, Path(key): Path<String>) -> Answer {
    let a = actor(&h)?;
    let id = from_path(KeyId::parse, &key)?;
    let k = blocking(&s, &h, move |st| st.keys().rotate(&a, &id)).await?;
    ok(created_key_json(&k)?)
}

async fn key_usage(Extract(s): Shared, h: HeaderMap, Path(key): Path<String>) -> Answer {
    on_id(&s, &h, &key, KeyId::parse, |st, a, id| {
        st.keys().usage(a, id)
    })
    .await
}

// ---- members

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: String,
}

fn role(text: &str) -> Result<Role, ApiError> {
    text.parse::<Role>()
        .map_err(|e| ApiError::from(e.in_field("role")))
}

async fn member_list(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    on_id(&s, &h, &org, OrgId::parse, |st, a, id| {
        st.members().list(a, id)
    })
    .await
}

async fn member_add(
    Extract(s): Shared,
    h: HeaderMap,
    Path(org): Path<String>,
    body: Body,
) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewMember {
        email: String,
        role: String,
    }
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let n: NewMember = json_body(
        &s,
        &h,
        body,
        r#"{"email": "a@acme.io", "role": "developer"}"#,
    )
    .await?;
    let email = Email::parse(&n.email)?;
    let r = role(&n.role)?;
    let m = blocking(&s, &h, move |st| st.members().add(&a, &id, &email, r)).await?;
    created(to_json(&m)?)
}

async fn member_set_role(
    Extract(s): Shared,
    h: HeaderMap,
    Path((org, email)): Path<(String, String)>,
    body: Body,
) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let email = from_path(Email::parse, &email)?;
    let b: RoleBody = json_body(&s, &h, body, r#"{"role": "admin"}"#).await?;
    let r = role(&b.role)?;
    let m = blocking(&s, &h, move |st| st.members().set_role(&a, &id, &email, r)).await?;
    ok(to_json(&m)?)
}

async fn member_remove(
    Extract(s): Shared,
    h: HeaderMap,
    Path((org, email)): Path<(String, String)>,
) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let email = from_path(Email::parse, &email)?;
    let shown = email.as_str().to_owned();
    blocking(&s, &h, move |st| st.members().remove(&a, &id, &email)).await?;
    ok(json!({ "org": org, "email": shown, "removed": true }))
}

async fn member_orgs(Extract(s): Shared, h: HeaderMap, Path(email): Path<String>) -> Answer {
    let a = actor(&h)?;
    let email = from_path(Email::parse, &email)?;
    let orgs = blocking(&s, &h, move |st| st.members().orgs_of(&a, &email)).await?;
    ok(Value::Array(
        orgs.iter()
            .map(|(o, r)| json!({ "org": o.as_str(), "role": r.as_str() }))
            .collect(),
    ))
}

// ---- audit, usage

async fn audit_list(Extract(s): Shared, h: HeaderMap, uri: Uri, Path(org): Path<String>) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let limit = query_number(&uri, "limit")?.unwrap_or(50);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let entries = blocking(&s, &h, move |st| st.audit().list(&a, &id, limit)).await?;
    ok(to_json(&entries)?)
}

async fn org_usage(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    on_id(&s, &h, &org, OrgId::parse, |st, a, id| {
        st.orgs().usage(a, id)
    })
    .await
}

// ---- invitations

async fn invite_list(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    on_id(&s, &h, &org, OrgId::parse, |st, a, id| {
        st.invites().list(a, id)
    })
    .await
}

async fn invite_create(
    Extract(s): Shared,
    h: HeaderMap,
    Path(org): Path<String>,
    body: Body,
) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewInvite {
        email: String,
        role: String,
        expires_in_hours: Option<u64>,
    }
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let n: NewInvite = json_body(
        &s,
        &h,
        body,
        r#"{"email": "new@acme.io", "role": "member", "expires_in_hours": 168}"#,
    )
    .await?;
    let email = Email::parse(&n.email)?;
    let r = role(&n.role)?;
    let valid_for = match n.expires_in_hours {
        Some(h) => std::time::Duration::from_secs(h.saturating_mul(3600)),
        None => crate::store::DEFAULT_INVITE_VALIDITY,
    };
    let made = blocking(&s, &h, move |st| {
        st.invites().create_valid_for(&a, &id, &email, r, valid_for)
    })
    .await?;
    created(json!({ "invite": to_json(&made.invite)?, "token": made.token.expose() }))
}

async fn invite_revoke(Extract(s): Shared, h: HeaderMap, Path(id): Path<String>) -> Answer {
    on_id(&s, &h, &id, InviteId::parse, |st, a, id| {
        st.invites().revoke(a, id)
    })
    .await
}

/// Accepting needs no credential but the invitation's token (over TCP too): the invited
/// person has none yet. With `"access_token": true` it also issues their first member
/// access token.
async fn invite_accept(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Accept {
        token: String,
        #[serde(default)]
        access_token: bool,
    }
    let b: Accept = json_body(
        &s,
        &h,
        body,
        r#"{"token": "orgstore_inv_...", "access_token": true}"#,
    )
    .await?;
    let tokens = s.tokens.clone();
    let (joined, issued) = blocking(&s, &h, move |st| {
        let joined = st.invites().accept(&b.token)?;
        let issued = if b.access_token {
            Some(tokens.create(TokenHolder::Member(joined.member.email.clone()), None)?)
        } else {
            None
        };
        Ok((joined, issued))
    })
    .await?;
    let mut v = json!({ "invite": to_json(&joined.invite)?, "member": to_json(&joined.member)? });
    if let Some((info, secret)) = issued {
        let mut t = info.to_json();
        t["token"] = Value::String(secret);
        v["access_token"] = t;
    }
    ok(v)
}

// ---- access tokens: the operator manages every token, a member their own

async fn token_list(Extract(s): Shared, h: HeaderMap) -> Answer {
    let a = actor(&h)?;
    let tokens = s.tokens.clone();
    let list = blocking(&s, &h, move |_| tokens.list()).await?;
    let shown: Vec<Value> = list
        .iter()
        .filter(|t| match &a {
            Actor::Operator => true,
            Actor::Member(e) => t.holder == TokenHolder::Member(e.clone()),
        })
        .map(super::tokens::TokenInfo::to_json)
        .collect();
    ok(Value::Array(shown))
}

async fn token_create(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct NewToken {
        email: Option<String>,
        #[serde(default)]
        operator: bool,
        expires_at: Option<String>,
    }
    let a = actor(&h)?;
    let n: NewToken = json_body(
        &s,
        &h,
        body,
        r#"{"email": "me@acme.io", "expires_at": "2027-01-01T00:00:00Z"}"#,
    )
    .await?;
    let holder = match (&a, n.operator, n.email) {
        (_, true, Some(_)) => {
            return Err(ApiError::field(
                400,
                "invalid_body",
                "operator",
                "give either an email or operator, not both",
            ));
        }
        (Actor::Operator, true, None) => TokenHolder::Operator,
        (Actor::Member(_), true, None) => {
            return Err(ApiError::field(
                403,
                "denied",
                "operator",
                "only the operator makes operator tokens; ask for a member access token",
            ));
        }
        (Actor::Member(me), false, None) => TokenHolder::Member(me.clone()),
        (_, false, Some(e)) => {
            let e = Email::parse(&e).map_err(|e| e.in_field("email"))?;
            if let Actor::Member(me) = &a
                && me != &e
            {
                return Err(ApiError::field(
                    403,
                    "denied",
                    "email",
                    "a member makes access tokens for their own email only",
                ));
            }
            TokenHolder::Member(e)
        }
        (Actor::Operator, false, None) => {
            return Err(ApiError::field(
                400,
                "invalid_body",
                "email",
                "give the member's email, or operator: true",
            ));
        }
    };
    let expires = n
        .expires_at
        .map(|t| Timestamp::parse(&t).map_err(|e| e.in_field("expires_at")))
        .transpose()?;
    let tokens = s.tokens.clone();
    let (info, secret) = blocking(&s, &h, move |_| tokens.create(holder, expires)).await?;
    let mut v = info.to_json();
    v["token"] = Value::String(secret);
    created(v)
}

async fn token_revoke(Extract(s): Shared, h: HeaderMap, Path(id): Path<String>) -> Answer {
    let a = actor(&h)?;
    let tokens = s.tokens.clone();
    let info = blocking(&s, &h, move |_| {
        if let Actor::Member(me) = &a {
            // Another holder's token answers like one that does not exist.
            let mine = tokens
                .list()?
                .into_iter()
                .any(|t| t.id == id && t.holder == TokenHolder::Member(me.clone()));
            if !mine {
                return Err(Error::not_found(
                    "token id",
                    format!(
                        "no token {}; see GET /v1/tokens",
                        id.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        tokens.revoke(&id)
    })
    .await?;
    ok(info.to_json())
}

// ---- policy: entities, explain

async fn org_entities(Extract(s): Shared, h: HeaderMap, Path(org): Path<String>) -> Answer {
    let a = actor(&h)?;
    let id = from_path(OrgId::parse, &org)?;
    let text = blocking(&s, &h, move |st| st.policy_entities(&a, &id)).await?;
    ok(text_json(&text))
}

/// `policy explain`: how the store's active policies (plus, what if, the files given as
/// `policies`) decide an action, as a report.
async fn explain(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        action: String,
        target: String,
        new_role: Option<String>,
        #[serde(default)]
        has_expiry: bool,
        /// What if: these files added to the active set (`policy explain --policies DIR`).
        policies: Option<Vec<policy_set::File>>,
    }
    let a = actor(&h)?;
    let q: Ask = json_body(
        &s,
        &h,
        body,
        r#"{"action": "ChangeRole", "target": "member:acme/bob@acme.io", "new_role": "admin"}"#,
    )
    .await?;
    let action = crate::policy::AdminAction::from_name(q.action.trim()).ok_or_else(|| {
        ApiError::field(
            422,
            "invalid",
            "action",
            "is not a Cedar action; see policies/schema.cedarschema",
        )
    })?;
    let new_role = q.new_role.as_deref().map(role).transpose()?;
    let r = blocking(&s, &h, move |st| match &q.policies {
        None => st.explain(&a, action, &q.target, new_role, q.has_expiry),
        Some(files) => {
            let sources: Vec<(&str, &str)> = files
                .iter()
                .map(|f| (f.name.as_str(), f.text.as_str()))
                .collect();
            let what_if = st.policies().with_sources(&sources)?;
            st.explain_what_if(&what_if, &a, action, &q.target, new_role, q.has_expiry)
        }
    })
    .await?;
    ok(r.to_value())
}

/// `check`: one decision of the live gateway for a key, a model and a client address, as
/// a request of the gateway would get it (it counts against the key's rate limits). The
/// key is in the body, never in a log line.
async fn check(Extract(s): Shared, h: HeaderMap, body: Body) -> Answer {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Ask {
        key: String,
        model: String,
        ip: Option<String>,
        estimate: Option<String>,
    }
    // The operator's question (a member token may ask too: the answer names only the
    // key's own org and limits, and only to whoever holds the key).
    actor(&h)?;
    let q: Ask = json_body(
        &s,
        &h,
        body,
        r#"{"key": "sk-agentcc-...", "model": "gpt-4o", "ip": "203.0.113.7", "estimate": "0.01"}"#,
    )
    .await?;
    let ip: std::net::IpAddr = match q.ip.as_deref() {
        Some(text) => text.parse().map_err(|_| {
            ApiError::field(
                422,
                "invalid",
                "ip",
                "give an IPv4 or IPv6 address, e.g. 203.0.113.7",
            )
        })?,
        None => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    };
    let estimate = q
        .estimate
        .as_deref()
        .map(|e| crate::model::Usd::parse(e).map_err(|e| e.in_field("estimate")))
        .transpose()?;
    let key = zeroize::Zeroizing::new(q.key);
    let model = q.model;
    let answer = blocking(&s, &h, move |st| {
        let mut req = crate::Request::new(&key, &model, ip);
        if let Some(e) = estimate {
            req = req.estimate(e);
        }
        Ok(match st.gateway().check(&req) {
            Ok(g) => g.to_json(),
            Err(d) => d.to_json(),
        })
    })
    .await?;
    ok(answer)
}
