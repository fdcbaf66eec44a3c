//! Hostile keys: expiries in the past and every malformed, forged or look-alike key at the gateway.

use super::*;

#[test]
fn expiry_in_the_past() {
    for past in [
        Timestamp::from_micros(0),
        Timestamp::from_micros(i64::MIN),
        Timestamp::from_micros(Timestamp::now().as_micros() - 1),
    ] {
        let e = refused(ErrorKind::Invalid, "expires_at", |s, o| {
            s.keys().create(&OP, o, KeySpec::new("k").expires_at(past))
        });
        assert!(e.message().contains("in the past"), "{e}");
    }
    refused(ErrorKind::Invalid, "keys[0].expires_at", |s, o| {
        let spec = KeySpec::new("k").expires_at(Timestamp::from_micros(1));
        s.keys()
            .import(&OP, o, &[ImportKey::new("ab".repeat(32), spec)])
    });
    for bad in [
        "yesterday",
        "2026-13-01T00:00:00Z",
        "",
        "9999999-01-01T00:00:00Z",
    ] {
        assert_eq!(
            Timestamp::parse(bad).unwrap_err().field(),
            "timestamp",
            "{bad}"
        );
    }
    // The far future is fine and prints.
    let (store, acme) = fixture();
    let k = store
        .keys()
        .create(
            &OP,
            &acme,
            KeySpec::new("k").expires_at(Timestamp::from_micros(i64::MAX)),
        )
        .unwrap();
    assert!(!k.info.spec.expires_at.unwrap().to_string().is_empty());
}

/// The gateway's answer code for `key` (never a grant).
fn deny_code(store: &Store, key: &str) -> Result<&'static str, String> {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    match store.gateway().check(&Request::new(key, "gpt-4o-mini", ip)) {
        Ok(_) => Err(format!("granted {:?}", &key[..key.len().min(20)])),
        Err(d) => Ok(d.code()),
    }
}

#[test]
fn hostile_keys() {
    let (store, _) = fixture();
    let before = observe(&store);
    let good = SecretKey::generate();
    let g = good.expose();
    let mut typo = g.to_owned();
    typo.replace_range(30..31, if &g[30..31] == "A" { "B" } else { "A" });
    let mut non_ascii = g[..g.len() - 2].to_owned();
    non_ascii.push('é'); // the same byte length, one character outside the alphabet
    let one_mb = format!("sk-agentcc-{}", "A".repeat(1 << 20));
    let cases: Vec<(&str, String, KeyFormatError)> = vec![
        (
            "wrong prefix",
            g.replacen("sk-agentcc-", "sk-agentcx-", 1),
            KeyFormatError::Prefix,
        ),
        (
            "openai key",
            "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789".into(),
            KeyFormatError::Prefix,
        ),
        ("empty", String::new(), KeyFormatError::Prefix),
        (
            "upper-case prefix",
            g.to_uppercase(),
            KeyFormatError::Prefix,
        ),
        ("bad checksum", typo, KeyFormatError::Checksum),
        ("1 MB", one_mb.clone(), KeyFormatError::Length),
        (
            "truncated",
            g[..g.len() - 2].to_owned(),
            KeyFormatError::Length,
        ),
        (
            "one short",
            g[..g.len() - 1].to_owned(),
            KeyFormatError::Length,
        ),
        (
            "upstream length, not hex",
            format!("sk-agentcc-{}", "g".repeat(48)),
            KeyFormatError::Charset,
        ),
        ("non-ASCII", non_ascii, KeyFormatError::Charset),
        (
            "non-ASCII prefix",
            "ѕk-agentcc-".to_owned() + &g[11..],
            KeyFormatError::Prefix,
        ),
        (
            "NUL inside",
            // NUL in the body only (a random body character may also occur in the prefix).
            format!("{}\0{}", &g[..20], &g[21..]),
            KeyFormatError::Charset,
        ),
        (
            "legacy upper hex",
            format!("sk-agentcc-{}", "ABCDEF0123456789".repeat(3)),
            KeyFormatError::Charset,
        ),
    ];
    // Length is decided before anything reads the body: a megabyte that is not even in the
    // alphabet is refused for its length, so its cost cannot grow with what it holds.
    let one_mb_junk = format!("sk-agentcc-{}", "\u{1f600}".repeat(1 << 18));
    assert_eq!(
        orgstore::check_key_format(&one_mb_junk),
        Err(KeyFormatError::Length)
    );
    assert_eq!(deny_code(&store, &one_mb_junk), Ok("malformed_key"));
    for (name, key, why) in &cases {
        assert_eq!(orgstore::check_key_format(key), Err(*why), "{name}");
        assert_eq!(deny_code(&store, key), Ok("malformed_key"), "{name}");
        let d = store
            .gateway()
            .check(&Request::new(key, "m", IpAddr::V4(Ipv4Addr::LOCALHOST)))
            .unwrap_err();
        assert!(
            !d.to_string().contains(&key[key.len().saturating_sub(20)..]) || key.len() < 20,
            "{name}: the denial quotes the key"
        );
        assert_eq!(d.http_status(), 401);
    }
    // A well-formed key that was never issued is unknown, not malformed.
    assert_eq!(deny_code(&store, g), Ok("unknown_key"));
    // Header extraction copes with the same inputs.
    assert_eq!(
        key_from_headers(Some(&format!("Bearer {one_mb}")), None).map(str::len),
        Ok(one_mb.len())
    );
    assert!(key_from_headers(Some("Bearer "), None).is_err());
    assert!(key_from_headers(Some("Bearer a b"), None).is_err());
    assert!(key_from_headers(Some("Token abc"), None).is_err());
    // Key ids: the admin API refuses bad ids before touching the store.
    for bad in [
        "",
        "key_",
        "key_zz",
        &format!("key_{}", "0".repeat(31)),
        &format!("key_{}é", "0".repeat(31)),
        "sk-agentcc-x",
    ] {
        let e = KeyId::parse(bad).unwrap_err();
        assert_eq!(
            (e.kind(), e.field()),
            (ErrorKind::Invalid, "key id"),
            "{bad}"
        );
    }
    let e = store.keys().revoke(&OP, &KeyId::random()).unwrap_err();
    assert_eq!((e.kind(), e.field()), (ErrorKind::NotFound, "key id"));
    assert_eq!(observe(&store), before);
}
