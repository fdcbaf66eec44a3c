//! Loading: strict validation of the default set, operator directories, bad files.

use std::fs;

use orgstore::ErrorKind;
use orgstore::Policies;

#[test]
fn default_set_validates_strictly_and_names_policies_by_id() {
    // default_set() validates in strict mode and fails on any warning.
    let p = Policies::default_set().unwrap();
    let ids = p.policy_ids();
    assert!(ids.len() >= 15, "{ids:?}");
    assert!(
        ids.iter().all(|id| !id.starts_with("policy")),
        "unnamed policy: {ids:?}"
    );
    for id in ["viewer-read", "last-owner-stays", "gateway-allow-valid"] {
        assert!(ids.iter().any(|i| i == id), "{id} missing");
    }
    // every policy of the compiled-in files carries an @id
    let roles = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/roles.cedar"));
    let gateway = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/policies/gateway.cedar"
    ));
    let count = |s: &str| {
        s.lines()
            .filter(|l| l.starts_with("permit") || l.starts_with("forbid"))
            .count()
    };
    assert_eq!(count(roles) + count(gateway), ids.len());
}

#[test]
fn generations_are_unique() {
    let a = Policies::default_set().unwrap();
    let b = Policies::default_set().unwrap();
    let c = a.with_sources(&[]).unwrap();
    assert_ne!(a.generation(), b.generation());
    assert_ne!(a.generation(), c.generation());
    assert_eq!(a.clone().generation(), a.generation());
}

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (name, text) in files {
        fs::write(d.path().join(name), text).unwrap();
    }
    d
}

#[test]
fn syntax_error_names_file_and_line() {
    let base = Policies::default_set().unwrap();
    let d = dir_with(&[(
        "bad.cedar",
        "// a comment\n\npermit(principal, action, resource)\nwhen { principal.x == };\n",
    )]);
    let err = base.with_dir(d.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.to_string();
    assert!(msg.contains("bad.cedar:4:"), "{msg}");
    // the receiver is untouched
    assert!(base.policy_ids().contains(&"viewer-read".to_owned()));
}

#[test]
fn validation_error_names_file_line_and_policy() {
    let base = Policies::default_set().unwrap();
    let d = dir_with(&[(
        "typo.cedar",
        "@id(\"ok\")\nforbid(principal, action == Action::\"ReadOrg\", resource) when { resource.owner_count > 100 };\n\n@id(\"typo\")\nforbid(principal, action == Action::\"ReadOrg\", resource)\nwhen { resource.ownr_count > 3 };\n",
    )]);
    let err = base.with_dir(d.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let msg = err.to_string();
    assert!(msg.contains("typo.cedar:6:"), "{msg}");
    assert!(msg.contains("typo"), "{msg}");
}

#[test]
fn warnings_fail() {
    // An impossible policy is a warning in Cedar; here it fails the load.
    let base = Policies::default_set().unwrap();
    let d = dir_with(&[(
        "never.cedar",
        "@id(\"never\")\npermit(principal, action == Action::\"ReadOrg\", resource)\nwhen { false };\n",
    )]);
    let err = base.with_dir(d.path()).unwrap_err();
    assert!(err.to_string().contains("never.cedar:"), "{err}");
    assert!(err.to_string().contains("warning"), "{err}");
}

#[test]
fn unknown_action_and_duplicate_id_fail() {
    let base = Policies::default_set().unwrap();
    let d = dir_with(&[(
        "x.cedar",
        "@id(\"x\")\nforbid(principal, action == Action::\"Nope\", resource);\n",
    )]);
    assert!(base.with_dir(d.path()).is_err());
    let d = dir_with(&[(
        "dup.cedar",
        "@id(\"viewer-read\")\nforbid(principal, action == Action::\"ReadOrg\", resource);\n",
    )]);
    let err = base.with_dir(d.path()).unwrap_err();
    assert!(
        err.to_string().contains("dup.cedar") && err.to_string().contains("roles.cedar"),
        "{err}"
    );
}

#[test]
fn templates_are_rejected() {
    let base = Policies::default_set().unwrap();
    let err = base
        .with_sources(&[("t.cedar", "@id(\"t\")\npermit(principal == ?principal, action == Action::\"ReadOrg\", resource);\n")])
        .unwrap_err();
    assert!(err.to_string().contains("template"), "{err}");
}

#[test]
fn policies_without_id_are_refused_with_file_and_line() {
    // Moved to `hardening_policy` (every policy must have an @id); this keeps the old case.
    let base = Policies::default_set().unwrap();
    let d = dir_with(&[(
        "no-gpt4o.cedar",
        "forbid(principal in Org::\"customer-a\", action == Action::\"invoke\", resource == Model::\"gpt-4o\");\n",
    )]);
    let err = base.with_dir(d.path()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("no-gpt4o.cedar:1:1"), "{err}");
    assert!(Policies::validate_dir(d.path()).is_err());
}

#[test]
fn only_cedar_files_are_read_and_missing_dir_fails() {
    let base = Policies::default_set().unwrap();
    let d = dir_with(&[("README.md", "not cedar"), ("x.cedar.bak", "garbage")]);
    assert_eq!(
        base.with_dir(d.path()).unwrap().policy_ids(),
        base.policy_ids()
    );
    let err = base.with_dir(&d.path().join("missing")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
}
