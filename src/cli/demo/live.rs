//! The demo's administration of a live store: an invitation handed to the host's hook and
//! accepted, and (with the `server` feature) a leaked key revoked through the admin API's
//! socket, as `orgstore key revoke` does, while a gateway thread keeps checking it.

use std::sync::{Arc, Mutex};

use orgstore::{Actor, Email, Error, OrgId, Role, StoreBuilder};
use serde_json::{Value, json};

use super::super::output::Out;
use super::super::{CliError, Ctx};

/// What the host's hook received for one invitation, and what accepting it did.
pub(crate) struct Invitation {
    /// The invited email, as the hook got it.
    email: String,
    /// The token the hook got (the demo's store is temporary, so it may be shown).
    token: String,
    /// The member the acceptance made: email and role.
    joined: (String, Role),
    /// The error of accepting the same token again.
    reuse: String,
}

/// An owner invites a person to `org` of a fresh temporary store with a hook that collects
/// what a host would mail; the token from the hook is accepted, then tried again.
pub(crate) fn invitation(builder: &StoreBuilder) -> Result<Invitation, Error> {
    let outbox: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sent = outbox.clone();
    let store = builder
        .clone()
        .on_invite(move |invite, token| {
            if let Ok(mut o) = sent.lock() {
                o.push((invite.email.to_string(), token.to_owned()));
            }
        })
        .open_temporary()?;
    let org = OrgId::parse("customer-a")?;
    let owner = Email::parse("owner@customer-a.example")?;
    store
        .orgs()
        .create(&Actor::Operator, &org, "Customer A", &owner)?;
    store.invites().create(
        &Actor::Member(owner),
        &org,
        &Email::parse("New.Hire@Customer-A.example")?,
        Role::Member,
    )?;
    let (email, token) = outbox
        .lock()
        .ok()
        .and_then(|o| o.first().cloned())
        .unwrap_or_default();
    let joined = store.invites().accept(&token)?;
    let reuse = store
        .invites()
        .accept(&token)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    Ok(Invitation {
        email,
        token,
        joined: (joined.member.email.to_string(), joined.member.role),
        reuse,
    })
}

pub(crate) fn print_invitation(out: &mut Out, i: &Invitation) {
    out.line("");
    out.line("Invitation by email (the library sends no mail: a hook hands the host the email and the token):");
    out.line(format!(
        "  hook received: {} with token {}",
        i.email, i.token
    ));
    out.line(format!(
        "  accepted: {} joined customer-a as {}",
        i.joined.0, i.joined.1
    ));
    out.line(format!("  the same token again: {}", i.reuse));
}

pub(crate) fn invitation_json(i: &Invitation) -> Value {
    json!({
        "hook_email": i.email,
        "hook_token": i.token,
        "joined": { "email": i.joined.0, "role": i.joined.1.as_str() },
        "reuse": i.reuse,
    })
}

/// A key revoked through the admin API while a gateway keeps checking it.
pub(crate) struct LiveRevoke {
    /// Checks granted before the revocation was seen.
    allowed: u64,
    /// The first refusal after it.
    refused: String,
    /// What the CLI's client printed for the revocation.
    revoked: String,
}

/// Without the `server` feature there is no admin API to go through.
#[cfg(not(feature = "server"))]
pub(crate) fn live_revoke(_ctx: &Ctx) -> Result<Option<LiveRevoke>, CliError> {
    Ok(None)
}

/// A store file held by this process, served on its socket; a gateway thread checks a key
/// in a loop while the key is revoked through the socket with the CLI's own client (as
/// `orgstore key revoke` from another shell would).
#[cfg(feature = "server")]
pub(crate) fn live_revoke(ctx: &Ctx) -> Result<Option<LiveRevoke>, CliError> {
    use orgstore::{KeySpec, Request};
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile_dir()?;
    let db = dir.join("live.redb");
    let store = ctx.builder().non_durable().open(&db)?;
    let org = OrgId::parse("live")?;
    store.orgs().create(
        &Actor::Operator,
        &org,
        "Live",
        &Email::parse("ops@live.example")?,
    )?;
    let leaked = store
        .keys()
        .create(&Actor::Operator, &org, KeySpec::new("leaked"))?;
    let server = orgstore::server::AdminServer::new(&store).serve_unix(&db)?;
    let stop = Arc::new(AtomicBool::new(false));
    let gateway = store.gateway().clone();
    let secret = leaked.key.expose().to_owned();
    let flag = stop.clone();
    let checker = std::thread::spawn(move || {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));
        let mut allowed = 0u64;
        loop {
            match gateway.check(&Request::new(&secret, "gpt-4o", ip)) {
                Ok(_) => allowed += 1,
                Err(d) => return (allowed, format!("{}: {d}", d.code())),
            }
            if flag.load(Ordering::Relaxed) {
                return (allowed, "never refused".to_owned());
            }
        }
    });
    // Let the gateway check a while, then revoke through the socket.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let remote = super::super::remote::Remote::detect(&db, None).ok_or_else(|| {
        CliError::invalid(
            "socket",
            "the demo's admin server does not answer on its socket",
        )
    })?;
    let info = remote.key_revoke(&leaked.info.id);
    stop.store(true, Ordering::Relaxed);
    let (allowed, refused) = checker
        .join()
        .map_err(|_| CliError::invalid("demo", "the gateway thread failed"))?;
    let info = info?;
    server.shutdown();
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Some(LiveRevoke {
        allowed,
        refused,
        revoked: format!("revoked {} ({})", info.id, info.spec.name),
    }))
}

/// A private directory of the demo's own under the system's temporary directory.
#[cfg(feature = "server")]
fn tempfile_dir() -> Result<std::path::PathBuf, CliError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(format!("orgstore-demo-{}", orgstore::KeyId::random()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| {
            CliError::invalid("demo", format!("cannot make a temporary directory ({e})"))
        })?;
    Ok(dir)
}

pub(crate) fn print_live(out: &mut Out, live: Option<&LiveRevoke>) {
    out.line("");
    let Some(l) = live else {
        out.line("Admin API: build with `--features server` to see a key revoked through a live server's socket.");
        return;
    };
    out.line(
        "A leaked key revoked through the admin API's socket while the gateway keeps checking it:",
    );
    out.line(format!("  {} checks allowed while it was live", l.allowed));
    out.line(format!("  socket: {}", l.revoked));
    out.line(format!("  the next check: {}", l.refused));
}

pub(crate) fn live_json(live: Option<&LiveRevoke>) -> Value {
    live.map_or(
        Value::Null,
        |l| json!({ "allowed_before": l.allowed, "revoked": l.revoked, "next_check": l.refused }),
    )
}
