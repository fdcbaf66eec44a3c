//! Building Cedar entities from the store's facts (always against the schema).

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, RestrictedExpression,
};

use super::request::{AdminAction, AdminRequest, Target};
use crate::error::Error;
use crate::model::{Email, KeyId, KeyInfo, Member, Org, OrgId, Role};

/// The entity type names of the schema, parsed once per load.
pub(super) struct Types {
    user: EntityTypeName,
    role: EntityTypeName,
    org: EntityTypeName,
    config: EntityTypeName,
    membership: EntityTypeName,
    key: EntityTypeName,
    model: EntityTypeName,
    action: EntityTypeName,
}

fn ty(name: &str) -> Result<EntityTypeName, Error> {
    EntityTypeName::from_str(name)
        .map_err(|e| Error::invalid("policies", format!("entity type {name}: {e}")))
}

impl Types {
    pub(super) fn new() -> Result<Self, Error> {
        Ok(Self {
            user: ty("User")?,
            role: ty("Role")?,
            org: ty("Org")?,
            config: ty("Config")?,
            membership: ty("Membership")?,
            key: ty("Key")?,
            model: ty("Model")?,
            action: ty("Action")?,
        })
    }

    fn uid(t: &EntityTypeName, id: &str) -> EntityUid {
        // EntityId::new takes any string verbatim: no Cedar source is ever formatted.
        EntityUid::from_type_name_and_id(t.clone(), EntityId::new(id))
    }

    pub(super) fn user(&self, email: &str) -> EntityUid {
        Self::uid(&self.user, email)
    }
    pub(super) fn role(&self, org: &OrgId, role: Role) -> EntityUid {
        Self::uid(&self.role, &format!("{}#{}", org.as_str(), role.as_str()))
    }
    pub(super) fn org(&self, org: &OrgId) -> EntityUid {
        Self::uid(&self.org, org.as_str())
    }
    pub(super) fn config(&self, org: &OrgId) -> EntityUid {
        Self::uid(&self.config, org.as_str())
    }
    pub(super) fn membership(&self, org: &OrgId, email: &Email) -> EntityUid {
        Self::uid(
            &self.membership,
            &format!("{}/{}", org.as_str(), email.as_str()),
        )
    }
    pub(super) fn key(&self, key: &KeyId) -> EntityUid {
        Self::uid(&self.key, &key.to_string())
    }
    pub(super) fn model(&self, name: &str) -> EntityUid {
        Self::uid(&self.model, name)
    }
    pub(super) fn is_model(&self, uid: &EntityUid) -> bool {
        uid.type_name() == &self.model
    }
    pub(super) fn action(&self, name: &str) -> EntityUid {
        Self::uid(&self.action, name)
    }
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: Vec<EntityUid>,
) -> Result<Entity, String> {
    let attrs: HashMap<String, RestrictedExpression> =
        attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    Entity::new(uid, attrs, parents.into_iter().collect::<HashSet<_>>()).map_err(|e| e.to_string())
}

fn euid(u: &EntityUid) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(u.clone())
}

/// The org, its four nested role groups.
fn org_entities(t: &Types, org: &OrgId, owner_count: u32) -> Result<Vec<Entity>, String> {
    let [viewer, member, admin, owner] = Role::ALL.map(|r| t.role(org, r));
    Ok(vec![
        org_entity(t, org, owner_count)?,
        entity(owner, vec![], vec![admin.clone()])?,
        entity(admin, vec![], vec![member.clone()])?,
        entity(member, vec![], vec![viewer.clone()])?,
        entity(viewer, vec![], vec![])?,
    ])
}

fn user_entity(
    t: &Types,
    org: &OrgId,
    email: &Email,
    role: Option<Role>,
) -> Result<Entity, String> {
    // Exactly the actor's role group of this org; the hierarchy comes from the Role entities.
    user_with_groups(t, email, role.map(|r| t.role(org, r)).into_iter().collect())
}

/// The actor for one request: their role group and, already closed transitively, every group
/// it is nested in (so the per-request store needs no Role entities).
fn actor_entity(
    t: &Types,
    org: &OrgId,
    email: &Email,
    role: Option<Role>,
) -> Result<Entity, String> {
    let parents = match role {
        Some(r) => Role::ALL
            .into_iter()
            .filter(|g| *g <= r)
            .map(|g| t.role(org, g))
            .collect(),
        None => Vec::new(),
    };
    user_with_groups(t, email, parents)
}

/// A `User` entity with its `email` attribute, in the role groups `parents`.
fn user_with_groups(t: &Types, email: &Email, parents: Vec<EntityUid>) -> Result<Entity, String> {
    entity(
        t.user(email.as_str()),
        vec![(
            "email",
            RestrictedExpression::new_string(email.as_str().to_owned()),
        )],
        parents,
    )
}

/// The org entity alone (its role groups are referenced, not included).
fn org_entity(t: &Types, org: &OrgId, owner_count: u32) -> Result<Entity, String> {
    let [viewer, member, admin, owner] = Role::ALL.map(|r| t.role(org, r));
    entity(
        t.org(org),
        vec![
            ("owners", euid(&owner)),
            ("admins", euid(&admin)),
            ("members", euid(&member)),
            ("viewers", euid(&viewer)),
            (
                "owner_count",
                RestrictedExpression::new_long(i64::from(owner_count)),
            ),
        ],
        vec![],
    )
}

fn membership_entity(
    t: &Types,
    org: &OrgId,
    email: &Email,
    role: Option<Role>,
) -> Result<Entity, String> {
    let mut attrs = vec![
        ("org", euid(&t.org(org))),
        ("member", euid(&t.user(email.as_str()))),
    ];
    if let Some(r) = role {
        attrs.push((
            "role",
            RestrictedExpression::new_string(r.as_str().to_owned()),
        ));
    }
    entity(t.membership(org, email), attrs, vec![t.org(org)])
}

/// The creator of a key as recorded by the store: an email, or `operator` (no creator).
fn creator(created_by: &str) -> Option<Email> {
    if created_by == "operator" {
        None
    } else {
        Email::parse(created_by).ok()
    }
}

fn key_entity(
    t: &Types,
    org: &OrgId,
    key: &KeyId,
    created_by: Option<&str>,
) -> Result<Entity, String> {
    let mut attrs = vec![("org", euid(&t.org(org)))];
    if let Some(c) = created_by.and_then(creator) {
        attrs.push(("creator", euid(&t.user(c.as_str()))));
    }
    entity(t.key(key), attrs, vec![t.org(org)])
}

/// Everything one admin request needs: entities (org, actor, resource; the caller adds the
/// action entity), principal, resource, context.
pub(super) struct AdminFacts {
    pub(super) entities: Vec<Entity>,
    pub(super) principal: EntityUid,
    pub(super) resource: EntityUid,
    pub(super) context: Context,
}

/// Which target each action takes.
fn expected_target(action: AdminAction) -> &'static str {
    match action {
        AdminAction::UpdateConfig | AdminAction::RevealSecrets => "Target::Config",
        AdminAction::AddMember
        | AdminAction::ChangeRole
        | AdminAction::RemoveMember
        | AdminAction::LeaveOrg => "Target::Membership",
        AdminAction::CreateKey => "Target::NewKey",
        AdminAction::ManageKey => "Target::Key",
        _ => "Target::Org",
    }
}

fn target_name(target: &Target<'_>) -> &'static str {
    match target {
        Target::Org => "Target::Org",
        Target::NewKey { .. } => "Target::NewKey",
        Target::Config => "Target::Config",
        Target::Membership { .. } => "Target::Membership",
        Target::Key { .. } => "Target::Key",
    }
}

pub(super) fn admin_facts(t: &Types, req: &AdminRequest<'_>) -> Result<AdminFacts, String> {
    let email = req.actor.email().ok_or_else(|| {
        "the operator is not a Cedar principal (the store allows operator requests itself)"
            .to_owned()
    })?;
    let expected = expected_target(req.action);
    if target_name(&req.target) != expected {
        return Err(format!(
            "action {} takes {expected}, not {}",
            req.action.cedar_name(),
            target_name(&req.target)
        ));
    }
    let org = req.org;
    let mut entities = Vec::with_capacity(4);
    entities.push(org_entity(t, org, req.owner_count)?);
    entities.push(actor_entity(t, org, email, req.actor_role)?);
    let mut ctx: Vec<(String, RestrictedExpression)> = Vec::new();
    let resource = match &req.target {
        Target::Org => t.org(org),
        Target::NewKey { has_expiry } => {
            ctx.push((
                "has_expiry".to_owned(),
                RestrictedExpression::new_bool(*has_expiry),
            ));
            t.org(org)
        }
        Target::Config => {
            let uid = t.config(org);
            entities.push(entity(
                uid.clone(),
                vec![("org", euid(&t.org(org)))],
                vec![t.org(org)],
            )?);
            uid
        }
        Target::Membership {
            email: member,
            role,
            new_role,
        } => {
            if matches!(req.action, AdminAction::AddMember | AdminAction::ChangeRole) {
                let new_role = new_role.ok_or_else(|| {
                    format!("action {} needs the new role", req.action.cedar_name())
                })?;
                ctx.push((
                    "new_role".to_owned(),
                    RestrictedExpression::new_string(new_role.as_str().to_owned()),
                ));
            }
            entities.push(membership_entity(t, org, member, *role)?);
            t.membership(org, member)
        }
        Target::Key { id, created_by } => {
            entities.push(key_entity(t, org, id, Some(created_by))?);
            t.key(id)
        }
    };
    let context = Context::from_pairs(ctx).map_err(|e| e.to_string())?;
    Ok(AdminFacts {
        entities,
        principal: t.user(email.as_str()),
        resource,
        context,
    })
}

/// The gateway's principal: the key, in its org, with only stable attributes.
pub(super) fn gateway_key(t: &Types, org: &OrgId, key: &KeyId) -> Result<Entity, String> {
    key_entity(t, org, key, None)
}

/// All entities of one org, as the `cedar` CLI reads them.
pub(super) fn org_entities_json(
    t: &Types,
    schema: &cedar_policy::Schema,
    org: &Org,
    members: &[Member],
    keys: &[KeyInfo],
) -> Result<String, Error> {
    let fail = |e: String| Error::invalid("policies", format!("entities of org {}: {e}", org.id));
    let mut all = org_entities(t, &org.id, org.owner_count).map_err(fail)?;
    all.push(
        entity(
            t.config(&org.id),
            vec![("org", euid(&t.org(&org.id)))],
            vec![t.org(&org.id)],
        )
        .map_err(fail)?,
    );
    for m in members.iter().filter(|m| m.org == org.id) {
        all.push(user_entity(t, &org.id, &m.email, Some(m.role)).map_err(fail)?);
        all.push(membership_entity(t, &org.id, &m.email, Some(m.role)).map_err(fail)?);
    }
    for k in keys.iter().filter(|k| k.org == org.id) {
        all.push(key_entity(t, &org.id, &k.id, Some(&k.created_by)).map_err(fail)?);
    }
    // Checked against the schema, then written entity by entity, in a stable order and
    // with direct parents only (as a person would write them).
    Entities::from_entities(all.iter().cloned(), Some(schema)).map_err(|e| fail(e.to_string()))?;
    let list = all
        .iter()
        .map(|e| e.to_json_value().map_err(|e| fail(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!("{:#}", serde_json::Value::Array(list)))
}

/// The straightforward store for `req`, for tests: org with its four Role entities, the actor
/// in exactly their role group, the resource; checked against the schema, which adds the
/// action entities.
#[cfg(test)]
pub(super) fn reference_entities(
    t: &Types,
    schema: &cedar_policy::Schema,
    req: &AdminRequest<'_>,
) -> Result<Entities, String> {
    let facts = admin_facts(t, req)?;
    let email = req.actor.email().ok_or("operator")?;
    let mut all = org_entities(t, req.org, req.owner_count)?;
    all.push(user_entity(t, req.org, email, req.actor_role)?);
    // facts.entities = [org, actor, resource?]
    all.extend(facts.entities.into_iter().skip(2));
    Entities::from_entities(all, Some(schema)).map_err(|e| e.to_string())
}
