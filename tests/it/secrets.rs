//! No full key and no provider secret ever appears in `Display`, `Debug`, errors, the audit
//! log, CLI output (except `key create`/`key rotate` once and `config get --reveal`) or the
//! store file, which holds provider secrets only encrypted under the sidecar key file.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use orgstore::{
    Actor, Email, ErrorKind, KeySpec, OrgId, Request, Role, SecretKey, Store, StoreBuilder,
};

use crate::common::ConfigJson;
use crate::common::{Cli, OP, org};

const PROVIDER_SECRET: &str = "sk-proj-TOPSECRETprovider0123456789";
const AWS_SECRET: &str = "AKIAxSECRETxaccessxkeyx987654321";
const NUMERIC_PIN: u64 = 918_273_645_546_372;

fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && haystack.windows(n.len()).any(|w| w == n)
}

/// The parts of a key that must never leak: the whole key and its secret body (anything
/// past the display prefix).
fn key_needles(key: &str) -> Vec<String> {
    vec![key.to_owned(), key[12..].to_owned(), key[20..40].to_owned()]
}

fn all_needles(keys: &[String]) -> Vec<String> {
    let mut n: Vec<String> = keys.iter().flat_map(|k| key_needles(k)).collect();
    n.extend([
        PROVIDER_SECRET.to_owned(),
        PROVIDER_SECRET[8..].to_owned(),
        AWS_SECRET.to_owned(),
        AWS_SECRET[8..24].to_owned(),
        NUMERIC_PIN.to_string(),
    ]);
    n
}

fn assert_clean(what: &str, text: &[u8], needles: &[String]) {
    for n in needles {
        assert!(
            !contains(text, n),
            "{what} contains a secret ({}...)",
            &n[..6.min(n.len())]
        );
    }
}

const CONFIG: &str = r#"{"providers":{"openai":{"api_key":"sk-proj-TOPSECRETprovider0123456789","base_url":"https://api.openai.com"},
  "bedrock":{"credentials":{"aws_secret_access_key":"AKIAxSECRETxaccessxkeyx987654321","region":"eu-west-1"},"pin_password":918273645546372}}}"#;

/// A store with secrets everywhere: provider secrets over several versions (update, rollback,
/// diff), keys created and rotated, members, denials in the audit log.
fn populate(store: &Store) -> (OrgId, Vec<String>) {
    let acme = org("acme");
    store
        .orgs()
        .create(&OP, &acme, "Acme", &Email::parse("o@acme.io").unwrap())
        .unwrap();
    store
        .members()
        .add(
            &OP,
            &acme,
            &Email::parse("v@acme.io").unwrap(),
            Role::Viewer,
        )
        .unwrap();
    store.org_configs().update(&OP, &acme, CONFIG).unwrap();
    store
        .org_configs()
        .update(
            &OP,
            &acme,
            r#"{"providers":{"openai":{"api_key":"sk-proj-rotatedprovider000000000000"}}}"#,
        )
        .unwrap();
    store.org_configs().rollback(&OP, &acme, 2).unwrap();
    let mut keys = Vec::new();
    let a = store.keys().create(&OP, &acme, KeySpec::new("a")).unwrap();
    keys.push(a.key.expose().to_owned());
    let b = store.keys().create(&OP, &acme, KeySpec::new("b")).unwrap();
    keys.push(b.key.expose().to_owned());
    let b2 = store.keys().rotate(&OP, &b.info.id).unwrap();
    keys.push(b2.key.expose().to_owned());
    store.keys().revoke(&OP, &a.info.id).unwrap();
    // A viewer's attempts are denied (and audited) whatever the policy engine's state.
    let viewer = Actor::member(Email::parse("v@acme.io").unwrap());
    let _ = store.org_configs().reveal(&viewer, &acme, None);
    let _ = store.keys().rotate(&viewer, &b.info.id);
    (acme, keys)
}

#[test]
fn display_debug_and_errors_never_show_secrets() {
    let store = Store::open_temporary().unwrap();
    let (acme, keys) = populate(&store);
    let needles = all_needles(&keys);
    let mut seen = String::new();
    let created = store.keys().create(&OP, &acme, KeySpec::new("c")).unwrap();
    let mut needles_c = needles.clone();
    needles_c.extend(key_needles(created.key.expose()));
    seen.push_str(&format!("{created:?} {:?} {:?}", created.key, created.info));
    let cfg = store.org_configs().retrieve(&OP, &acme).unwrap();
    seen.push_str(&format!(
        "{cfg:?} {:?} {}",
        cfg.config,
        cfg.config.masked_value()
    ));
    for v in store.org_configs().history(&OP, &acme).unwrap() {
        seen.push_str(&format!("{v:?} {}", v.config.masked_value()));
    }
    seen.push_str(&format!(
        "{:?}",
        store.org_configs().diff(&OP, &acme, 1, 4).unwrap()
    ));
    seen.push_str(&format!(
        "{:?}",
        store.org_configs().diff(&OP, &acme, 2, 3).unwrap()
    ));
    seen.push_str(&format!("{:?}", store.keys().list(&OP, &acme).unwrap()));
    for entry in store.audit().list(&OP, &acme, usize::MAX).unwrap() {
        seen.push_str(&format!("{entry:?} {} {}\n", entry.summary, entry.target));
    }
    // Gateway answers, granted and denied, for every key we know.
    let gw = store.gateway();
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for k in keys.iter().chain([created.key.expose().to_owned()].iter()) {
        match gw.check(&Request::new(k, "gpt-4o", ip)) {
            Ok(g) => seen.push_str(&format!("{g:?} {:?}", g.limits())),
            Err(d) => seen.push_str(&format!("{d} {d:?}")),
        }
        seen.push_str(&format!("{:?}", gw.lookup(k)));
        let mut typo = k.clone();
        typo.replace_range(30..31, if &k[30..31] == "Z" { "Y" } else { "Z" });
        let d = gw.check(&Request::new(&typo, "gpt-4o", ip)).unwrap_err();
        seen.push_str(&format!("{d} {d:?}"));
        needles_c.extend(key_needles(&typo));
    }
    seen.push_str(&format!("{gw:?} {:?}", store.policies()));
    // Errors of calls that carry secrets.
    let errors = [
        store
            .org_configs()
            .update(
                &OP,
                &acme,
                &CONFIG
                    .replace("https://api.openai.com", "x")
                    .replace("}}}", "}},\"rate_limiting\":{\"rpm\":0}}"),
            )
            .unwrap_err(),
        store
            .org_configs()
            .update(
                &OP,
                &acme,
                r#"{"providers":"sk-proj-TOPSECRETprovider0123456789"}"#,
            )
            .unwrap_err(),
        store
            .org_configs()
            .update(
                &OP,
                &acme,
                r#"{"providers":{"openai":{"api_key":"sk-proj-TOPSECRETprovider0123456789"}}"#,
            )
            .unwrap_err(),
        store
            .org_configs()
            .update(&OP, &acme, r#"{"sk-proj-TOPSECRETprovider0123456789":{}}"#)
            .unwrap_err(),
        store
            .keys()
            .create(&OP, &acme, KeySpec::new(keys[0].as_str()).rpm(0))
            .unwrap_err(),
        orgstore::KeyId::parse(&keys[0]).unwrap_err(),
        orgstore::Usd::parse(&keys[0]).unwrap_err(),
    ];
    for (i, e) in errors.iter().enumerate() {
        // The caller's own unknown section name is quoted back (checked below).
        if i != 3 {
            seen.push_str(&format!("{e} {e:?} {}\n", e.message()));
        }
    }
    let key_fmt = orgstore::check_key_format(&keys[0][..40]).unwrap_err();
    seen.push_str(&format!("{key_fmt} {key_fmt:?}"));
    assert_clean("Display/Debug/errors", seen.as_bytes(), &needles_c);
    // An unknown section name is quoted back to the caller who sent it: it is a name, not a
    // secret-named field's value, so it is not treated as a secret.
    assert_eq!(errors[3].field(), format!("config.{PROVIDER_SECRET}"));
    // SecretKey shows only its prefix, and the same key generated twice never repeats.
    let k = SecretKey::generate();
    assert_eq!(
        format!("{k:?}"),
        format!("SecretKey({})", orgstore::display_prefix(k.expose()))
    );
}

#[test]
fn the_audit_log_never_holds_a_secret() {
    let store = Store::open_temporary().unwrap();
    let (acme, keys) = populate(&store);
    let log = store.audit().list(&OP, &acme, usize::MAX).unwrap();
    assert!(log.len() >= 9, "{}", log.len());
    assert!(
        log.iter()
            .any(|e| e.action == "UpdateConfig" && e.summary.contains("providers"))
    );
    assert!(
        log.iter()
            .any(|e| e.outcome == orgstore::AuditOutcome::Denied)
    );
    let text: String = log.iter().map(|e| format!("{e:?}\n")).collect();
    assert_clean("the audit log", text.as_bytes(), &all_needles(&keys));
}

fn file_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if !p.to_string_lossy().ends_with(".key") {
            all.extend(std::fs::read(p).unwrap());
        }
    }
    all
}

#[test]
fn the_store_file_never_holds_a_key_or_a_provider_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let keys;
    {
        let store = Store::open(&path).unwrap();
        let (acme, k) = populate(&store);
        keys = k;
        // Reading everything back (reveal included) writes nothing in clear either.
        let revealed = crate::common::revealed(&store, &acme, Some(2));
        assert_eq!(revealed["providers"]["openai"]["api_key"], PROVIDER_SECRET);
        assert_eq!(
            revealed["providers"]["bedrock"]["pin_password"],
            NUMERIC_PIN
        );
        store.flush().unwrap();
    }
    let bytes = file_bytes(dir.path());
    assert!(!bytes.is_empty());
    assert_clean("the store file", &bytes, &all_needles(&keys));
    assert_clean(
        "the store file",
        &bytes,
        &["sk-proj-rotatedprovider000000000000".to_owned()],
    );
    assert!(contains(&bytes, "enc:v1:"), "secrets are stored sealed");
    assert!(
        contains(&bytes, "https://api.openai.com"),
        "non-secret values stay readable"
    );
    // The sidecar key: 64 hex digits, mode 0600, never inside the store file.
    let key_file = PathBuf::from(format!("{}.key", path.display()));
    let hex = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(hex.trim().len(), 64);
    assert!(hex.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(!contains(&bytes, hex.trim()));
    let raw: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap())
        .collect();
    assert!(
        !bytes.windows(32).any(|w| w == raw.as_slice()),
        "the raw store key is in the file"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
    }
    // Reopened, everything decrypts again: the key file is what makes the secrets readable.
    let store = Store::open(&path).unwrap();
    let acme = org("acme");
    let v = crate::common::revealed(&store, &acme, None);
    assert_eq!(
        v["providers"]["bedrock"]["credentials"]["aws_secret_access_key"],
        AWS_SECRET
    );
    // Two stores never share a key.
    let other = tempfile::tempdir().unwrap();
    drop(
        StoreBuilder::new()
            .open(other.path().join("s.redb"))
            .unwrap(),
    );
    assert_ne!(
        std::fs::read_to_string(other.path().join("s.redb.key")).unwrap(),
        hex
    );
}

/// The binary on a store of its own, keeping what it printed.
struct Printing {
    cli: Cli,
    /// Everything printed so far, stdout and stderr.
    printed: Vec<u8>,
}

impl Printing {
    fn new() -> Self {
        Self {
            cli: Cli::new(),
            printed: Vec::new(),
        }
    }

    /// Runs a command; returns its stdout. Its output is added to `printed` unless `exempt`.
    fn run(&mut self, args: &[&str], exempt: bool) -> String {
        let out = self.cli.run(args);
        if !exempt {
            self.printed.extend_from_slice(out.stdout.as_bytes());
            self.printed.extend_from_slice(out.stderr.as_bytes());
        }
        out.stdout
    }
}

/// The full `sk-agentcc-` key in `text` (not a display prefix).
fn key_in(text: &str) -> String {
    text.match_indices("sk-agentcc-")
        .map(|(at, _)| {
            text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .find(|k| k.len() == orgstore::KEY_LEN)
        .unwrap_or_else(|| panic!("no key in {text}"))
}

#[test]
fn cli_output_shows_a_key_once_and_secrets_only_on_reveal() {
    let mut cli = Printing::new();
    cli.run(
        &[
            "org",
            "create",
            "acme",
            "--name",
            "Acme",
            "--owner",
            "o@acme.io",
        ],
        false,
    );
    cli.run(&["config", "set", "acme", CONFIG], false);
    cli.run(
        &[
            "config",
            "set",
            "acme",
            r#"{"routing":{"strategy":"cost"}}"#,
        ],
        false,
    );
    let created = cli.run(&["key", "create", "acme", "--name", "ci"], true);
    let key = key_in(&created);
    assert_eq!(key.len(), orgstore::KEY_LEN, "{created}");
    let created_json = cli.run(&["--json", "key", "create", "acme", "--name", "ci2"], true);
    let v: serde_json::Value = serde_json::from_str(&created_json).unwrap();
    let key2 = v["key"].as_str().unwrap().to_owned();
    let id2 = v["id"].as_str().unwrap().to_owned();
    let rotated = cli.run(&["key", "rotate", &id2], true);
    let key3 = key_in(&rotated);
    assert_ne!(key2, key3);
    for json in [false, true] {
        let j: &[&str] = if json { &["--json"] } else { &[] };
        let with = |args: &[&str]| -> Vec<String> {
            j.iter().chain(args).map(|s| (*s).to_owned()).collect()
        };
        for args in [
            with(&["key", "list", "acme"]),
            with(&["key", "show", &id2]),
            with(&["config", "get", "acme"]),
            with(&["config", "get", "acme", "--version", "2"]),
            with(&["config", "history", "acme"]),
            with(&["config", "diff", "acme", "1", "3"]),
            with(&["audit", "acme"]),
            with(&["usage", "acme"]),
            with(&["org", "show", "acme"]),
            with(&["check", &key, "--model", "gpt-4o"]),
            with(&["check", &key2, "--model", "gpt-4o"]),
            with(&[
                "check",
                &format!("{}x", &key[..key.len() - 1]),
                "--model",
                "gpt-4o",
            ]),
            with(&["key", "show", &key]),
            with(&[
                "config",
                "set",
                "acme",
                r#"{"providers":{"openai":{"api_key":"sk-proj-TOPSECRETprovider0123456789"}},"rate_limiting":{"rpm":0}}"#,
            ]),
        ] {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&args, false);
        }
    }
    let needles = all_needles(&[key.clone(), key2, key3]);
    assert_clean("CLI output", &cli.printed, &needles);
    // The masked form is there, so the commands did print the config.
    assert!(
        contains(&cli.printed, "sk-...6789"),
        "masked secret not shown"
    );
    // `config get --reveal` is the one command that prints provider secrets.
    let revealed = cli.run(&["config", "get", "acme", "--reveal"], true);
    assert!(
        revealed.contains(PROVIDER_SECRET) && revealed.contains(AWS_SECRET),
        "{revealed}"
    );
    // And the file holds none of it.
    let db = std::fs::read(&cli.cli.db).unwrap();
    assert_clean("the CLI's store file", &db, &needles);
}

#[test]
fn a_revealed_config_needs_the_reveal_permission() {
    let store = Store::open_temporary().unwrap();
    let (acme, _) = populate(&store);
    let viewer = Actor::member(Email::parse("v@acme.io").unwrap());
    let e = store
        .org_configs()
        .reveal(&viewer, &acme, None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(!e.to_string().contains(PROVIDER_SECRET));
}

#[test]
fn library_reads_other_than_reveal_never_hold_clear_secrets() {
    let store = Store::open_temporary().unwrap();
    let op = Actor::Operator;
    let org = OrgId::parse("acme").unwrap();
    store
        .orgs()
        .create(&op, &org, "Acme", &Email::parse("o@acme.io").unwrap())
        .unwrap();
    let viewer = Email::parse("v@acme.io").unwrap();
    store
        .members()
        .add(&op, &org, &viewer, Role::Viewer)
        .unwrap();
    let secret = "sk-live-viewer-must-not-see-0123456789";
    let patch = format!(r#"{{"providers":{{"openai":{{"api_key":"{secret}"}}}}}}"#);
    let updated = store.org_configs().update(&op, &org, &patch).unwrap();
    assert!(!updated.config.revealed_value().to_string().contains(secret));
    let as_viewer = Actor::member(viewer);
    let got = store.org_configs().retrieve(&as_viewer, &org).unwrap();
    assert!(!got.config.revealed_value().to_string().contains(secret));
    for v in store.org_configs().history(&as_viewer, &org).unwrap() {
        assert!(!v.config.revealed_value().to_string().contains(secret));
    }
    assert!(store.org_configs().reveal(&as_viewer, &org, None).is_err());
    let revealed = store.org_configs().reveal(&op, &org, None).unwrap();
    assert!(
        revealed
            .config
            .revealed_value()
            .to_string()
            .contains(secret)
    );
}
