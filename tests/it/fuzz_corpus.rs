//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through the same bodies the
//! cargo-fuzz targets run, on stable Rust, as ordinary tests: those that need only the
//! public API (`fuzz/bodies/`, included here) and, with the `fuzzing` feature, those that
//! reach into the library (`orgstore::fuzz_support`). `cargo test --all-features` runs them
//! all. Longer runs: `cd fuzz && cargo +nightly fuzz run <target>` (see `fuzz/README.md`).
//!
//! `cargo test --all-features --test it -- --ignored fuzz_corpus::write_seed_corpus`
//! rewrites the hand-made seeds (files named `seed-*`); files found by fuzzing are kept as
//! they are.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

#[path = "../../fuzz/bodies/mod.rs"]
mod bodies;

use bodies::Failure;

type Body = fn(&[u8]) -> Result<(), Failure>;

const TARGETS: &[(&str, Body)] = &[
    ("key_parse", bodies::key_parse),
    #[cfg(feature = "fuzzing")]
    ("config_patch", orgstore::fuzz_support::config_patch),
    #[cfg(feature = "fuzzing")]
    ("record_decode", orgstore::fuzz_support::record_decode),
    ("policy_dir", bodies::policy_dir),
    ("model_ops", bodies::model_ops),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(target))
        .unwrap_or_else(|e| panic!("fuzz/corpus/{target}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every corpus file of `target`; reports each failure or panic with its file name.
fn replay(target: &str) {
    let body = TARGETS.iter().find(|(n, _)| *n == target).unwrap().1;
    let files = corpus(target);
    assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
    assert!(
        files.len() <= 200,
        "fuzz/corpus/{target} has {} files; minimize it (fuzz/README.md)",
        files.len()
    );
    let mut failures = Vec::new();
    for f in &files {
        let data = std::fs::read(f).unwrap();
        match catch_unwind(AssertUnwindSafe(|| body(&data))) {
            Ok(Ok(())) => {}
            Ok(Err(why)) => failures.push(format!("{}: {why}", f.display())),
            Err(_) => failures.push(format!("{}: panicked", f.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn key_parse_corpus() {
    replay("key_parse");
}

#[test]
#[cfg(feature = "fuzzing")]
fn config_patch_corpus() {
    replay("config_patch");
}

#[test]
#[cfg(feature = "fuzzing")]
fn record_decode_corpus() {
    replay("record_decode");
}

#[test]
fn policy_dir_corpus() {
    replay("policy_dir");
}

#[test]
fn model_ops_corpus() {
    replay("model_ops");
}

/// The record seeds decode as what they are, and every truncation of them is refused
/// cleanly (the codec's own regression set, independent of the files).
#[test]
#[cfg(feature = "fuzzing")]
fn record_seeds_and_their_truncations() {
    use orgstore::fuzz_support;
    for seed in fuzz_support::record_seeds().unwrap() {
        for cut in 0..=seed.len() {
            fuzz_support::record_decode(&seed[..cut]).unwrap();
        }
    }
}

/// A few hand-written model scenarios that the random corpus might not hit.
#[test]
fn model_scenarios() {
    use bodies::Op::*;
    let scenarios = vec![
        vec![
            CreateOrg { org: 0 },
            CreateKey {
                org: 0,
                models: 0b11,
            },
            Check {
                key: 0,
                model: 0,
                stale: false,
            },
            Check {
                key: 0,
                model: 3,
                stale: false,
            },
            UpdateModels {
                org: 0,
                models: Some(0b10),
            },
            Check {
                key: 0,
                model: 0,
                stale: false,
            },
            Check {
                key: 0,
                model: 1,
                stale: false,
            },
            Rotate { key: 0 },
            Check {
                key: 0,
                model: 1,
                stale: true,
            },
            Check {
                key: 0,
                model: 1,
                stale: false,
            },
            Revoke { key: 0 },
            Check {
                key: 0,
                model: 1,
                stale: false,
            },
            Rotate { key: 0 },
            Revoke { key: 0 },
            Counts,
        ],
        vec![
            CreateOrg { org: 1 },
            AddMember {
                org: 1,
                who: 1,
                role: 3,
            },
            RemoveMember { org: 1, who: 0 },
            RemoveMember { org: 1, who: 1 },
            SetRole {
                org: 1,
                who: 1,
                role: 0,
            },
            CreateKey { org: 1, models: 0 },
            SetSuspended {
                org: 1,
                suspended: true,
            },
            Check {
                key: 0,
                model: 4,
                stale: false,
            },
            SetSuspended {
                org: 1,
                suspended: false,
            },
            Check {
                key: 0,
                model: 4,
                stale: false,
            },
            DeleteOrg { org: 1 },
            Check {
                key: 0,
                model: 4,
                stale: false,
            },
            Revoke { key: 0 },
            CreateOrg { org: 1 },
            AddMember {
                org: 1,
                who: 2,
                role: 0,
            },
            CheckJunk {
                junk: "sk-agentcc-".into(),
            },
            Counts,
        ],
    ];
    for ops in scenarios {
        bodies::run_model(&ops).unwrap();
    }
}

/// Rewrites the hand-made seeds of every target.
#[test]
#[cfg(feature = "fuzzing")]
#[ignore = "writes fuzz/corpus; run by hand"]
fn write_seed_corpus() {
    let key = orgstore::SecretKey::generate();
    let k = key.expose();
    let mut typo = k.to_owned();
    typo.replace_range(20..21, if &k[20..21] == "x" { "y" } else { "x" });
    let legacy = format!("sk-agentcc-{}", "0123456789abcdef".repeat(3));
    let key_seeds: Vec<Vec<u8>> = vec![
        k.into(),
        legacy.clone().into(),
        typo.into(),
        format!("Bearer {k}").into(),
        format!("bearer  {legacy} \0{k}").into(),
        "Basic Zm9vOmJhcg==".into(),
        "sk-agentcc-".into(),
        " Ann@Example.COM ".into(),
        format!("key_{}", "0f".repeat(16)).into(),
        "500.25".into(),
        "1e400".into(),
        "-1".into(),
        "2026-01-02T03:04:05Z".into(),
        "Owner".into(),
        "é".repeat(40).into(),
        vec![0xff, 0xfe, b's', b'k', b'-'],
    ];
    let nested = |depth: usize| {
        format!(
            "{{\"providers\":{}1{}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth + 1)
        )
    };
    let (deep, deeper) = (nested(100), nested(140) + "\n{}");
    let config_seeds: Vec<Vec<u8>> = [
        "{}\n{\"rate_limiting\":{\"rpm\":100}}",
        "{\"rate_limiting\":{\"global_rpm\":1000},\"budgets\":{\"limit\":500.00,\"period\":\"monthly\"}}\n{\"budgets\":{\"limit\":null}}",
        "{\"providers\":{\"openai\":{\"api_key\":\"sk-proj-abcdefghijklmnop\",\"base_url\":\"https://x\"}}}\n{\"providers\":{\"openai\":{\"api_key\":\"sk-new-0123456789\"}}}",
        "{\"providers\":{\"aws\":{\"credentials\":{\"aws_secret_access_key\":\"AKIAverysecret\"},\"pin_password\":1234}}}\n{\"providers\":{\"aws\":{\"credentials\":null}}}",
        "{\"ip_acl\":{\"allow\":[\"10.0.0.0/8\"],\"deny\":[\"10.9.9.9\"]}}\n{\"ip_acl\":{\"allow\":[\"2001:db8::/32\",\"10.0.0.300\"]}}",
        "{\"allowed_models\":[\"gpt-4o\"]}\n{\"allowed_models\":null}",
        "{\"caching\":{\"enabled\":true}}\n{\"cache\":null,\"caching\":{}}",
        "{\"budgets\":{\"limit\":1e400}}\n{}",
        "{\"budgets\":{\"limit\":\"NaN\",\"warn_threshold\":0}}\n{\"budgets\":{\"limit\":-5}}",
        "{\"rate_limiting\":{\"rpm\":0}}\n{\"rate_limiting\":{\"rpm\":1,\"tpm\":1000000000000}}",
        "[1,2]\n\"x\"",
        &deep,
        &deeper,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let mut record_seeds = orgstore::fuzz_support::record_seeds().unwrap();
    record_seeds.extend([
        vec![],
        vec![1],
        vec![2, 0],
        vec![1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    ]);
    let example = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples/require-key-expiry.cedar"),
    )
    .unwrap();
    let policy_seeds: Vec<Vec<u8>> = vec![
        example,
        b"@id(\"no-viewers\")\nforbid (principal, action == Action::\"ReadOrg\", resource);\n".to_vec(),
        b"@id(\"customer-a-no-gpt-4o\")\nforbid (principal in Org::\"customer-a\", action == Action::\"invoke\", resource == Model::\"gpt-4o\");\n".to_vec(),
        b"@id(\"gateway-allow-valid\")\npermit (principal, action, resource);\n".to_vec(),
        b"permit (principal, action == Action::\"NoSuchAction\", resource);\n".to_vec(),
        b"permit(".to_vec(),
        b"\xff\xfe not utf-8".to_vec(),
        b"".to_vec(),
    ];
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let model_seeds: Vec<Vec<u8>> = [64usize, 128, 256, 512, 1024, 2048]
        .iter()
        .map(|&n| (0..n).map(|_| (next() >> 24) as u8).collect())
        .collect();
    for (target, seeds) in [
        ("key_parse", key_seeds),
        ("config_patch", config_seeds),
        ("record_decode", record_seeds),
        ("policy_dir", policy_seeds),
        ("model_ops", model_seeds),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for old in corpus(target).into_iter().filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
        }) {
            std::fs::remove_file(old).unwrap();
        }
        for (i, s) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
        }
    }
}
