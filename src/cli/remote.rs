//! The CLI against a live store: when a server answers on the store's socket (`<db>.sock`),
//! the commands that change or read the store go through its admin API instead of opening
//! the file (which the server holds). A small synchronous HTTP/1.1 client over the Unix
//! socket; the answers are the library's types in their serde form, printed by the same
//! code as a direct call.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orgstore::{
    AuditEntry, Email, ImportKey, Invite, InviteId, KeyId, KeyInfo, KeySpec, Member, Org, OrgId,
    Role, UsageReport,
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::CliError;

/// The header with which the operator acts as a member (`--as`).
const ACT_AS: &str = "x-orgstore-as";

/// Where the server is.
enum Target {
    /// The store's socket.
    Socket(PathBuf),
    /// `--remote http://HOST:PORT`, with the bearer token of `ORGSTORE_TOKEN`.
    Tcp { addr: String, token: String },
}

/// A server on the store's socket, or at `--remote`.
pub(crate) struct Remote {
    target: Target,
    as_member: Option<String>,
}

/// The socket beside `db`: `<db>.sock`.
fn socket_of(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(".sock");
    PathBuf::from(s)
}

impl Remote {
    /// The server answering on `<db>.sock`, if one does.
    pub(crate) fn detect(db: &Path, as_member: Option<&Email>) -> Option<Self> {
        let socket = socket_of(db);
        UnixStream::connect(&socket).ok()?;
        Some(Self {
            target: Target::Socket(socket),
            as_member: as_member.map(|e| e.as_str().to_owned()),
        })
    }

    /// The server at `url` (`http://HOST:PORT`), authenticated with `token`.
    pub(crate) fn tcp(
        url: &str,
        token: Option<String>,
        as_member: Option<&Email>,
    ) -> Result<Self, CliError> {
        let addr = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| {
                CliError::invalid(
                    "--remote",
                    "give the server as http://HOST:PORT (for https, run a local TLS proxy and point --remote at it)",
                )
            })?;
        let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
            CliError::invalid(
                "ORGSTORE_TOKEN",
                "set it to a token from `orgstore token create` on the server's host",
            )
        })?;
        Ok(Self {
            target: Target::Tcp {
                addr: addr.to_owned(),
                token,
            },
            as_member: as_member.map(|e| e.as_str().to_owned()),
        })
    }

    fn describe(&self) -> String {
        match &self.target {
            Target::Socket(p) => format!("`{}`", p.display()),
            Target::Tcp { addr, .. } => format!("http://{addr}"),
        }
    }

    /// One request; the answer's JSON, or its error as a CLI error with the exit code of
    /// its kind.
    pub(super) fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let unreachable = |e: std::io::Error| {
            CliError::invalid(
                "socket",
                format!(
                    "the server on {} did not answer ({e}); check that it still runs",
                    self.describe()
                ),
            )
        };
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\
             content-length: {}\r\n",
            payload.len()
        );
        if body.is_some() {
            req.push_str("content-type: application/json\r\n");
        }
        if let Some(e) = &self.as_member {
            req.push_str(&format!("{ACT_AS}: {e}\r\n"));
        }
        if let Target::Tcp { token, .. } = &self.target {
            req.push_str(&format!("authorization: Bearer {token}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&payload);
        let raw = match &self.target {
            Target::Socket(p) => UnixStream::connect(p).and_then(|s| exchange(s, &req)),
            Target::Tcp { addr, .. } => {
                TcpStream::connect(addr.as_str()).and_then(|s| exchange(s, &req))
            }
        }
        .map_err(unreachable)?;
        let text = String::from_utf8_lossy(&raw);
        let bad = || {
            CliError::invalid(
                "socket",
                "the server's answer is not HTTP; check the socket path",
            )
        };
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let value: Value = serde_json::from_str(body).map_err(|_| bad())?;
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let e = &value["error"];
        let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
        Err(super::CliError::from_remote(
            &text("code"),
            &text("field"),
            &text("message"),
        ))
    }

    pub(super) fn get<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, CliError> {
        let v = self.call(method, path, body)?;
        serde_json::from_value(v).map_err(|e| {
            CliError::invalid(
                "socket",
                format!(
                    "the server's answer has another shape ({e}); use a CLI of the server's version"
                ),
            )
        })
    }

    /// `key create`: the stored key and the full key.
    pub(crate) fn key_create(
        &self,
        org: &OrgId,
        spec: &KeySpec,
    ) -> Result<(KeyInfo, String), CliError> {
        let body = serde_json::to_value(spec)
            .map_err(|e| CliError::invalid("key", format!("cannot encode the settings ({e})")))?;
        let v = self.call(
            "POST",
            &format!("/v1/orgs/{}/keys", org.as_str()),
            Some(&body),
        )?;
        self.secret(v)
    }

    /// `key rotate`.
    pub(crate) fn key_rotate(&self, id: &KeyId) -> Result<(KeyInfo, String), CliError> {
        let v = self.call("POST", &format!("/v1/keys/{id}/rotate"), None)?;
        self.secret(v)
    }

    fn secret(&self, v: Value) -> Result<(KeyInfo, String), CliError> {
        let key = v["key"].as_str().unwrap_or_default().to_owned();
        let info = serde_json::from_value(v["info"].clone()).map_err(|e| {
            CliError::invalid(
                "socket",
                format!("the server's answer has another shape ({e})"),
            )
        })?;
        Ok((info, key))
    }

    /// `key list`.
    pub(crate) fn key_list(&self, org: &OrgId) -> Result<Vec<KeyInfo>, CliError> {
        self.get("GET", &format!("/v1/orgs/{}/keys", org.as_str()), None)
    }

    /// `key show`.
    pub(crate) fn key_show(&self, id: &KeyId) -> Result<KeyInfo, CliError> {
        self.get("GET", &format!("/v1/keys/{id}"), None)
    }

    /// `key revoke`.
    pub(crate) fn key_revoke(&self, id: &KeyId) -> Result<KeyInfo, CliError> {
        self.get("DELETE", &format!("/v1/keys/{id}"), None)
    }

    /// `member add`.
    pub(crate) fn member_add(
        &self,
        org: &OrgId,
        email: &Email,
        role: Role,
    ) -> Result<Member, CliError> {
        let body = json!({ "email": email.as_str(), "role": role.as_str() });
        self.get(
            "POST",
            &format!("/v1/orgs/{}/members", org.as_str()),
            Some(&body),
        )
    }

    /// `member list`.
    pub(crate) fn member_list(&self, org: &OrgId) -> Result<Vec<Member>, CliError> {
        self.get("GET", &format!("/v1/orgs/{}/members", org.as_str()), None)
    }

    /// `member role`.
    pub(crate) fn member_role(
        &self,
        org: &OrgId,
        email: &Email,
        role: Role,
    ) -> Result<Member, CliError> {
        let body = json!({ "role": role.as_str() });
        let path = format!(
            "/v1/orgs/{}/members/{}",
            org.as_str(),
            segment(email.as_str())
        );
        self.get("PATCH", &path, Some(&body))
    }

    /// `member remove`.
    pub(crate) fn member_remove(&self, org: &OrgId, email: &Email) -> Result<(), CliError> {
        let path = format!(
            "/v1/orgs/{}/members/{}",
            org.as_str(),
            segment(email.as_str())
        );
        self.call("DELETE", &path, None).map(|_| ())
    }

    /// `config get`: the version's JSON (as the CLI's `--json` prints it) with `config`.
    pub(crate) fn config_get(
        &self,
        org: &OrgId,
        version: Option<u64>,
        reveal: bool,
    ) -> Result<Value, CliError> {
        let mut path = format!("/v1/orgs/{}/config?reveal={reveal}", org.as_str());
        if let Some(v) = version {
            path.push_str(&format!("&version={v}"));
        }
        self.call("GET", &path, None)
    }

    /// `config set`: the merge patch in the SDK's `{"config": ...}` body.
    pub(crate) fn config_set(&self, org: &OrgId, patch: &str) -> Result<Value, CliError> {
        let patch: Value = serde_json::from_str(patch)
            .map_err(|e| CliError::invalid("patch", format!("{e}; give a JSON object")))?;
        self.call(
            "PATCH",
            &format!("/v1/orgs/{}/config", org.as_str()),
            Some(&json!({ "config": patch })),
        )
    }
}

impl Remote {
    /// `org create`.
    pub(crate) fn org_create(
        &self,
        id: &OrgId,
        name: &str,
        owner: &Email,
    ) -> Result<Org, CliError> {
        let body = json!({ "id": id.as_str(), "name": name, "owner": owner.as_str() });
        self.get("POST", "/v1/orgs", Some(&body))
    }

    /// `org list`.
    pub(crate) fn org_list(&self) -> Result<Vec<Org>, CliError> {
        self.get("GET", "/v1/orgs", None)
    }

    /// `org show`.
    pub(crate) fn org_show(&self, id: &OrgId) -> Result<Org, CliError> {
        self.get("GET", &format!("/v1/orgs/{}", id.as_str()), None)
    }

    /// `org delete`.
    pub(crate) fn org_delete(&self, id: &OrgId) -> Result<Org, CliError> {
        self.get("DELETE", &format!("/v1/orgs/{}", id.as_str()), None)
    }

    /// `config rollback`: the new (or unchanged) version's JSON.
    pub(crate) fn config_rollback(&self, org: &OrgId, version: u64) -> Result<Value, CliError> {
        let path = format!("/v1/orgs/{}/config/rollback", org.as_str());
        self.call("POST", &path, Some(&json!({ "version": version })))
    }

    /// `key import`.
    pub(crate) fn key_import(
        &self,
        org: &OrgId,
        keys: &[ImportKey],
    ) -> Result<Vec<KeyInfo>, CliError> {
        let keys: Vec<Value> = keys
            .iter()
            .map(|k| json!({ "sha256": k.sha256_hex, "spec": k.spec }))
            .collect();
        let path = format!("/v1/orgs/{}/keys/import", org.as_str());
        self.get("POST", &path, Some(&json!({ "keys": keys })))
    }

    /// `member orgs`.
    pub(crate) fn member_orgs(&self, email: &Email) -> Result<Vec<(OrgId, Role)>, CliError> {
        let v = self.call(
            "GET",
            &format!("/v1/members/{}/orgs", segment(email.as_str())),
            None,
        )?;
        let shape = || {
            CliError::invalid(
                "socket",
                "the server's answer has another shape; use a CLI of the server's version",
            )
        };
        v.as_array()
            .ok_or_else(shape)?
            .iter()
            .map(|o| {
                let org = o["org"].as_str().and_then(|s| OrgId::parse(s).ok());
                let role = o["role"].as_str().and_then(|s| s.parse().ok());
                org.zip(role).ok_or_else(shape)
            })
            .collect()
    }

    /// `audit`.
    pub(crate) fn audit(&self, org: &OrgId, limit: usize) -> Result<Vec<AuditEntry>, CliError> {
        self.get(
            "GET",
            &format!("/v1/orgs/{}/audit?limit={limit}", org.as_str()),
            None,
        )
    }
}

impl Remote {
    /// `org suspend` (`suspend`) and `org resume`: the org after the call and whether it
    /// changed.
    pub(crate) fn org_status(
        &self,
        id: &OrgId,
        suspend: bool,
    ) -> Result<super::org::Changed, CliError> {
        let verb = if suspend { "suspend" } else { "resume" };
        let v = self.call("POST", &format!("/v1/orgs/{}/{verb}", id.as_str()), None)?;
        let org = serde_json::from_value(v["org"].clone()).map_err(|e| shape(&e))?;
        Ok(super::org::Changed {
            org,
            changed: v["changed"] == Value::Bool(true),
        })
    }

    /// `config history`: every version's JSON, oldest first.
    pub(crate) fn config_history(&self, org: &OrgId) -> Result<Vec<Value>, CliError> {
        self.get(
            "GET",
            &format!("/v1/orgs/{}/config/versions", org.as_str()),
            None,
        )
    }

    /// `config diff`: `(path, old, new)`, the values as JSON text.
    pub(crate) fn config_diff(
        &self,
        org: &OrgId,
        from: u64,
        to: u64,
    ) -> Result<Vec<super::config::Change>, CliError> {
        let list: Vec<Value> = self.get(
            "GET",
            &format!("/v1/orgs/{}/config/diff?from={from}&to={to}", org.as_str()),
            None,
        )?;
        let text = |v: &Value| (!v.is_null()).then(|| v.to_string());
        Ok(list
            .iter()
            .map(|c| {
                (
                    c["path"].as_str().unwrap_or_default().to_owned(),
                    text(&c["old"]),
                    text(&c["new"]),
                )
            })
            .collect())
    }

    /// `policy entities`: the JSON text.
    pub(crate) fn entities(&self, org: &OrgId) -> Result<String, CliError> {
        let v = self.call("GET", &format!("/v1/orgs/{}/entities", org.as_str()), None)?;
        Ok(v.to_string())
    }

    /// `policy explain` under the store's own policies, plus `what_if` files (`--policies`).
    pub(crate) fn explain(
        &self,
        action: orgstore::AdminAction,
        target: &str,
        new_role: Option<Role>,
        has_expiry: bool,
        what_if: Option<&[(String, String)]>,
    ) -> Result<orgstore::ExplainReport, CliError> {
        let mut body = json!({
            "action": action.cedar_name(),
            "target": target,
            "new_role": new_role.map(Role::as_str),
            "has_expiry": has_expiry,
        });
        if let Some(files) = what_if {
            body["policies"] = super::remote_policy::files_json(files);
        }
        let v = self.call("POST", "/v1/explain", Some(&body))?;
        Ok(orgstore::ExplainReport::from_value(&v)?)
    }

    /// `check`: the live gateway's decision as JSON.
    pub(crate) fn check(
        &self,
        key: &str,
        model: &str,
        ip: std::net::IpAddr,
        estimate: Option<orgstore::Usd>,
    ) -> Result<Value, CliError> {
        let body = json!({
            "key": key,
            "model": model,
            "ip": ip.to_string(),
            "estimate": estimate.map(|e| e.to_string()),
        });
        self.call("POST", "/v1/check", Some(&body))
    }

    /// `usage ORG`.
    pub(crate) fn org_usage(&self, org: &OrgId) -> Result<UsageReport, CliError> {
        self.get("GET", &format!("/v1/orgs/{}/usage", org.as_str()), None)
    }

    /// `usage ORG --key ID`.
    pub(crate) fn key_usage(&self, id: &KeyId) -> Result<UsageReport, CliError> {
        self.get("GET", &format!("/v1/keys/{id}/usage"), None)
    }

    /// `member invite`: the invitation and its token.
    pub(crate) fn invite_create(
        &self,
        org: &OrgId,
        email: &Email,
        role: Role,
        expires_in_hours: u64,
    ) -> Result<(Invite, String), CliError> {
        let body = json!({
            "email": email.as_str(),
            "role": role.as_str(),
            "expires_in_hours": expires_in_hours,
        });
        let v = self.call(
            "POST",
            &format!("/v1/orgs/{}/invites", org.as_str()),
            Some(&body),
        )?;
        let token = v["token"].as_str().unwrap_or_default().to_owned();
        let invite = serde_json::from_value(v["invite"].clone()).map_err(|e| {
            CliError::invalid(
                "socket",
                format!("the server's answer has another shape ({e})"),
            )
        })?;
        Ok((invite, token))
    }

    /// `member invites`.
    pub(crate) fn invite_list(&self, org: &OrgId) -> Result<Vec<Invite>, CliError> {
        self.get("GET", &format!("/v1/orgs/{}/invites", org.as_str()), None)
    }

    /// `member revoke-invite`.
    pub(crate) fn invite_revoke(&self, id: &InviteId) -> Result<Invite, CliError> {
        self.get("DELETE", &format!("/v1/invites/{id}"), None)
    }

    /// `member accept`: the answer as the admin API gives it.
    pub(crate) fn invite_accept(&self, token: &str, access_token: bool) -> Result<Value, CliError> {
        let body = json!({ "token": token, "access_token": access_token });
        self.call("POST", "/v1/invites/accept", Some(&body))
    }
}

/// The error for an answer of another shape than this CLI expects.
pub(super) fn shape(e: &serde_json::Error) -> CliError {
    CliError::invalid(
        "socket",
        format!("the server's answer has another shape ({e}); use a CLI of the server's version"),
    )
}

/// Writes a request and reads the answer to its end (the server closes after one).
fn exchange<S: Read + Write + Timeout>(mut stream: S, req: &str) -> std::io::Result<Vec<u8>> {
    stream.timeout(Duration::from_secs(60))?;
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

/// A read timeout on either kind of stream.
trait Timeout {
    fn timeout(&self, t: Duration) -> std::io::Result<()>;
}

impl Timeout for UnixStream {
    fn timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

impl Timeout for TcpStream {
    fn timeout(&self, t: Duration) -> std::io::Result<()> {
        self.set_read_timeout(Some(t))
    }
}

/// A path segment: every byte outside the unreserved set and `@` percent-encoded.
pub(super) fn segment(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}
