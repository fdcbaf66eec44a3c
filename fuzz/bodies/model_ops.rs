//! The `model_ops` target: random admin operations and gateway checks against a reference
//! model of maps, through the public API only.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use arbitrary::{Arbitrary, Unstructured};
use orgstore::{Actor, Email, ErrorKind, KeyId, OrgId, Request, Role, Store, StoreBuilder};
use serde_json::json;

use super::Failure;

const ORGS: u8 = 3;
const PEOPLE: u8 = 4;
const MODELS: u8 = 5;

/// One admin operation or gateway check, with small index spaces so that operations collide.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// Create org `org % 3` with owner person 0.
    CreateOrg {
        /// Org slot.
        org: u8,
    },
    /// Delete an org.
    DeleteOrg {
        /// Org slot.
        org: u8,
    },
    /// Suspend (`true`) or resume an org.
    SetSuspended {
        /// Org slot.
        org: u8,
        /// Suspend or resume.
        suspended: bool,
    },
    /// Add person `who % 4` with role `role % 4`.
    AddMember {
        /// Org slot.
        org: u8,
        /// Person slot.
        who: u8,
        /// Role index.
        role: u8,
    },
    /// Change a member's role.
    SetRole {
        /// Org slot.
        org: u8,
        /// Person slot.
        who: u8,
        /// Role index.
        role: u8,
    },
    /// Remove a member.
    RemoveMember {
        /// Org slot.
        org: u8,
        /// Person slot.
        who: u8,
    },
    /// Create a key; `models` is a bitmask of the 5 models (0: all the org allows).
    CreateKey {
        /// Org slot.
        org: u8,
        /// Model bitmask.
        models: u8,
    },
    /// Revoke key `key % n`.
    Revoke {
        /// Key slot.
        key: u8,
    },
    /// Rotate key `key % n`.
    Rotate {
        /// Key slot.
        key: u8,
    },
    /// Set the org's `allowed_models` (a bitmask) or remove it (`None`).
    UpdateModels {
        /// Org slot.
        org: u8,
        /// Model bitmask, `None` for all models.
        models: Option<u8>,
    },
    /// Check key `key % n` for model `model % 5`, with its previous secret if `stale`.
    Check {
        /// Key slot.
        key: u8,
        /// Model index.
        model: u8,
        /// Use the secret from before the last rotation.
        stale: bool,
    },
    /// Check a string that is not a key of the store.
    CheckJunk {
        /// The string.
        junk: String,
    },
    /// Compare every listing and count with the model.
    Counts,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Active,
    Suspended,
    Deleted,
}

struct MOrg {
    status: St,
    members: BTreeMap<u8, Role>,
    models: Option<Vec<u8>>,
    versions: u64,
}

struct MKey {
    org: u8,
    id: KeyId,
    secret: String,
    old_secret: Option<String>,
    revoked: bool,
    models: Vec<u8>,
}

#[derive(Default)]
struct Model {
    orgs: BTreeMap<u8, MOrg>,
    keys: Vec<MKey>,
}

impl Model {
    fn live(&self, o: u8) -> Option<&MOrg> {
        self.orgs.get(&o).filter(|m| m.status != St::Deleted)
    }
}

fn org_id(o: u8) -> Result<OrgId, Failure> {
    OrgId::parse(&format!("org-{o}")).map_err(|e| e.to_string())
}

fn person(w: u8) -> Result<Email, Failure> {
    Email::parse(&format!("p{w}@x.io")).map_err(|e| e.to_string())
}

fn model_name(m: u8) -> String {
    format!("model-{m}")
}

fn mask_models(mask: u8) -> Vec<u8> {
    (0..MODELS).filter(|m| mask & (1 << m) != 0).collect()
}

/// Compares a store result with the model's expectation: `Ok(())` or the error kind.
fn expect<T>(
    op: &Op,
    got: &Result<T, orgstore::Error>,
    want: Result<(), ErrorKind>,
) -> Result<(), Failure> {
    let got_kind = got.as_ref().map(|_| ()).map_err(orgstore::Error::kind);
    ensure!(
        got_kind == want,
        "{op:?}: store gave {:?}, model expects {want:?}",
        got.as_ref().map(|_| ()).map_err(ToString::to_string)
    );
    Ok(())
}

fn role_of(r: u8) -> Role {
    Role::ALL[usize::from(r % 4)]
}

/// The model test: replays a sequence of operations (decoded with `arbitrary`) against an
/// in-memory store and a reference model of maps, checking every result, every gateway
/// decision and, at the end, every listing and count.
pub fn model_ops(data: &[u8]) -> Result<(), Failure> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while ops.len() < 64 && !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops.push(Op::Counts);
    run_model(&ops)
}

/// Replays `ops` against a fresh in-memory store and the reference model.
pub fn run_model(ops: &[Op]) -> Result<(), Failure> {
    // Lossless spend: no background flusher thread per store.
    let store = StoreBuilder::new()
        .lossless_spend()
        .open_temporary()
        .map_err(|e| e.to_string())?;
    let mut m = Model::default();
    for op in ops {
        step(&store, &mut m, op)?;
    }
    Ok(())
}

fn step(store: &Store, m: &mut Model, op: &Op) -> Result<(), Failure> {
    let a = Actor::Operator;
    match op {
        Op::CreateOrg { org } => {
            let o = org % ORGS;
            let got = store.orgs().create(&a, &org_id(o)?, "Org", &person(0)?);
            match m.orgs.entry(o) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    expect(op, &got, Err(ErrorKind::Conflict))?
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    expect(op, &got, Ok(()))?;
                    let members = BTreeMap::from([(0, Role::Owner)]);
                    slot.insert(MOrg {
                        status: St::Active,
                        members,
                        models: None,
                        versions: 1,
                    });
                }
            }
        }
        Op::DeleteOrg { org } | Op::SetSuspended { org, .. } => {
            let o = org % ORGS;
            let (next, got) = match op {
                Op::SetSuspended {
                    suspended: true, ..
                } => (
                    St::Suspended,
                    store.orgs().suspend(&a, &org_id(o)?).map(|c| c.org),
                ),
                Op::SetSuspended { .. } => (
                    St::Active,
                    store.orgs().resume(&a, &org_id(o)?).map(|c| c.org),
                ),
                _ => (St::Deleted, store.orgs().delete(&a, &org_id(o)?)),
            };
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) => {
                    expect(op, &got, Ok(()))?;
                    x.status = next;
                }
                None => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::AddMember { org, who, role } => {
            let (o, w, r) = (org % ORGS, who % PEOPLE, role_of(*role));
            let got = store.members().add(&a, &org_id(o)?, &person(w)?, r);
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                None => expect(op, &got, Err(ErrorKind::NotFound))?,
                Some(x) if x.members.contains_key(&w) => {
                    expect(op, &got, Err(ErrorKind::Conflict))?
                }
                Some(x) => {
                    expect(op, &got, Ok(()))?;
                    x.members.insert(w, r);
                }
            }
        }
        Op::SetRole { org, who, role } => {
            let (o, w, r) = (org % ORGS, who % PEOPLE, role_of(*role));
            let got = store.members().set_role(&a, &org_id(o)?, &person(w)?, r);
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) if x.members.contains_key(&w) => {
                    let owners = x.members.values().filter(|r| **r == Role::Owner).count();
                    let before = x.members.get(&w).copied();
                    if before == Some(Role::Owner) && r != Role::Owner && owners <= 1 {
                        expect(op, &got, Err(ErrorKind::Conflict))?;
                    } else {
                        expect(op, &got, Ok(()))?;
                        x.members.insert(w, r);
                    }
                }
                _ => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::RemoveMember { org, who } => {
            let (o, w) = (org % ORGS, who % PEOPLE);
            let got = store.members().remove(&a, &org_id(o)?, &person(w)?);
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) if x.members.contains_key(&w) => {
                    let owners = x.members.values().filter(|r| **r == Role::Owner).count();
                    if x.members.get(&w) == Some(&Role::Owner) && owners <= 1 {
                        expect(op, &got, Err(ErrorKind::Conflict))?;
                    } else {
                        expect(op, &got, Ok(()))?;
                        x.members.remove(&w);
                    }
                }
                _ => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::CreateKey { org, models } => {
            let o = org % ORGS;
            let ms = mask_models(*models);
            let spec = orgstore::KeySpec::new("k").models(ms.iter().map(|x| model_name(*x)));
            let got = store.keys().create(&a, &org_id(o)?, spec);
            if m.live(o).is_some() {
                expect(op, &got, Ok(()))?;
                if let Ok(c) = got {
                    ensure!(c.info.org == org_id(o)?, "key created in another org");
                    m.keys.push(MKey {
                        org: o,
                        id: c.info.id,
                        secret: c.key.expose().to_owned(),
                        old_secret: None,
                        revoked: false,
                        models: ms,
                    });
                }
            } else {
                expect(op, &got, Err(ErrorKind::NotFound))?;
            }
        }
        Op::Revoke { key } | Op::Rotate { key } => {
            if m.keys.is_empty() {
                return Ok(());
            }
            let i = usize::from(*key) % m.keys.len();
            let (org, id, revoked) = (m.keys[i].org, m.keys[i].id, m.keys[i].revoked);
            let live = m.live(org).is_some();
            let want = if !live {
                Err(ErrorKind::NotFound)
            } else if revoked {
                Err(ErrorKind::Conflict)
            } else {
                Ok(())
            };
            if matches!(op, Op::Revoke { .. }) {
                let got = store.keys().revoke(&a, &id);
                expect(op, &got, want)?;
                if got.is_ok() {
                    m.keys[i].revoked = true;
                }
            } else {
                let got = store.keys().rotate(&a, &id);
                expect(op, &got, want)?;
                if let Ok(c) = got {
                    ensure!(c.info.id == id, "rotation changed the key id");
                    let k = &mut m.keys[i];
                    k.old_secret =
                        Some(std::mem::replace(&mut k.secret, c.key.expose().to_owned()));
                }
            }
        }
        Op::UpdateModels { org, models } => {
            let o = org % ORGS;
            let list = models.map(mask_models);
            let patch = json!({ "allowed_models": list.as_ref().map(|l| l.iter().map(|x| model_name(*x)).collect::<Vec<_>>()) });
            let got = store
                .org_configs()
                .update(&a, &org_id(o)?, &patch.to_string());
            match m.orgs.get_mut(&o).filter(|x| x.status != St::Deleted) {
                Some(x) => {
                    expect(op, &got, Ok(()))?;
                    // Setting the list it already has is no change: no new version.
                    let changed = x.models != list;
                    if let Ok(v) = &got {
                        ensure!(
                            v.changed == changed,
                            "update reported changed={}",
                            v.changed
                        );
                    }
                    if changed {
                        x.models = list;
                        x.versions += 1;
                    }
                }
                None => expect(op, &got, Err(ErrorKind::NotFound))?,
            }
        }
        Op::Check { key, model, stale } => {
            if m.keys.is_empty() {
                return Ok(());
            }
            let k = &m.keys[usize::from(*key) % m.keys.len()];
            let md = model % MODELS;
            let (secret, want) = match (&k.old_secret, stale) {
                (Some(old), true) => (old.as_str(), "unknown_key"),
                _ => (k.secret.as_str(), expected_code(m, k, md)),
            };
            let name = model_name(md);
            let req = Request::new(secret, &name, IpAddr::V4(Ipv4Addr::LOCALHOST));
            let gw = store.gateway();
            let got = gw.check(&req);
            let code = got.as_ref().map_or_else(|d| d.code(), |_| "ok");
            ensure!(
                code == want,
                "{op:?}: gateway says {code}, model expects {want}"
            );
            if let Ok(g) = &got {
                ensure!(
                    g.key_id() == k.id && *g.org_id() == org_id(k.org)?,
                    "grant names another key or org"
                );
            }
        }
        Op::CheckJunk { junk } => {
            let req = Request::new(junk, "model-0", IpAddr::V4(Ipv4Addr::LOCALHOST));
            let gw = store.gateway();
            let got = gw.check(&req);
            let code = got.as_ref().map_or_else(|d| d.code(), |_| "ok");
            ensure!(
                matches!(code, "malformed_key" | "unknown_key"),
                "junk key got {code}"
            );
        }
        Op::Counts => counts(store, m)?,
    }
    Ok(())
}

fn expected_code(m: &Model, k: &MKey, md: u8) -> &'static str {
    if k.revoked {
        return "revoked";
    }
    let Some(o) = m.orgs.get(&k.org) else {
        return "unknown_key";
    };
    match o.status {
        St::Deleted => return "org_deleted",
        St::Suspended => return "org_suspended",
        St::Active => {}
    }
    let org_ok = o.models.as_ref().is_none_or(|l| l.contains(&md));
    let key_ok = k.models.is_empty() || k.models.contains(&md);
    if org_ok && key_ok {
        "ok"
    } else {
        "model_not_allowed"
    }
}

fn counts(store: &Store, m: &Model) -> Result<(), Failure> {
    let a = Actor::Operator;
    let listed = store.orgs().list(&a).map_err(|e| e.to_string())?;
    let live = m.orgs.values().filter(|o| o.status != St::Deleted).count();
    ensure!(
        listed.len() == live,
        "org list has {} orgs, model {live}",
        listed.len()
    );
    ensure!(
        store.gateway().key_count() == m.keys.len(),
        "snapshot holds {} keys, model {}",
        store.gateway().key_count(),
        m.keys.len()
    );
    for (o, mo) in &m.orgs {
        let id = org_id(*o)?;
        if mo.status == St::Deleted {
            let got = store.orgs().get(&a, &id);
            ensure!(
                got.as_ref().err().map(orgstore::Error::kind) == Some(ErrorKind::NotFound),
                "deleted org {id} visible"
            );
            continue;
        }
        let org = store.orgs().get(&a, &id).map_err(|e| e.to_string())?;
        let owners = mo.members.values().filter(|r| **r == Role::Owner).count();
        ensure!(
            org.owner_count as usize == owners,
            "{id}: owner_count {} but {owners} owners",
            org.owner_count
        );
        ensure!(
            org.latest_version == mo.versions && org.config_version == mo.versions,
            "{id}: versions differ"
        );
        let members = store.members().list(&a, &id).map_err(|e| e.to_string())?;
        ensure!(
            members.len() == mo.members.len(),
            "{id}: {} members, model {}",
            members.len(),
            mo.members.len()
        );
        for mem in &members {
            let w = (0..PEOPLE).find(|w| person(*w).ok().as_ref() == Some(&mem.email));
            let want = w.and_then(|w| mo.members.get(&w));
            ensure!(
                want == Some(&mem.role),
                "{id}: member {} has role {}",
                mem.email,
                mem.role
            );
        }
        let keys = store.keys().list(&a, &id).map_err(|e| e.to_string())?;
        let mine: Vec<&MKey> = m.keys.iter().filter(|k| k.org == *o).collect();
        ensure!(
            keys.len() == mine.len(),
            "{id}: {} keys, model {}",
            keys.len(),
            mine.len()
        );
        for k in &mine {
            let info = keys
                .iter()
                .find(|i| i.id == k.id)
                .ok_or_else(|| format!("{id}: key {} missing", k.id))?;
            ensure!(
                (info.status == orgstore::KeyStatus::Revoked) == k.revoked,
                "{id}: key {} status differs",
                k.id
            );
        }
        let history = store
            .org_configs()
            .history(&a, &id)
            .map_err(|e| e.to_string())?;
        ensure!(
            history.len() as u64 == mo.versions,
            "{id}: history has {} versions",
            history.len()
        );
        let cfg = store
            .org_configs()
            .retrieve(&a, &id)
            .map_err(|e| e.to_string())?;
        let want: Option<Vec<String>> = mo
            .models
            .as_ref()
            .map(|l| l.iter().map(|x| model_name(*x)).collect());
        ensure!(
            cfg.config.allowed_models().map(<[String]>::to_vec) == want,
            "{id}: allowed_models differ"
        );
    }
    Ok(())
}
