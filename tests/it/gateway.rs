//! Gateway hot path behaviour through the public API.

use orgstore::*;
use std::net::IpAddr;

use crate::common::OP;

struct Fixture {
    store: Store,
    org: OrgId,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixture(config: &str) -> Fixture {
    let store = Store::open_temporary().unwrap();
    let org = OrgId::parse("acme").unwrap();
    store
        .orgs()
        .create(&OP, &org, "Acme", &Email::parse("o@acme.io").unwrap())
        .unwrap();
    if !config.is_empty() {
        store.org_configs().update(&OP, &org, config).unwrap();
    }
    Fixture { store, org }
}

impl Fixture {
    fn key(&self, spec: KeySpec) -> (KeyId, String) {
        let c = self.store.keys().create(&OP, &self.org, spec).unwrap();
        (c.info.id, c.key.expose().to_owned())
    }
    fn check(&self, key: &str, model: &str, addr: &str) -> Result<Grant<'_>, Denial> {
        self.store
            .gateway()
            .check(&Request::new(key, model, ip(addr)))
    }
}

#[test]
fn grant_carries_org_key_and_limits() {
    let f = fixture(r#"{"rate_limiting":{"rpm":1000,"per_key_rpm":50}}"#);
    let (id, key) = f.key(KeySpec::new("svc"));
    let g = f.check(&key, "gpt-4o", "10.0.0.1").unwrap();
    assert_eq!(g.org_id(), &f.org);
    assert_eq!(g.key_id(), id);
    assert_eq!(g.limits().key_rpm, Some(50));
    assert_eq!(g.limits().org_rpm, Some(1000));
    assert_eq!(g.rate_headers().unwrap().limit, 50);
    let r = f.store.gateway().lookup(&key).unwrap();
    assert_eq!(r.key_id, id);
    // A grant's limits equal the resolved key's, org tpm and budget included.
    assert_eq!(g.limits(), r.limits);
    assert_eq!((g.limits().org_tpm, g.limits().org_budget), (None, None));

    let f = fixture(r#"{"rate_limiting":{"tpm":9000},"budgets":{"limit":250,"period":"monthly"}}"#);
    let (_, key) = f.key(KeySpec::new("svc").tpm(70));
    let g = f.check(&key, "gpt-4o", "10.0.0.1").unwrap();
    let l = g.limits();
    assert_eq!(
        (l.key_tpm, l.org_tpm, l.org_rpm),
        (Some(70), Some(9000), None)
    );
    assert_eq!(l.org_budget, Some(orgstore::Usd::parse("250").unwrap()));
    assert_eq!(l, f.store.gateway().lookup(&key).unwrap().limits);
    // No requests-per-minute limit at either level: no rate-limit headers.
    assert_eq!(g.rate_headers(), None);
}

#[test]
fn malformed_and_unknown_keys() {
    let f = fixture("");
    let (_, key) = f.key(KeySpec::new("svc"));
    assert_eq!(
        f.check("Bearer x", "m", "10.0.0.1").unwrap_err().code(),
        "malformed_key"
    );
    let mut typo = key.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(
        f.check(&typo, "m", "10.0.0.1").unwrap_err().code(),
        "malformed_key"
    );
    let other = SecretKey::generate();
    assert_eq!(
        f.check(other.expose(), "m", "10.0.0.1").unwrap_err(),
        Denial::UnknownKey
    );
    // An upstream hex key carries no checksum: never imported, it is simply unknown.
    let upstream = format!("sk-agentcc-{}", "0123456789abcdef".repeat(3));
    assert_eq!(
        f.check(&upstream, "m", "10.0.0.1").unwrap_err(),
        Denial::UnknownKey
    );
    let huge = "sk-agentcc-".to_owned() + &"a".repeat(1 << 20);
    assert_eq!(
        f.check(&huge, "m", "10.0.0.1").unwrap_err().code(),
        "malformed_key"
    );
}

#[test]
fn models_intersect_org_and_key() {
    let f = fixture(r#"{"allowed_models":["gpt-4o","gpt-4o-mini"]}"#);
    let (_, all) = f.key(KeySpec::new("all"));
    let (_, mini) = f.key(KeySpec::new("mini").models(["gpt-4o-mini", "claude-sonnet-4-6"]));
    assert!(f.check(&all, "gpt-4o", "10.0.0.1").is_ok());
    assert_eq!(
        f.check(&all, "o1", "10.0.0.1").unwrap_err(),
        Denial::ModelNotAllowed
    );
    assert!(f.check(&mini, "gpt-4o-mini", "10.0.0.1").is_ok());
    assert_eq!(
        f.check(&mini, "gpt-4o", "10.0.0.1").unwrap_err(),
        Denial::ModelNotAllowed
    );
    // The key lists a model the org does not allow: the key cannot widen the org.
    assert_eq!(
        f.check(&mini, "claude-sonnet-4-6", "10.0.0.1").unwrap_err(),
        Denial::ModelNotAllowed
    );
}

#[test]
fn ip_rules_deny_wins_at_every_layer() {
    let f = fixture(r#"{"ip_acl":{"allow":["10.0.0.0/8","2001:db8::/32"],"deny":["10.6.6.6"]}}"#);
    let (_, any) = f.key(KeySpec::new("any"));
    let (_, narrow) = f.key(KeySpec::new("narrow").ips(["10.1.0.0/16", "192.168.1.1"]));
    assert!(f.check(&any, "m", "10.9.9.9").is_ok());
    assert!(f.check(&any, "m", "2001:db8::5").is_ok());
    assert_eq!(
        f.check(&any, "m", "10.6.6.6").unwrap_err(),
        Denial::IpNotAllowed
    );
    assert_eq!(
        f.check(&any, "m", "11.0.0.1").unwrap_err(),
        Denial::IpNotAllowed
    );
    assert!(f.check(&narrow, "m", "10.1.2.3").is_ok());
    assert_eq!(
        f.check(&narrow, "m", "10.2.2.3").unwrap_err(),
        Denial::IpNotAllowed
    );
    // Allowed by the key, outside the org's allow list.
    assert_eq!(
        f.check(&narrow, "m", "192.168.1.1").unwrap_err(),
        Denial::IpNotAllowed
    );
}

#[test]
fn revoke_rotate_expiry_and_org_status_are_seen_at_once() {
    let f = fixture("");
    let (id, key) = f.key(KeySpec::new("svc"));
    let gw = f.store.gateway();
    let req = |k: &str| gw.check(&Request::new(k, "m", ip("10.0.0.1"))).map(|_| ());
    assert!(req(&key).is_ok());
    let rotated = f.store.keys().rotate(&OP, &id).unwrap();
    assert_eq!(req(&key).unwrap_err(), Denial::UnknownKey);
    let new_key = rotated.key.expose().to_owned();
    assert!(req(&new_key).is_ok());
    f.store.orgs().suspend(&OP, &f.org).unwrap();
    assert_eq!(req(&new_key).unwrap_err(), Denial::OrgSuspended);
    f.store.orgs().resume(&OP, &f.org).unwrap();
    assert!(req(&new_key).is_ok());
    f.store.keys().revoke(&OP, &id).unwrap();
    assert_eq!(req(&new_key).unwrap_err(), Denial::Revoked);

    let exp = Timestamp::parse("2099-01-01T00:00:00Z").unwrap();
    let (_, k2) = f.key(KeySpec::new("exp").expires_at(exp));
    let before = Timestamp::parse("2098-12-31T23:59:59Z").unwrap();
    assert!(
        gw.check_at(&Request::new(&k2, "m", ip("10.0.0.1")), before)
            .is_ok()
    );
    assert_eq!(
        gw.check_at(&Request::new(&k2, "m", ip("10.0.0.1")), exp)
            .unwrap_err(),
        Denial::Expired
    );
    f.store.orgs().delete(&OP, &f.org).unwrap();
    assert_eq!(req(&k2).unwrap_err(), Denial::OrgDeleted);
}

#[test]
fn config_changes_reach_existing_keys() {
    let f = fixture("");
    let (_, key) = f.key(KeySpec::new("svc"));
    assert!(f.check(&key, "gpt-4o", "10.0.0.1").is_ok());
    f.store
        .org_configs()
        .update(&OP, &f.org, r#"{"allowed_models":["gpt-4o-mini"]}"#)
        .unwrap();
    assert_eq!(
        f.check(&key, "gpt-4o", "10.0.0.1").unwrap_err(),
        Denial::ModelNotAllowed
    );
    f.store.org_configs().rollback(&OP, &f.org, 1).unwrap();
    assert!(f.check(&key, "gpt-4o", "10.0.0.1").is_ok());
}

#[test]
fn key_rpm_narrows_org_rpm() {
    let f = fixture(r#"{"rate_limiting":{"rpm":3}}"#);
    let (_, a) = f.key(KeySpec::new("a").rpm(2));
    let (_, b) = f.key(KeySpec::new("b").rpm(100));
    assert!(f.check(&a, "m", "10.0.0.1").is_ok());
    assert!(f.check(&a, "m", "10.0.0.1").is_ok());
    let d = f.check(&a, "m", "10.0.0.1").unwrap_err();
    assert!(
        matches!(
            d,
            Denial::RateLimited {
                scope: Scope::Key,
                tokens: false,
                ..
            }
        ),
        "{d:?}"
    );
    // The org's 3 rpm are shared: b gets what is left.
    assert!(f.check(&b, "m", "10.0.0.1").is_ok());
    let d = f.check(&b, "m", "10.0.0.1").unwrap_err();
    assert!(
        matches!(
            d,
            Denial::RateLimited {
                scope: Scope::Org,
                ..
            }
        ),
        "{d:?}"
    );
}

#[test]
fn reopen_restores_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let key;
    {
        let store = Store::open(&path).unwrap();
        let org = OrgId::parse("acme").unwrap();
        store
            .orgs()
            .create(&OP, &org, "Acme", &Email::parse("o@acme.io").unwrap())
            .unwrap();
        store
            .org_configs()
            .update(&OP, &org, r#"{"allowed_models":["gpt-4o-mini"]}"#)
            .unwrap();
        key = store
            .keys()
            .create(&OP, &org, KeySpec::new("svc"))
            .unwrap()
            .key
            .expose()
            .to_owned();
    }
    let store = Store::open(&path).unwrap();
    let gw = store.gateway();
    assert!(
        gw.check(&Request::new(&key, "gpt-4o-mini", ip("10.0.0.1")))
            .is_ok()
    );
    assert_eq!(
        gw.check(&Request::new(&key, "gpt-4o", ip("10.0.0.1")))
            .unwrap_err(),
        Denial::ModelNotAllowed
    );
}
