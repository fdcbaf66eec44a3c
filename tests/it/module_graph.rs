//! The library's modules form layers, and imports only point down:
//!
//! ```text
//! model, error  <-  config, keys, limits, policy  <-  snapshot  <-  gateway  <-  store  <-  server, fleet
//! ```
//!
//! (`cli` is the binary and uses only the public API.) These tests read `src/` and fail
//! when a module imports one of its own layer or above it, so a cycle cannot come back
//! silently. Paths through the crate root's re-exports (`crate::Store`) count as imports of
//! the module that defines them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of each library module; a module may import only modules of lower layers
/// (and, in layer 0, its peer: errors name roles and org ids, models return errors).
const LAYERS: &[(&str, u8)] = &[
    ("model", 0),
    ("error", 0),
    ("config", 1),
    ("keys", 1),
    ("limits", 1),
    ("policy", 1),
    ("snapshot", 2),
    ("gateway", 3),
    ("store", 4),
    ("server", 5),
    ("fleet", 5),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The source of a module (`src/<m>.rs` or every file under `src/<m>/`), comments removed.
fn module_source(module: &str) -> Vec<(PathBuf, String)> {
    let file = src().join(format!("{module}.rs"));
    let mut files = Vec::new();
    if file.is_file() {
        files.push(file);
    } else {
        let mut stack = vec![src().join(module)];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
    }
    assert!(!files.is_empty(), "no source for module `{module}`");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, strip_comments(&text))
        })
        .collect()
}

/// The code of `text` without `//` comments (doc links such as [`crate::Store`] are not
/// imports).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names the crate root re-exports, by the module they come from (`Store` -> `store`).
fn root_reexports() -> BTreeMap<String, String> {
    let lib = strip_comments(&std::fs::read_to_string(src().join("lib.rs")).unwrap());
    let mut out = BTreeMap::new();
    let mut rest = lib.as_str();
    while let Some(i) = rest.find("pub use ") {
        rest = &rest[i + "pub use ".len()..];
        let end = rest.find(';').unwrap();
        let stmt = &rest[..end];
        rest = &rest[end..];
        let Some((module, items)) = stmt.split_once("::") else {
            continue;
        };
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let item = item.trim();
            let name = item.rsplit(" as ").next().unwrap().trim();
            let name = name.rsplit("::").next().unwrap();
            if !name.is_empty() {
                out.insert(name.to_owned(), module.trim().to_owned());
            }
        }
    }
    out
}

/// The modules `code` imports through `crate::` paths (and `super::super::` from a
/// module's sub-files, which also reaches the root).
fn deps_of(code: &str, reexports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let resolve = |name: &str, out: &mut BTreeSet<String>| {
        if layer(name).is_some() {
            out.insert(name.to_owned());
        } else if let Some(m) = reexports.get(name) {
            out.insert(m.clone());
        }
    };
    for root in ["crate::", "super::super::"] {
        let mut rest = code;
        while let Some(i) = rest.find(root) {
            rest = &rest[i + root.len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `crate::{a, b::c, D}`: the first segment of each top-level item.
                let mut depth = 0;
                let mut item = String::new();
                for ch in group.chars() {
                    match ch {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            resolve(first_segment(&item), &mut out);
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(ch);
                }
                resolve(first_segment(&item), &mut out);
            } else {
                resolve(first_segment(rest), &mut out);
            }
        }
    }
    out
}

fn first_segment(path: &str) -> &str {
    let path = path.trim_start();
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    &path[..end]
}

/// Every import of one module by another, with the file it is in.
fn graph() -> Vec<(String, String, PathBuf)> {
    let reexports = root_reexports();
    let mut edges = Vec::new();
    for (module, _) in LAYERS {
        for (path, code) in module_source(module) {
            for dep in deps_of(&code, &reexports) {
                if dep != *module {
                    edges.push((module.to_string(), dep, path.clone()));
                }
            }
        }
    }
    edges
}

#[test]
fn imports_only_point_down_the_layers() {
    let bad: Vec<String> = graph()
        .into_iter()
        .filter(|(from, to, _)| {
            let (lf, lt) = (layer(from).unwrap(), layer(to).unwrap());
            lt > lf || (lt == lf && lf != 0)
        })
        .map(|(from, to, path)| format!("{from} -> {to} ({})", path.display()))
        .collect();
    assert!(
        bad.is_empty(),
        "imports against the layering (see docs/design.md):\n{}",
        bad.join("\n")
    );
}

#[test]
fn nothing_below_the_store_imports_it_and_the_snapshot_never_the_gateway() {
    let edges = graph();
    for (from, to, path) in &edges {
        // Only the admin API (`server`) and the fleet sit above the store.
        if from != "store" && from != "server" && from != "fleet" {
            assert_ne!(
                to,
                "store",
                "{from} imports the store in {}",
                path.display()
            );
        }
        if from == "snapshot" {
            assert_ne!(
                to,
                "gateway",
                "the snapshot imports the gateway in {}",
                path.display()
            );
        }
    }
    // The graph is really read: the intended edges are there.
    let has = |a: &str, b: &str| edges.iter().any(|(f, t, _)| f == a && t == b);
    assert!(has("store", "snapshot") && has("store", "gateway"));
    assert!(has("gateway", "snapshot") && has("snapshot", "limits"));
    assert!(has("gateway", "limits"), "the clock lives with the limits");
    assert!(has("fleet", "store"), "the fleet drives the store");
}

/// The store's files that may write a redb table without the journal (`store/journal.rs`):
/// the journal itself, opening and migrating a file (before any replication), the spend
/// ledger (each process's own), and a replica loading the fleet's state or applying its log
/// (both come from the fleet, so journaling them would send them back).
const UNJOURNALED_WRITERS: &[&str] = &[
    "journal.rs",
    "open.rs",
    "spend.rs",
    "replica.rs",
    "bootstrap.rs",
];

#[test]
fn every_record_write_of_the_store_goes_through_the_journal() {
    let mut seen = 0;
    let mut bad = Vec::new();
    for (path, code) in module_source("store") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for stmt in code.split(';') {
            if !stmt.contains("open_table(") {
                continue;
            }
            seen += 1;
            let writes = stmt.contains("let mut ")
                || stmt.contains(".insert(")
                || stmt.contains(".remove(")
                || stmt.contains(".retain(")
                || stmt.contains(".pop_");
            if writes && !UNJOURNALED_WRITERS.contains(&name.as_str()) {
                bad.push(format!("{name}: {}", stmt.trim()));
            }
        }
    }
    assert!(seen > 10, "the scanner found the store's table openings");
    assert!(
        bad.is_empty(),
        "tables written without the journal (open them with journal::open):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_import_scanner_sees_every_path_form() {
    let reexports = root_reexports();
    assert_eq!(reexports.get("Store").map(String::as_str), Some("store"));
    assert_eq!(
        reexports.get("PermissionDenied").map(String::as_str),
        Some("error")
    );
    let code = strip_comments(
        "use crate::store::tx::ReadRecords;\n\
         use crate::{Store, model::{Org, OrgId}};\n\
         fn f() { crate::gateway::Gateway::new(); }\n\
         /// See [`crate::policy::Policies`].\n\
         use super::super::limits::RateLimiter; // crate::keys in a comment\n",
    );
    let deps: Vec<String> = deps_of(&code, &reexports).into_iter().collect();
    assert_eq!(deps, ["gateway", "limits", "model", "store"]);
}
