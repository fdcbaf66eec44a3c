//! The role matrix: admin actions tried as each role through the Cedar-enforcing store.

use super::*;

/// One admin action tried as each role.
pub(crate) struct MatrixRow {
    pub(super) action: &'static str,
    /// In [`MATRIX_MEMBERS`] order: `Ok(true)` allowed, `Ok(false)` denied, `Err` another error.
    pub(super) results: Vec<Result<bool, String>>,
    /// The role matrix's answer, in [`MATRIX_MEMBERS`] order.
    pub(super) expected: [bool; 4],
}

impl MatrixRow {
    /// Whether every role got the role matrix's answer.
    pub(super) fn matches(&self) -> bool {
        self.results
            .iter()
            .zip(self.expected)
            .all(|(got, want)| got.as_ref().is_ok_and(|g| *g == want))
    }
}

type Trial = fn(&Store, &Actor, &OrgId, Role) -> Result<(), Error>;

/// Owner, Admin, Member, Viewer: the answers of the role matrix (README, "Roles").
pub(super) const EVERY_ROLE: [bool; 4] = [true, true, true, true];
pub(super) const ADMINS_UP: [bool; 4] = [true, true, false, false];
pub(super) const MEMBERS_UP: [bool; 4] = [true, true, true, false];
pub(super) const OWNERS_ONLY: [bool; 4] = [true, false, false, false];

/// Each admin action the demo tries, with the role matrix's answer for each role.
pub(super) const TRIALS: &[(&str, [bool; 4], Trial)] = &[
    ("read config", EVERY_ROLE, |s, a, o, _| {
        s.org_configs().retrieve(a, o).map(drop)
    }),
    ("update config", ADMINS_UP, |s, a, o, _| {
        s.org_configs()
            .update(a, o, r#"{"cache":{"enabled":true}}"#)
            .map(drop)
    }),
    ("reveal secrets", ADMINS_UP, |s, a, o, _| {
        s.org_configs().reveal(a, o, None).map(drop)
    }),
    ("list members", EVERY_ROLE, |s, a, o, _| {
        s.members().list(a, o).map(drop)
    }),
    ("add a viewer", ADMINS_UP, |s, a, o, r| {
        let email = Email::parse(&format!("new-{}@internal.example", r.as_str()))?;
        s.members().add(a, o, &email, Role::Viewer).map(drop)
    }),
    ("create a key", MEMBERS_UP, |s, a, o, r| {
        let month = Timestamp::from_micros(Timestamp::now().as_micros() + 30 * 86_400 * 1_000_000);
        let spec = KeySpec::new(format!("trial-{}", r.as_str())).expires_at(month);
        s.keys().create(a, o, spec).map(drop)
    }),
    ("list keys", EVERY_ROLE, |s, a, o, _| {
        s.keys().list(a, o).map(drop)
    }),
    ("revoke another's key", ADMINS_UP, |s, a, o, r| {
        let other = s.keys().create(
            &Actor::Operator,
            o,
            KeySpec::new(format!("victim-{}", r.as_str())),
        )?;
        s.keys().revoke(a, &other.info.id).map(drop)
    }),
    ("read audit log", ADMINS_UP, |s, a, o, _| {
        s.audit().list(a, o, 10).map(drop)
    }),
    ("delete org", OWNERS_ONLY, |s, a, _, r| {
        // A sandbox org per role, so that a permitted deletion leaves the demo intact.
        let sandbox = OrgId::parse(&format!("sandbox-{}", r.as_str()))?;
        let owner = Email::parse(MATRIX_MEMBERS[0].1)?;
        s.orgs()
            .create(&Actor::Operator, &sandbox, "Sandbox", &owner)?;
        if let Actor::Member(me) = a
            && r != Role::Owner
        {
            s.members().add(&Actor::Operator, &sandbox, me, r)?;
        }
        s.orgs().delete(a, &sandbox).map(drop)
    }),
];

/// Tries each admin action through the store API as the member of [`MATRIX_ORG`] holding
/// each role. The answers come from the active Cedar policies (the operator may do all).
pub(crate) fn role_matrix(demo: &Demo) -> Result<Vec<MatrixRow>, Error> {
    let org = OrgId::parse(MATRIX_ORG)?;
    let mut rows = Vec::with_capacity(TRIALS.len());
    for (action, expected, trial) in TRIALS {
        let mut results = Vec::with_capacity(MATRIX_MEMBERS.len());
        for (role, email) in MATRIX_MEMBERS {
            let actor = Actor::Member(Email::parse(email)?);
            results.push(match trial(&demo.store, &actor, &org, role) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::Denied => Ok(false),
                Err(e) => Err(e.to_string()),
            });
        }
        rows.push(MatrixRow {
            action,
            results,
            expected: *expected,
        });
    }
    Ok(rows)
}
