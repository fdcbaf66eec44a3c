//! The admin API (feature `server`): status codes and error bodies, the socket's peer check,
//! limits (body size, slow clients), the OpenAPI document against the routes, and the CLI
//! against a live server holding the store.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orgstore::server::{AdminServer, OPENAPI, RunningServer, ServerLimits, routes};
use orgstore::{Actor, Email, KeySpec, Request, Role, Store};
use serde_json::{Value, json};

use crate::common::{self, Cli, OP};

/// One answer: status and JSON body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

/// Sends raw bytes and reads the whole answer (the request asks the server to close).
pub(crate) fn raw(socket: &Path, bytes: &[u8]) -> Option<Answer> {
    let s = UnixStream::connect(socket).unwrap();
    // A safety net against a hung test, not a timing assertion.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    exchange(s, bytes)
}

/// Writes a request and reads the answer to the end.
pub(crate) fn exchange(mut s: impl Read + Write, bytes: &[u8]) -> Option<Answer> {
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    })
}

/// A request with an optional JSON body, as the operator or (`as_member`) a member.
pub(crate) fn call(
    socket: &Path,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
    as_member: Option<&str>,
) -> Answer {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    if let Some(e) = as_member {
        req.push_str(&format!("x-orgstore-as: {e}\r\n"));
    }
    let payload = match body {
        Some((ty, b)) => {
            req.push_str(&format!("content-type: {ty}\r\n"));
            b
        }
        None => "",
    };
    req.push_str(&format!(
        "content-length: {}\r\n\r\n{payload}",
        payload.len()
    ));
    raw(socket, req.as_bytes()).expect("an HTTP answer")
}

pub(crate) fn json_call(
    socket: &Path,
    method: &str,
    path: &str,
    body: &Value,
    as_member: Option<&str>,
) -> Answer {
    call(
        socket,
        method,
        path,
        Some(("application/json", &body.to_string())),
        as_member,
    )
}

/// A store file with org `acme` (owner ann, viewer vic) and org `globex` (owner gus),
/// served on its default socket.
pub(crate) struct Served {
    _dir: tempfile::TempDir,
    pub(crate) db: PathBuf,
    pub(crate) store: Store,
    pub(crate) server: Option<RunningServer>,
}

impl Served {
    pub(crate) fn new(limits: ServerLimits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = common::db_path(dir.path());
        let store = common::open_file_fast(dir.path());
        common::create_org(&store, "acme", "ann@acme.io");
        common::create_org(&store, "globex", "gus@globex.io");
        store
            .members()
            .add(
                &OP,
                &common::org("acme"),
                &common::email("vic@acme.io"),
                Role::Viewer,
            )
            .unwrap();
        let server = AdminServer::new(&store)
            .limits(limits)
            .serve_unix(&db)
            .unwrap();
        Self {
            _dir: dir,
            db,
            store,
            server: Some(server),
        }
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.server.as_ref().unwrap().socket_path().to_owned()
    }
}

#[test]
fn statuses_and_error_bodies() {
    let s = Served::new(ServerLimits::default());
    let sock = s.socket();
    // 201 / 200
    let created = json_call(
        &sock,
        "POST",
        "/v1/orgs/acme/keys",
        &json!({"name": "svc", "rate_limit_rpm": 10}),
        None,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        created.body["key"]
            .as_str()
            .unwrap()
            .starts_with("sk-agentcc-")
    );
    let key_id = created.body["info"]["id"].as_str().unwrap().to_owned();
    let got = call(&sock, "GET", &format!("/v1/keys/{key_id}"), None, None);
    assert_eq!(got.status, 200);
    assert!(
        got.body.get("key").is_none(),
        "the full key is shown only once"
    );
    // 400: not JSON, a wrong shape, a path id of the wrong shape, an unknown key setting
    let bad = call(
        &sock,
        "POST",
        "/v1/orgs/acme/keys",
        Some(("application/json", "{\"name\": ")),
        None,
    );
    assert_eq!(
        (bad.status, bad.body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let bad = json_call(
        &sock,
        "POST",
        "/v1/orgs/acme/members",
        &json!({"email": 3}),
        None,
    );
    assert_eq!(bad.status, 400);
    let bad = call(&sock, "GET", "/v1/keys/not-a-key", None, None);
    assert_eq!(
        (bad.status, bad.body["error"]["code"].as_str()),
        (400, Some("invalid_path"))
    );
    assert_eq!(bad.body["error"]["field"], "key id");
    let bad = json_call(
        &sock,
        "POST",
        "/v1/orgs/acme/keys",
        &json!({"name": "a", "rpmm": 1}),
        None,
    );
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (400, Some("rpmm"))
    );
    // 415: a wrong content type
    let bad = call(
        &sock,
        "POST",
        "/v1/orgs/acme/keys",
        Some(("text/plain", "{}")),
        None,
    );
    assert_eq!(bad.status, 415);
    // 422: a valid shape with an invalid value (the message names the field and the fix)
    let bad = json_call(
        &sock,
        "PATCH",
        "/v1/orgs/acme/config",
        &json!({"config": {"rate_limiting": {"rpm": -1}}}),
        None,
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(!bad.body["error"]["message"].as_str().unwrap().is_empty());
    // 403: the action, the role and the deciding policies
    let denied = json_call(
        &sock,
        "POST",
        "/v1/orgs/acme/keys",
        &json!({"name": "x"}),
        Some("vic@acme.io"),
    );
    assert_eq!(denied.status, 403, "{}", denied.body);
    let e = &denied.body["error"];
    assert_eq!(
        (e["code"].as_str(), e["action"].as_str(), e["role"].as_str()),
        (Some("denied"), Some("CreateKey"), Some("viewer"))
    );
    assert!(e["policy_ids"].is_array());
    // 404: another org's key answers exactly like a missing one
    let other = s
        .store
        .keys()
        .create(&OP, &common::org("globex"), KeySpec::new("g"))
        .unwrap();
    let theirs = call(
        &sock,
        "GET",
        &format!("/v1/keys/{}", other.info.id),
        None,
        Some("ann@acme.io"),
    );
    let missing_id = "key_00000000000000000000000000000000";
    let missing = call(
        &sock,
        "GET",
        &format!("/v1/keys/{missing_id}"),
        None,
        Some("ann@acme.io"),
    );
    assert_eq!((theirs.status, missing.status), (404, 404));
    let strip = |b: &Value| {
        b.to_string()
            .replace(&other.info.id.to_string(), "ID")
            .replace(missing_id, "ID")
    };
    assert_eq!(strip(&theirs.body), strip(&missing.body));
    let theirs = call(
        &sock,
        "GET",
        "/v1/orgs/globex/config",
        None,
        Some("ann@acme.io"),
    );
    let missing = call(
        &sock,
        "GET",
        "/v1/orgs/nosuch/config",
        None,
        Some("ann@acme.io"),
    );
    assert_eq!((theirs.status, missing.status), (404, 404));
    assert_eq!(
        theirs.body.to_string().replace("globex", "X"),
        missing.body.to_string().replace("nosuch", "X")
    );
    // 409
    let dup = json_call(
        &sock,
        "POST",
        "/v1/orgs",
        &json!({"id": "acme", "owner": "z@z.io"}),
        None,
    );
    assert_eq!(dup.status, 409, "{}", dup.body);
    // no route, no method
    assert_eq!(call(&sock, "GET", "/v2/nothing", None, None).status, 404);
    assert_eq!(call(&sock, "PUT", "/v1/orgs", None, None).status, 405);
    // a bad --as header
    assert_eq!(
        call(&sock, "GET", "/v1/orgs", None, Some("not an email")).status,
        400
    );
}

#[test]
fn a_read_only_store_answers_503_to_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::db_path(dir.path());
    {
        let store = Store::open(&db).unwrap();
        common::create_org(&store, "acme", "ann@acme.io");
    }
    let store = Store::open_read_only(&db).unwrap();
    let server = AdminServer::new(&store).serve_unix(&db).unwrap();
    let a = json_call(
        server.socket_path(),
        "POST",
        "/v1/orgs/acme/keys",
        &json!({"name": "k"}),
        None,
    );
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (503, Some("storage"))
    );
    assert_eq!(
        call(server.socket_path(), "GET", "/v1/orgs/acme", None, None).status,
        200
    );
}

#[test]
fn config_update_takes_the_sdk_body_and_a_merge_patch() {
    let s = Served::new(ServerLimits::default());
    let sock = s.socket();
    let a = json_call(
        &sock,
        "PATCH",
        "/v1/orgs/acme/config",
        &json!({"config": {"rate_limiting": {"enabled": true, "rpm": 100}}}),
        None,
    );
    assert_eq!(
        (a.status, a.body["version"].as_u64()),
        (200, Some(2)),
        "{}",
        a.body
    );
    let b = call(
        &sock,
        "PATCH",
        "/v1/orgs/acme/config",
        Some((
            "application/merge-patch+json",
            r#"{"rate_limiting": {"rpm": 200}}"#,
        )),
        None,
    );
    assert_eq!((b.status, b.body["version"].as_u64()), (200, Some(3)));
    let got = call(&sock, "GET", "/v1/orgs/acme/config?version=2", None, None);
    assert_eq!(got.body["config"]["rate_limiting"]["rpm"], 100);
    let diff = call(
        &sock,
        "GET",
        "/v1/orgs/acme/config/diff?from=2&to=3",
        None,
        None,
    );
    assert_eq!(diff.status, 200);
    assert_eq!(diff.body.as_array().unwrap().len(), 1);
    let back = json_call(
        &sock,
        "POST",
        "/v1/orgs/acme/config/rollback",
        &json!({"version": 2}),
        None,
    );
    assert_eq!(back.body["version"], 4);
    let versions = call(&sock, "GET", "/v1/orgs/acme/config/versions", None, None);
    assert_eq!(versions.body.as_array().unwrap().len(), 4);
    let active = s
        .store
        .org_configs()
        .retrieve(&OP, &common::org("acme"))
        .unwrap();
    assert_eq!(active.config.rate_limiting().rpm, Some(100));
}

#[test]
fn oversized_bodies_are_refused_and_change_nothing() {
    let s = Served::new(ServerLimits::default().max_body_bytes(1024));
    let name = "n".repeat(2000);
    let a = json_call(
        &s.socket(),
        "POST",
        "/v1/orgs/acme/keys",
        &json!({"name": name}),
        None,
    );
    assert_eq!(
        (a.status, a.body["error"]["code"].as_str()),
        (413, Some("body_too_large"))
    );
    assert!(
        s.store
            .keys()
            .list(&OP, &common::org("acme"))
            .unwrap()
            .is_empty()
    );
    // The server keeps serving.
    assert_eq!(call(&s.socket(), "GET", "/v1/orgs", None, None).status, 200);
}

#[test]
fn slow_clients_are_cut_off_and_the_server_keeps_serving() {
    let limits = ServerLimits::default()
        .header_timeout(Duration::from_millis(200))
        .request_timeout(Duration::from_millis(300));
    let s = Served::new(limits);
    let sock = s.socket();
    // Headers never finished: the connection is closed without an answer.
    assert!(raw(&sock, b"GET /v1/orgs HTTP/1.1\r\nhost: x\r\n").is_none());
    // A body that never arrives: 503, nothing created.
    let slow = raw(
        &sock,
        b"POST /v1/orgs/acme/keys HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"name\"",
    )
    .expect("an answer");
    assert_eq!(
        (slow.status, slow.body["error"]["code"].as_str()),
        (503, Some("timeout"))
    );
    assert!(
        s.store
            .keys()
            .list(&OP, &common::org("acme"))
            .unwrap()
            .is_empty()
    );
    assert_eq!(call(&sock, "GET", "/v1/orgs", None, None).status, 200);
}

/// Reads one answer from a kept-alive connection: its status, or `None` once the server
/// closed it (the answer's head and `content-length` bytes, never a partial answer).
fn read_kept(s: &mut UnixStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("neither an answer nor a close within the read timeout")
            }
            // Reset by the server: closed.
            Err(_) => 0,
        };
        if n == 0 {
            assert!(
                buf.is_empty(),
                "a partial answer: {}",
                String::from_utf8_lossy(&buf)
            );
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if buf.len() >= end + 4 + length {
            return head.split(' ').nth(1)?.parse().ok();
        }
    }
}

#[test]
fn a_kept_alive_connection_serves_requests_in_turn_and_is_closed_when_idle_or_old() {
    let limits = ServerLimits::default()
        .header_timeout(Duration::from_millis(300))
        .max_connection_age(Duration::from_millis(1500));
    let s = Served::new(limits);
    let get = b"GET /v1/orgs HTTP/1.1\r\nhost: x\r\n\r\n";
    // Several requests on one connection, each answered whole. The read timeout is far
    // longer than the header timeout and far shorter than the connection's age, so an idle
    // connection the server kept open would fail the read below.
    let mut c = UnixStream::connect(s.socket()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    for _ in 0..5 {
        c.write_all(get).unwrap();
        assert_eq!(read_kept(&mut c), Some(200));
    }
    // Idle past the header timeout: the server closes it.
    assert_eq!(read_kept(&mut c), None, "an idle connection is closed");
    // A busy connection is closed once it is old, between two answers.
    let mut c = UnixStream::connect(s.socket()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answered = 0;
    loop {
        if c.write_all(get).is_err() {
            break;
        }
        match read_kept(&mut c) {
            Some(status) => {
                assert_eq!(status, 200);
                answered += 1;
            }
            None => break,
        }
        assert!(answered < 200, "the connection was never closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answered >= 2, "answered {answered} before closing");
    // The server keeps serving new connections.
    assert_eq!(call(&s.socket(), "GET", "/v1/orgs", None, None).status, 200);
}

#[test]
fn the_socket_is_private_and_admits_only_the_owner_and_root() {
    let mut s = Served::new(ServerLimits::default());
    let sock = s.socket();
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A second server on the same socket is refused while the first answers.
    let again = AdminServer::new(&s.store).serve_unix(&s.db).unwrap_err();
    assert_eq!(again.kind(), orgstore::ErrorKind::Busy);
    if unsafe_free_euid() == 0 {
        // Root owns the store file; open the socket's mode so that another user can reach
        // the peer check itself, and run the CLI as `nobody`.
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
        std::fs::set_permissions(
            s.db.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_orgstore"))
            .arg("--db")
            .arg(&s.db)
            .args(["key", "list", "acme"])
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{stderr}");
        assert!(stderr.contains("owner and root only"), "{stderr}");
    }
    // Shutdown removes the socket; a stale socket file is replaced by the next server.
    s.server.take().unwrap().shutdown();
    assert!(!sock.exists());
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    drop(listener);
    let next = AdminServer::new(&s.store).serve_unix(&s.db).unwrap();
    assert_eq!(
        call(next.socket_path(), "GET", "/v1/orgs", None, None).status,
        200
    );
}

/// The effective uid, read from /proc (no unsafe code).
fn unsafe_free_euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap()
}

#[test]
fn the_openapi_document_matches_the_routes() {
    let doc: Value = serde_json::from_str(OPENAPI).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut served: Vec<(String, String)> = routes()
        .into_iter()
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    // Every documented route is routed (not the fallbacks), and /openapi.json is this file.
    let s = Served::new(ServerLimits::default());
    for (method, path) in &documented {
        let concrete = path
            .replace("{org_id}", "acme")
            .replace("{key_id}", "key_00000000000000000000000000000000")
            .replace("{email}", "vic@acme.io");
        let a = call(&s.socket(), method, &concrete, None, None);
        let code = a.body["error"]["code"].as_str().unwrap_or("");
        assert!(
            !matches!(code, "no_route" | "method_not_allowed"),
            "{method} {path}: {}",
            a.body
        );
    }
    let served_doc = call(&s.socket(), "GET", "/openapi.json", None, None);
    assert_eq!(served_doc.body, doc);
    // The checked-in copy is the one served.
    let file =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json")).unwrap();
    assert_eq!(file, OPENAPI);
}

fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
}

#[test]
fn cli_revokes_a_key_through_a_live_server_and_its_gateway_refuses_it_at_once() {
    let s = Served::new(ServerLimits::default());
    let acme = common::org("acme");
    let created = s
        .store
        .keys()
        .create(&OP, &acme, KeySpec::new("leaked"))
        .unwrap();
    let secret = created.key.expose().to_owned();
    let gw = s.store.gateway();
    assert!(gw.check(&Request::new(&secret, "gpt-4o", ip())).is_ok());
    // The file is held by this process; the CLI goes through the socket.
    let out = common::orgstore(&["key", "revoke", &created.info.id.to_string()])
        .db(&s.db)
        .run()
        .ok();
    assert!(out.starts_with("revoked "), "{out}");
    assert!(gw.check(&Request::new(&secret, "gpt-4o", ip())).is_err());
    // `check` asks the live gateway.
    let refused = common::orgstore(&["check", &secret, "--model", "gpt-4o"])
        .db(&s.db)
        .run();
    assert_eq!(refused.code(), Some(3));
    assert_eq!(refused.json()["code"], "revoked");
    // The same output and exit codes as a direct call: list, not found, denied.
    let list = common::orgstore(&["--json", "key", "list", "acme"])
        .db(&s.db)
        .run();
    assert_eq!(list.json()[0]["status"], "revoked");
    common::orgstore(&["key", "show", "key_00000000000000000000000000000000"])
        .db(&s.db)
        .run()
        .fail(4);
    let denied = common::orgstore(&[
        "--as",
        "vic@acme.io",
        "key",
        "create",
        "acme",
        "--name",
        "x",
    ])
    .db(&s.db)
    .run()
    .fail(3);
    assert!(denied.contains("may not CreateKey"), "{denied}");
    // Keys, config and members through the socket.
    let made = common::orgstore(&[
        "--json", "key", "create", "acme", "--name", "new", "--rpm", "5",
    ])
    .db(&s.db)
    .run();
    let key = made.json()["key"].as_str().unwrap().to_owned();
    assert!(gw.check(&Request::new(&key, "gpt-4o", ip())).is_ok());
    let allowed = common::orgstore(&["check", &key, "--model", "gpt-4o"])
        .db(&s.db)
        .run();
    assert_eq!(allowed.json()["allowed"], true);
    // The live gateway counted it: 5 per minute, one check above and one here.
    assert_eq!(allowed.json()["rate"]["remaining"], 3);
    common::orgstore(&[
        "config",
        "set",
        "acme",
        r#"{"rate_limiting": {"enabled": true, "rpm": 7}}"#,
    ])
    .db(&s.db)
    .run()
    .ok();
    let got = common::orgstore(&["--json", "config", "get", "acme"])
        .db(&s.db)
        .run();
    assert_eq!(got.json()["config"]["rate_limiting"]["rpm"], 7);
    common::orgstore(&["member", "add", "acme", "dev@acme.io", "--role", "member"])
        .db(&s.db)
        .run()
        .ok();
    let dev = Email::parse("dev@acme.io").unwrap();
    let members = s.store.members().list(&Actor::Operator, &acme).unwrap();
    assert!(
        members
            .iter()
            .any(|m| m.email == dev && m.role == Role::Member)
    );
    // Audit and usage through the socket too.
    let audit = common::orgstore(&["--json", "audit", "acme"])
        .db(&s.db)
        .run();
    assert_eq!(audit.json()[0]["target"], "dev@acme.io");
    let usage = common::orgstore(&["--json", "usage", "acme"])
        .db(&s.db)
        .run();
    assert_eq!(usage.json()["org"], "acme");
}

#[test]
fn cli_output_is_the_same_directly_and_through_a_server() {
    let cli = Cli::with_acme();
    let key = cli
        .run(&[
            "--json", "key", "create", "acme", "--name", "a", "--rpm", "9",
        ])
        .json();
    let id = key["id"].as_str().unwrap().to_owned();
    let made_key = key["key"].as_str().unwrap().to_owned();
    // Checks whose answers do not depend on the gateway's counters (a direct `check` has a
    // fresh gateway each time, the server's counts every request).
    let last = if made_key.ends_with('x') { "y" } else { "x" };
    let typo = format!("{}{last}", &made_key[..made_key.len() - 1]);
    cli.run(&[
        "config",
        "set",
        "acme",
        r#"{"rate_limiting": {"enabled": true, "rpm": 3}}"#,
    ])
    .ok();
    cli.ok(&["member", "add", "acme", "vic@acme.io", "--role", "viewer"]);
    cli.ok(&[
        "member",
        "invite",
        "acme",
        "new@acme.io",
        "--role",
        "member",
    ]);
    let commands: Vec<Vec<&str>> = vec![
        vec!["key", "list", "acme"],
        vec!["--json", "key", "list", "acme"],
        vec!["key", "show", &id],
        vec!["--json", "key", "show", &id],
        vec!["config", "get", "acme"],
        vec!["--json", "config", "get", "acme"],
        vec!["member", "list", "acme"],
        vec!["--json", "member", "list", "acme"],
        vec!["member", "orgs", "ann@acme.io"],
        vec!["--json", "member", "orgs", "ann@acme.io"],
        vec!["org", "list"],
        vec!["--json", "org", "show", "acme"],
        vec!["org", "show", "nosuch"],
        vec!["--as", "nobody@x.io", "org", "show", "acme"],
        vec!["--as", "ann@acme.io", "--json", "key", "list", "acme"],
        vec!["config", "history", "acme"],
        vec!["--json", "config", "history", "acme"],
        vec!["config", "diff", "acme", "1", "2"],
        vec!["--json", "config", "diff", "acme", "1", "2"],
        vec!["config", "diff", "acme", "1", "9"],
        vec!["usage", "acme"],
        vec!["--json", "usage", "acme"],
        vec!["usage", "acme", "--key", &id],
        vec!["--json", "usage", "acme", "--key", &id],
        vec!["--as", "vic@acme.io", "usage", "acme"],
        vec!["policy", "entities", "acme"],
        vec!["--as", "nobody@x.io", "policy", "entities", "acme"],
        vec!["policy", "explain", "DeleteOrg", "org:acme"],
        vec![
            "--as",
            "ann@acme.io",
            "--json",
            "policy",
            "explain",
            "ChangeRole",
            "member:acme/vic@acme.io",
            "--role",
            "admin",
        ],
        vec![
            "--as",
            "vic@acme.io",
            "policy",
            "explain",
            "CreateKey",
            "newkey:acme",
        ],
        vec![
            "--as",
            "ann@acme.io",
            "policy",
            "explain",
            "AddMember",
            "member:acme/x@acme.io",
        ],
        vec!["--as", "ann@acme.io", "--json", "member", "invites", "acme"],
        vec!["--as", "vic@acme.io", "member", "invites", "acme"],
        vec!["member", "revoke-invite", "inv_0000000000000000"],
        vec!["member", "accept", "orgstore_inv_nope"],
        vec!["org", "suspend", "acme"],
        vec!["--json", "org", "suspend", "acme"],
        vec!["org", "resume", "acme"],
        vec!["--json", "org", "resume", "acme"],
        vec!["--as", "vic@acme.io", "org", "suspend", "acme"],
        vec!["check", "sk-agentcc-nope", "--model", "gpt-4o"],
        vec!["check", &typo, "--model", "gpt-4o"],
        vec![
            "check",
            &made_key,
            "--model",
            "gpt-4o",
            "--ip",
            "::1",
            "--estimate",
            "-1",
        ],
    ];
    // `usage` notes on stderr, in direct mode only, that the rates it shows are those of
    // its own process; through a server they are the live gateway's.
    let run = |c: &Vec<&str>| {
        let r = cli.run(c);
        let stderr: String = r
            .stderr
            .lines()
            .filter(|l| !l.starts_with("note: rpm/tpm use"))
            .map(|l| format!("{l}\n"))
            .collect();
        (r.code(), r.stdout, stderr)
    };
    let direct: Vec<(Option<i32>, String, String)> = commands.iter().map(run).collect();
    let store = Store::open(&cli.db).unwrap();
    let server = AdminServer::new(&store).serve_unix(&cli.db).unwrap();
    let remote: Vec<(Option<i32>, String, String)> = commands.iter().map(run).collect();
    assert_eq!(direct, remote);
    server.shutdown();
}

#[test]
fn orgstore_serve_holds_the_store_and_stops_at_sigterm() {
    let cli = Cli::with_acme();
    let (mut child, sock) = spawn_serve(&cli, &[]);
    let made = cli
        .run(&["--json", "key", "create", "acme", "--name", "svc"])
        .json();
    assert!(made["key"].as_str().unwrap().starts_with("sk-agentcc-"));
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!sock.exists());
    // The file is free again: a direct call sees the key made through the server.
    let list = cli.run(&["--json", "key", "list", "acme"]).json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[test]
fn many_clients_at_once_are_all_served_within_the_connection_limit() {
    let s = Served::new(ServerLimits::default().max_connections(4));
    let sock = s.socket();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..64)
            .map(|i| {
                let sock = sock.clone();
                scope.spawn(move || {
                    let body = json!({ "name": format!("k{i}") });
                    json_call(&sock, "POST", "/v1/orgs/acme/keys", &body, None).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(
        s.store
            .keys()
            .list(&OP, &common::org("acme"))
            .unwrap()
            .len(),
        64
    );
}

/// A request over TCP with an optional bearer token and `x-orgstore-as`.
pub(crate) fn tcp_call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    as_member: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("authorization: Bearer {t}\r\n"));
    }
    if let Some(e) = as_member {
        req.push_str(&format!("x-orgstore-as: {e}\r\n"));
    }
    let payload = body.map(Value::to_string).unwrap_or_default();
    if body.is_some() {
        req.push_str("content-type: application/json\r\n");
    }
    req.push_str(&format!(
        "content-length: {}\r\n\r\n{payload}",
        payload.len()
    ));
    exchange(s, req.as_bytes()).expect("an HTTP answer")
}

#[test]
fn tcp_needs_a_live_bearer_token_and_a_member_token_acts_as_its_member_only() {
    use orgstore::server::{TokenHolder, Tokens};
    let s = Served::new(ServerLimits::default());
    let tokens = Tokens::beside(&s.db);
    let (op_info, op) = tokens.create(TokenHolder::Operator, None).unwrap();
    let (_, vic) = tokens
        .create(TokenHolder::Member(common::email("vic@acme.io")), None)
        .unwrap();
    let (_, ann) = tokens
        .create(TokenHolder::Member(common::email("ann@acme.io")), None)
        .unwrap();
    let past = orgstore::Timestamp::parse("2020-01-01T00:00:00Z").unwrap();
    let (_, old) = tokens.create(TokenHolder::Operator, Some(past)).unwrap();
    // Only digests are stored, in a private file.
    let file = std::fs::read_to_string(tokens.path()).unwrap();
    assert!(!file.contains(&op) && !file.contains(&vic));
    assert_eq!(
        std::fs::metadata(tokens.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let server = AdminServer::new(&s.store)
        .serve_tcp(&s.db, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = server.local_addr().unwrap();
    let keys = "/v1/orgs/acme/keys";
    let body = json!({"name": "t"});
    // 401: none, another scheme, a bad checksum, unknown, expired
    assert_eq!(tcp_call(addr, "GET", keys, None, None, None).status, 401);
    let flipped = format!("{}x", &op[..op.len() - 1]);
    for bad in [flipped.as_str(), "orgstore_op_nope", old.as_str()] {
        let a = tcp_call(addr, "GET", keys, Some(bad), None, None);
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    // The operator, and the operator acting as a member.
    assert_eq!(
        tcp_call(addr, "GET", keys, Some(&op), None, None).status,
        200
    );
    assert_eq!(
        tcp_call(
            addr,
            "POST",
            keys,
            Some(&op),
            Some("vic@acme.io"),
            Some(&body)
        )
        .status,
        403
    );
    // A member token: the member's role decides, whatever x-orgstore-as says.
    assert_eq!(
        tcp_call(addr, "POST", keys, Some(&ann), None, Some(&body)).status,
        201
    );
    assert_eq!(
        tcp_call(addr, "POST", keys, Some(&vic), None, Some(&body)).status,
        403
    );
    assert_eq!(
        tcp_call(
            addr,
            "POST",
            keys,
            Some(&vic),
            Some("ann@acme.io"),
            Some(&body)
        )
        .status,
        403
    );
    assert_eq!(
        tcp_call(
            addr,
            "GET",
            "/v1/orgs/globex/config",
            Some(&ann),
            None,
            None
        )
        .status,
        404
    );
    // The CLI with --remote and ORGSTORE_TOKEN: the member's view, no file opened.
    let url = format!("http://{addr}");
    let listed = common::orgstore(&["--remote", &url, "--json", "key", "list", "acme"])
        .env("ORGSTORE_TOKEN", &ann)
        .run();
    assert_eq!(listed.json().as_array().unwrap().len(), 1);
    common::orgstore(&["--remote", &url, "key", "create", "acme", "--name", "v"])
        .env("ORGSTORE_TOKEN", &vic)
        .run()
        .fail(3);
    let no_token = common::orgstore(&["--remote", &url, "key", "list", "acme"])
        .run()
        .fail(1);
    assert!(no_token.contains("ORGSTORE_TOKEN"), "{no_token}");
    // The policy set is not secret; its log is the operator's.
    let history = common::orgstore(&["--remote", &url, "--json", "policy", "history"])
        .env("ORGSTORE_TOKEN", &ann)
        .run();
    assert_eq!(history.json()[0]["version"], 1);
    let log = common::orgstore(&["--remote", &url, "policy", "log"])
        .env("ORGSTORE_TOKEN", &ann)
        .run()
        .fail(3);
    assert!(log.contains("only the operator"), "{log}");
    // `token` over --remote: a member sees and makes only their own tokens.
    let mine = common::orgstore(&["--remote", &url, "--json", "token", "list"])
        .env("ORGSTORE_TOKEN", &ann)
        .run()
        .json();
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine[0]["holder"], "ann@acme.io");
    let other = common::orgstore(&[
        "--remote",
        &url,
        "token",
        "create",
        "--email",
        "vic@acme.io",
    ])
    .env("ORGSTORE_TOKEN", &ann)
    .run()
    .fail(3);
    assert!(other.contains("their own email"), "{other}");
    let made = common::orgstore(&["--remote", &url, "--json", "token", "create", "--operator"])
        .env("ORGSTORE_TOKEN", &op)
        .run()
        .json();
    assert!(
        made["token"]
            .as_str()
            .unwrap()
            .starts_with(orgstore::server::OPERATOR_TOKEN_PREFIX)
    );
    let id = made["id"].as_str().unwrap();
    let revoked = common::orgstore(&["--remote", &url, "token", "revoke", id])
        .env("ORGSTORE_TOKEN", &op)
        .run()
        .ok();
    assert_eq!(revoked.trim(), format!("revoked {id} (operator)"));
    let local = common::orgstore(&["--remote", &url, "serve"])
        .env("ORGSTORE_TOKEN", &ann)
        .run()
        .fail(1);
    assert!(local.contains("not served by the admin API"), "{local}");
    // Revoked: refused at once.
    tokens.revoke(&op_info.id).unwrap();
    assert_eq!(
        tcp_call(addr, "GET", keys, Some(&op), None, None).status,
        401
    );
    // Only loopback unless allowed.
    let err = AdminServer::new(&s.store)
        .serve_tcp(&s.db, "0.0.0.0:0".parse().unwrap())
        .unwrap_err();
    assert_eq!(err.kind(), orgstore::ErrorKind::Invalid);
}

#[test]
fn the_token_commands_show_a_token_once() {
    let cli = Cli::with_acme();
    let made = cli
        .run(&["--json", "token", "create", "--email", "ann@acme.io"])
        .json();
    let secret = made["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(orgstore::server::MEMBER_TOKEN_PREFIX));
    let list = cli.run(&["token", "list"]).ok();
    assert!(
        list.contains("ann@acme.io") && !list.contains(&secret),
        "{list}"
    );
    let id = made["id"].as_str().unwrap();
    assert!(
        cli.run(&["token", "revoke", id])
            .ok()
            .starts_with("revoked ")
    );
    assert_eq!(
        cli.run(&["--json", "token", "list"]).json()[0]["status"],
        "revoked"
    );
    cli.run(&["token", "revoke", "tok_0000000000000000"])
        .fail(4);
    cli.run(&["token", "create"]).fail(2);
}

#[test]
fn orgstore_serve_watch_policies_applies_the_directory_to_the_live_store() {
    let cli = Cli::with_acme();
    cli.ok(&["member", "add", "acme", "bee@acme.io", "--role", "member"]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies/examples/require-key-expiry.cedar"
        ),
        dir.path().join("require-key-expiry.cedar"),
    )
    .unwrap();
    let watched = dir.path().to_str().unwrap();
    let (mut child, _sock) = spawn_serve(&cli, &["--watch-policies", watched]);
    // Through the live server, a member's key without an expiry is refused once the
    // watcher has applied the directory (bounded tries; no timing is asserted).
    let mut refused = false;
    for i in 0..200 {
        let name = format!("svc{i}");
        let r = cli.run_as("bee@acme.io", &["key", "create", "acme", "--name", &name]);
        if !r.success() {
            let why = r.fail(3);
            assert!(why.contains("CreateKey"), "{why}");
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(refused, "the watched policy was never enforced");
    // The directory became a version of the store's own set, which every process enforces.
    let shown = cli.ok(&["policy", "show"]);
    assert!(shown.contains("require-key-expiry"), "{shown}");
    let r = cli.run_as("bee@acme.io", &["key", "create", "acme", "--name", "late"]);
    assert!(!r.success());
}

/// `orgstore serve` on the CLI's store with `extra` arguments, once its socket answers
/// (a bounded number of tries; no timing is asserted).
pub(crate) fn spawn_serve(cli: &Cli, extra: &[&str]) -> (std::process::Child, std::path::PathBuf) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_orgstore"))
        .arg("--db")
        .arg(&cli.db)
        .arg("serve")
        .args(extra)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sock = orgstore::server::default_socket_path(&cli.db);
    let up = (0..600).any(|_| {
        UnixStream::connect(&sock).is_ok() || {
            std::thread::sleep(Duration::from_millis(50));
            false
        }
    });
    assert!(up, "orgstore serve did not listen on {}", sock.display());
    (child, sock)
}

#[test]
fn shutdown_closes_idle_kept_alive_connections_at_once_and_answers_the_request_in_flight() {
    // Default timeouts: before connections were told to close, shutdown waited for their
    // header and request timeouts (35 s).
    let mut s = Served::new(ServerLimits::default());
    let get = b"GET /v1/orgs HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut idle = UnixStream::connect(s.socket()).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    idle.write_all(get).unwrap();
    assert_eq!(read_kept(&mut idle), Some(200));
    // A request whose body is still arriving when the server is asked to stop.
    let mut busy = UnixStream::connect(s.socket()).unwrap();
    busy.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    busy.write_all(get).unwrap();
    assert_eq!(read_kept(&mut busy), Some(200));
    let body = br#"{"name":"late"}"#;
    let head = format!(
        "POST /v1/orgs/acme/keys HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    busy.write_all(head.as_bytes()).unwrap();
    busy.write_all(&body[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let server = s.server.take().unwrap();
    let started = std::time::Instant::now();
    let stopping = std::thread::spawn(move || server.shutdown());
    std::thread::sleep(Duration::from_millis(300));
    // The idle connection is closed without waiting for its timeouts: well within its
    // 5 s header timeout, after which it would have closed anyway.
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(read_kept(&mut idle), None, "the idle connection is closed");
    // The request in flight is answered, then its connection closed.
    busy.write_all(&body[5..]).unwrap();
    assert_eq!(read_kept(&mut busy), Some(201));
    assert_eq!(read_kept(&mut busy), None);
    stopping.join().unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "shutdown waited {took:?} for connections that were done"
    );
    let keys = s.store.keys().list(&OP, &common::org("acme")).unwrap();
    assert_eq!(keys.len(), 1, "the request in flight was applied");
}
