//! Secrets under any credential-like name, in any shape, and in URLs are masked for every
//! viewer and encrypted in the store file; whatever a masked read printed can be sent back
//! unchanged without destroying a secret.

use std::path::{Path, PathBuf};

use orgstore::{Actor, ErrorKind, Role, Store};
use serde_json::{Value, json};

use crate::common::ConfigJson;
use crate::common::{OP, contains_bytes, email, orgstore, revealed};

/// Secrets long enough to be shown as `abc...wxyz`: the middle (what must never appear)
/// is the needle.
fn long(tag: &str) -> (String, String) {
    let middle = format!("Mid{tag}Zq9Xw");
    (format!("ab-{middle}-wxyz"), middle)
}

/// A config with secrets under many names and shapes, and the text of each secret that
/// must never be seen (a needle per secret).
fn secret_config() -> (Value, Vec<String>) {
    let mut needles = Vec::new();
    let mut s = |tag: &str| {
        let (secret, middle) = long(tag);
        needles.push(middle);
        secret
    };
    let cfg = json!({
        "providers": {
            "openai": {
                "base_url": "https://api.openai.com",
                "headers": {
                    "Authorization": format!("Bearer {}", s("Authz")),
                    "x-api-key": s("XApiKey"),
                    "api-key": s("ApiKeyHdr"),
                    "X-Goog-Api-Key": s("Goog"),
                    "Ocp-Apim-Subscription-Key": s("Apim"),
                    "Cookie": s("Cookie"),
                    "OpenAI-Organization": "org-visible"
                }
            },
            "bedrock": {
                "region": "eu-west-1",
                "accessToken": s("AccessTok"),
                "sessionToken": s("SessTok"),
                "privateKey": format!("-----BEGIN KEY-----\n{}\n-----END KEY-----", s("Pem")),
                "AWS_SECRET_ACCESS_KEY": s("AwsSecret")
            },
            "azure": {
                "passwd": s("Passwd"),
                "DB-Password": s("DbPass"),
                "auth": {"user": s("AuthUser"), "pass": s("AuthPass"), "port": 9913578642u64},
                "api_keys": [s("Key0"), s("Key1"), s("Key2")],
                "pin": 7310426958u64,
                "signingKey2": s("Signing"),
                "tokenValue": s("TokVal"),
                "basicAuthHeader": s("BasicAuth"),
                "enabled": true
            }
        },
        "cache": {"url": "redis://:PwRedisZq9Xw@cache.internal:6379/0"},
        "model_map": {
            "gemini": "https://gl.example/v1beta?key=AIzaGemZq9Xw&alt=sse"
        },
        "cost_tracking": {
            "store": "Server=db.example;User ID=sa;Password=PwAdoZq9Xw;AccountKey=AccKeyZq9Xw=="
        },
        "guardrails": {
            "command": "curl -H 'Authorization: Bearer BearTokZq9Xw' https://guard.example"
        },
        "routing": {
            "fallbacks": [
                "https://svc:PwFallbackZq9Xw@backup.example/v1",
                "https://backup2.example/v1"
            ],
            "max_tokens": 4096
        },
        "alerting": {
            "webhook": "see https://ghp_TokAlertZq9Xw@github.example/o/r and postgres://app:PwPgZq9Xw@db:5432/x"
        }
    });
    needles.extend(
        [
            "PwRedisZq9Xw",
            "PwFallbackZq9Xw",
            "TokAlertZq9Xw",
            "PwPgZq9Xw",
            "AIzaGemZq9Xw",
            "PwAdoZq9Xw",
            "AccKeyZq9Xw",
            "BearTokZq9Xw",
            "7310426958",
            "9913578642",
        ]
        .map(String::from),
    );
    (cfg, needles)
}

/// Non-secret values that stay readable in masked output.
const VISIBLE: &[&str] = &[
    "https://api.openai.com",
    "org-visible",
    "eu-west-1",
    "@cache.internal:6379/0",
    "https://svc:****@backup.example/v1",
    "https://backup2.example/v1",
    "4096",
    "https://gl.example/v1beta?key=****&alt=sse",
    "Server=db.example;User ID=sa;Password=****;AccountKey=****",
    "Bearer ****' https://guard.example",
];

fn assert_clean(what: &str, text: &[u8], needles: &[String]) {
    for n in needles {
        assert!(
            !contains_bytes(text, n.as_bytes()),
            "{what} shows the secret {n}"
        );
    }
}

/// Runs the binary on `db`; returns (success, stdout, stderr).
fn cli(db: &Path, args: &[&str]) -> (bool, String, String) {
    let out = orgstore(args).db(db).run();
    (out.success(), out.stdout, out.stderr)
}

fn store_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with(".key") && p.is_file() {
            all.extend(std::fs::read(p).unwrap());
        }
    }
    all
}

#[test]
fn credentials_under_any_name_or_in_urls_are_masked_for_viewers_and_sealed_at_rest() {
    let (cfg, needles) = secret_config();
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("s.redb");
    let acme = crate::common::org("acme");
    {
        let store = Store::open(&db).unwrap();
        crate::common::create_org(&store, "acme", "o@acme.io");
        for (who, role) in [("v@acme.io", Role::Viewer), ("a@acme.io", Role::Admin)] {
            store.members().add(&OP, &acme, &email(who), role).unwrap();
        }
        let mut seen = String::new();
        let v2 = store
            .org_configs()
            .update(&OP, &acme, &cfg.to_string())
            .unwrap();
        seen.push_str(&format!("{v2:?} {}\n", v2.config.masked_value()));
        // Later versions change secrets of every shape: history and diff hold them all.
        let (k1, n1) = long("NewKey1");
        let mut needles = needles.clone();
        needles.extend([n1, "PwRedis2Zq9Xw".to_owned(), "4455667788".to_owned()]);
        let patch = json!({"providers": {"azure": {"api_keys": ["ab-...wxyz", k1, "ab-...wxyz"]}}});
        let v3 = store
            .org_configs()
            .update(&OP, &acme, &patch.to_string())
            .unwrap();
        seen.push_str(&format!("{v3:?}\n"));
        store
            .org_configs()
            .update(
                &OP,
                &acme,
                &json!({"providers": {"azure": {"pin": 4455667788u64}},
                        "cache": {"url": "redis://:PwRedis2Zq9Xw@cache2.internal:6379/0"}})
                .to_string(),
            )
            .unwrap();
        let viewer = Actor::member(email("v@acme.io"));
        for actor in [&OP, &viewer] {
            let got = store.org_configs().retrieve(actor, &acme).unwrap();
            seen.push_str(&format!(
                "{got:?} {:?} {} {}\n",
                got.config,
                got.config.masked_value(),
                got.config.revealed_value()
            ));
            for v in store.org_configs().history(actor, &acme).unwrap() {
                seen.push_str(&format!("{v:?} {}\n", v.config.revealed_value()));
            }
            for (a, b) in [(1, 2), (2, 3), (3, 4), (1, 4)] {
                let d = store.org_configs().diff(actor, &acme, a, b).unwrap();
                seen.push_str(&format!("{d:?}\n"));
            }
        }
        assert_clean("library reads", seen.as_bytes(), &needles);
        for v in VISIBLE {
            assert!(seen.contains(v), "{v} is not shown: {seen}");
        }
        assert!(seen.contains("ab-...wxyz") && seen.contains("redis://:****@"));
        // Reveal: Owner/Admin (and the operator) see clear text; a viewer is refused.
        let admin = Actor::member(email("a@acme.io"));
        let clear = store
            .org_configs()
            .reveal(&admin, &acme, Some(2))
            .unwrap()
            .config
            .revealed_value();
        assert_eq!(clear, cfg);
        let e = store
            .org_configs()
            .reveal(&viewer, &acme, None)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Denied);
        let now = revealed(&store, &acme, None);
        assert_eq!(now["providers"]["azure"]["pin"], 4455667788u64);
        assert_eq!(
            now["cache"]["url"],
            "redis://:PwRedis2Zq9Xw@cache2.internal:6379/0"
        );
        store.flush().unwrap();
        // The store file holds none of the secrets of any version, and the readable parts.
        let bytes = store_bytes(dir.path());
        assert_clean("the store file", &bytes, &needles);
        assert!(contains_bytes(&bytes, b"@backup.example/v1"));
        assert!(contains_bytes(&bytes, b"org-visible"));
        drop(store);

        // The CLI, as the operator and as the viewer, masked in every output form.
        let mut printed = String::new();
        for who in [&[][..], &["--as", "v@acme.io"][..]] {
            for json_out in [false, true] {
                let j: &[&str] = if json_out { &["--json"] } else { &[] };
                for args in [
                    &["config", "get", "acme"][..],
                    &["config", "get", "acme", "--version", "2"],
                    &["config", "history", "acme"],
                    &["config", "diff", "acme", "1", "4"],
                    &["config", "diff", "acme", "2", "3"],
                ] {
                    let all: Vec<&str> = who.iter().chain(j).chain(args).copied().collect();
                    let (ok, out, err) = cli(&db, &all);
                    assert!(ok, "{all:?}: {err}");
                    printed.push_str(&out);
                    printed.push_str(&err);
                }
            }
        }
        assert_clean("CLI output", printed.as_bytes(), &needles);
        assert!(printed.contains("https://svc:****@backup.example/v1"));
        let (ok, out, _) = cli(
            &db,
            &["config", "get", "acme", "--reveal", "--version", "2"],
        );
        assert!(ok && out.contains("PwFallbackZq9Xw") && out.contains("MidKey1Zq9Xw"));
    }
}

/// The masked config, as a viewer reads it.
fn masked(store: &Store, org: &orgstore::OrgId) -> Value {
    store
        .org_configs()
        .retrieve(&OP, org)
        .unwrap()
        .config
        .masked_value()
}

#[test]
fn a_masked_config_sent_back_keeps_every_secret_and_applies_every_change() {
    let (cfg, _) = secret_config();
    let store = Store::open_temporary().unwrap();
    let acme = crate::common::create_org(&store, "acme", "o@acme.io");
    store
        .org_configs()
        .update(&OP, &acme, &cfg.to_string())
        .unwrap();

    // Sent back whole with one non-secret edit: every secret (strings, numbers, objects,
    // arrays, URL passwords and tokens) is kept.
    let mut m = masked(&store, &acme);
    assert_ne!(m, cfg);
    m["routing"]["max_tokens"] = json!(4097);
    store
        .org_configs()
        .update(&OP, &acme, &m.to_string())
        .unwrap();
    let mut cfg = cfg;
    cfg["routing"]["max_tokens"] = json!(4097);
    assert_eq!(revealed(&store, &acme, None), cfg);

    // Edited: one array element, a host with its password masked, a nested object leaf,
    // a secret number, a non-secret value; the rest sent back masked.
    let mut m = masked(&store, &acme);
    let (new_key, _) = long("Replaced");
    m["providers"]["azure"]["api_keys"][1] = json!(new_key);
    m["providers"]["azure"]["auth"]["pass"] = json!("n3w-pass-0123456789");
    m["providers"]["azure"]["pin"] = json!(1111);
    m["cache"]["url"] = json!("redis://:****@moved.internal:6380/1");
    m["routing"]["fallbacks"][0] = json!("https://svc2:****@backup.example/v2");
    m["routing"]["max_tokens"] = json!(8192);
    m["model_map"]["gemini"] = json!("https://gl2.example/v1?alt=json&key=****");
    store
        .org_configs()
        .update(&OP, &acme, &m.to_string())
        .unwrap();
    let mut want = cfg.clone();
    want["providers"]["azure"]["api_keys"][1] = json!(new_key);
    want["providers"]["azure"]["auth"]["pass"] = json!("n3w-pass-0123456789");
    want["providers"]["azure"]["pin"] = json!(1111);
    want["cache"]["url"] = json!("redis://:PwRedisZq9Xw@moved.internal:6380/1");
    want["routing"]["fallbacks"][0] = json!("https://svc2:PwFallbackZq9Xw@backup.example/v2");
    want["routing"]["max_tokens"] = json!(8192);
    want["model_map"]["gemini"] = json!("https://gl2.example/v1?alt=json&key=AIzaGemZq9Xw");
    assert_eq!(revealed(&store, &acme, None), want);

    // An element dropped from the front of a key list: the others move and are still
    // recognised by their masks (all distinct here).
    store
        .org_configs()
        .update(
            &OP,
            &acme,
            &json!({"providers": {"azure": {"api_keys": ["k0-short", "k1-short", "Kz-distinct-0123456789"]}}})
                .to_string(),
        )
        .unwrap();
    let m = masked(&store, &acme);
    let keys = m["providers"]["azure"]["api_keys"].as_array().unwrap();
    assert_eq!(keys[2], "Kz-...6789");
    let dropped = json!({"providers": {"azure": {"api_keys": [keys[2].clone()]}}});
    store
        .org_configs()
        .update(&OP, &acme, &dropped.to_string())
        .unwrap();
    assert_eq!(
        revealed(&store, &acme, None)["providers"]["azure"]["api_keys"],
        json!(["Kz-distinct-0123456789"])
    );

    // A mask that stands for no current secret (stale, ambiguous, copied from elsewhere,
    // a masked URL password where there is none) is refused and nothing changes.
    let before = store.org_configs().history(&OP, &acme).unwrap().len();
    let clear_before = revealed(&store, &acme, None);
    for bad in [
        json!({"providers": {"azure": {"passwd": "ab-...zzzz"}}}),
        json!({"providers": {"azure": {"pin": "sk-...0000"}}}),
        json!({"providers": {"new": {"api_key": "****"}}}),
        json!({"providers": {"azure": {"auth": {"pass": "****"}}}}),
        json!({"routing": {"fallbacks": ["https://backup2.example/v1", "https://x:****@elsewhere/"]}}),
        json!({"cache": {"url": "redis://:****@a redis://:****@b"}}),
        json!({"providers": {"openai": {"headers": {"api-key": "enc:v1:AAAA"}}}}),
        json!({"routing": {"note": "pre enc:v1:abc@x"}}),
        json!({"allowed_models": ["gpt-4o", "https://u:pw@models.example/m"]}),
    ] {
        let e = store
            .org_configs()
            .update(&OP, &acme, &bad.to_string())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}: {e}");
        assert!(e.field().starts_with("config."), "{bad}: {e}");
    }
    assert_eq!(
        store.org_configs().history(&OP, &acme).unwrap().len(),
        before
    );
    assert_eq!(revealed(&store, &acme, None), clear_before);
}

#[test]
fn config_get_output_sent_back_to_config_set_keeps_every_secret() {
    let (cfg, needles) = secret_config();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("s.redb");
    let run = |args: &[&str]| {
        let (ok, out, err) = cli(&db, args);
        assert!(ok, "{args:?}: {err}");
        out
    };
    run(&["org", "create", "acme", "--owner", "o@acme.io"]);
    run(&["config", "set", "acme", &cfg.to_string()]);
    // `config get` prints a `#` line and the masked config: sent back as it is, with one
    // non-secret value edited in the text.
    let printed = run(&["config", "get", "acme"]);
    assert!(printed.starts_with('#'), "{printed}");
    assert_clean("config get", printed.as_bytes(), &needles);
    assert!(printed.contains("4096"));
    let file = dir.path().join("get.json");
    std::fs::write(&file, printed.replace("4096", "2048")).unwrap();
    run(&["config", "set", "acme", &format!("@{}", file.display())]);
    let (ok, clear, _) = cli(&db, &["--json", "config", "get", "acme", "--reveal"]);
    assert!(ok);
    let clear: Value = serde_json::from_str(&clear).unwrap();
    let mut want = cfg;
    want["routing"]["max_tokens"] = json!(2048);
    assert_eq!(clear["config"], want);
    // Sent back again through stdin, the secrets are still the clear ones.
    let printed = run(&["config", "get", "acme"]);
    orgstore(&["config", "set", "acme", "-"])
        .db(&db)
        .stdin(printed.replace("2048", "1024"))
        .run()
        .ok();
    want["routing"]["max_tokens"] = json!(1024);
    let (_, clear, _) = cli(&db, &["--json", "config", "get", "acme", "--reveal"]);
    let clear: Value = serde_json::from_str(&clear).unwrap();
    assert_eq!(clear["config"], want);
}

#[test]
fn a_long_array_of_moved_masks_is_restored_through_the_store() {
    let store = Store::open_temporary().unwrap();
    let acme = crate::common::create_org(&store, "acme", "o@acme.io");
    let n = 9000;
    let keys: Vec<String> = (0..n)
        .map(|i| format!("sk-{i:04}-padpadpad-{i:04}"))
        .collect();
    store
        .org_configs()
        .update(
            &OP,
            &acme,
            &json!({"providers": {"p": {"api_keys": keys}}}).to_string(),
        )
        .unwrap();
    // The first key dropped: every other mask moved one place to the front.
    let m = masked(&store, &acme);
    let moved: Vec<Value> = m["providers"]["p"]["api_keys"].as_array().unwrap()[1..].to_vec();
    store
        .org_configs()
        .update(
            &OP,
            &acme,
            &json!({"providers": {"p": {"api_keys": moved}}}).to_string(),
        )
        .unwrap();
    // That the work is linear (each mask compared once, the array's masks indexed once) is
    // counted, not timed, by the unit test
    // `restoring_an_array_of_moved_masks_masks_each_element_a_bounded_number_of_times`.
    assert_eq!(
        revealed(&store, &acme, None)["providers"]["p"]["api_keys"],
        json!(keys[1..])
    );
}
