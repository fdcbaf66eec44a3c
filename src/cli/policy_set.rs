//! `orgstore policy apply|show|pull|history|diff|rollback|test`: the store's versioned
//! policy set, and policy tests.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Subcommand;
use orgstore::{OrgId, Policies, PolicyVersion};
use serde_json::{Value, json};

use super::output::{Out, Table};
use super::{CliError, Ctx};

#[derive(Subcommand)]
pub(crate) enum SetCmd {
    /// Validate DIR's `*.cedar` files strictly with the built-in files (warnings fail, every
    /// policy needs an @id), show the impact (every decision of the store's members and keys
    /// that would change) and store them as the new active version of the store's policy
    /// set. With --dry-run nothing is stored, and the exit code is 1 when a decision changes.
    Apply {
        /// A directory of `*.cedar` files (the operator's files; the built-in ones are added).
        dir: PathBuf,
        /// Validate and show the changes without storing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the operator files of a version (default: the active one).
    Show {
        /// The version.
        #[arg(long)]
        version: Option<u64>,
        /// Print the built-in files first: the whole set as one Cedar file, for
        /// `cedar validate --schema policies/schema.cedarschema --policies FILE`.
        #[arg(long)]
        all: bool,
    },
    /// Write the operator files of a version (default: the active one) into DIR.
    Pull {
        /// The directory (created if absent); existing files of the same name are replaced.
        dir: PathBuf,
        /// The version.
        #[arg(long)]
        version: Option<u64>,
    },
    /// Write the whole set of a version (default: the active one), the built-in files then
    /// the operator files, as one Cedar file in `cedar format` layout: `cedar validate
    /// --deny-warnings --schema policies/schema.cedarschema --policies FILE` accepts it and
    /// `cedar format --check -p FILE` leaves it as it is. `-` writes to standard output.
    Export {
        /// The file to write (replaced if it exists), or `-`.
        file: PathBuf,
        /// The version.
        #[arg(long)]
        version: Option<u64>,
    },
    /// List every version of the store's policy set.
    History,
    /// Print the policy log, newest first: every change of the policy set and every refused
    /// attempt (operator only).
    Log {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show how the operator files differ from version A to version B.
    Diff {
        /// The first version.
        a: u64,
        /// The second version.
        b: u64,
    },
    /// Make version N's files the new active version.
    Rollback {
        /// The version to restore.
        version: u64,
    },
    /// Run policy test files against the store's active policy set (or, with --policies DIR,
    /// the active set plus DIR; without a store file, the built-in set); exit 0 when every
    /// case passes, 1 when any fails. A file is a JSON array of cases: `principal`,
    /// `action`, `resource` (Cedar entity UIDs, e.g. `User::"a@b.io"`), optional `context`
    /// (an object), the entities inline (`entities`: Cedar entities JSON, or the name of a
    /// file holding it, relative to the test file) or from an org of the store (`org`),
    /// `expect` ("allow" or "deny"), optional `policies` (the deciding policy ids) and
    /// `name`.
    Test {
        /// Test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub(crate) fn run(ctx: &Ctx, cmd: SetCmd, out: &mut Out) -> Result<(), CliError> {
    if !matches!(cmd, SetCmd::Test { .. }) && ctx.remote().is_none() {
        // These commands are the way out of a stored set this build does not load.
        ctx.recover_policies.set(true);
        if let Some(why) = ctx.read_store().ok().and_then(|s| s.policy_recovery()) {
            out.note(format!("warning: {why}"));
        }
    }
    match cmd {
        SetCmd::Apply { dir, dry_run } => apply(ctx, &dir, dry_run, out),
        SetCmd::Show { version, all } => {
            let v = version_of(ctx, version)?;
            show(ctx, &v, all, out)
        }
        SetCmd::Pull { dir, version } => {
            let v = version_of(ctx, version)?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                CliError::invalid("dir", format!("cannot create {}: {e}", dir.display()))
            })?;
            for (name, text) in &v.files {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(|e| {
                    CliError::invalid("dir", format!("cannot write {}: {e}", path.display()))
                })?;
            }
            out.note(format!(
                "wrote {} file(s) of version {} to {}",
                v.files.len(),
                v.version,
                dir.display()
            ));
            Ok(())
        }
        SetCmd::Export { file, version } => {
            let v = version_of(ctx, version)?;
            let text = cedar_layout(&v.combined())?;
            if file.as_os_str() == "-" {
                out.line(text.trim_end_matches('\n'));
                return Ok(());
            }
            std::fs::write(&file, &text).map_err(|e| {
                CliError::invalid("file", format!("cannot write {}: {e}", file.display()))
            })?;
            out.note(format!(
                "wrote policy set version {} ({} policies) to {}",
                v.version,
                Policies::from_files(&v.files).map_or(0, |p| p.policy_ids().len()),
                file.display()
            ));
            Ok(())
        }
        SetCmd::History => {
            let all = match ctx.remote() {
                Some(r) => r.policy_history()?,
                None => ctx.read_store()?.policy_set().history()?,
            };
            if ctx.json {
                return out.json(&Value::Array(all.iter().map(version_json).collect()));
            }
            let mut t = Table::new(&["VERSION", "ACTIVE", "CREATED", "BY", "NOTE", "FILES"]);
            for v in &all {
                t.row(vec![
                    v.version.to_string(),
                    if v.active { "*" } else { "" }.to_owned(),
                    v.created_at.to_string(),
                    v.created_by.clone(),
                    v.note.clone(),
                    names(&v.files),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        SetCmd::Log { limit } => {
            let log = match ctx.remote() {
                Some(r) => r.policy_log(limit)?,
                None => ctx.read_store()?.policy_set().audit(&ctx.actor, limit)?,
            };
            if ctx.json {
                let v: Vec<Value> = log
                    .iter()
                    .map(|e| {
                        json!({
                            "seq": e.seq,
                            "at": e.at.to_string(),
                            "actor": e.actor,
                            "action": e.action,
                            "summary": e.summary,
                            "outcome": if e.outcome == orgstore::AuditOutcome::Applied { "applied" } else { "denied" },
                        })
                    })
                    .collect();
                return out.json(&Value::Array(v));
            }
            let mut t = Table::new(&["SEQ", "AT", "ACTOR", "OUTCOME", "SUMMARY"]);
            for e in &log {
                t.row(vec![
                    e.seq.to_string(),
                    e.at.to_string(),
                    e.actor.clone(),
                    if e.outcome == orgstore::AuditOutcome::Applied {
                        "applied"
                    } else {
                        "denied"
                    }
                    .to_owned(),
                    e.summary.clone(),
                ]);
            }
            out.table(&t);
            Ok(())
        }
        SetCmd::Diff { a, b } => {
            let changes = match ctx.remote() {
                Some(r) => r.policy_diff(a, b)?,
                None => ctx.read_store()?.policy_set().diff(a, b)?,
            };
            if ctx.json {
                let v: Vec<Value> = changes
                    .iter()
                    .map(|c| json!({"file": c.file, "status": c.status, "lines": c.lines}))
                    .collect();
                return out.json(&Value::Array(v));
            }
            if changes.is_empty() {
                out.note(format!("versions {a} and {b} hold the same files"));
            }
            for c in &changes {
                out.line(format!("{} {}", c.status, c.file));
                for l in &c.lines {
                    out.line(format!("  {l}"));
                }
            }
            Ok(())
        }
        SetCmd::Rollback { version } => {
            let v = match ctx.remote() {
                Some(r) => r.policy_rollback(version)?,
                None => ctx.store()?.policy_set().rollback(&ctx.actor, version)?,
            };
            report(ctx, &v, out)
        }
        SetCmd::Test { files } => test(ctx, &files, out),
    }
}

/// One version of the store's policy set (the active one for `None`), from a live server
/// when one holds the store.
fn version_of(ctx: &Ctx, version: Option<u64>) -> Result<PolicyVersion, CliError> {
    match ctx.remote() {
        Some(r) => r.policy_version(version),
        None => Ok(ctx.read_store()?.policy_set().version(version)?),
    }
}

fn names(files: &[(String, String)]) -> String {
    if files.is_empty() {
        "-".to_owned()
    } else {
        files
            .iter()
            .map(|f| f.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn version_json(v: &PolicyVersion) -> Value {
    json!({
        "version": v.version,
        "active": v.active,
        "created_at": v.created_at.to_string(),
        "created_by": v.created_by,
        "note": v.note,
        "files": v.files.iter().map(|(n, t)| json!({"name": n, "text": t})).collect::<Vec<_>>(),
    })
}

/// `text` as `cedar format` lays it out (line width 80, indent 2: its defaults).
fn cedar_layout(text: &str) -> Result<String, CliError> {
    let config = cedar_policy_formatter::Config {
        line_width: 80,
        indent_width: 2,
    };
    cedar_policy_formatter::policies_str_to_pretty(text, &config).map_err(|e| {
        CliError::invalid(
            "policies",
            format!("cannot lay the set out as cedar format does: {e}"),
        )
    })
}

fn show(ctx: &Ctx, v: &PolicyVersion, all: bool, out: &mut Out) -> Result<(), CliError> {
    if ctx.json {
        return out.json(&version_json(v));
    }
    if all {
        for (name, text) in Policies::builtin_files() {
            out.line(format!("// ---- {name}"));
            for l in text.lines() {
                out.line(l);
            }
        }
    }
    out.note(format!(
        "version {}{}: {} by {} ({}); the built-in files {} come first",
        v.version,
        if v.active { " (active)" } else { "" },
        v.created_at,
        v.created_by,
        v.note,
        Policies::builtin_files()
            .iter()
            .map(|f| f.0)
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if v.files.is_empty() {
        out.note("no operator files");
    }
    for (name, text) in &v.files {
        out.line(format!("// ---- {name}"));
        for l in text.lines() {
            out.line(l);
        }
    }
    Ok(())
}

fn report(ctx: &Ctx, v: &PolicyVersion, out: &mut Out) -> Result<(), CliError> {
    if ctx.json {
        let mut j = version_json(v);
        j["changed"] = json!(v.changed);
        return out.json(&j);
    }
    if v.changed {
        out.note(format!(
            "policy set version {} is active ({}; files: {})",
            v.version,
            v.note,
            names(&v.files)
        ));
    } else {
        out.note(format!(
            "unchanged: version {} already holds these files",
            v.version
        ));
    }
    Ok(())
}

fn apply(ctx: &Ctx, dir: &std::path::Path, dry_run: bool, out: &mut Out) -> Result<(), CliError> {
    let files = Policies::read_files(dir)?;
    // Strict validation first: nothing is stored when it fails.
    let proposed = Policies::from_files(&files)?;
    // The impact is decided for the acting principal, as the change is: it names every
    // org's members and keys.
    if dry_run {
        let (active, impact) = match ctx.remote() {
            Some(r) => r.policy_impact(&files)?,
            None => {
                let store = ctx.read_store()?;
                let impact = store.policy_set().impact(&ctx.actor, &proposed)?;
                (store.policy_set().active()?, impact)
            }
        };
        let changes: Vec<Value> = impact.changes.iter().map(change_json).collect();
        if ctx.json {
            out.json(&json!({
                "dry_run": true,
                "active_version": active.version,
                "same_files": active.files == files,
                "policies": proposed.policy_ids(),
                "evaluated": impact.evaluated,
                "changes": changes,
            }))?;
        } else {
            out.note(format!(
                "ok: {} validates strictly ({} policies); dry run, nothing stored",
                dir.display(),
                proposed.policy_ids().len()
            ));
            print_impact(&impact, out);
        }
        // Exit 1 when decisions change, so CI can gate a policy change.
        return if impact.changes.is_empty() {
            Ok(())
        } else {
            Err(CliError::quiet(1))
        };
    }
    let (v, impact) = match ctx.remote() {
        Some(r) => r.policy_apply(&files)?,
        None => {
            let store = ctx.store()?;
            let impact = store.policy_set().impact(&ctx.actor, &proposed)?;
            (store.policy_set().apply(&ctx.actor, &files)?, impact)
        }
    };
    let changes: Vec<Value> = impact.changes.iter().map(change_json).collect();
    if ctx.json {
        let mut j = version_json(&v);
        j["changed"] = json!(v.changed);
        j["evaluated"] = json!(impact.evaluated);
        j["changes"] = Value::Array(changes);
        return out.json(&j);
    }
    print_impact(&impact, out);
    report(ctx, &v, out)
}

fn change_json(c: &orgstore::DecisionChange) -> Value {
    json!({
        "principal": c.principal,
        "action": c.action,
        "resource": c.resource,
        "context": c.context,
        "before": if c.before { "allow" } else { "deny" },
        "after": if c.after { "allow" } else { "deny" },
        "before_policies": c.before_policies,
        "after_policies": c.after_policies,
    })
}

fn print_impact(impact: &orgstore::ImpactReport, out: &mut Out) {
    out.note(format!(
        "impact: {} of {} decisions change",
        impact.changes.len(),
        impact.evaluated
    ));
    if impact.changes.is_empty() {
        return;
    }
    let word = |b: bool| if b { "allow" } else { "deny" };
    let ids = |p: &[String]| {
        if p.is_empty() {
            "-".to_owned()
        } else {
            p.join(", ")
        }
    };
    let mut t = Table::new(&[
        "PRINCIPAL",
        "ACTION",
        "RESOURCE",
        "CONTEXT",
        "BEFORE",
        "AFTER",
        "POLICIES BEFORE",
        "POLICIES AFTER",
    ]);
    for c in &impact.changes {
        t.row(vec![
            c.principal.clone(),
            c.action.clone(),
            c.resource.clone(),
            if c.context.is_empty() {
                "-".to_owned()
            } else {
                c.context.clone()
            },
            word(c.before).to_owned(),
            word(c.after).to_owned(),
            ids(&c.before_policies),
            ids(&c.after_policies),
        ]);
    }
    out.table(&t);
}

/// One policy test case.
struct Case {
    name: String,
    principal: String,
    action: String,
    resource: String,
    context: Option<Value>,
    entities: Option<Value>,
    org: Option<String>,
    expect_allow: bool,
    policies: Option<Vec<String>>,
}

fn field(
    file: &str,
    i: usize,
    c: &serde_json::Map<String, Value>,
    k: &str,
) -> Result<Option<String>, CliError> {
    match c.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(CliError::invalid(
            "test",
            format!("{file}: case {}: `{k}` must be a string", i + 1),
        )),
    }
}

fn parse_cases(file: &str, text: &str) -> Result<Vec<Case>, CliError> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        CliError::invalid(
            "test",
            format!("{file}: not JSON ({e}); give an array of cases"),
        )
    })?;
    let Value::Array(items) = v else {
        return Err(CliError::invalid(
            "test",
            format!("{file}: give a JSON array of cases"),
        ));
    };
    let known = [
        "name",
        "principal",
        "action",
        "resource",
        "context",
        "entities",
        "org",
        "expect",
        "policies",
    ];
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(c) = item else {
            return Err(CliError::invalid(
                "test",
                format!("{file}: case {} is not an object", i + 1),
            ));
        };
        if let Some(k) = c.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(CliError::invalid(
                "test",
                format!(
                    "{file}: case {}: unknown field `{k}`; the fields are {}",
                    i + 1,
                    known.join(", ")
                ),
            ));
        }
        let need = |k: &str| {
            field(file, i, c, k)?.ok_or_else(|| {
                CliError::invalid("test", format!("{file}: case {}: `{k}` is missing", i + 1))
            })
        };
        let expect = need("expect")?;
        let expect_allow = match expect.as_str() {
            "allow" => true,
            "deny" => false,
            _ => {
                return Err(CliError::invalid(
                    "test",
                    format!("{file}: case {}: `expect` is \"allow\" or \"deny\"", i + 1),
                ));
            }
        };
        let org = field(file, i, c, "org")?;
        let entities = c.get("entities").cloned();
        if org.is_some() == entities.is_some() {
            return Err(CliError::invalid(
                "test",
                format!(
                    "{file}: case {}: give the entities either inline (`entities`) or as an org of the store (`org`)",
                    i + 1
                ),
            ));
        }
        let policies = match c.get("policies") {
            None => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|p| p.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        CliError::invalid(
                            "test",
                            format!("{file}: case {}: `policies` is a list of ids", i + 1),
                        )
                    })?,
            ),
            Some(_) => {
                return Err(CliError::invalid(
                    "test",
                    format!("{file}: case {}: `policies` is a list of ids", i + 1),
                ));
            }
        };
        let principal = need("principal")?;
        let action = need("action")?;
        let resource = need("resource")?;
        out.push(Case {
            name: field(file, i, c, "name")?
                .unwrap_or_else(|| format!("{principal} {action} {resource}")),
            principal,
            action,
            resource,
            context: c.get("context").cloned(),
            entities,
            org,
            expect_allow,
            policies,
        });
    }
    Ok(out)
}

/// Entities kept in a file of their own, named relative to the test file.
fn entities_file(test_file: &str, name: &str) -> Result<Value, CliError> {
    let base = std::path::Path::new(test_file)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let path = base.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::invalid(
            "test",
            format!(
                "{test_file}: entities file {}: cannot read ({e})",
                path.display()
            ),
        )
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CliError::invalid(
            "test",
            format!(
                "{test_file}: entities file {}: not JSON ({e})",
                path.display()
            ),
        )
    })
}

fn test(ctx: &Ctx, files: &[PathBuf], out: &mut Out) -> Result<(), CliError> {
    let mut cases = Vec::new();
    for f in files {
        let name = f.display().to_string();
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError::invalid("test", format!("{name}: cannot read ({e})")))?;
        cases.extend(
            parse_cases(&name, &text)?
                .into_iter()
                .map(|c| (name.clone(), c)),
        );
    }
    let needs_store = cases.iter().any(|(_, c)| c.org.is_some()) || ctx.db.exists();
    let remote = ctx.remote();
    let store = match remote {
        None if needs_store => Some(ctx.read_store()?),
        _ => None,
    };
    // Without a store file, the set a new store enforces: the built-in one.
    let active = match (remote, store) {
        (Some(r), _) => Arc::new(Policies::from_files(&r.policy_version(None)?.files)?),
        (None, Some(s)) => s.policies(),
        (None, None) => Arc::new(Policies::default_set()?),
    };
    let policies = match &ctx.policies {
        Some(dir) => Arc::new(active.with_dir(dir)?),
        None => active,
    };
    let (mut passed, mut failed) = (0usize, 0usize);
    let mut results = Vec::new();
    for (file, c) in &cases {
        let entities = match (&c.entities, &c.org) {
            (Some(Value::String(name)), _) => entities_file(file, name)?,
            (Some(e), _) => e.clone(),
            (None, Some(org)) => {
                let org = OrgId::parse(org)?;
                let text = match (remote, store) {
                    (Some(r), _) => r.entities(&org)?,
                    (None, Some(s)) => s.policy_entities(&ctx.actor, &org)?,
                    (None, None) => String::new(),
                };
                serde_json::from_str(&text).unwrap_or(Value::Null)
            }
            (None, None) => Value::Array(Vec::new()),
        };
        let context = c.context.as_ref().map(Value::to_string);
        let got = policies.evaluate_json(
            &c.principal,
            &c.action,
            &c.resource,
            context.as_deref(),
            &entities.to_string(),
        );
        let (ok, detail) = match &got {
            Err(e) => (false, format!("error: {e}")),
            Ok(e) => {
                let mut reasons = e.reasons.clone();
                reasons.sort();
                let decision_ok = e.allowed == c.expect_allow;
                let ids_ok = c.policies.as_ref().is_none_or(|want| {
                    let mut want = want.clone();
                    want.sort();
                    want == reasons
                });
                let got_text = format!(
                    "{} by [{}]{}",
                    if e.allowed { "allow" } else { "deny" },
                    reasons.join(", "),
                    if e.errors.is_empty() {
                        String::new()
                    } else {
                        format!(" errors: {}", e.errors.join("; "))
                    }
                );
                (decision_ok && ids_ok, got_text)
            }
        };
        if ok {
            passed += 1;
        } else {
            failed += 1;
            let want = format!(
                "{}{}",
                if c.expect_allow { "allow" } else { "deny" },
                c.policies
                    .as_ref()
                    .map_or(String::new(), |p| format!(" by [{}]", p.join(", ")))
            );
            if !ctx.json {
                out.line(format!(
                    "FAIL {file}: {}: expected {want}, got {detail}",
                    c.name
                ));
            }
        }
        results.push(json!({"file": file, "name": c.name, "passed": ok, "got": detail}));
    }
    if ctx.json {
        out.json(&json!({"passed": passed, "failed": failed, "cases": results}))?;
    } else {
        out.line(format!(
            "{} cases: {passed} passed, {failed} failed",
            passed + failed
        ));
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::quiet(1))
    }
}
