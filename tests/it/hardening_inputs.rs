//! Input rules: IPv4-mapped IP rules, exact numbers in config JSON, keys given twice, the one
//! rule for integer fields and the one for money, and timestamps outside the supported range.

use std::net::IpAddr;

use ipnet::IpNet;
use orgstore::{Budget, ErrorKind, KeySpec, OrgConfig, Period, Request, Store, Timestamp, Usd};
use serde_json::Value;

use crate::common::ConfigJson;
use crate::common::{Cli, Fixture, OP};

const MODEL: &str = "gpt-4o-mini";

/// Everything an operator can read about the fixture's org, for before/after comparisons.
fn observe(f: &Fixture) -> String {
    let o = f.store.orgs().get(&OP, &f.org).unwrap();
    let configs: Vec<Value> = f
        .store
        .org_configs()
        .history(&OP, &f.org)
        .unwrap()
        .iter()
        .map(|v| v.config.masked_value())
        .collect();
    let keys = f.store.keys().list(&OP, &f.org).unwrap();
    format!("{o:?}\n{configs:?}\n{keys:?}")
}

/// Asserts that `patch` is refused as `Invalid` on `field` and changes nothing.
fn patch_refused(f: &Fixture, patch: &str, field: &str) -> orgstore::Error {
    let before = observe(f);
    let e = f
        .store
        .org_configs()
        .update(&OP, &f.org, patch)
        .expect_err(patch);
    assert_eq!(
        (e.kind(), e.field()),
        (ErrorKind::Invalid, field),
        "{patch}: {e}"
    );
    assert_eq!(
        observe(f),
        before,
        "{patch}: a refused patch changed the store"
    );
    e
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn granted(store: &Store, key: &str, client: &str) -> bool {
    match store.gateway().check(&Request::new(key, MODEL, ip(client))) {
        Ok(_) => true,
        Err(d) => {
            assert_eq!(d.code(), "ip_not_allowed", "{client}");
            false
        }
    }
}

/// Client addresses tried against every rule: IPv4, their IPv4-mapped IPv6 forms, and
/// plain IPv6.
const CLIENTS: &[&str] = &[
    "10.0.0.1",
    "::ffff:10.0.0.1",
    "10.9.9.9",
    "::ffff:10.9.9.9",
    "11.0.0.1",
    "::ffff:11.0.0.1",
    "2001:db8::1",
    "::1",
];

/// Each rule in its IPv4-mapped form, and the IPv4 rule it stands for.
const MAPPED_RULES: &[(&str, &str)] = &[
    ("::ffff:10.0.0.1", "10.0.0.1/32"),
    ("::ffff:10.0.0.1/128", "10.0.0.1/32"),
    ("  ::FFFF:10.0.0.1 ", "10.0.0.1/32"),
    ("::ffff:a00:1", "10.0.0.1/32"),
    ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ("::ffff:10.1.2.3/104", "10.0.0.0/8"),
    ("::ffff:0:0/96", "0.0.0.0/0"),
    ("0:0:0:0:0:ffff:0a00:0000/120", "10.0.0.0/24"),
];

/// Whether `v4` (an IPv4 net) covers `client` as the gateway sees it: a mapped client
/// address is its IPv4 address.
fn covers(v4: &str, client: &str) -> bool {
    let net: IpNet = v4.parse().unwrap();
    let addr = match ip(client) {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        a => a,
    };
    net.contains(&addr)
}

#[test]
fn ipv4_mapped_rules_mean_their_ipv4_rule_at_org_and_key_level() {
    for (rule, v4) in MAPPED_RULES {
        // Org level: allow list, deny list (a key without rules of its own).
        for list in ["allow", "deny"] {
            let f = Fixture::new();
            let key = f.create_key("k");
            let patch = serde_json::json!({"ip_acl": {list: [rule]}}).to_string();
            f.update_config(&patch);
            let acl = f.store.org_configs().retrieve(&OP, &f.org).unwrap().config;
            for client in CLIENTS {
                let want = if list == "allow" {
                    covers(v4, client)
                } else {
                    !covers(v4, client)
                };
                assert_eq!(
                    granted(&f.store, key.key.expose(), client),
                    want,
                    "org {list} {rule:?}, client {client}"
                );
                assert_eq!(acl.ip_acl().allows(ip(client)), want, "{rule:?} {client}");
            }
            // The same through the parsed config alone.
            let c = OrgConfig::parse(&patch).unwrap();
            for client in CLIENTS {
                assert_eq!(
                    c.ip_acl().allows(ip(client)),
                    acl.ip_acl().allows(ip(client))
                );
            }
        }
        // Key level: allowed_ips (an allow list), on create and on edit; stored as the
        // IPv4 rule.
        let f = Fixture::new();
        let created = f
            .store
            .keys()
            .create(&OP, &f.org, KeySpec::new("k").ips([*rule]))
            .unwrap();
        assert_eq!(
            created.info.spec.allowed_ips,
            vec![v4.to_string()],
            "{rule:?}"
        );
        for client in CLIENTS {
            assert_eq!(
                granted(&f.store, created.key.expose(), client),
                covers(v4, client),
                "key allow {rule:?}, client {client}"
            );
        }
        let other = f.create_key("other");
        let edited = f
            .store
            .keys()
            .update(&OP, &other.info.id, KeySpec::new("other").ips([*rule]))
            .unwrap();
        assert_eq!(edited.spec.allowed_ips, vec![v4.to_string()]);
        for client in CLIENTS {
            assert_eq!(
                granted(&f.store, other.key.expose(), client),
                covers(v4, client),
                "edited key allow {rule:?}, client {client}"
            );
        }
    }
}

#[test]
fn org_and_key_rules_mix_mapped_and_plain_forms() {
    // Org allows 10/8 written mapped, denies 10.0.0.1 written plain; the key allows
    // ::ffff:10.0.0.0/120 only.
    let f = Fixture::new();
    f.update_config(r#"{"ip_acl":{"allow":["::ffff:10.0.0.0/104"],"deny":["10.0.0.1"]}}"#);
    let k = f
        .store
        .keys()
        .create(&OP, &f.org, KeySpec::new("k").ips(["::ffff:10.0.0.0/120"]))
        .unwrap();
    for (client, want) in [
        ("10.0.0.1", false),
        ("::ffff:10.0.0.1", false),
        ("10.0.0.2", true),
        ("::ffff:10.0.0.2", true),
        ("10.0.1.2", false),
        ("::ffff:10.0.1.2", false),
        ("2001:db8::1", false),
    ] {
        assert_eq!(granted(&f.store, k.key.expose(), client), want, "{client}");
    }
    // A deny list in mapped form against plain clients.
    let f = Fixture::new();
    f.update_config(r#"{"ip_acl":{"deny":["::ffff:203.0.113.0/120","::ffff:198.51.100.7"]}}"#);
    let k = f.create_key("k");
    for (client, want) in [
        ("203.0.113.9", false),
        ("::ffff:203.0.113.9", false),
        ("198.51.100.7", false),
        ("198.51.100.8", true),
        ("203.0.114.1", true),
        ("2001:db8::1", true),
    ] {
        assert_eq!(granted(&f.store, k.key.expose(), client), want, "{client}");
    }
}

#[test]
fn ipv4_mapped_ranges_shorter_than_96_are_refused() {
    for rule in [
        "::ffff:10.0.0.0/80",
        "::ffff:0:0/95",
        "::ffff:0.0.0.0/0",
        "::ffff:10.0.0.1/64",
    ] {
        let f = Fixture::new();
        for (list, field) in [
            ("allow", "config.ip_acl.allow[1]"),
            ("deny", "config.ip_acl.deny[1]"),
        ] {
            let patch = serde_json::json!({"ip_acl": {list: ["192.0.2.1", rule]}}).to_string();
            let e = patch_refused(&f, &patch, field);
            assert!(
                e.message().contains("/96") && e.message().contains("IPv4"),
                "{rule}: {e}"
            );
        }
        let before = observe(&f);
        let e = f
            .store
            .keys()
            .create(&OP, &f.org, KeySpec::new("k").ips(["10.0.0.0/8", rule]))
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "allowed_ips[1]"),
            "{e}"
        );
        assert!(e.message().contains("/96"), "{e}");
        assert_eq!(observe(&f), before);
    }
    // Plain IPv6 ranges, even ones covering the mapped space, keep their meaning.
    let c = OrgConfig::parse(r#"{"ip_acl":{"allow":["::/0"]}}"#).unwrap();
    assert!(c.ip_acl().allows(ip("2001:db8::1")));
    assert!(!c.ip_acl().allows(ip("::ffff:10.0.0.1")));
    assert!(!c.ip_acl().allows(ip("10.0.0.1")));
}

/// A config with `n` at a pass-through path, read back from the store.
fn stored_number(f: &Fixture, n: &str) -> Value {
    let patch = format!(r#"{{"providers":{{"x":{{"n":{n}}}}},"routing":{{"w":[1,2,{n}]}}}}"#);
    f.update_config(&patch);
    let v = f
        .store
        .org_configs()
        .retrieve(&OP, &f.org)
        .unwrap()
        .config
        .masked_value();
    assert_eq!(v["routing"]["w"][2], v["providers"]["x"]["n"]);
    v["providers"]["x"]["n"].clone()
}

#[test]
fn pass_through_numbers_are_stored_exactly_or_refused() {
    let f = Fixture::new();
    // Integers anywhere in the 64-bit range stay integers, exactly.
    for n in [
        "9007199254740991",
        "9007199254740992",
        "9007199254740993",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551614",
        "18446744073709551615",
        "-9007199254740993",
        "-9223372036854775808",
        "0",
    ] {
        let got = stored_number(&f, n);
        assert_eq!(got.to_string(), n, "{n}");
        assert!(got.is_i64() || got.is_u64(), "{n}: {got}");
    }
    assert_eq!(stored_number(&f, "-0").as_f64(), Some(0.0));
    // Floats that a double holds exactly as written.
    for n in [
        "0.1",
        "-2.5",
        "1.5e300",
        "1e-7",
        "9007199254740992.0",
        "123.456",
    ] {
        let got = stored_number(&f, n);
        assert_eq!(got.as_f64(), Some(n.parse::<f64>().unwrap()), "{n}");
        assert!(!got.is_u64() && !got.is_i64(), "{n}: {got}");
    }
    // Beyond: refused by path, never rounded to a float.
    for n in [
        "18446744073709551616",
        "18446744073709551617",
        "36893488147419103232",
        "99999999999999999999999999999",
        "-9223372036854775809",
        "-18446744073709551616",
        &"9".repeat(300),
    ] {
        for (patch, field) in [
            (
                format!(r#"{{"providers":{{"x":{{"n":{n}}}}}}}"#),
                "config.providers.x.n",
            ),
            (
                format!(r#"{{"routing":{{"w":[1,2,{n}]}}}}"#),
                "config.routing.w[2]",
            ),
            (
                format!(r#"{{"cache":{{"a":{{"b":[{{"c":{n}}}]}}}}}}"#),
                "config.cache.a.b[0].c",
            ),
        ] {
            let e = patch_refused(&f, &patch, field);
            assert!(e.message().contains("whole number outside"), "{e}");
            assert!(e.message().contains("string"), "{e}");
        }
    }
    // Float literals with more digits than a double holds would be stored as another number.
    for n in [
        "9007199254740993.0",
        "0.30000000000000000001",
        "1.00000000000000000000001",
        "18446744073709551617.5",
        "1e-400",
    ] {
        let e = patch_refused(
            &f,
            &format!(r#"{{"guardrails":{{"t":{n}}}}}"#),
            "config.guardrails.t",
        );
        assert!(e.message().contains("significant digits"), "{n}: {e}");
    }
    // The parser alone gives the same answers.
    assert_eq!(
        OrgConfig::parse(r#"{"audit":{"n":18446744073709551616}}"#)
            .unwrap_err()
            .field(),
        "config.audit.n"
    );
    assert!(OrgConfig::parse(r#"{"audit":{"n":18446744073709551615}}"#).is_ok());
}

#[test]
fn keys_given_twice_are_refused_in_config_patches() {
    let f = Fixture::new();
    f.update_config(r#"{"rate_limiting":{"rpm":100},"routing":{"a":{"b":1}}}"#);
    for (patch, field) in [
        (
            r#"{"rate_limiting":{"rpm":1},"rate_limiting":{"rpm":2}}"#,
            "config.rate_limiting",
        ),
        (
            r#"{"rate_limiting":{"rpm":1,"rpm":2}}"#,
            "config.rate_limiting.rpm",
        ),
        (
            r#"{"rate_limiting":{"rpm":1,"rpm":1}}"#,
            "config.rate_limiting.rpm",
        ),
        (
            r#"{"budgets":null,"budgets":{"limit":5}}"#,
            "config.budgets",
        ),
        (
            r#"{"providers":{"a":{"models":[{"n":1},{"n":1,"n":2}]}}}"#,
            "config.providers.a.models[1].n",
        ),
        (
            r#"{"routing":{"a":{"b":1,"b":null}}}"#,
            "config.routing.a.b",
        ),
        (r#"{"routing":{"a":1,"\u0061":2}}"#, "config.routing.a"),
        (
            r#"{"ip_acl":{"allow":[],"allow":["10.0.0.0/8"]}}"#,
            "config.ip_acl.allow",
        ),
        (r#"{"caching":{},"caching":{}}"#, "config.caching"),
    ] {
        let e = patch_refused(&f, patch, field);
        assert!(e.message().contains("given twice"), "{patch}: {e}");
    }
    // The same key in different objects, or once each, is fine.
    f.update_config(r#"{"routing":{"a":{"n":1},"b":{"n":1}},"cache":{"n":[{"n":1},{"n":2}]}}"#);
    assert!(OrgConfig::parse(r#"{"rate_limiting":{"rpm":1,"rpm":2}}"#).is_err());
}

/// The CLI's views these tests read back.
impl Cli {
    /// Runs a command that must fail with exit code 1; returns its stderr.
    fn invalid(&self, args: &[&str], input: &str) -> String {
        self.run_stdin(args, input).fail(1)
    }

    /// Acme's keys as `key list --json` prints them.
    fn keys(&self) -> Vec<Value> {
        self.json(&["key", "list", "acme"])
            .as_array()
            .unwrap()
            .clone()
    }

    /// How many config versions acme has.
    fn versions(&self) -> usize {
        self.json(&["config", "history", "acme"])
            .as_array()
            .unwrap()
            .len()
    }
}

#[test]
fn keys_given_twice_are_refused_by_the_cli() {
    let cli = Cli::with_acme();
    let versions = cli.versions();
    for (patch, field) in [
        (
            r#"{"rate_limiting":{"rpm":1,"rpm":2}}"#,
            "config.rate_limiting.rpm",
        ),
        (r#"{"routing":{},"routing":{}}"#, "config.routing"),
        (
            r#"{"providers":{"a":{"x":[{"k":1,"k":2}]}}}"#,
            "config.providers.a.x[0].k",
        ),
    ] {
        let err = cli.invalid(&["config", "set", "acme", patch], "");
        assert!(err.contains(field) && err.contains("given twice"), "{err}");
        let err = cli.invalid(&["config", "set", "acme", "-"], patch);
        assert!(err.contains(field), "{err}");
    }
    assert_eq!(cli.versions(), versions);
    // --meta: a label given twice (also after trimming) is refused; distinct ones are fine.
    for metas in [
        vec!["team=a", "team=b"],
        vec!["team=a", "team=a"],
        vec!["team=a", " team=b"],
        vec!["x=1", "team=", "team=b"],
    ] {
        let mut args = vec!["key", "create", "acme", "--name", "k"];
        for m in &metas {
            args.extend(["--meta", m]);
        }
        let err = cli.invalid(&args, "");
        assert!(
            err.contains("--meta") && err.contains("given twice"),
            "{metas:?}: {err}"
        );
    }
    assert!(cli.keys().is_empty());
    cli.ok(&[
        "key", "create", "acme", "--name", "k", "--meta", "team=a", "--meta", "env=b",
    ]);
    assert_eq!(
        cli.keys()[0]["metadata"],
        serde_json::json!({"team":"a","env":"b"})
    );
    // Import lines: a metadata label or a field given twice (aliases included).
    let sha = "ab".repeat(32);
    for line in [
        format!(r#"{{"sha256":"{sha}","name":"i","metadata":{{"a":"1","a":"2"}}}}"#),
        format!(r#"{{"sha256":"{sha}","name":"i","name":"j"}}"#),
        format!(r#"{{"sha256":"{sha}","name":"i","rpm":1,"rate_limit_rpm":2}}"#),
    ] {
        let err = cli.invalid(&["key", "import", "acme", "--file", "-"], &line);
        assert!(err.contains("line 1"), "{line}: {err}");
        assert!(
            err.contains("twice") || err.contains("duplicate"),
            "{line}: {err}"
        );
    }
    assert_eq!(cli.keys().len(), 1);
}

#[test]
fn one_rule_for_integer_fields() {
    // Every integer field takes a JSON number whose value is whole, in any spelling.
    let f = Fixture::new();
    for field in ["rpm", "tpm", "per_key_rpm", "per_key_tpm"] {
        for spelling in [
            "1000", "1e3", "1E3", "1e+3", "1000.0", "1.0e3", "1.000E+3", "10000e-1", "1000.000",
        ] {
            f.update_config(&format!(r#"{{"rate_limiting":{{"{field}":{spelling}}}}}"#));
            let r = f.store.org_configs().retrieve(&OP, &f.org).unwrap().config;
            let r = r.rate_limiting();
            let got = match field {
                "rpm" => r.rpm,
                "tpm" => r.tpm,
                "per_key_rpm" => r.per_key_rpm,
                _ => r.per_key_tpm,
            };
            assert_eq!(got, Some(1000), "{field} = {spelling}");
        }
        for bad in [
            "0", "-0", "0.0", "-1", "-1e3", "1000.5", "1e-3", "0.5", "\"1000\"", "true", "[1]",
            "1e13", "1.5e12",
        ] {
            let e = patch_refused(
                &f,
                &format!(r#"{{"rate_limiting":{{"{field}":{bad}}}}}"#),
                &format!("config.rate_limiting.{field}"),
            );
            assert!(e.message().contains("whole number from 1"), "{bad}: {e}");
        }
    }
    // The rpm maximum is 100000000 in every spelling.
    f.update_config(r#"{"rate_limiting":{"rpm":1e8}}"#);
    patch_refused(
        &f,
        r#"{"rate_limiting":{"rpm":1.00000001e8}}"#,
        "config.rate_limiting.rpm",
    );
    // The same rule for a key's limits on the command line and in import lines.
    let cli = Cli::with_acme();
    for (spelling, want) in [("1e3", 1000), ("250.0", 250), ("2.5e2", 250), ("7", 7)] {
        cli.ok(&[
            "key", "create", "acme", "--name", spelling, "--rpm", spelling, "--tpm", spelling,
        ]);
        let k = cli
            .keys()
            .into_iter()
            .find(|k| k["name"] == spelling)
            .unwrap();
        assert_eq!(k["rate_limit_rpm"], want, "{spelling}");
        assert_eq!(k["rate_limit_tpm"], want, "{spelling}");
    }
    for bad in ["1.5", "1e-3", "-1", "abc", "1e10", "\"5\""] {
        let flag = format!("--rpm={bad}");
        let err = cli.invalid_or_usage(&["key", "create", "acme", "--name", "b", &flag]);
        assert!(
            err.contains("--rpm") && err.contains("whole number"),
            "{bad}: {err}"
        );
    }
    let sha = "cd".repeat(32);
    cli.run_stdin(
        &["key", "import", "acme", "--file", "-"],
        &format!(r#"{{"sha256":"{sha}","name":"imp","rpm":1e3,"tpm":2.5e3}}"#),
    )
    .ok();
    let k = cli.keys().into_iter().find(|k| k["name"] == "imp").unwrap();
    assert_eq!(
        (k["rate_limit_rpm"].clone(), k["rate_limit_tpm"].clone()),
        (1000.into(), 2500.into())
    );
    for bad in ["1.5", "-1", "1e10", "\"5\""] {
        let line = format!(
            r#"{{"sha256":"{}","name":"b","rpm":{bad}}}"#,
            "ef".repeat(32)
        );
        let err = cli.invalid(&["key", "import", "acme", "--file", "-"], &line);
        assert!(err.contains("line 1"), "{bad}: {err}");
    }
}

impl Cli {
    /// A refused flag value: clap's usage error (2) or an invalid input (1); returns stderr.
    fn invalid_or_usage(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            matches!(out.code(), Some(1 | 2)),
            "{args:?}: {}",
            out.stderr
        );
        out.stderr
    }
}

#[test]
fn one_rule_for_money() {
    let f = Fixture::new();
    let limit = |f: &Fixture| {
        f.store
            .org_configs()
            .retrieve(&OP, &f.org)
            .unwrap()
            .config
            .budgets()
            .unwrap()
            .limit
            .unwrap()
            .micros()
    };
    for (spelling, micros) in [
        ("100", 100_000_000),
        ("100.0", 100_000_000),
        ("1e2", 100_000_000),
        ("1E+2", 100_000_000),
        ("10000e-2", 100_000_000),
        ("\"100\"", 100_000_000),
        ("\"1e2\"", 100_000_000),
        ("\" 100.000000 \"", 100_000_000),
        ("1.0000000", 1_000_000),
        ("12.5", 12_500_000),
        ("\"12.50\"", 12_500_000),
        ("0.000001", 1),
        ("1e-6", 1),
        ("2.5E-3", 2_500),
        ("1e9", 1_000_000_000_000_000),
        ("999999999.999999", 999_999_999_999_999),
        ("0", 0),
        ("-0", 0),
        ("-0.0", 0),
        ("\"-0\"", 0),
        ("0e5", 0),
    ] {
        f.update_config(&format!(r#"{{"budgets":{{"limit":{spelling}}}}}"#));
        assert_eq!(limit(&f), micros, "{spelling}");
        // Stored canonical: read back, it is the same amount.
        let text = f
            .store
            .org_configs()
            .retrieve(&OP, &f.org)
            .unwrap()
            .config
            .masked_value()
            .to_string();
        let again = OrgConfig::parse(&text).unwrap();
        assert_eq!(again.budgets().unwrap().limit.unwrap().micros(), micros);
    }
    for bad in [
        "-1",
        "-0.000001",
        "\"-5\"",
        "1.0000001",
        "1e-7",
        "1000000000.000001",
        "1e10",
        "\"1e400000000\"",
        "\"1e-400000000\"",
        "\"1,5\"",
        "\".5\"",
        "\"5.\"",
        "\"+5\"",
        "\"007\"",
        "\"0x10\"",
        "\"$5\"",
        "\"5 USD\"",
        "\"\"",
        "\" \"",
        "\"NaN\"",
        "\"Infinity\"",
        "\"1e\"",
        "true",
        "[5]",
    ] {
        let e = patch_refused(
            &f,
            &format!(r#"{{"budgets":{{"limit":{bad}}}}}"#),
            "config.budgets.limit",
        );
        assert!(e.message().contains("dollar amount"), "{bad}: {e}");
    }
    // warn_threshold is a decimal under the same rule, in (0, 1].
    for (spelling, ppm) in [
        ("0.5", 500_000),
        ("5e-1", 500_000),
        ("\"0.25\"", 250_000),
        ("1", 1_000_000),
    ] {
        f.update_config(&format!(
            r#"{{"budgets":{{"limit":10,"warn_threshold":{spelling}}}}}"#
        ));
        let b = f.store.org_configs().retrieve(&OP, &f.org).unwrap().config;
        assert_eq!(b.budgets().unwrap().warn_threshold_ppm, ppm, "{spelling}");
    }
    for bad in ["0", "-0", "1.0000001", "0.0000001", "\"0,5\"", "2"] {
        patch_refused(
            &f,
            &format!(r#"{{"budgets":{{"warn_threshold":{bad}}}}}"#),
            "config.budgets.warn_threshold",
        );
    }
    // Usd::parse (key budgets, usage costs, the CLI's --budget) is the same rule.
    for (text, micros) in [
        ("1e2", 100_000_000),
        ("-0", 0),
        ("0.0042", 4_200),
        (" 7 ", 7_000_000),
    ] {
        assert_eq!(Usd::parse(text).unwrap().micros(), micros, "{text}");
    }
    for text in [
        "-1", ".5", "5.", "+5", "007", "1e-7", "1e10", "1,5", "", "NaN",
    ] {
        assert_eq!(
            Usd::parse(text).unwrap_err().kind(),
            ErrorKind::Invalid,
            "{text}"
        );
    }
    let k = f
        .store
        .keys()
        .create(
            &OP,
            &f.org,
            KeySpec::new("k").budget(Budget::new(Usd::parse("2.5e1").unwrap(), Period::Daily)),
        )
        .unwrap();
    assert_eq!(k.info.spec.budget.unwrap().limit.micros(), 25_000_000);
    let cli = Cli::with_acme();
    cli.ok(&["key", "create", "acme", "--name", "b", "--budget", "1.5e1"]);
    assert_eq!(cli.keys()[0]["budget"]["limit"], 15);
    for bad in ["-5", ".5", "1e-7", "5$"] {
        let err = cli.invalid(
            &["key", "create", "acme", "--name", "c", "--budget", bad],
            "",
        );
        assert!(
            err.contains("--budget") && err.contains("dollar amount"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn expiry_outside_the_supported_range_says_the_range() {
    for well_formed in [
        "9999-12-31T23:59:59Z",
        "9999-12-30T22:00:01Z",
        "9999-12-30T22:00:00.000001Z",
        "9999-12-31T00:30:00+01:00",
        "-009999-01-01T00:00:00Z",
    ] {
        let e = Timestamp::parse(well_formed).unwrap_err();
        assert_eq!((e.kind(), e.field()), (ErrorKind::Invalid, "timestamp"));
        assert!(
            e.message().contains("valid RFC 3339")
                && e.message().contains("-009999-01-02T01:59:59Z")
                && e.message().contains("9999-12-30T22:00:00Z"),
            "{well_formed}: {e}"
        );
    }
    // The last supported instant parses and prints as itself.
    let last = Timestamp::parse("9999-12-30T22:00:00Z").unwrap();
    assert_eq!(last.to_string(), "9999-12-30T22:00:00Z");
    assert_eq!(Timestamp::parse("9999-12-30T23:00:00+01:00").unwrap(), last);
    // Malformed times say why, not the range.
    for bad in [
        "2026-02-30T00:00:00Z",
        "2026-01-01T00:00:00",
        "2026-01-01",
        "soon",
        "10000-01-01T00:00:00Z",
    ] {
        let e = Timestamp::parse(bad).unwrap_err();
        assert!(e.message().contains("not an RFC 3339 time"), "{bad}: {e}");
        assert!(!e.message().contains("supported range"), "{bad}: {e}");
    }
    // Through the CLI, on create and in an import line.
    let cli = Cli::with_acme();
    let err = cli.invalid(
        &[
            "key",
            "create",
            "acme",
            "--name",
            "k",
            "--expires",
            "9999-12-31T23:59:59Z",
        ],
        "",
    );
    assert!(
        err.contains("--expires")
            && err.contains("supported range")
            && err.contains("9999-12-30T22:00:00Z"),
        "{err}"
    );
    assert!(!err.contains("use RFC 3339"), "{err}");
    let line = format!(
        r#"{{"sha256":"{}","name":"i","expires_at":"9999-12-31T23:59:59Z"}}"#,
        "ab".repeat(32)
    );
    let err = cli.invalid(&["key", "import", "acme", "--file", "-"], &line);
    assert!(
        err.contains("expires_at") && err.contains("supported range"),
        "{err}"
    );
    cli.ok(&[
        "key",
        "create",
        "acme",
        "--name",
        "k",
        "--expires",
        "9999-12-30T22:00:00Z",
    ]);
    assert_eq!(cli.keys()[0]["expires_at"], "9999-12-30T22:00:00Z");
}
