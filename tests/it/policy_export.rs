//! Compatibility with the `cedar` CLI: the checked-in policy files are laid out as `cedar
//! format` lays them out, and `orgstore policy export` writes a store's set as one file that
//! Cedar validates strictly with the schema and that `cedar format --check` leaves as it is.
//! Checked in process with the crates the `cedar` CLI 4.14 is built from, and with the CLI
//! itself when it is installed (`cedar` on `PATH`, or its path in `CEDAR_CLI`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use cedar_policy::{PolicySet, Schema, ValidationMode, Validator};

use crate::common::orgstore;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn layout(text: &str) -> String {
    let config = cedar_policy_formatter::Config {
        line_width: 80,
        indent_width: 2,
    };
    cedar_policy_formatter::policies_str_to_pretty(text, &config).unwrap()
}

fn checked_in_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["policies", "policies/examples"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "cedar") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A store with the example policy and an operator file written on one line (not in
/// `cedar format` layout), exported.
fn exported() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::copy(
        root().join("policies/examples/require-key-expiry.cedar"),
        files.join("require-key-expiry.cedar"),
    )
    .unwrap();
    std::fs::write(
        files.join("one-line.cedar"),
        "@id(\"no-house-model\") forbid (principal, action == Action::\"invoke\", resource == Model::\"house-model\");",
    )
    .unwrap();
    let db = dir.path().join("s.redb");
    orgstore(&["policy", "apply", files.to_str().unwrap()])
        .db(&db)
        .run()
        .ok();
    let out = dir.path().join("all.cedar");
    let note = orgstore(&["policy", "export", out.to_str().unwrap()])
        .db(&db)
        .run()
        .ok();
    let text = std::fs::read_to_string(&out).unwrap();
    // `-` is standard output, the same text.
    let stdout = orgstore(&["policy", "export", "-"]).db(&db).run().ok();
    assert_eq!(stdout, text, "{note}");
    (dir, out, text)
}

#[test]
fn checked_in_policy_files_are_in_cedar_format_layout() {
    let files = checked_in_files();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(
            layout(&text),
            text,
            "{} is not laid out as `cedar format` does; run `cedar format -w -p {}`",
            f.display(),
            f.display()
        );
    }
}

#[test]
fn the_export_is_the_whole_set_in_one_strictly_valid_file_in_cedar_format_layout() {
    let (_dir, _path, text) = exported();
    assert_eq!(layout(&text), text);
    let set = PolicySet::from_str(&text).unwrap();
    let ids: Vec<String> = set
        .policies()
        .map(|p| p.annotation("id").unwrap().to_owned())
        .collect();
    for id in [
        "viewer-read",
        "gateway-allow-valid",
        "require-key-expiry",
        "no-house-model",
    ] {
        assert!(ids.iter().any(|i| i == id), "{id} missing: {ids:?}");
    }
    // The built-in policies and the two operator ones, each once.
    let expected = orgstore::Policies::default_set()
        .unwrap()
        .policy_ids()
        .len()
        + 2;
    assert_eq!(ids.len(), expected);
    let (schema, warnings) =
        Schema::from_cedarschema_str(orgstore::Policies::schema_text()).unwrap();
    assert_eq!(warnings.count(), 0);
    let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
    assert!(result.validation_passed(), "{result:?}");
    assert_eq!(result.validation_warnings().count(), 0);
}

/// The `cedar` binary: `CEDAR_CLI`, else `cedar` on `PATH`.
fn cedar_cli() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CEDAR_CLI") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("cedar"))
        .find(|p| p.is_file())
}

#[test]
fn the_cedar_cli_validates_the_export_and_leaves_its_layout_unchanged() {
    let Some(cedar) = cedar_cli() else {
        // Not installed: the in-process checks above stand for it. A run that sets
        // CEDAR_CLI and points at nothing fails instead.
        eprintln!(
            "SKIPPED: no `cedar` binary (cargo install cedar-policy-cli --version '^4.14' --locked; or set CEDAR_CLI)"
        );
        return;
    };
    let (_dir, path, _) = exported();
    let schema = root().join("policies/schema.cedarschema");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(&cedar)
            .args(args)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run {}: {e}", cedar.display());
            });
        assert!(
            out.status.success(),
            "cedar {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "validate".as_ref(),
        "--deny-warnings".as_ref(),
        "--schema".as_ref(),
        schema.as_os_str(),
        "--policies".as_ref(),
        path.as_os_str(),
    ]);
    run(&[
        "format".as_ref(),
        "--check".as_ref(),
        "-p".as_ref(),
        path.as_os_str(),
    ]);
    for f in checked_in_files() {
        run(&[
            "format".as_ref(),
            "--check".as_ref(),
            "-p".as_ref(),
            f.as_os_str(),
        ]);
    }
}
