//! Read-only helpers for `orgstore policy explain` and `orgstore policy entities`: the facts an
//! admin request is decided on, gathered from the store's own relations in one read
//! transaction, exactly as the store's operations gather them.

use super::Store;
use super::tx::ReadRecords;
use crate::error::Error;
use crate::model::{Actor, Email, KeyId, KeyInfo, OrgId, Role};
use crate::policy::{AdminAction, AdminRequest, Explanation, Target};

/// The kinds of target `policy explain` accepts, as written on the command line.
const FORMS: &str = "org:<ORG>, config:<ORG>, member:<ORG>/<EMAIL>, key:<KEY_ID> or newkey:<ORG>";

/// A parsed target spec.
enum Spec {
    Org(OrgId),
    Config(OrgId),
    Member(OrgId, Email),
    Key(KeyId),
    NewKey(OrgId),
}

/// The target kind each action is decided on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Org,
    Config,
    Member,
    Key,
    NewKey,
}

impl Kind {
    fn of(action: AdminAction) -> Self {
        match action {
            AdminAction::UpdateConfig | AdminAction::RevealSecrets => Kind::Config,
            AdminAction::AddMember
            | AdminAction::ChangeRole
            | AdminAction::RemoveMember
            | AdminAction::LeaveOrg => Kind::Member,
            AdminAction::CreateKey => Kind::NewKey,
            AdminAction::ManageKey => Kind::Key,
            _ => Kind::Org,
        }
    }

    fn form(self) -> &'static str {
        match self {
            Kind::Org => "org:<ORG> (or key:<KEY_ID> for the key's org)",
            Kind::Config => "config:<ORG>",
            Kind::Member => "member:<ORG>/<EMAIL>",
            Kind::Key => "key:<KEY_ID>",
            Kind::NewKey => "newkey:<ORG>",
        }
    }
}

impl Spec {
    fn parse(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("target", format!("`{s}` is not a target; give {FORMS}"));
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        match kind.trim().to_ascii_lowercase().as_str() {
            "org" => Ok(Spec::Org(OrgId::parse(rest)?)),
            "config" => Ok(Spec::Config(OrgId::parse(rest)?)),
            "newkey" => Ok(Spec::NewKey(OrgId::parse(rest)?)),
            "key" => Ok(Spec::Key(KeyId::parse(rest)?)),
            "member" => {
                let (org, email) = rest.split_once('/').ok_or_else(bad)?;
                Ok(Spec::Member(OrgId::parse(org)?, Email::parse(email)?))
            }
            _ => Err(bad()),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Spec::Org(_) => Kind::Org,
            Spec::Config(_) => Kind::Config,
            Spec::Member(..) => Kind::Member,
            Spec::Key(_) => Kind::Key,
            Spec::NewKey(_) => Kind::NewKey,
        }
    }
}

/// One admin request as the store would decide it: the facts gathered from the store and
/// the policies' answer. Built by [`Store::explain`]; `orgstore policy explain` prints it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ExplainReport {
    /// Who acts.
    pub actor: Actor,
    /// The actor's role in `org` according to the store (`None`: not a member, or the
    /// operator).
    pub actor_role: Option<Role>,
    /// The action asked about.
    pub action: AdminAction,
    /// The org the target belongs to according to the store.
    pub org: OrgId,
    /// The org's number of Owners.
    pub owner_count: u32,
    /// The Cedar resource, e.g. `Membership::"acme/bob@acme.io"`.
    pub resource: String,
    /// The resource's attributes taken from the store (`role`, `creator`), in Cedar's names.
    pub attributes: Vec<(&'static str, String)>,
    /// The request context (`new_role`, `has_expiry`), in Cedar's names.
    pub context: Vec<(&'static str, String)>,
    /// The decision. For the operator: allowed, with no reasons (it is not a Cedar
    /// principal: the store lets it do everything).
    pub explanation: Explanation,
}

fn uid(ty: &str, id: &str) -> String {
    format!("{ty}::\"{}\"", id.escape_debug())
}

impl Store {
    /// Explains how the active policies decide `action` by `actor` on `target`, with the
    /// facts gathered from the store in one read transaction the way its operations gather
    /// them (the actor's membership, the org's owner count, the member's current role, the
    /// key's org and creator). `target` is one of `org:<ORG>`, `config:<ORG>`,
    /// `member:<ORG>/<EMAIL>`, `key:<KEY_ID>`, `newkey:<ORG>`; an org-level action may take
    /// `key:<KEY_ID>` for the key's org (as `key show` does). `new_role` is the role being
    /// granted (AddMember and ChangeRole need it, other actions refuse it); `has_expiry`
    /// is whether a new key has an expiry (CreateKey only). `orgstore policy explain` is
    /// this call; an admin console can show the same report before a member tries an
    /// action.
    ///
    /// A person must be a member of the org: anybody else gets exactly the answer of an org
    /// (or key) that does not exist, and the attempt is audited as a denial, as for every
    /// other operation. A member must also be allowed to see what the answer shows: the
    /// member list (ListMembers) for a membership, the key list (ListKeys) for a key, the
    /// org (ReadOrg) otherwise. Otherwise nothing is written.
    ///
    /// ```
    /// use orgstore::{Actor, AdminAction, Email, OrgId, Role, Store};
    /// # fn main() -> Result<(), orgstore::Error> {
    /// let store = Store::open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// let ann = Email::parse("ann@acme.io")?;
    /// let bob = Email::parse("bob@acme.io")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &ann)?;
    /// store.members().add(&Actor::Operator, &acme, &bob, Role::Viewer)?;
    ///
    /// // May Bob, a Viewer, make himself an Admin?
    /// let report = store.explain(
    ///     &Actor::Member(bob.clone()),
    ///     AdminAction::ChangeRole,
    ///     "member:acme/bob@acme.io",
    ///     Some(Role::Admin),
    ///     false,
    /// )?;
    /// assert_eq!(report.actor_role, Some(Role::Viewer));
    /// assert_eq!(report.owner_count, 1);
    /// assert!(!report.explanation.allowed);
    /// assert_eq!(report.resource, r#"Membership::"acme/bob@acme.io""#);
    /// assert!(report.context.contains(&("new_role", Role::Admin.to_string())));
    ///
    /// // The Owner may.
    /// let report = store.explain(
    ///     &Actor::Member(ann),
    ///     AdminAction::ChangeRole,
    ///     "member:acme/bob@acme.io",
    ///     Some(Role::Admin),
    ///     false,
    /// )?;
    /// assert!(report.explanation.allowed);
    /// # Ok(()) }
    /// ```
    pub fn explain(
        &self,
        actor: &Actor,
        action: AdminAction,
        target: &str,
        new_role: Option<Role>,
        has_expiry: bool,
    ) -> Result<ExplainReport, Error> {
        self.explain_what_if(
            &self.policies(),
            actor,
            action,
            target,
            new_role,
            has_expiry,
        )
    }

    /// [`Store::explain`] under another policy set than the store's (for example the
    /// active one plus a directory: `store.policies().with_dir(dir)`): what the decision
    /// would be. Read-only; it changes no enforcement.
    pub fn explain_what_if(
        &self,
        policies: &crate::policy::Policies,
        actor: &Actor,
        action: AdminAction,
        target: &str,
        new_role: Option<Role>,
        has_expiry: bool,
    ) -> Result<ExplainReport, Error> {
        let spec = Spec::parse(target)?;
        let want = Kind::of(action);
        let key_for_org = want == Kind::Org && spec.kind() == Kind::Key;
        if spec.kind() != want && !key_for_org {
            return Err(Error::invalid(
                "target",
                format!(
                    "{} is decided on {}; give that form",
                    action.cedar_name(),
                    want.form()
                ),
            ));
        }
        let grants = matches!(action, AdminAction::AddMember | AdminAction::ChangeRole);
        if grants && new_role.is_none() {
            return Err(Error::invalid(
                "new role",
                format!(
                    "{} needs the role being granted: owner, admin, member or viewer",
                    action.cedar_name()
                ),
            ));
        }
        if !grants && new_role.is_some() {
            return Err(Error::invalid(
                "new role",
                format!(
                    "only AddMember and ChangeRole grant a role, not {}",
                    action.cedar_name()
                ),
            ));
        }
        if action == AdminAction::CreateOrg {
            return self.explain_create(policies, actor, &spec);
        }
        // What explain reads is what these let the actor see: the member list (roles), the
        // key list (creators), the org.
        let shown_by = match spec.kind() {
            Kind::Member => AdminAction::ListMembers,
            Kind::Key => AdminAction::ListKeys,
            _ => AdminAction::ReadOrg,
        };
        self.read(|r| {
            // A non-member gets the answer of an id that does not exist (audited), exactly
            // as from every other operation.
            let (org, key) = match &spec {
                Spec::Org(o) | Spec::Config(o) | Spec::NewKey(o) | Spec::Member(o, _) => {
                    (self.org_for(r, actor, o, action)?, None)
                }
                Spec::Key(id) => {
                    let (rec, org) = self.key_for(r, actor, id, action)?;
                    (org, Some(rec.info))
                }
            };
            self.authorize(r, actor, shown_by, &org, Target::Org)?;
            let actor_role = match actor.email() {
                Some(e) => r.member(&org.id, e)?.map(|m| m.role),
                None => None,
            };
            let mut attributes = Vec::new();
            let mut context = Vec::new();
            let (resource, target) = match (&spec, &key, want) {
                (_, _, Kind::Org) => (uid("Org", org.id.as_str()), Target::Org),
                (_, _, Kind::Config) => (uid("Config", org.id.as_str()), Target::Config),
                (_, _, Kind::NewKey) => {
                    context.push(("has_expiry", has_expiry.to_string()));
                    (uid("Org", org.id.as_str()), Target::NewKey { has_expiry })
                }
                (Spec::Member(_, email), _, Kind::Member) => {
                    let role = r.member(&org.id, email)?.map(|m| m.role);
                    let shown =
                        role.map_or_else(|| "(absent: not a member)".to_owned(), |r| r.to_string());
                    attributes.push(("role", shown));
                    if let Some(n) = new_role {
                        context.push(("new_role", n.to_string()));
                    }
                    let resource = uid(
                        "Membership",
                        &format!("{}/{}", org.id.as_str(), email.as_str()),
                    );
                    (
                        resource,
                        Target::Membership {
                            email,
                            role,
                            new_role,
                        },
                    )
                }
                (_, Some(info), Kind::Key) => {
                    let creator = if info.created_by == "operator" {
                        "(absent: created by the operator)".to_owned()
                    } else {
                        uid("User", &info.created_by)
                    };
                    attributes.push(("creator", creator));
                    (
                        uid("Key", &info.id.to_string()),
                        Target::Key {
                            id: info.id,
                            created_by: &info.created_by,
                        },
                    )
                }
                _ => return Err(Error::invalid("target", format!("give {}", want.form()))),
            };
            let explanation = match actor {
                Actor::Operator => Explanation::operator(),
                Actor::Member(_) => policies.explain(&AdminRequest {
                    actor,
                    actor_role,
                    action,
                    org: &org.id,
                    owner_count: org.owner_count,
                    target,
                }),
            };
            Ok(ExplainReport {
                actor: actor.clone(),
                actor_role,
                action,
                org: org.id.clone(),
                owner_count: org.owner_count,
                resource,
                attributes,
                context,
                explanation,
            })
        })
    }

    /// `explain` for CreateOrg: decided on the org to be created, whether or not it exists.
    fn explain_create(
        &self,
        policies: &crate::policy::Policies,
        actor: &Actor,
        spec: &Spec,
    ) -> Result<ExplainReport, Error> {
        let Spec::Org(org) = spec else {
            return Err(Error::invalid(
                "target",
                "CreateOrg is decided on org:<ORG>",
            ));
        };
        let explanation = match actor {
            Actor::Operator => Explanation::operator(),
            Actor::Member(_) => policies.explain(&AdminRequest {
                actor,
                actor_role: None,
                action: AdminAction::CreateOrg,
                org,
                owner_count: 0,
                target: Target::Org,
            }),
        };
        Ok(ExplainReport {
            actor: actor.clone(),
            actor_role: None,
            action: AdminAction::CreateOrg,
            org: org.clone(),
            owner_count: 0,
            resource: uid("Org", org.as_str()),
            attributes: Vec::new(),
            context: Vec::new(),
            explanation,
        })
    }

    /// The Cedar entities JSON of one org (org, role groups, config, members with their
    /// memberships, keys), read in one transaction, for the public `cedar` CLI with our
    /// schema and policies. The actor needs the permissions to list the org's members and
    /// keys. `orgstore policy entities` prints it, so that a policy author can try a
    /// policy against an org's real entities with the `cedar` tool.
    ///
    /// ```
    /// use orgstore::{Actor, Email, OrgId, Store};
    /// # fn main() -> Result<(), orgstore::Error> {
    /// let store = Store::open_temporary()?;
    /// let acme = OrgId::parse("acme")?;
    /// store.orgs().create(&Actor::Operator, &acme, "Acme", &Email::parse("ann@acme.io")?)?;
    /// let entities: String = store.policy_entities(&Actor::Operator, &acme)?;
    /// // JSON text, as the `cedar` CLI reads it from a file.
    /// assert!(entities.starts_with('['));
    /// assert!(entities.contains(r#""type": "Org""#), "{entities}");
    /// assert!(entities.contains(r#""id": "acme""#), "{entities}");
    /// # Ok(()) }
    /// ```
    pub fn policy_entities(&self, actor: &Actor, org: &OrgId) -> Result<String, Error> {
        self.read(|r| {
            let o = self.org_for(r, actor, org, AdminAction::ListMembers)?;
            self.authorize(r, actor, AdminAction::ListMembers, &o, Target::Org)?;
            self.authorize(r, actor, AdminAction::ListKeys, &o, Target::Org)?;
            let members = r.members_of(org)?;
            let keys: Vec<KeyInfo> = r.keys_of(org)?.into_iter().map(|k| k.info).collect();
            self.policies().org_entities_json(&o, &members, &keys)
        })
    }
}
