//! Crash consistency: a child process (this test binary, re-executed with
//! `ORGSTORE_CRASH_CHILD=<db path>`) performs writes on a durable store file and prints one
//! line per acknowledged write; the parent kills it with SIGKILL at a random moment, reopens
//! the file and checks that every acknowledged write is there, that nothing is half-applied
//! (every index agrees with the records, config versions are contiguous, owner counts match)
//! and that the gateway snapshot agrees with the records. Repeated 120 times on one file.
//!
//! Most kills come once the child has acknowledged a drawn number of writes (the parent
//! counts its lines, so how much is written does not depend on the machine's speed), some
//! a drawn time after the start, while the store is being opened or created.
//!
//! The index check reads the file's tables directly (`orgstore::fuzz_support`), so these
//! tests need the `fuzzing` feature: `cargo test --all-features` runs them.
#![cfg(feature = "fuzzing")]

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orgstore::{
    Email, ErrorKind, KeyId, KeySpec, KeyStatus, OrgId, Request, Role, Store, StoreBuilder, Usage,
    Usd,
};
use rand::Rng;

use crate::common::OP;

const CHILD_ENV: &str = "ORGSTORE_CRASH_CHILD";
const RUN_ENV: &str = "ORGSTORE_CRASH_RUN";
const RUNS: u64 = 120;
/// Every usage the child records costs this much.
const COST_MICROS: i64 = 10_000;
const MODEL: &str = "gpt-4o-mini";

fn ip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Prints one acknowledgement line in a single write (atomic on a pipe) and flushes it.
fn ack(fields: &[&str]) {
    let line = format!("ACK|{}\n", fields.join("|"));
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.flush().unwrap();
}

/// At most this many writes per child; the parent kills it long before.
const CHILD_WRITES: u64 = 100_000;

/// The child: opens the store and writes until it is killed (or stops after
/// `CHILD_WRITES`; a write to the parent's closed pipe ends it too).
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let run: u64 = std::env::var(RUN_ENV).unwrap().parse().unwrap();
    let mut rng = crate::common::rng(run);
    let store = loop {
        match Store::open(&path) {
            Ok(s) => break s,
            // The parent may still be closing its handle.
            Err(e) if e.kind() == ErrorKind::Busy => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => panic!("child cannot open the store: {e}"),
        }
    };
    ack(&["open"]);
    let gw = store.gateway();
    let mut orgs: Vec<OrgId> = crate::common::org_ids(&store);
    // Keys of this run with their secrets (for usage).
    let mut mine: Vec<(KeyId, String)> = Vec::new();
    for n in 1..=CHILD_WRITES {
        if orgs.is_empty() || rng.random_ratio(1, 12) {
            let id = OrgId::parse(&format!("r{run}-o{n}")).unwrap();
            store
                .orgs()
                .create(&OP, &id, "Crash", &Email::parse("owner@crash.io").unwrap())
                .unwrap();
            ack(&["org", id.as_str()]);
            orgs.push(id);
            continue;
        }
        let org = orgs[rng.random_range(0..orgs.len())].clone();
        match rng.random_range(0..7) {
            0 | 1 => {
                let k = store.keys().create(&OP, &org, KeySpec::new("k")).unwrap();
                ack(&["key", &k.info.id.to_string(), org.as_str(), k.key.expose()]);
                mine.push((k.info.id, k.key.expose().to_owned()));
            }
            2 => {
                let keys = store.keys().list(&OP, &org).unwrap();
                if let Some(k) = keys.iter().find(|k| k.status == KeyStatus::Active) {
                    let info = store.keys().revoke(&OP, &k.id).unwrap();
                    let version = info.version.to_string();
                    ack(&["revoke", &k.id.to_string(), org.as_str(), &version]);
                }
            }
            3 => {
                let keys = store.keys().list(&OP, &org).unwrap();
                let active: Vec<_> = keys
                    .iter()
                    .filter(|k| k.status == KeyStatus::Active)
                    .collect();
                if !active.is_empty() {
                    let id = active[rng.random_range(0..active.len())].id;
                    let k = store.keys().rotate(&OP, &id).unwrap();
                    let version = k.info.version.to_string();
                    ack(&[
                        "rotate",
                        &id.to_string(),
                        org.as_str(),
                        &version,
                        k.key.expose(),
                    ]);
                    if let Some(m) = mine.iter_mut().find(|(i, _)| *i == id) {
                        m.1 = k.key.expose().to_owned();
                    } else {
                        mine.push((id, k.key.expose().to_owned()));
                    }
                }
            }
            4 => {
                let seq = rng.random_range(0..1_000_000u32);
                let patch = format!(
                    r#"{{"routing":{{"seq":{seq}}},"providers":{{"openai":{{"api_key":"sk-crash-secret-{seq:08}"}}}}}}"#
                );
                let v = store.org_configs().update(&OP, &org, &patch).unwrap();
                ack(&[
                    "config",
                    org.as_str(),
                    &v.version.to_string(),
                    &seq.to_string(),
                ]);
            }
            5 => {
                let who = format!("p{}@crash.io", rng.random_range(0..4));
                let role = Role::ALL[rng.random_range(0..4)];
                let email = Email::parse(&who).unwrap();
                let done = match store.members().add(&OP, &org, &email, role) {
                    Ok(_) => true,
                    Err(e) if e.kind() == ErrorKind::Conflict => {
                        store.members().set_role(&OP, &org, &email, role).is_ok()
                    }
                    Err(e) => panic!("{e}"),
                };
                if done {
                    ack(&["member", org.as_str(), email.as_str(), role.as_str()]);
                }
            }
            _ => {
                if mine.is_empty() {
                    continue;
                }
                let (id, secret) = &mine[rng.random_range(0..mine.len())];
                if let Ok(grant) = gw.check(&Request::new(secret, MODEL, ip())) {
                    gw.record_usage(
                        &grant,
                        Usage::new(10, 20, Usd::from_micros(COST_MICROS).unwrap()),
                    );
                    drop(grant);
                    store.flush().unwrap();
                    ack(&["spend", &id.to_string()]);
                }
            }
        }
    }
}

/// What the parent learned from acknowledgements, across all runs.
#[derive(Default)]
struct Acked {
    orgs: Vec<String>,
    /// key id -> (org, current secret, acknowledged version, acknowledged revoked).
    /// A key whose creation committed without its acknowledgement appears with its first
    /// acknowledged revoke or rotation, without a secret.
    keys: BTreeMap<String, (String, Option<String>, u64, bool)>,
    /// org -> (version -> routing seq).
    configs: HashMap<String, BTreeMap<u64, u32>>,
    /// (org, email) -> role.
    members: BTreeMap<(String, String), Role>,
    /// key id -> acknowledged spend in micro-dollars.
    spend: HashMap<String, i64>,
}

impl Acked {
    fn apply(&mut self, line: &str) {
        let f: Vec<&str> = line.split('|').collect();
        match f.as_slice() {
            ["ACK", "open"] => {}
            ["ACK", "org", id] => self.orgs.push((*id).to_owned()),
            ["ACK", "key", id, org, secret] => {
                self.keys.insert(
                    (*id).to_owned(),
                    ((*org).to_owned(), Some((*secret).to_owned()), 1, false),
                );
            }
            ["ACK", "revoke", id, org, version] => {
                let k = self.keys.entry((*id).to_owned()).or_insert((
                    (*org).to_owned(),
                    None,
                    0,
                    false,
                ));
                k.2 = version.parse().unwrap();
                k.3 = true;
            }
            ["ACK", "rotate", id, org, version, secret] => {
                let k = self.keys.entry((*id).to_owned()).or_insert((
                    (*org).to_owned(),
                    None,
                    0,
                    false,
                ));
                k.1 = Some((*secret).to_owned());
                k.2 = version.parse().unwrap();
            }
            ["ACK", "config", org, version, seq] => {
                self.configs
                    .entry((*org).to_owned())
                    .or_default()
                    .insert(version.parse().unwrap(), seq.parse().unwrap());
            }
            ["ACK", "member", org, email, role] => {
                self.members.insert(
                    ((*org).to_owned(), (*email).to_owned()),
                    role.parse().unwrap(),
                );
            }
            ["ACK", "spend", id] => *self.spend.entry((*id).to_owned()).or_default() += COST_MICROS,
            other => panic!("unexpected line {other:?}"),
        }
    }
}

/// When to kill a child.
#[derive(Clone, Copy)]
enum Kill {
    /// This long after it started: usually while it opens (or creates) the store.
    AfterStart(Duration),
    /// Once it has acknowledged opening the store and then `acks` writes, after `then`:
    /// while it writes the next ones.
    AfterAcks { acks: usize, then: Duration },
}

/// Runs one child, kills it with SIGKILL as `kill` says, returns its complete output lines.
fn run_child(path: &Path, run: u64, kill: Kill) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .env(RUN_ENV, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(stderr_path(path)).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let wanted = match kill {
        Kill::AfterAcks { acks, .. } => Some(acks),
        Kill::AfterStart(_) => None,
    };
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        const OPEN: &[u8] = b"ACK|open\n";
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Where the acknowledgements after the open start, and how many are complete.
        let mut after_open: Option<usize> = None;
        let mut counted = 0;
        let mut acks = 0;
        let mut told = false;
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
            if after_open.is_none() {
                after_open = out
                    .windows(OPEN.len())
                    .position(|w| w == OPEN)
                    .map(|i| i + OPEN.len());
                counted = after_open.unwrap_or(0);
            }
            if let Some(want) = wanted.filter(|_| after_open.is_some() && !told) {
                acks += out[counted..].iter().filter(|&&b| b == b'\n').count();
                counted = out.len();
                if acks >= want {
                    told = tx.send(()).is_ok();
                }
            }
        }
        // Dropping `tx` tells a parent still waiting that the child ended first.
        String::from_utf8_lossy(&out).into_owned()
    });
    match kill {
        Kill::AfterStart(d) => std::thread::sleep(d),
        Kill::AfterAcks { acks, then } => {
            if rx.recv().is_err() {
                let _ = child.wait();
                let err = std::fs::read_to_string(stderr_path(path)).unwrap_or_default();
                panic!("run {run}: the child ended before acknowledging {acks} writes:\n{err}");
            }
            std::thread::sleep(then);
        }
    }
    // SIGKILL on unix: no destructor, no flush, no chance to finish the current commit.
    let _ = child.kill();
    child.wait().unwrap();
    let out = reader.join().unwrap();
    // Only complete lines count; a line cut short was never acknowledged. The first ack
    // follows libtest's `test crash_child ... ` on the same line.
    let complete = out.rfind('\n').map_or("", |i| &out[..i]);
    complete
        .lines()
        .filter_map(|l| l.find("ACK|").map(|i| l[i..].to_owned()))
        .collect()
}

fn stderr_path(db: &Path) -> PathBuf {
    db.with_extension("child-stderr")
}

fn sha256(s: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(s.as_bytes()).into()
}

/// Checks the reopened store against everything acknowledged so far.
fn verify(path: &Path, acked: &Acked, runs: u64) {
    let file = orgstore::fuzz_support::check_store_file(path)
        .unwrap_or_else(|e| panic!("index check: {e}"));
    // No background flusher: the parent's handle is closed the moment it is dropped.
    let store = StoreBuilder::new().lossless_spend().open(path).unwrap();
    let gw = store.gateway();
    for id in &acked.orgs {
        store.orgs().get(&OP, &OrgId::parse(id).unwrap()).unwrap();
    }
    for (org, versions) in &acked.configs {
        let org = OrgId::parse(org).unwrap();
        let o = store.orgs().get(&OP, &org).unwrap();
        let (&last, _) = versions.last_key_value().unwrap();
        assert!(
            o.latest_version >= last,
            "{org}: acknowledged version {last} lost"
        );
        for (&v, &seq) in versions {
            let c = crate::common::revealed(&store, &org, Some(v));
            assert_eq!(c["routing"]["seq"], seq, "{org} v{v}");
            assert_eq!(
                c["providers"]["openai"]["api_key"],
                format!("sk-crash-secret-{seq:08}"),
                "{org} v{v}"
            );
        }
    }
    for (org, email) in acked.members.keys() {
        // The role may differ: a later role change can commit without its acknowledgement.
        let members = store
            .members()
            .list(&OP, &OrgId::parse(org).unwrap())
            .unwrap();
        assert!(
            members.iter().any(|m| m.email.as_str() == email),
            "{email} lost from {org}"
        );
    }
    for (id, (org, secret, version, revoked)) in &acked.keys {
        let kid = KeyId::parse(id).unwrap();
        let info = store.keys().show(&OP, &kid).unwrap();
        assert_eq!(info.org.as_str(), org);
        // Writes in flight at a kill may be applied without their acknowledgement.
        assert!(
            info.version >= *version,
            "key {id}: version {} acked {version}",
            info.version
        );
        if *revoked {
            assert_eq!(
                info.status,
                KeyStatus::Revoked,
                "acknowledged revoke of {id} lost"
            );
        }
        let Some(secret) = secret else { continue };
        let (digest, is_revoked) = file.key_digests[&kid];
        assert_eq!(is_revoked, info.status == KeyStatus::Revoked);
        let code = gw
            .check(&Request::new(secret, MODEL, ip()))
            .map_or_else(|d| d.code(), |_| "ok");
        // The gateway must agree with the record: the secret we know is the key's current
        // one unless a rotation committed without its acknowledgement.
        let want = if sha256(secret) != digest {
            assert!(
                info.version > *version || info.rotated_at.is_some(),
                "key {id}: digest changed without a rotation"
            );
            "unknown_key"
        } else if is_revoked {
            "revoked"
        } else {
            "ok"
        };
        assert_eq!(
            code, want,
            "key {id}: gateway says {code}, record says {want}"
        );
    }
    for (id, micros) in &acked.spend {
        let total = store
            .keys()
            .usage(&OP, &KeyId::parse(id).unwrap())
            .unwrap()
            .total
            .micros();
        assert!(
            total >= *micros,
            "key {id}: acknowledged spend {micros} but the ledger has {total}"
        );
        assert!(
            total - micros <= runs as i64 * COST_MICROS,
            "key {id}: spend {total} far above acknowledged {micros}"
        );
    }
    // Every key record is in the snapshot exactly once.
    let all_keys: usize = store
        .orgs()
        .list(&OP)
        .unwrap()
        .iter()
        .map(|o| store.keys().list(&OP, &o.id).unwrap().len())
        .sum();
    assert_eq!(gw.key_count(), all_keys);
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("crash.redb");
    let mut rng = crate::common::rng(0x0c0a_57ed);
    let mut acked = Acked::default();
    let started = Instant::now();
    let (mut before_open, mut mid_write, mut lines) = (0, 0, 0);
    // Runs killed by acknowledgement count, and the lines each of them surely printed.
    let (mut by_acks, mut surely_printed) = (0, 0);
    for run in 0..RUNS {
        let kill = if run % 10 == 3 {
            Kill::AfterStart(Duration::from_millis(rng.random_range(1..150)))
        } else {
            let acks = rng.random_range(0..12);
            by_acks += 1;
            surely_printed += 1 + acks;
            Kill::AfterAcks {
                acks,
                then: Duration::from_micros(rng.random_range(0..3_000)),
            }
        };
        let out = run_child(&path, run, kill);
        if out.first().is_some_and(|l| l == "ACK|open") {
            mid_write += 1;
        } else {
            before_open += 1;
        }
        lines += out.len();
        for line in &out {
            acked.apply(line);
        }
        if !path.exists() || std::fs::metadata(&path).unwrap().len() == 0 {
            continue;
        }
        // The raw index check every time; the full check (a store open) every fourth time.
        if run % 4 == 0 || run == RUNS - 1 {
            verify(&path, &acked, run + 1);
        } else {
            orgstore::fuzz_support::check_store_file(&path)
                .unwrap_or_else(|e| panic!("run {run}: {e}"));
        }
    }
    eprintln!(
        "{RUNS} kills ({before_open} before the store was open, {mid_write} while writing), \
         {lines} acknowledged writes, {} keys, {} orgs, in {:.1?}",
        acked.keys.len(),
        acked.orgs.len(),
        started.elapsed()
    );
    // Every run killed by acknowledgements was killed while writing, after at least the
    // lines it was waited for.
    assert!(
        mid_write >= by_acks,
        "{mid_write} kills while writing, {by_acks} after acknowledgements"
    );
    assert!(
        lines >= surely_printed,
        "{lines} lines read, {surely_printed} waited for"
    );
    // With hundreds of acknowledged writes drawn from seven kinds, each kind is there
    // (and so was checked above).
    assert!(!acked.orgs.is_empty() && !acked.keys.is_empty() && !acked.members.is_empty());
    assert!(acked.keys.values().any(|k| k.3), "no acknowledged revoke");
    assert!(!acked.configs.is_empty() && !acked.spend.is_empty());
    // No stray temporary key files: at most the key file itself besides the store.
    let key = PathBuf::from(format!("{}.key", path.display()));
    assert!(key.exists());
}
