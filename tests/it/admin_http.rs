//! The admin API through a real HTTP client over TCP with bearer tokens: the role matrix and
//! tenancy (every role x action x own/other org answers as the library decides),
//! invitations, member access tokens, the token in the audit log, bad input, and many
//! connections at once.

use std::net::SocketAddr;
use std::path::PathBuf;

use orgstore::server::{AdminServer, RunningServer, TokenHolder, Tokens};
use orgstore::{Actor, AdminAction, ErrorKind, KeySpec, Role, Store, StoreBuilder};
use serde_json::{Value, json};

use super::admin_server::{Answer, exchange, tcp_call};
use crate::common::{self, Cli, OP, email, org};

/// A store file served over TCP: `acme` (owners ann and oz, admin adam, members mia and
/// bob, viewer vic, a key made by the operator, a pending invitation of inv@acme.io as
/// member) and `globex` (owner gus, member bob, the same), with a member access token per
/// person and an operator token.
struct Tcp {
    _dir: tempfile::TempDir,
    db: PathBuf,
    store: Store,
    server: Option<RunningServer>,
    addr: SocketAddr,
    tokens: Vec<(String, String)>,
    keys: Vec<(String, String)>,
    invites: Vec<(String, String)>,
}

const PEOPLE: [(&str, &str, Role); 7] = [
    ("acme", "ann@acme.io", Role::Owner),
    ("acme", "oz@acme.io", Role::Owner),
    ("acme", "adam@acme.io", Role::Admin),
    ("acme", "mia@acme.io", Role::Member),
    ("acme", "bob@x.io", Role::Member),
    ("acme", "vic@acme.io", Role::Viewer),
    ("globex", "bob@x.io", Role::Member),
];

impl Tcp {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = common::db_path(dir.path());
        let store = StoreBuilder::new().non_durable().open(&db).unwrap();
        common::create_org(&store, "acme", "ann@acme.io");
        common::create_org(&store, "globex", "gus@globex.io");
        for (o, who, role) in PEOPLE.into_iter().skip(1) {
            store
                .members()
                .add(&OP, &org(o), &email(who), role)
                .unwrap();
        }
        let tokens = Tokens::beside(&db);
        let mut issued = vec![(
            "operator".to_owned(),
            tokens.create(TokenHolder::Operator, None).unwrap().1,
        )];
        for who in [
            "ann@acme.io",
            "adam@acme.io",
            "mia@acme.io",
            "vic@acme.io",
            "gus@globex.io",
        ] {
            let (_, t) = tokens
                .create(TokenHolder::Member(email(who)), None)
                .unwrap();
            issued.push((who.to_owned(), t));
        }
        let mut keys = Vec::new();
        let mut invites = Vec::new();
        for o in ["acme", "globex"] {
            let k = store
                .keys()
                .create(&OP, &org(o), KeySpec::new("svc"))
                .unwrap();
            keys.push((o.to_owned(), k.info.id.to_string()));
            let i = store
                .invites()
                .create(&OP, &org(o), &email("inv@acme.io"), Role::Member)
                .unwrap();
            invites.push((o.to_owned(), i.invite.id.to_string()));
        }
        let server = AdminServer::new(&store)
            .serve_tcp(&db, "127.0.0.1:0".parse().unwrap())
            .unwrap();
        let addr = server.local_addr().unwrap();
        Self {
            _dir: dir,
            db,
            store,
            server: Some(server),
            addr,
            tokens: issued,
            keys,
            invites,
        }
    }

    fn token(&self, who: &str) -> &str {
        &self.tokens.iter().find(|(w, _)| w == who).unwrap().1
    }

    fn of<'a>(list: &'a [(String, String)], o: &str) -> &'a str {
        &list.iter().find(|(w, _)| w == o).unwrap().1
    }

    fn call(&self, who: &str, method: &str, path: &str, body: Option<&Value>) -> Answer {
        tcp_call(self.addr, method, path, Some(self.token(who)), None, body)
    }
}

impl Drop for Tcp {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown();
        }
    }
}

/// (method, path, body, explain target, new role).
type Asked = (&'static str, String, Option<Value>, String, Option<Role>);

/// One action as an HTTP request and as the library's `explain` question, in org `o`, by
/// `me`: (method, path, body, explain target, new role).
fn request(f: &Tcp, action: AdminAction, o: &str, me: &str) -> Option<Asked> {
    let key = Tcp::of(&f.keys, o);
    let invite = Tcp::of(&f.invites, o);
    Some(match action {
        AdminAction::ReadOrg => (
            "GET",
            format!("/v1/orgs/{o}"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::UpdateConfig => (
            "PATCH",
            format!("/v1/orgs/{o}/config"),
            Some(json!({"config": {"rate_limiting": {"rpm": 5}}})),
            format!("config:{o}"),
            None,
        ),
        AdminAction::RevealSecrets => (
            "GET",
            format!("/v1/orgs/{o}/config?reveal=true"),
            None,
            format!("config:{o}"),
            None,
        ),
        AdminAction::DeleteOrg => (
            "DELETE",
            format!("/v1/orgs/{o}"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::SuspendOrg => (
            "POST",
            format!("/v1/orgs/{o}/suspend"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::ResumeOrg => (
            "POST",
            format!("/v1/orgs/{o}/resume"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::ListMembers => (
            "GET",
            format!("/v1/orgs/{o}/members"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::AddMember => (
            "POST",
            format!("/v1/orgs/{o}/members"),
            Some(json!({"email": "new@x.io", "role": "member"})),
            format!("member:{o}/new@x.io"),
            Some(Role::Member),
        ),
        AdminAction::ChangeRole => (
            "PATCH",
            format!("/v1/orgs/{o}/members/bob@x.io"),
            Some(json!({"role": "viewer"})),
            format!("member:{o}/bob@x.io"),
            Some(Role::Viewer),
        ),
        AdminAction::RemoveMember => (
            "DELETE",
            format!("/v1/orgs/{o}/members/bob@x.io"),
            None,
            format!("member:{o}/bob@x.io"),
            None,
        ),
        AdminAction::LeaveOrg => (
            "DELETE",
            format!("/v1/orgs/{o}/members/{me}"),
            None,
            format!("member:{o}/{me}"),
            None,
        ),
        AdminAction::CreateKey => (
            "POST",
            format!("/v1/orgs/{o}/keys"),
            Some(json!({"name": "mine"})),
            format!("newkey:{o}"),
            None,
        ),
        AdminAction::ListKeys => (
            "GET",
            format!("/v1/orgs/{o}/keys"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::ManageKey => (
            "DELETE",
            format!("/v1/keys/{key}"),
            None,
            format!("key:{key}"),
            None,
        ),
        AdminAction::ReadAudit => (
            "GET",
            format!("/v1/orgs/{o}/audit"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::ReadAnalytics => (
            "GET",
            format!("/v1/orgs/{o}/usage"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::InviteMember => (
            "POST",
            format!("/v1/orgs/{o}/invites"),
            Some(json!({"email": "new@x.io", "role": "member"})),
            format!("member:{o}/new@x.io"),
            Some(Role::Member),
        ),
        AdminAction::ListInvites => (
            "GET",
            format!("/v1/orgs/{o}/invites"),
            None,
            format!("org:{o}"),
            None,
        ),
        AdminAction::RevokeInvite => (
            "DELETE",
            format!("/v1/invites/{invite}"),
            None,
            format!("member:{o}/inv@acme.io"),
            Some(Role::Member),
        ),
        // No route of its own (billing, logs), asked for a person (accept: the token is the
        // credential), or outside an org (creating one).
        _ => return None,
    })
}

#[test]
fn every_role_action_and_org_answers_over_http_as_the_library_decides() {
    let people = ["ann@acme.io", "adam@acme.io", "mia@acme.io", "vic@acme.io"];
    let mut checked = 0;
    let mut failures = Vec::new();
    for action in AdminAction::ALL {
        for me in people {
            // A fresh store per person and action: an allowed change does not change what
            // the next one is asked about.
            let f = Tcp::new();
            let Some(_) = request(&f, action, "acme", me) else {
                continue;
            };
            // Another org first (refused, so nothing changes), then their own.
            for o in ["globex", "acme"] {
                let (method, path, body, target, new_role) = request(&f, action, o, me).unwrap();
                let decided =
                    f.store
                        .explain(&Actor::member(email(me)), action, &target, new_role, false);
                let want = match &decided {
                    Ok(r) if r.explanation.allowed => "allowed",
                    Ok(_) => "denied",
                    Err(e) if e.kind() == ErrorKind::NotFound => "not found",
                    Err(e) => panic!("{me} {action:?} {o}: {e}"),
                };
                let a = f.call(me, method, &path, body.as_ref());
                let got = match a.status {
                    200..=299 => "allowed",
                    403 => "denied",
                    404 => "not found",
                    _ => "other",
                };
                if got != want {
                    failures.push(format!(
                        "{me} {action:?} in {o}: library {want}, HTTP {} {}",
                        a.status, a.body
                    ));
                }
                if o == "globex" && want != "not found" {
                    failures.push(format!("{me} {action:?} in globex: {want}"));
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 4 * 2 * 19, "{checked}");
}

#[test]
fn an_invitation_is_made_and_accepted_over_tcp_and_issues_a_member_token() {
    let f = Tcp::new();
    let body = json!({"email": "New@Acme.io", "role": "admin", "expires_in_hours": 24});
    // The viewer may not invite; the admin may.
    assert_eq!(
        f.call("vic@acme.io", "POST", "/v1/orgs/acme/invites", Some(&body))
            .status,
        403
    );
    let made = f.call("adam@acme.io", "POST", "/v1/orgs/acme/invites", Some(&body));
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.body["invite"]["email"], "new@acme.io");
    let token = made.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("orgstore_inv_"));
    // An admin may not invite an owner.
    let owner = json!({"email": "o2@acme.io", "role": "owner"});
    let a = f.call(
        "adam@acme.io",
        "POST",
        "/v1/orgs/acme/invites",
        Some(&owner),
    );
    assert_eq!(
        (a.status, a.body["error"]["policy_ids"][0].as_str()),
        (403, Some("only-owners-grant-owner"))
    );
    // Listing: two pending in acme (one from the fixture), none visible from globex.
    let list = f.call("ann@acme.io", "GET", "/v1/orgs/acme/invites", None);
    assert_eq!(list.body.as_array().unwrap().len(), 2);
    assert_eq!(
        f.call("gus@globex.io", "GET", "/v1/orgs/acme/invites", None)
            .status,
        404
    );
    // Accepting needs no bearer token: the invitation's token is the credential.
    let accept = json!({"token": token, "access_token": true});
    let joined = tcp_call(
        f.addr,
        "POST",
        "/v1/invites/accept",
        None,
        Some("ann@acme.io"),
        Some(&accept),
    );
    assert_eq!(joined.status, 200, "{}", joined.body);
    assert_eq!(joined.body["member"]["email"], "new@acme.io");
    let access = joined.body["access_token"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(access.starts_with("orgstore_mb_"));
    // The new member acts with their first access token, as an admin of acme only.
    let keys = tcp_call(
        f.addr,
        "GET",
        "/v1/orgs/acme/keys",
        Some(&access),
        None,
        None,
    );
    assert_eq!(keys.status, 200);
    let other = tcp_call(
        f.addr,
        "GET",
        "/v1/orgs/globex/keys",
        Some(&access),
        None,
        None,
    );
    assert_eq!(other.status, 404);
    // Single use.
    let again = tcp_call(
        f.addr,
        "POST",
        "/v1/invites/accept",
        None,
        None,
        Some(&accept),
    );
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
    // The acceptance is audited as the invited person; the invitation with the admin's token.
    let log = common::audit_all(&f.store, &org("acme"));
    let accepted = log.iter().find(|e| e.action == "AcceptInvite").unwrap();
    assert_eq!(accepted.actor, "new@acme.io");
    let invited = log
        .iter()
        .find(|e| e.action == "InviteMember" && e.target == "new@acme.io")
        .unwrap();
    let adam_id = Tokens::beside(&f.db)
        .list()
        .unwrap()
        .into_iter()
        .find(|t| t.holder == TokenHolder::Member(email("adam@acme.io")))
        .unwrap()
        .id;
    assert!(
        invited
            .summary
            .ends_with(&format!("(with token {adam_id})")),
        "{invited:?}"
    );
    for e in &log {
        assert!(
            !e.summary.contains(&token) && !e.summary.contains(&access),
            "{e:?}"
        );
    }
    // Revoking the fixture's invitation: the viewer may not, the admin may, once.
    let id = Tcp::of(&f.invites, "acme").to_owned();
    let path = format!("/v1/invites/{id}");
    assert_eq!(f.call("vic@acme.io", "DELETE", &path, None).status, 403);
    assert_eq!(f.call("gus@globex.io", "DELETE", &path, None).status, 404);
    assert_eq!(f.call("adam@acme.io", "DELETE", &path, None).status, 200);
    assert_eq!(f.call("adam@acme.io", "DELETE", &path, None).status, 409);
    // Path ids of the wrong shape.
    for bad in [
        "/v1/invites/inv_xyz",
        "/v1/invites/key_00",
        "/v1/invites/%00",
    ] {
        let a = f.call("ann@acme.io", "DELETE", bad, None);
        assert_eq!(
            (a.status, a.body["error"]["code"].as_str()),
            (400, Some("invalid_path")),
            "{bad}"
        );
    }
    // Without a bearer token only accepting is open.
    assert_eq!(
        tcp_call(f.addr, "GET", "/v1/orgs/acme/invites", None, None, None).status,
        401
    );
}

#[test]
fn members_make_and_revoke_their_own_access_tokens_only() {
    let f = Tcp::new();
    let mine = f.call("mia@acme.io", "POST", "/v1/tokens", Some(&json!({})));
    assert_eq!(mine.status, 201, "{}", mine.body);
    assert_eq!(mine.body["holder"], "mia@acme.io");
    let secret = mine.body["token"].as_str().unwrap().to_owned();
    let id = mine.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        tcp_call(
            f.addr,
            "GET",
            "/v1/orgs/acme/keys",
            Some(&secret),
            None,
            None
        )
        .status,
        200
    );
    for body in [json!({"email": "ann@acme.io"}), json!({"operator": true})] {
        let a = f.call("mia@acme.io", "POST", "/v1/tokens", Some(&body));
        assert_eq!(a.status, 403, "{body}: {}", a.body);
    }
    // A member sees their own tokens; the operator all of them.
    let listed = f.call("mia@acme.io", "GET", "/v1/tokens", None);
    assert!(
        listed
            .body
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["holder"] == "mia@acme.io")
    );
    assert_eq!(listed.body.as_array().unwrap().len(), 2);
    let all = f.call("operator", "GET", "/v1/tokens", None);
    assert_eq!(all.body.as_array().unwrap().len(), f.tokens.len() + 1);
    assert!(
        all.body
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none())
    );
    // Another person's token answers like none; their own is revoked for good.
    let path = format!("/v1/tokens/{id}");
    assert_eq!(f.call("vic@acme.io", "DELETE", &path, None).status, 404);
    assert_eq!(f.call("mia@acme.io", "DELETE", &path, None).status, 200);
    assert_eq!(
        tcp_call(
            f.addr,
            "GET",
            "/v1/orgs/acme/keys",
            Some(&secret),
            None,
            None
        )
        .status,
        401
    );
}

#[test]
fn bad_input_over_tcp_gets_clear_errors_and_changes_nothing() {
    let f = Tcp::new();
    let before = f.store.keys().list(&OP, &org("acme")).unwrap();
    let op = f.token("operator").to_owned();
    let send = |bytes: Vec<u8>| {
        let s = std::net::TcpStream::connect(f.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        exchange(s, &bytes)
    };
    let request = |ty: &str, body: &str, length: usize| {
        format!(
            "POST /v1/orgs/acme/keys HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             authorization: Bearer {op}\r\n\
             content-type: {ty}\r\ncontent-length: {length}\r\n\r\n{body}"
        )
        .into_bytes()
    };
    // Not JSON, JSON of another shape, an unknown field, the wrong content type.
    for (ty, body, code) in [
        ("application/json", "{\"name\": ", "invalid_json"),
        ("application/json", "not json at all", "invalid_json"),
        ("application/json", "[1, 2]", "invalid_body"),
        (
            "application/json",
            "{\"name\": \"x\", \"colour\": 1}",
            "invalid_body",
        ),
        ("text/plain", "{\"name\": \"x\"}", "unsupported_media_type"),
    ] {
        let a = send(request(ty, body, body.len())).expect("an answer");
        let got = a.body["error"]["code"].as_str().unwrap_or("").to_owned();
        assert!(
            (400..=415).contains(&a.status) && got == code,
            "{ty} {body}: {} {}",
            a.status,
            a.body
        );
        assert!(!a.body["error"]["message"].as_str().unwrap_or("").is_empty());
    }
    // Truncated: the body ends before its length (the client closes its side).
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(f.addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        s.write_all(&request("application/json", "{\"name\"", 100))
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(out.is_empty() || text.starts_with("HTTP/1.1 4"), "{text}");
    }
    // Nothing changed, and the server keeps serving.
    assert_eq!(f.store.keys().list(&OP, &org("acme")).unwrap(), before);
    assert_eq!(f.call("operator", "GET", "/v1/orgs", None).status, 200);
}

#[test]
fn a_thousand_connections_at_once_are_all_answered() {
    let f = Tcp::new();
    let token = f.token("ann@acme.io").to_owned();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..1000)
            .map(|_| {
                let token = token.clone();
                let addr = f.addr;
                scope.spawn(move || {
                    tcp_call(addr, "GET", "/v1/orgs/acme", Some(&token), None, None).status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 200),
        "{:?}",
        statuses.iter().filter(|s| **s != 200).collect::<Vec<_>>()
    );
    assert_eq!(f.call("operator", "GET", "/v1/orgs", None).status, 200);
}

#[test]
fn cli_invitations_read_the_same_directly_and_through_a_server() {
    let cli = Cli::with_acme();
    cli.ok(&["member", "add", "acme", "adam@acme.io", "--role", "admin"]);
    let direct = cli.json(&["member", "invite", "acme", "d@acme.io", "--role", "viewer"]);
    let reads: Vec<Vec<&str>> = vec![
        vec!["member", "invites", "acme"],
        vec!["--json", "member", "invites", "acme"],
        vec![
            "--as",
            "adam@acme.io",
            "member",
            "invite",
            "acme",
            "o@acme.io",
            "--role",
            "owner",
        ],
        vec![
            "member",
            "invite",
            "acme",
            "ann@acme.io",
            "--role",
            "viewer",
        ],
        vec!["member", "invite", "acme", "d@acme.io", "--role", "viewer"],
    ];
    let run = |c: &Vec<&str>| {
        let r = cli.run(c);
        (r.code(), r.stdout, r.stderr)
    };
    let before: Vec<_> = reads.iter().map(run).collect();
    let store = Store::open(&cli.db).unwrap();
    let server = AdminServer::new(&store).serve_unix(&cli.db).unwrap();
    assert_eq!(reads.iter().map(run).collect::<Vec<_>>(), before);
    // Through the server: an invitation made, shown once, accepted with an access token.
    let served = cli.json(&["member", "invite", "acme", "s@acme.io", "--role", "viewer"]);
    for made in [&direct, &served] {
        assert!(made["token"].as_str().unwrap().starts_with("orgstore_inv_"));
        assert_eq!(made["invite"]["role"], "viewer");
        assert_eq!(made["invite"]["status"], "pending");
    }
    let joined = cli.ok(&[
        "member",
        "accept",
        served["token"].as_str().unwrap(),
        "--access-token",
    ]);
    assert!(
        joined.starts_with("s@acme.io joined `acme` as viewer\n"),
        "{joined}"
    );
    assert!(joined.contains("orgstore_mb_"), "{joined}");
    let again = cli.run(&["member", "accept", served["token"].as_str().unwrap()]);
    assert_eq!(again.code(), Some(1));
    let revoked = cli.ok(&[
        "member",
        "revoke-invite",
        direct["invite"]["id"].as_str().unwrap(),
    ]);
    assert!(revoked.starts_with("revoked invitation inv_"), "{revoked}");
    server.shutdown();
    drop(store);
    // Directly again: the same file, the same answers.
    let text = cli.ok(&["member", "invites", "acme"]);
    assert_eq!(text.lines().count(), 1, "{text}");
    let m = cli.json(&["member", "list", "acme"]);
    assert!(
        m.as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == "s@acme.io")
    );
}
