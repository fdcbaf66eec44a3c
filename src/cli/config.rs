//! `orgstore config ...`

use std::io::Read;

use clap::Subcommand;
use orgstore::{ConfigVersion, MAX_CONFIG_BYTES, OrgId};
use serde_json::Value;

use super::output::{Out, Table, json_value};
use super::{CliError, Ctx};

#[derive(Subcommand)]
pub(crate) enum ConfigCmd {
    /// Print a config version (the active one by default), provider secrets masked.
    Get {
        /// The org id.
        org: String,
        /// The version to print (default: the active one).
        #[arg(long, value_name = "N")]
        version: Option<u64>,
        /// Print provider secrets in clear text (Owner and Admin only).
        #[arg(long)]
        reveal: bool,
    },
    /// Apply a JSON merge patch (RFC 7396) over the active config; the result becomes a new
    /// version.
    Set {
        /// The org id.
        org: String,
        /// The patch: inline JSON, `@FILE`, or `-` for stdin.
        patch: String,
    },
    /// List every config version, oldest first.
    History {
        /// The org id.
        org: String,
    },
    /// Show the values that differ from version V1 to version V2 (secrets masked).
    Diff {
        /// The org id.
        org: String,
        /// The older version.
        v1: u64,
        /// The newer version.
        v2: u64,
    },
    /// Re-activate an old version's content as a new version.
    Rollback {
        /// The org id.
        org: String,
        /// The version whose content to restore.
        version: u64,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: ConfigCmd, out: &mut Out) -> Result<(), CliError> {
    let a = &ctx.actor;
    match cmd {
        ConfigCmd::Get {
            org,
            version,
            reveal,
        } => {
            let org = OrgId::parse(&org)?;
            let mut obj = match ctx.remote() {
                Some(r) => r.config_get(&org, version, reveal)?,
                None => {
                    let configs = ctx.read_store()?.org_configs();
                    let v = if reveal {
                        configs.reveal(a, &org, version)?
                    } else {
                        configs.version(a, &org, version)?
                    };
                    let mut obj = json_value(&if reveal {
                        v.to_revealed_json()
                    } else {
                        v.to_json()
                    })?;
                    if let Some(o) = obj.as_object_mut() {
                        o.remove("changed");
                    }
                    obj
                }
            };
            if let Value::Object(m) = &mut obj {
                m.remove("changed");
            }
            if ctx.json {
                return out.json(&obj);
            }
            out.line(format!("# {}", describe(&obj)));
            out.json(&obj["config"])
        }
        ConfigCmd::Set { org, patch } => {
            let org = OrgId::parse(&org)?;
            let patch = read_patch(&patch)?;
            let patch = skip_comment_lines(&patch);
            if let Some(r) = ctx.remote() {
                return changed(ctx, out, &r.config_set(&org, patch)?);
            }
            let v = ctx.store()?.org_configs().update(a, &org, patch)?;
            changed(ctx, out, &changed_json(&v)?)
        }
        ConfigCmd::History { org } => {
            let org = OrgId::parse(&org)?;
            let versions: Vec<Value> = match ctx.remote() {
                Some(r) => r
                    .config_history(&org)?
                    .into_iter()
                    .map(|mut v| {
                        if let Some(o) = v.as_object_mut() {
                            o.remove("config");
                            o.remove("changed");
                        }
                        v
                    })
                    .collect(),
                None => ctx
                    .read_store()?
                    .org_configs()
                    .history(a, &org)?
                    .iter()
                    .map(version_json)
                    .collect::<Result<_, _>>()?,
            };
            if ctx.json {
                return out.json(&Value::Array(versions));
            }
            let text = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut t = Table::new(&["VERSION", "ACTIVE", "CREATED", "BY", "NOTE"]);
            for v in &versions {
                t.row(vec![
                    text(&v["version"]),
                    if v["active"] == Value::Bool(true) {
                        "*".into()
                    } else {
                        String::new()
                    },
                    text(&v["created_at"]),
                    text(&v["created_by"]),
                    text(&v["note"]),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        ConfigCmd::Diff { org, v1, v2 } => {
            let org = OrgId::parse(&org)?;
            let changes: Vec<Change> = match ctx.remote() {
                Some(r) => r.config_diff(&org, v1, v2)?,
                None => ctx
                    .read_store()?
                    .org_configs()
                    .diff(a, &org, v1, v2)?
                    .into_iter()
                    .map(|c| (c.path, c.old, c.new))
                    .collect(),
            };
            if ctx.json {
                let value = |v: &Option<String>| v.as_deref().map(json_value).transpose();
                let mut list = Vec::new();
                for (path, old, new) in &changes {
                    list.push(serde_json::json!({
                        "path": path,
                        "old": value(old)?,
                        "new": value(new)?,
                    }));
                }
                return out.json(&Value::Array(list));
            }
            if changes.is_empty() {
                out.line(format!("versions {v1} and {v2} of `{org}` are identical"));
                return Ok(());
            }
            let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
            let mut t = Table::new(&["PATH", &format!("V{v1}"), &format!("V{v2}")]);
            for (path, old, new) in &changes {
                t.row(vec![path.clone(), show(old), show(new)]);
            }
            out.table(&t);
            Ok(())
        }
        ConfigCmd::Rollback { org, version } => {
            let org = OrgId::parse(&org)?;
            if let Some(r) = ctx.remote() {
                return changed(ctx, out, &r.config_rollback(&org, version)?);
            }
            let v = ctx.store()?.org_configs().rollback(a, &org, version)?;
            changed(ctx, out, &changed_json(&v)?)
        }
    }
}

/// One change of `config diff`: (path, old, new), the values as JSON text.
pub(crate) type Change = (String, Option<String>, Option<String>);

/// A new (or unchanged) version as JSON, as the admin API answers it: the masked config and
/// whether the call made a new version.
fn changed_json(v: &ConfigVersion) -> Result<Value, CliError> {
    json_value(&v.to_json())
}

fn changed(ctx: &Ctx, out: &mut Out, v: &Value) -> Result<(), CliError> {
    if ctx.json {
        return out.json(v);
    }
    let (org, version) = (&v["org"].as_str().unwrap_or_default(), &v["version"]);
    if v["changed"] != Value::Bool(true) {
        out.line(format!(
            "no change: `{org}` config version {version} is active and already has this content"
        ));
        return Ok(());
    }
    out.line(format!(
        "`{org}` config version {version} is active ({})",
        v["note"].as_str().unwrap_or_default()
    ));
    Ok(())
}

/// The `#` line above a printed config, from its JSON description.
fn describe(v: &Value) -> String {
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let active = if v["active"] == Value::Bool(true) {
        ", active"
    } else {
        ""
    };
    format!(
        "{} config version {}{active}; {} by {} at {}",
        text("org"),
        v["version"],
        text("note"),
        text("created_by"),
        text("created_at")
    )
}

/// A version's description without its config, for history lists.
fn version_json(v: &ConfigVersion) -> Result<Value, CliError> {
    let mut obj = json_value(&v.to_json())?;
    if let Some(o) = obj.as_object_mut() {
        o.remove("config");
        o.remove("changed");
    }
    Ok(obj)
}

/// The text after its leading `#` lines: what `config get` printed (a `#` line describing
/// the version, then the masked config) can be sent back to `config set` as it is. JSON
/// never starts with `#`, so nothing else is dropped.
fn skip_comment_lines(text: &str) -> &str {
    let mut rest = text;
    while rest.trim_start().starts_with('#') {
        let t = rest.trim_start();
        rest = t.split_once('\n').map_or("", |(_, after)| after);
    }
    rest
}

/// Reads a patch given inline, as `@FILE`, or as `-` (stdin), at most 1 MiB (plus a little
/// slack so the library reports the size with its own message).
fn read_patch(arg: &str) -> Result<String, CliError> {
    let limit = (MAX_CONFIG_BYTES + 1) as u64;
    let mut text = String::new();
    if arg == "-" {
        std::io::stdin()
            .take(limit)
            .read_to_string(&mut text)
            .map_err(|e| {
                CliError::invalid(
                    "patch",
                    format!("cannot read stdin ({e}); pipe a JSON object"),
                )
            })?;
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::File::open(path)
            .and_then(|f| f.take(limit).read_to_string(&mut text))
            .map_err(|e| {
                CliError::invalid(
                    "patch",
                    format!("cannot read `{path}` ({e}); check the path after @"),
                )
            })?;
    } else {
        text = arg.to_owned();
    }
    Ok(text)
}
