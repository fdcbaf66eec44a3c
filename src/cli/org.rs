//! `orgstore org ...`

use clap::Subcommand;
use orgstore::{Email, Org, OrgId, StatusChange};
use serde_json::Value;

use super::output::{Out, Table, fields, org_json};
use super::{CliError, Ctx};

#[derive(Subcommand)]
pub(crate) enum OrgCmd {
    /// Create an org with its first Owner and an empty config (version 1).
    Create {
        /// The org id: 1 to 63 characters of a-z, 0-9 and '-'.
        id: String,
        /// Display name (default: the id).
        #[arg(long)]
        name: Option<String>,
        /// Email of the first Owner.
        #[arg(long, value_name = "EMAIL")]
        owner: String,
    },
    /// List orgs (all of them for the operator, a member's own with --as).
    List,
    /// Show one org.
    Show {
        /// The org id.
        id: String,
    },
    /// Delete an org: its keys stop working at once; its id is never reused.
    Delete {
        /// The org id.
        id: String,
    },
    /// Suspend an org: its keys are refused until it is resumed.
    Suspend {
        /// The org id.
        id: String,
    },
    /// Resume a suspended org.
    Resume {
        /// The org id.
        id: String,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: OrgCmd, out: &mut Out) -> Result<(), CliError> {
    let a = &ctx.actor;
    match cmd {
        OrgCmd::Create { id, name, owner } => {
            let id = OrgId::parse(&id)?;
            let owner = Email::parse(&owner).map_err(|e| CliError::for_flag("--owner", &e))?;
            let name = name.unwrap_or_else(|| id.to_string());
            let org = match ctx.remote() {
                Some(r) => r.org_create(&id, &name, &owner)?,
                None => ctx.store()?.orgs().create(a, &id, &name, &owner)?,
            };
            done(
                ctx,
                out,
                &org,
                &format!("created org `{}` with owner {owner}", org.id),
            )
        }
        OrgCmd::List => {
            let orgs = match ctx.remote() {
                Some(r) => r.org_list()?,
                None => ctx.read_store()?.orgs().list(a)?,
            };
            if ctx.json {
                return out.json(&Value::Array(orgs.iter().map(org_json).collect()));
            }
            let mut t = Table::new(&["ID", "NAME", "STATUS", "CONFIG", "OWNERS", "CREATED"]);
            for o in &orgs {
                t.row(vec![
                    o.id.to_string(),
                    o.name.clone(),
                    o.status.as_str().into(),
                    format!("v{}", o.config_version),
                    o.owner_count.to_string(),
                    o.created_at.to_string(),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        OrgCmd::Show { id } => {
            let id = OrgId::parse(&id)?;
            let org = match ctx.remote() {
                Some(r) => r.org_show(&id)?,
                None => ctx.read_store()?.orgs().get(a, &id)?,
            };
            if ctx.json {
                return out.json(&org_json(&org));
            }
            show(out, &org);
            Ok(())
        }
        OrgCmd::Delete { id } => {
            let id = OrgId::parse(&id)?;
            let org = match ctx.remote() {
                Some(r) => r.org_delete(&id)?,
                None => ctx.store()?.orgs().delete(a, &id)?,
            };
            done(
                ctx,
                out,
                &org,
                &format!("deleted org `{id}`; its keys no longer work"),
            )
        }
        OrgCmd::Suspend { id } => {
            let id = OrgId::parse(&id)?;
            let c = match ctx.remote() {
                Some(r) => r.org_status(&id, true)?,
                None => ctx.store()?.orgs().suspend(a, &id)?.into(),
            };
            let msg = if c.changed {
                format!("suspended org `{id}`; its keys are refused until `org resume {id}`")
            } else {
                format!("no change: org `{id}` is already suspended")
            };
            status_done(ctx, out, &c, &msg)
        }
        OrgCmd::Resume { id } => {
            let id = OrgId::parse(&id)?;
            let c = match ctx.remote() {
                Some(r) => r.org_status(&id, false)?,
                None => ctx.store()?.orgs().resume(a, &id)?.into(),
            };
            let msg = if c.changed {
                format!("resumed org `{id}`")
            } else {
                format!("no change: org `{id}` is already active")
            };
            status_done(ctx, out, &c, &msg)
        }
    }
}

fn done(ctx: &Ctx, out: &mut Out, org: &Org, msg: &str) -> Result<(), CliError> {
    if ctx.json {
        return out.json(&org_json(org));
    }
    out.line(msg);
    Ok(())
}

/// Prints a suspend or resume: JSON adds `"changed"` to the org.
/// What `org suspend` and `org resume` print: the org after the call and whether its
/// status changed (from the library, or from the admin API's answer).
pub(crate) struct Changed {
    pub(crate) org: Org,
    pub(crate) changed: bool,
}

impl From<StatusChange> for Changed {
    fn from(c: StatusChange) -> Self {
        Self {
            org: c.org,
            changed: c.changed,
        }
    }
}

fn status_done(ctx: &Ctx, out: &mut Out, c: &Changed, msg: &str) -> Result<(), CliError> {
    if ctx.json {
        let mut v = org_json(&c.org);
        v["changed"] = Value::Bool(c.changed);
        return out.json(&v);
    }
    out.line(msg);
    Ok(())
}

fn show(out: &mut Out, o: &Org) {
    let config = if o.config_version == o.latest_version {
        format!("v{}", o.config_version)
    } else {
        format!("v{} (latest v{})", o.config_version, o.latest_version)
    };
    fields(
        out,
        &[
            ("id", o.id.to_string()),
            ("name", o.name.clone()),
            ("status", o.status.as_str().into()),
            ("config", config),
            ("owners", o.owner_count.to_string()),
            ("created", o.created_at.to_string()),
        ],
    );
}
