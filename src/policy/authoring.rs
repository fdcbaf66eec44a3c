//! Policy authoring: the files of a set, the `ManagePolicies` decision, and evaluating any
//! Cedar request written as text (policy tests).

use std::path::Path;
use std::str::FromStr;

use cedar_policy::{Context, Entities, EntityUid, Request};

use super::engine::CedarVerdict;
use super::{Explanation, Policies, load};
use crate::error::{Error, PermissionDenied};
use crate::model::Email;

/// The Cedar action that decides a change of the store's policy set.
pub(crate) const MANAGE_POLICIES: &str = "ManagePolicies";

/// The largest policy file a set may hold (a set is one record of the store).
pub const MAX_POLICY_FILE_BYTES: usize = 1 << 20;

impl Policies {
    /// The built-in policy files compiled into the library, `(file name, text)`:
    /// `roles.cedar` and `gateway.cedar`. Every set holds them, before the operator's files.
    ///
    /// ```
    /// let names: Vec<&str> = orgstore::Policies::builtin_files().iter().map(|f| f.0).collect();
    /// assert_eq!(names, ["roles.cedar", "gateway.cedar"]);
    /// ```
    pub fn builtin_files() -> Vec<(&'static str, &'static str)> {
        load::builtin_texts().to_vec()
    }

    /// The operator's files of this set (those added to the built-in files), `(name, text)`
    /// in load order.
    ///
    /// ```
    /// # use orgstore::Policies;
    /// let p = Policies::default_set()?.with_sources(&[("x.cedar", "@id(\"x\")\nforbid (principal, action == Action::\"DeleteOrg\", resource);\n")])?;
    /// assert_eq!(p.operator_files(), [("x.cedar".to_owned(), "@id(\"x\")\nforbid (principal, action == Action::\"DeleteOrg\", resource);\n".to_owned())]);
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn operator_files(&self) -> Vec<(String, String)> {
        let builtin = load::builtin_texts().len();
        self.inner
            .sources
            .iter()
            .skip(builtin)
            .map(|s| (s.name.to_string(), s.text.to_string()))
            .collect()
    }

    /// Reads the `*.cedar` files of `dir` (the extension in any case, not recursive, in
    /// file-name order) as `(file name, text)` pairs, without compiling them. An unreadable
    /// directory or file, or a file over 1 MiB, is `Invalid` naming it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// std::fs::write(dir.path().join("a.cedar"), "// nothing yet\n").unwrap();
    /// let files = orgstore::Policies::read_files(dir.path())?;
    /// assert_eq!(files[0].0, "a.cedar");
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn read_files(dir: &Path) -> Result<Vec<(String, String)>, Error> {
        load::read_dir(dir)?
            .into_iter()
            .map(|s| {
                let full = s.name.to_string();
                let name = Path::new(&full)
                    .file_name()
                    .map_or(full.clone(), |n| n.to_string_lossy().into_owned());
                if s.text.len() > MAX_POLICY_FILE_BYTES {
                    return Err(Error::invalid(
                        "policies",
                        format!("{full}: over 1 MiB; split it into smaller files"),
                    ));
                }
                Ok((name, s.text.to_string()))
            })
            .collect()
    }

    /// The built-in files plus `files`, compiled and validated strictly (see
    /// [`Policies::with_sources`]); each name must be a plain file name ending in `.cedar`,
    /// unique, and not one of the built-in names.
    ///
    /// ```
    /// # use orgstore::Policies;
    /// assert!(Policies::from_files(&[("../x.cedar".into(), String::new())]).is_err());
    /// assert_eq!(Policies::from_files(&[])?.policy_ids(), Policies::default_set()?.policy_ids());
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn from_files(files: &[(String, String)]) -> Result<Policies, Error> {
        let builtin: Vec<&str> = load::builtin_texts().iter().map(|f| f.0).collect();
        let mut seen = std::collections::HashSet::new();
        for (name, text) in files {
            check_file_name(name, &builtin)?;
            if !seen.insert(name.as_str()) {
                return Err(Error::invalid(
                    "policies",
                    format!("{name}: given twice; give each file once"),
                ));
            }
            if text.len() > MAX_POLICY_FILE_BYTES {
                return Err(Error::invalid(
                    "policies",
                    format!("{name}: over 1 MiB; split it into smaller files"),
                ));
            }
        }
        let pairs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        Policies::default_set()?.with_sources(&pairs)
    }

    /// Decides `ManagePolicies` for a person (the operator is allowed by the store itself):
    /// principal their `User` (in no role group: the policy set belongs to no org), resource
    /// `PolicySet::"active"`. No built-in policy permits it.
    #[allow(clippy::result_large_err)] // a denial is the cold path
    pub(crate) fn authorize_policy_change(&self, email: &Email) -> Result<(), PermissionDenied> {
        let entities = serde_json::json!([{
            "uid": {"type": "User", "id": email.as_str()},
            "attrs": {"email": email.as_str()},
            "parents": []
        }, {
            "uid": {"type": "PolicySet", "id": "active"},
            "attrs": {},
            "parents": []
        }]);
        let uids = (|| {
            Ok::<_, Error>((
                named_uid("User", email.as_str())?,
                named_uid("Action", MANAGE_POLICIES)?,
                named_uid("PolicySet", "active")?,
            ))
        })();
        let out = match uids.and_then(|(p, a, r)| self.evaluate_uids(p, a, r, None, &entities)) {
            Ok(out) => out,
            Err(e) => CedarVerdict::from_error(e.to_string()),
        };
        if out.allowed {
            return Ok(());
        }
        let (policies, errors) = out.deciding();
        let mut d = PermissionDenied::new(MANAGE_POLICIES, None, policies, errors);
        d.actor = email.to_string();
        d.target = "policies".to_owned();
        d.who_may =
            "only the operator may, unless an operator policy permits ManagePolicies".to_owned();
        Err(d)
    }

    /// Evaluates one Cedar request written as text against this set, as the `cedar` CLI
    /// would: `principal`, `action` and `resource` are entity UIDs (`User::"a@b.io"`,
    /// `Action::"ReadOrg"`, `Org::"acme"`), `context` the text of a JSON object (none: `{}`),
    /// `entities` the text of Cedar entities JSON (as `orgstore policy entities` prints it). Everything is
    /// checked against the schema. orgstore's own guard rails are not applied here; the
    /// built-in forbids state them. Malformed input is `Invalid` naming the field; an
    /// evaluation error makes `allowed` false and is listed.
    ///
    /// ```
    /// # use orgstore::Policies;
    /// let p = Policies::default_set()?;
    /// let entities = r#"[
    ///   {"uid": {"type": "User", "id": "v@a.io"}, "attrs": {"email": "v@a.io"}, "parents": [{"type": "Role", "id": "a#viewer"}]},
    ///   {"uid": {"type": "Role", "id": "a#viewer"}, "attrs": {}, "parents": []},
    ///   {"uid": {"type": "Org", "id": "a"}, "attrs": {"owners": {"__entity": {"type": "Role", "id": "a#owner"}}, "admins": {"__entity": {"type": "Role", "id": "a#admin"}}, "members": {"__entity": {"type": "Role", "id": "a#member"}}, "viewers": {"__entity": {"type": "Role", "id": "a#viewer"}}, "owner_count": 1}, "parents": []}
    /// ]"#;
    /// let e = p.evaluate_json(r#"User::"v@a.io""#, r#"Action::"ReadOrg""#, r#"Org::"a""#, None, entities)?;
    /// assert!(e.allowed);
    /// assert_eq!(e.reasons, ["viewer-read"]);
    /// # Ok::<(), orgstore::Error>(())
    /// ```
    pub fn evaluate_json(
        &self,
        principal: &str,
        action: &str,
        resource: &str,
        context: Option<&str>,
        entities: &str,
    ) -> Result<Explanation, Error> {
        let context = context
            .map(|c| {
                serde_json::from_str::<serde_json::Value>(c).map_err(|e| {
                    Error::invalid("context", format!("not JSON ({e}); give a JSON object"))
                })
            })
            .transpose()?;
        let entities: serde_json::Value = serde_json::from_str(entities).map_err(|e| {
            Error::invalid(
                "entities",
                format!("not JSON ({e}); give Cedar entities JSON"),
            )
        })?;
        let (context, entities) = (context.as_ref(), &entities);
        let p = uid("principal", principal)?;
        let a = uid("action", action)?;
        let r = uid("resource", resource)?;
        let out = self.evaluate_uids(p, a, r, context, entities)?;
        Ok(Explanation {
            allowed: out.allowed,
            reasons: out.reasons,
            errors: out.errors,
        })
    }

    fn evaluate_uids(
        &self,
        p: EntityUid,
        a: EntityUid,
        r: EntityUid,
        context: Option<&serde_json::Value>,
        entities: &serde_json::Value,
    ) -> Result<CedarVerdict, Error> {
        let c = &*self.inner;
        let ctx = match context {
            None => Context::empty(),
            Some(v) => Context::from_json_value(v.clone(), Some((&c.schema, &a))).map_err(|e| {
                Error::invalid(
                    "context",
                    format!("{e}; give the action's context as a JSON object"),
                )
            })?,
        };
        let ents = Entities::from_json_value(entities.clone(), Some(&c.schema)).map_err(|e| {
            Error::invalid(
                "entities",
                format!("{e}; give Cedar entities JSON matching the schema"),
            )
        })?;
        let request = Request::new(p, a.clone(), r, ctx, Some(&c.schema)).map_err(|e| {
            Error::invalid("action", format!("{e}; the request must fit the schema"))
        })?;
        let name = a.id().unescaped().to_owned();
        let response = c
            .authorizer
            .is_authorized(&request, c.policies_for(&name), &ents);
        Ok(CedarVerdict::from_response(&response))
    }
}

fn uid(field: &'static str, text: &str) -> Result<EntityUid, Error> {
    EntityUid::from_str(text.trim()).map_err(|e| {
        Error::invalid(
            field,
            format!("{text:?} is not a Cedar entity UID ({e}); write it as Type::\"id\""),
        )
    })
}

fn named_uid(ty: &str, id: &str) -> Result<EntityUid, Error> {
    let t = cedar_policy::EntityTypeName::from_str(ty)
        .map_err(|e| Error::invalid("policies", format!("entity type {ty}: {e}")))?;
    Ok(EntityUid::from_type_name_and_id(
        t,
        cedar_policy::EntityId::new(id),
    ))
}

fn check_file_name(name: &str, builtin: &[&str]) -> Result<(), Error> {
    let plain = !name.is_empty()
        && name.len() <= 255
        && !name.contains(['/', '\\'])
        && name != "."
        && name != ".."
        && !name.chars().any(char::is_control);
    let cedar = Path::new(name)
        .extension()
        .is_some_and(|x| x.eq_ignore_ascii_case("cedar"));
    if !plain || !cedar {
        return Err(Error::invalid(
            "policies",
            format!(
                "{name:?}: not a plain file name ending in .cedar; name each policy file NAME.cedar"
            ),
        ));
    }
    if builtin.iter().any(|b| b.eq_ignore_ascii_case(name)) {
        return Err(Error::invalid(
            "policies",
            format!("{name}: is the name of a built-in file; rename the file"),
        ));
    }
    Ok(())
}
