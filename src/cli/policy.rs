//! `orgstore policy ...`: validate policy files, explain one admin decision, and export an
//! org's Cedar entities for the public `cedar` CLI.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use orgstore::{Actor, AdminAction, OrgId, Policies};
use serde_json::json;

use super::member::RoleArg;
use super::output::{Out, fields};
use super::{CliError, Ctx};

#[derive(Subcommand)]
pub(crate) enum PolicyCmd {
    /// Validate the built-in policies plus DIR's `*.cedar` files strictly against the schema
    /// (warnings fail); print the policy ids.
    Validate {
        /// A directory of `*.cedar` files; default: the global --policies directory, if any.
        dir: Option<PathBuf>,
    },
    /// Explain how the policies decide one admin action by the --as member: decision,
    /// deciding policies, errors (exit 0 allowed, 3 denied).
    Explain(ExplainArgs),
    /// Print the Cedar entities JSON of an org (org, role groups, config, members, keys) for
    /// the public `cedar` CLI.
    Entities {
        /// The org id.
        org: String,
    },
    #[command(flatten)]
    Set(super::policy_set::SetCmd),
}

#[derive(Args)]
pub(crate) struct ExplainArgs {
    /// The Cedar action, case-insensitive: ReadOrg, UpdateConfig, RevealSecrets, DeleteOrg,
    /// SuspendOrg, ResumeOrg, ManageBilling, ListMembers, AddMember, ChangeRole,
    /// RemoveMember, LeaveOrg, CreateKey, ListKeys, ManageKey, ReadAudit, ReadLogs,
    /// ReadAnalytics, CreateOrg.
    action: String,
    /// What the action is done to: org:<ORG>, config:<ORG>, member:<ORG>/<EMAIL>,
    /// key:<KEY_ID> or newkey:<ORG>. With --org, `org`, `config`, `newkey` and
    /// `member:<EMAIL>` take the org from it.
    target: String,
    /// The org, for targets written without one.
    #[arg(long, value_name = "ORG")]
    org: Option<String>,
    /// The role being granted (AddMember and ChangeRole need it).
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    /// The new key has an expiry (CreateKey only).
    #[arg(long)]
    expires: bool,
}

pub(crate) fn run(ctx: &Ctx, cmd: PolicyCmd, out: &mut Out) -> Result<(), CliError> {
    match cmd {
        PolicyCmd::Validate { dir } => validate(ctx, dir, out),
        PolicyCmd::Explain(args) => explain(ctx, &args, out),
        PolicyCmd::Entities { org } => {
            let org = OrgId::parse(&org)?;
            let text = match ctx.remote() {
                Some(r) => r.entities(&org)?,
                None => ctx.read_store()?.policy_entities(&ctx.actor, &org)?,
            };
            out.json(&super::output::json_value(&text)?)
        }
        PolicyCmd::Set(cmd) => super::policy_set::run(ctx, cmd, out),
    }
}

fn validate(ctx: &Ctx, dir: Option<PathBuf>, out: &mut Out) -> Result<(), CliError> {
    let dir = dir.or_else(|| ctx.policies.clone());
    let ids = match &dir {
        Some(d) => Policies::validate_dir(d)?,
        None => Policies::default_set()?.policy_ids(),
    };
    if ctx.json {
        return out.json(&json!(ids));
    }
    let what = dir.as_ref().map_or_else(
        || "the built-in policies".to_owned(),
        |d| format!("the built-in policies and {}/*.cedar", d.display()),
    );
    out.note(format!(
        "ok: {what} validate strictly against the schema ({} policies)",
        ids.len()
    ));
    for id in &ids {
        out.line(id);
    }
    Ok(())
}

/// `TARGET` completed with `--org` where it names no org; an error when both name one and
/// they differ.
fn full_target(target: &str, org: Option<&OrgId>) -> Result<String, CliError> {
    let (kind, rest) = match target.split_once(':') {
        Some((k, r)) => (k.trim().to_ascii_lowercase(), Some(r)),
        None => (target.trim().to_ascii_lowercase(), None),
    };
    let named = match (kind.as_str(), rest) {
        ("org" | "config" | "newkey", Some(o)) => Some(o.to_owned()),
        ("member", Some(r)) => r.split_once('/').map(|(o, _)| o.to_owned()),
        _ => None,
    };
    match (named, org) {
        (Some(n), Some(o)) if n != o.as_str() => Err(CliError::invalid(
            "--org",
            format!("`{o}` differs from the org `{n}` named by the target; give one of them"),
        )),
        (Some(_), _) => Ok(target.to_owned()),
        (None, Some(o)) => match (kind.as_str(), rest) {
            ("org" | "config" | "newkey", None) => Ok(format!("{kind}:{o}")),
            ("member", Some(email)) => Ok(format!("member:{o}/{email}")),
            _ => Ok(target.to_owned()),
        },
        (None, None) => Ok(target.to_owned()),
    }
}

fn explain(ctx: &Ctx, args: &ExplainArgs, out: &mut Out) -> Result<(), CliError> {
    let action = AdminAction::from_name(args.action.trim()).ok_or_else(|| {
        let names: Vec<&str> = AdminAction::ALL.iter().map(|a| a.cedar_name()).collect();
        CliError::invalid(
            "action",
            format!(
                "`{}` is not a Cedar action; use one of {}",
                args.action,
                names.join(", ")
            ),
        )
    })?;
    if args.expires && action != AdminAction::CreateKey {
        return Err(CliError::invalid(
            "--expires",
            format!("applies to CreateKey only, not {}", action.cedar_name()),
        ));
    }
    let org = args.org.as_deref().map(OrgId::parse).transpose()?;
    let target = full_target(&args.target, org.as_ref())?;
    let new_role = args.role.map(Into::into);
    let flag = |e: orgstore::Error| match e.field() {
        "new role" => CliError::for_flag("--role", &e),
        _ => e.into(),
    };
    let r = match ctx.remote() {
        Some(remote) => {
            // What if: the directory's files, named by their paths as `with_dir` names
            // them, so an error reads the same.
            let what_if = match &ctx.policies {
                Some(dir) => Some(
                    Policies::read_files(dir)?
                        .into_iter()
                        .map(|(name, text)| (dir.join(name).display().to_string(), text))
                        .collect::<Vec<_>>(),
                ),
                None => None,
            };
            remote
                .explain(action, &target, new_role, args.expires, what_if.as_deref())
                .map_err(|e| e.for_flag_if("new role", "--role"))?
        }
        None => {
            let store = ctx.read_store()?;
            let policies = match &ctx.policies {
                Some(dir) => std::sync::Arc::new(store.policies().with_dir(dir)?),
                None => store.policies(),
            };
            store
                .explain_what_if(
                    &policies,
                    &ctx.actor,
                    action,
                    &target,
                    new_role,
                    args.expires,
                )
                .map_err(flag)?
        }
    };
    if let Some(o) = &org
        && *o != r.org
    {
        return Err(CliError::not_found(
            "--org",
            format!("{} belongs to org `{}`, not `{o}`", args.target, r.org),
        ));
    }
    let e = &r.explanation;
    let operator = r.actor == Actor::Operator;
    if ctx.json {
        out.json(&r.to_value())?;
    } else {
        let joined = |p: &[(&str, String)]| {
            if p.is_empty() {
                "-".to_owned()
            } else {
                p.iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let role = match (operator, r.actor_role) {
            (true, _) => "the operator".to_owned(),
            (false, Some(role)) => format!("{role} of `{}`", r.org),
            (false, None) => format!("not a member of `{}`", r.org),
        };
        let reasons = match (operator, e.allowed, e.reasons.is_empty()) {
            (true, ..) => {
                "operator may do everything (not a Cedar principal; still audited)".to_owned()
            }
            (false, true, _) => format!("permitted by {}", e.reasons.join(", ")),
            (false, false, false) => format!("forbidden by {}", e.reasons.join(", ")),
            (false, false, true) if e.errors.is_empty() => "no policy permits it".to_owned(),
            (false, false, true) => "evaluation errors deny".to_owned(),
        };
        let resource = if r.attributes.is_empty() {
            r.resource.clone()
        } else {
            format!("{} ({})", r.resource, joined(&r.attributes))
        };
        fields(
            out,
            &[
                (
                    "decision",
                    if e.allowed { "allow" } else { "deny" }.to_owned(),
                ),
                ("actor", format!("{} ({role})", r.actor)),
                ("action", r.action.cedar_name().to_owned()),
                ("resource", resource),
                ("context", joined(&r.context)),
                ("org", format!("{} (owner_count {})", r.org, r.owner_count)),
                ("reasons", reasons),
                (
                    "errors",
                    if e.errors.is_empty() {
                        "-".to_owned()
                    } else {
                        e.errors.join("; ")
                    },
                ),
            ],
        );
    }
    if e.allowed {
        Ok(())
    } else {
        Err(CliError::quiet(3))
    }
}
