//! `orgstore member invite | invites | revoke-invite | accept`: invitations by email.

use clap::Subcommand;
use orgstore::{Email, Invite, InviteId, Member, OrgId};
use serde_json::{Value, json};

use super::member::RoleArg;
use super::output::{Out, Table, fields};
use super::{CliError, Ctx};

#[derive(Subcommand)]
pub(crate) enum InviteCmd {
    /// Invite a person by email to join an org with a role (only owners invite owners);
    /// prints the single-use token that accepts it, this once.
    Invite {
        /// The org id.
        org: String,
        /// The person's email (case does not matter).
        email: String,
        /// The role they get when they accept.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// How long the invitation can be accepted, in hours (1 to 2160).
        #[arg(long, value_name = "HOURS", default_value_t = 168)]
        expires_in_hours: u64,
    },
    /// List an org's pending invitations.
    Invites {
        /// The org id.
        org: String,
    },
    /// Revoke a pending invitation: its token stops working.
    RevokeInvite {
        /// The invitation id (inv_ and 16 hex digits).
        invite_id: String,
    },
    /// Accept an invitation with its token: the invited email becomes a member with the
    /// invited role.
    Accept {
        /// The invitation's token (orgstore_inv_...).
        token: String,
        /// Also issue the new member's first member access token for the admin API over
        /// TCP (printed once).
        #[arg(long)]
        access_token: bool,
    },
}

/// An invitation as the CLI's `--json` prints it (never its token).
fn invite_json(i: &Invite) -> Result<Value, CliError> {
    Ok(json!({
        "id": i.id.to_string(),
        "org": i.org.as_str(),
        "email": i.email.as_str(),
        "role": i.role.as_str(),
        "status": i.status.as_str(),
        "created_at": i.created_at.to_string(),
        "created_by": i.created_by,
        "expires_at": i.expires_at.to_string(),
        "closed_at": i.closed_at.map(|t| t.to_string()),
    }))
}

pub(crate) fn run(ctx: &Ctx, cmd: InviteCmd, out: &mut Out) -> Result<(), CliError> {
    let a = &ctx.actor;
    match cmd {
        InviteCmd::Invite {
            org,
            email,
            role,
            expires_in_hours,
        } => {
            let (org, email) = (OrgId::parse(&org)?, Email::parse(&email)?);
            let (invite, token) = match ctx.remote() {
                Some(r) => r.invite_create(&org, &email, role.into(), expires_in_hours)?,
                None => {
                    let valid_for =
                        std::time::Duration::from_secs(expires_in_hours.saturating_mul(3600));
                    let made = ctx.store()?.invites().create_valid_for(
                        a,
                        &org,
                        &email,
                        role.into(),
                        valid_for,
                    )?;
                    (made.invite, made.token.expose().to_owned())
                }
            };
            if ctx.json {
                return out.json(&json!({ "invite": invite_json(&invite)?, "token": token }));
            }
            fields(
                out,
                &[
                    ("id", invite.id.to_string()),
                    ("org", invite.org.to_string()),
                    ("email", invite.email.to_string()),
                    ("role", invite.role.to_string()),
                    ("expires", invite.expires_at.to_string()),
                    ("token", token),
                ],
            );
            out.note(format!(
                "send the token to {}: it is shown only this once; they run `orgstore member accept TOKEN`",
                invite.email
            ));
            Ok(())
        }
        InviteCmd::Invites { org } => {
            let org = OrgId::parse(&org)?;
            let list = match ctx.remote() {
                Some(r) => r.invite_list(&org)?,
                None => ctx.read_store()?.invites().list(a, &org)?,
            };
            if ctx.json {
                let v = list.iter().map(invite_json).collect::<Result<_, _>>()?;
                return out.json(&Value::Array(v));
            }
            let mut t = Table::new(&["ID", "EMAIL", "ROLE", "EXPIRES", "BY"]);
            for i in &list {
                t.row(vec![
                    i.id.to_string(),
                    i.email.to_string(),
                    i.role.to_string(),
                    i.expires_at.to_string(),
                    i.created_by.clone(),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        InviteCmd::RevokeInvite { invite_id } => {
            let id = InviteId::parse(&invite_id)?;
            let i = match ctx.remote() {
                Some(r) => r.invite_revoke(&id)?,
                None => ctx.store()?.invites().revoke(a, &id)?,
            };
            if ctx.json {
                return out.json(&invite_json(&i)?);
            }
            out.line(format!(
                "revoked invitation {} of {} to `{}`",
                i.id, i.email, i.org
            ));
            Ok(())
        }
        InviteCmd::Accept {
            token,
            access_token,
        } => {
            let v = match ctx.remote() {
                Some(r) => r.invite_accept(&token, access_token)?,
                None => accept_here(ctx, &token, access_token)?,
            };
            if ctx.json {
                return out.json(&v);
            }
            let m: Member = serde_json::from_value(v["member"].clone()).map_err(|e| {
                CliError::invalid(
                    "socket",
                    format!("the server's answer has another shape ({e})"),
                )
            })?;
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            out.line(format!("{} joined `{}` as {}", m.email, m.org, m.role));
            if let Some(t) = v.get("access_token") {
                fields(
                    out,
                    &[
                        ("access token id", text(&t["id"])),
                        ("access token", text(&t["token"])),
                    ],
                );
                out.note("store the access token now: it is shown only this once");
            }
            Ok(())
        }
    }
}

/// `member accept` on the file: the answer in the admin API's shape.
fn accept_here(ctx: &Ctx, token: &str, access_token: bool) -> Result<Value, CliError> {
    #[cfg(not(feature = "server"))]
    if access_token {
        return Err(CliError::invalid(
            "--access-token",
            "access tokens need an orgstore built with the `server` feature",
        ));
    }
    let joined = ctx.store()?.invites().accept(token)?;
    let encode = |e: serde_json::Error| CliError::invalid("output", format!("cannot encode ({e})"));
    #[allow(unused_mut)]
    let mut v = json!({
        "invite": serde_json::to_value(&joined.invite).map_err(encode)?,
        "member": serde_json::to_value(&joined.member).map_err(encode)?,
    });
    #[cfg(feature = "server")]
    if access_token {
        use orgstore::server::{TokenHolder, Tokens};
        let (info, secret) =
            Tokens::beside(ctx.db()).create(TokenHolder::Member(joined.member.email), None)?;
        let mut t = info.to_json();
        t["token"] = Value::String(secret);
        v["access_token"] = t;
    }
    Ok(v)
}
