//! `orgstore member ...`

use clap::{Subcommand, ValueEnum};
use orgstore::{Email, Member, OrgId, Role};
use serde_json::{Value, json};

use super::output::{Out, Table};
use super::{CliError, Ctx};

/// A role as a command-line value.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum RoleArg {
    /// Full access, including deleting the org and granting Owner.
    Owner,
    /// Providers, keys, routing, budgets and members below Owner.
    Admin,
    /// Reads config and creates keys.
    Member,
    /// Read-only.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Owner => Role::Owner,
            RoleArg::Admin => Role::Admin,
            RoleArg::Member => Role::Member,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum MemberCmd {
    /// Add a person to an org with a role.
    Add {
        /// The org id.
        org: String,
        /// The person's email (case does not matter).
        email: String,
        /// Their role in this org.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// List an org's members.
    List {
        /// The org id.
        org: String,
    },
    /// Change a member's role (the last Owner cannot be demoted).
    Role {
        /// The org id.
        org: String,
        /// The member's email.
        email: String,
        /// The new role.
        #[arg(value_enum)]
        role: RoleArg,
    },
    /// Remove a member (removing yourself with --as is leaving the org).
    Remove {
        /// The org id.
        org: String,
        /// The member's email.
        email: String,
    },
    /// List the orgs a person belongs to, with their role in each.
    Orgs {
        /// The person's email.
        email: String,
    },
    #[command(flatten)]
    Invites(super::invite::InviteCmd),
}

pub(crate) fn run(ctx: &Ctx, cmd: MemberCmd, out: &mut Out) -> Result<(), CliError> {
    let a = &ctx.actor;
    match cmd {
        MemberCmd::Invites(cmd) => super::invite::run(ctx, cmd, out),
        MemberCmd::Add { org, email, role } => {
            let (org, email) = (OrgId::parse(&org)?, Email::parse(&email)?);
            let m = match ctx.remote() {
                Some(r) => r.member_add(&org, &email, role.into())?,
                None => ctx.store()?.members().add(a, &org, &email, role.into())?,
            };
            done(
                ctx,
                out,
                &m,
                &format!("added {} to `{}` as {}", m.email, m.org, m.role),
            )
        }
        MemberCmd::List { org } => {
            let org = OrgId::parse(&org)?;
            let members = match ctx.remote() {
                Some(r) => r.member_list(&org)?,
                None => ctx.read_store()?.members().list(a, &org)?,
            };
            if ctx.json {
                return out.json(&Value::Array(members.iter().map(member_json).collect()));
            }
            let mut t = Table::new(&["EMAIL", "ROLE", "ADDED", "BY"]);
            for m in &members {
                t.row(vec![
                    m.email.to_string(),
                    m.role.to_string(),
                    m.added_at.to_string(),
                    m.added_by.clone(),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        MemberCmd::Role { org, email, role } => {
            let (org, email) = (OrgId::parse(&org)?, Email::parse(&email)?);
            let m = match ctx.remote() {
                Some(r) => r.member_role(&org, &email, role.into())?,
                None => ctx
                    .store()?
                    .members()
                    .set_role(a, &org, &email, role.into())?,
            };
            done(
                ctx,
                out,
                &m,
                &format!("{} is now {} of `{}`", m.email, m.role, m.org),
            )
        }
        MemberCmd::Remove { org, email } => {
            let (org, email) = (OrgId::parse(&org)?, Email::parse(&email)?);
            match ctx.remote() {
                Some(r) => r.member_remove(&org, &email)?,
                None => ctx.store()?.members().remove(a, &org, &email)?,
            }
            if ctx.json {
                return out.json(
                    &json!({ "org": org.as_str(), "email": email.as_str(), "removed": true }),
                );
            }
            out.line(format!("removed {email} from `{org}`"));
            Ok(())
        }
        MemberCmd::Orgs { email } => {
            let email = Email::parse(&email)?;
            let orgs = match ctx.remote() {
                Some(r) => r.member_orgs(&email)?,
                None => ctx.read_store()?.members().orgs_of(a, &email)?,
            };
            if ctx.json {
                let v = orgs
                    .iter()
                    .map(|(o, r)| json!({ "org": o.as_str(), "role": r.as_str() }))
                    .collect();
                return out.json(&Value::Array(v));
            }
            let mut t = Table::new(&["ORG", "ROLE"]);
            for (o, r) in &orgs {
                t.row(vec![o.to_string(), r.to_string()]);
            }
            out.table(&t);
            Ok(())
        }
    }
}

fn done(ctx: &Ctx, out: &mut Out, m: &Member, msg: &str) -> Result<(), CliError> {
    if ctx.json {
        return out.json(&member_json(m));
    }
    out.line(msg);
    Ok(())
}

pub(crate) fn member_json(m: &Member) -> Value {
    json!({
        "org": m.org.as_str(),
        "email": m.email.as_str(),
        "role": m.role.as_str(),
        "added_at": m.added_at.to_string(),
        "added_by": m.added_by,
    })
}
