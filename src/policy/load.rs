//! Loading: parse, name from `@id`, validate strictly, and split per action.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cedar_policy::{
    ActionConstraint, Authorizer, Entities, Entity, EntityUid, PolicyId, PolicySet,
    PrincipalConstraint, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;

use super::request::AdminAction;
use crate::error::Error;

/// The compiled-in schema.
pub(super) const SCHEMA_SRC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/schema.cedarschema"
));
const ROLES_SRC: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/roles.cedar"));
const GATEWAY_SRC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/gateway.cedar"
));

/// The Cedar action id of the gateway decision.
pub(super) const INVOKE: &str = "invoke";

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// One policy text and the name it is reported under.
#[derive(Clone, Debug)]
pub(crate) struct Source {
    pub(crate) name: Arc<str>,
    pub(crate) text: Arc<str>,
}

impl Source {
    pub(crate) fn new(name: &str, text: &str) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// The built-in files, `(file name, text)`, in load order.
pub(super) fn builtin_texts() -> [(&'static str, &'static str); 2] {
    [("roles.cedar", ROLES_SRC), ("gateway.cedar", GATEWAY_SRC)]
}

pub(super) fn default_sources() -> Vec<Source> {
    builtin_texts()
        .iter()
        .map(|(name, text)| Source::new(name, text))
        .collect()
}

/// Reads every `*.cedar` file of `dir`, in file-name order.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<Source>, Error> {
    let shown = dir.display().to_string();
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::invalid(
            "policies",
            format!(
                "cannot read policy directory {shown}; give a readable directory of .cedar files"
            ),
        )
        .with_source(e)
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::invalid(
                "policies",
                format!("cannot read policy directory {shown}; check its permissions"),
            )
            .with_source(e)
        })?;
        let path = entry.path();
        // `.cedar` in any case: a file named `X.CEDAR` is a policy file too, never skipped.
        if path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("cedar"))
            && path.is_file()
        {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::invalid(
                "policies",
                format!("{name}: cannot read; check its permissions"),
            )
            .with_source(e)
        })?;
        out.push(Source::new(&name, &text));
    }
    Ok(out)
}

/// A validated set, with everything needed to evaluate requests.
pub(crate) struct Compiled {
    pub(super) schema: Schema,
    /// All policies, named from `@id`.
    pub(super) set: PolicySet,
    /// For each action id, the policies whose action scope can match it (a policy whose
    /// scope cannot match never applies, so evaluating only these gives the same answer).
    pub(super) by_action: HashMap<String, PolicySet>,
    /// Each action's entity as the schema defines it (with its groups as ancestors).
    pub(super) action_entities: HashMap<String, Entity>,
    pub(super) authorizer: Authorizer,
    pub(super) types: super::entities::Types,
    pub(super) ids: Vec<String>,
    pub(super) sources: Vec<Source>,
    pub(super) generation: u64,
}

impl Compiled {
    pub(super) fn build(sources: Vec<Source>) -> Result<Self, Error> {
        let schema = parse_schema()?;
        let mut set = PolicySet::new();
        let mut ids = Vec::new();
        // policy id -> index of its source, for error locations
        let mut origin: HashMap<String, usize> = HashMap::new();
        for (i, src) in sources.iter().enumerate() {
            let parsed = PolicySet::from_str(&src.text).map_err(|errs| {
                let msgs: Vec<String> = errs.iter().map(|e| located(src, e, false)).collect();
                Error::invalid("policies", finish(msgs))
            })?;
            if let Some(t) = parsed.templates().next() {
                let id = t.annotation("id").unwrap_or("(no @id)").to_owned();
                return Err(Error::invalid(
                    "policies",
                    format!(
                        "{}: template {id}: templates are not supported; write a policy without ?principal/?resource slots",
                        src.name
                    ),
                ));
            }
            let starts = policy_starts(&src.text);
            for p in parsed.policies() {
                let id = match p.annotation("id") {
                    Some(id) if !id.trim().is_empty() => id.to_owned(),
                    got => {
                        let place = cedar_index(p.id().as_ref())
                            .and_then(|i| starts.get(i))
                            .map_or_else(
                                || src.name.to_string(),
                                |off| {
                                    let (line, col) = line_col(&src.text, *off);
                                    format!("{}:{line}:{col}", src.name)
                                },
                            );
                        let what = if got.is_some() {
                            "has a blank @id"
                        } else {
                            "has no @id"
                        };
                        return Err(Error::invalid(
                            "policies",
                            format!(
                                "{place}: this policy {what}; every policy needs a unique @id(\"...\") (denials name it); fix the policy and load again (the previous policies stay active)"
                            ),
                        ));
                    }
                };
                if let Some(prev) = origin.get(&id) {
                    let prev_name = sources.get(*prev).map_or("?", |s| &s.name);
                    return Err(Error::invalid(
                        "policies",
                        format!(
                            "{}: policy id {id:?} is already used in {prev_name}; give each policy a unique @id(\"...\")",
                            src.name
                        ),
                    ));
                }
                let renamed = p.new_id(PolicyId::new(&id));
                set.add(renamed)
                    .map_err(|e| Error::invalid("policies", format!("{}: {id}: {e}", src.name)))?;
                origin.insert(id.clone(), i);
                ids.push(id);
            }
        }

        let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
        let mut msgs = Vec::new();
        for e in result.validation_errors() {
            let src = origin
                .get(e.policy_id().to_string().as_str())
                .and_then(|i| sources.get(*i));
            msgs.push(located_opt(src, e, false));
        }
        for w in result.validation_warnings() {
            let src = origin
                .get(w.policy_id().to_string().as_str())
                .and_then(|i| sources.get(*i));
            msgs.push(located_opt(src, w, true));
        }
        if !msgs.is_empty() {
            return Err(Error::invalid("policies", finish(msgs)));
        }

        let actions = schema
            .action_entities()
            .map_err(|e| Error::invalid("policies", format!("schema actions: {e}")))?;
        let by_action = split_by_action(&set, &actions)?;
        let action_entities = actions
            .iter()
            .map(|e| (e.uid().id().unescaped().to_owned(), e.clone()))
            .collect();
        Ok(Self {
            schema,
            set,
            by_action,
            action_entities,
            authorizer: Authorizer::new(),
            types: super::entities::Types::new()?,
            ids,
            sources,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed) + 1,
        })
    }

    /// The policies that can apply to `action` (the full set if the action is unknown).
    pub(super) fn policies_for(&self, action: &str) -> &PolicySet {
        self.by_action.get(action).unwrap_or(&self.set)
    }
}

fn parse_schema() -> Result<Schema, Error> {
    let (schema, warnings) = Schema::from_cedarschema_str(SCHEMA_SRC)
        .map_err(|e| Error::invalid("policies", format!("schema.cedarschema: {e}")))?;
    let warnings: Vec<String> = warnings
        .map(|w| format!("schema.cedarschema: warning: {w}"))
        .collect();
    if !warnings.is_empty() {
        return Err(Error::invalid("policies", warnings.join("; ")));
    }
    Ok(schema)
}

fn action_uid(name: &str) -> Result<EntityUid, Error> {
    let ty = cedar_policy::EntityTypeName::from_str("Action")
        .map_err(|e| Error::invalid("policies", format!("action type: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(
        ty,
        cedar_policy::EntityId::new(name),
    ))
}

fn split_by_action(
    set: &PolicySet,
    actions: &Entities,
) -> Result<HashMap<String, PolicySet>, Error> {
    let names = AdminAction::ALL
        .iter()
        .map(|a| a.cedar_name())
        .chain(std::iter::once(INVOKE));
    let mut out = HashMap::new();
    for name in names {
        let uid = action_uid(name)?;
        let matches = |c: &EntityUid| c == &uid || actions.is_ancestor_of(c, &uid);
        let mut sub = PolicySet::new();
        // The gateway's principal is a Key: a policy scoped to another principal type (the
        // admin guard rails are `principal is User`) never applies to it.
        let principal_fits = |p: &cedar_policy::Policy| {
            name != INVOKE
                || match p.principal_constraint() {
                    PrincipalConstraint::Is(t) | PrincipalConstraint::IsIn(t, _) => {
                        t.to_string() == "Key"
                    }
                    _ => true,
                }
        };
        for p in set.policies() {
            let applies = match p.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(c) => c == uid,
                ActionConstraint::In(cs) => cs.iter().any(matches),
            } && principal_fits(p);
            if applies {
                sub.add(p.clone())
                    .map_err(|e| Error::invalid("policies", format!("{}: {e}", p.id())))?;
            }
        }
        out.insert(name.to_owned(), sub);
    }
    Ok(out)
}

/// The index Cedar's parser gave a policy in its text (`policy3` -> 3).
fn cedar_index(id: &str) -> Option<usize> {
    id.strip_prefix("policy")?.parse().ok()
}

/// The byte offset where each policy of `text` starts (its first annotation or its
/// effect), in text order, as Cedar numbers them: policies end at a `;` outside strings and
/// comments.
fn policy_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut expecting = true;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '/' if chars.peek().is_some_and(|(_, n)| *n == '/') => {
                for (_, n) in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            '"' => {
                if expecting {
                    starts.push(i);
                    expecting = false;
                }
                while let Some((_, n)) = chars.next() {
                    match n {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            ';' => expecting = true,
            c if c.is_whitespace() => {}
            _ => {
                if expecting {
                    starts.push(i);
                    expecting = false;
                }
            }
        }
    }
    starts
}

fn finish(msgs: Vec<String>) -> String {
    let mut s = msgs.join("; ");
    s.push_str("; fix the policy and load again (the previous policies stay active)");
    s
}

fn located_opt(src: Option<&Source>, d: &dyn Diagnostic, warning: bool) -> String {
    match src {
        Some(src) => located(src, d, warning),
        None if warning => format!("warning: {d}"),
        None => d.to_string(),
    }
}

/// `file:line:col: [warning: ]message (help)`.
fn located(src: &Source, d: &dyn Diagnostic, warning: bool) -> String {
    let offset = d
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset())
        .or_else(|| first_related_offset(d));
    let place = match offset {
        Some(off) => {
            let (line, col) = line_col(&src.text, off);
            format!("{}:{line}:{col}", src.name)
        }
        None => src.name.to_string(),
    };
    // Cedar's validation messages already start with "for policy `id`".
    let mut msg = if warning {
        format!("{place}: warning: {d}")
    } else {
        format!("{place}: {d}")
    };
    if let Some(help) = d.help() {
        msg.push_str(&format!(" ({help})"));
    }
    msg
}

fn first_related_offset(d: &dyn Diagnostic) -> Option<usize> {
    d.related()?
        .find_map(|r| r.labels().and_then(|mut l| l.next()).map(|l| l.offset()))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let upto = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = upto.matches('\n').count() + 1;
    let col = upto.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_starts_skip_comments_and_strings() {
        let text = "// a; b\n@id(\"x;y\")\npermit(principal, action, resource);\n\n  forbid(principal, action, resource) when { \"a\\\";\" == \"b\" };\n// end;\n";
        let starts = policy_starts(text);
        assert_eq!(starts.len(), 2, "{starts:?}");
        assert_eq!(line_col(text, starts[0]), (2, 1));
        assert_eq!(line_col(text, starts[1]), (5, 3));
        assert_eq!(cedar_index("policy12"), Some(12));
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
