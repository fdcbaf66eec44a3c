//! The admin API's cost over a direct library call, in the same run, on one store file
//! (non-durable commits, so the figures show the API and not fsync):
//!
//! - `admin_api/config_retrieve/{direct,http}`: `org_configs().retrieve` against
//!   `GET /v1/orgs/{org}/config` over loopback TCP with an operator bearer token;
//! - `admin_api/key_create/{direct,http}`: `keys().create` against `POST /v1/orgs/{org}/keys`;
//! - `admin_api/config_retrieve/socket`: the same `GET` over the Unix socket (the CLI's
//!   path: no bearer token, the peer's credentials);
//! - `admin_api/{config_retrieve,key_create}/http_kept_alive`: the same requests on one
//!   kept-alive TCP connection, as a client with a connection pool sends them.
//!
//! Each HTTP iteration is a whole request as a client makes it: connect, send, read the
//! answer to its end (the request asks the server to close), with the token
//! checked and the call run on the server's blocking pool. Goal: the API adds at most
//! 200 us to the median of the direct call.
//!
//! - `admin_api/check_under_load/{idle,loaded}`: the warm gateway `check` (1,000 keys in
//!   turn) on the same store while its admin server is idle, and while one client thread
//!   drives API requests over loopback TCP (config retrieve and key list in turn) at a
//!   bounded rate (`ORGSTORE_BENCH_API_RATE` requests per second, default 1,000). Then, on
//!   stderr, the paired figures: alternating batches of 200,000 checks with the load on and
//!   off, the median of the per-check differences, next to off against off (the noise of
//!   the same comparison). The load runs on one thread at a bounded rate so that on a small
//!   machine it does not simply take the checking thread's core; the API's own work (its
//!   runtime's two threads and the blocking pool) still competes for the cores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use orgstore::server::{AdminServer, RunningServer, TokenHolder, Tokens};
use orgstore::{Actor, Email, KeySpec, OrgId, Request, Store, StoreBuilder};
use support::warm::checks;

/// One request over a new connection; the status line must be `expect`.
fn request(addr: SocketAddr, text: &str, expect: &str) -> usize {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    exchange(&mut s, text, expect)
}

/// The same over the Unix socket (the CLI's path: no token, the peer's credentials).
fn request_unix(socket: &std::path::Path, text: &str, expect: &str) -> usize {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    exchange(&mut s, text, expect)
}

fn exchange(s: &mut (impl Read + Write), text: &str, expect: &str) -> usize {
    s.write_all(text.as_bytes()).unwrap();
    let mut out = Vec::with_capacity(4096);
    s.read_to_end(&mut out).unwrap();
    assert!(
        out.starts_with(expect.as_bytes()),
        "{}",
        String::from_utf8_lossy(&out)
    );
    out.len()
}

/// A kept-alive connection, as an HTTP client library with a connection pool holds one.
struct Kept {
    addr: SocketAddr,
    s: TcpStream,
    buf: Vec<u8>,
}

impl Kept {
    fn connect(addr: SocketAddr) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        Self {
            addr,
            s,
            buf: Vec::with_capacity(8192),
        }
    }

    /// One request on the connection; reads the answer's head and its `content-length`.
    /// A connection the server closed (idle or old) is opened again, as a pool does.
    fn request(&mut self, text: &str, expect: &str) -> usize {
        match self.try_request(text, expect) {
            Some(n) => n,
            None => {
                *self = Self::connect(self.addr);
                self.try_request(text, expect).unwrap()
            }
        }
    }

    fn try_request(&mut self, text: &str, expect: &str) -> Option<usize> {
        self.s.write_all(text.as_bytes()).ok()?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.s.read(&mut chunk).ok()?;
            if n == 0 {
                assert!(self.buf.is_empty(), "a partial answer");
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if self.buf.len() >= end + 4 + length {
                assert!(self.buf.starts_with(expect.as_bytes()), "{head}");
                return Some(self.buf.len());
            }
        }
    }
}

/// The admin API of `store` on a loopback port, and the request headers with an operator
/// bearer token.
fn serve(store: &Store, db: &std::path::Path) -> (RunningServer, SocketAddr, String) {
    let (_, token) = Tokens::beside(db)
        .create(TokenHolder::Operator, None)
        .unwrap();
    let server = AdminServer::new(store)
        .serve_tcp(db, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = server.local_addr().unwrap();
    let head = format!("host: bench\r\nauthorization: Bearer {token}\r\nconnection: close\r\n");
    (server, addr, head)
}

fn admin_api(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bench.redb");
    let store = StoreBuilder::new().non_durable().open(&db).unwrap();
    let op = Actor::Operator;
    let org = OrgId::parse("bench").unwrap();
    store
        .orgs()
        .create(&op, &org, "Bench", &Email::parse("owner@bench.io").unwrap())
        .unwrap();
    store
        .org_configs()
        .update(
            &op,
            &org,
            r#"{"rate_limiting": {"rpm": 1000}, "allowed_models": ["gpt-4o"]}"#,
        )
        .unwrap();
    let (server, addr, head) = serve(&store, &db);
    let unix = AdminServer::new(&store).serve_unix(&db).unwrap();
    let socket = unix.socket_path().to_owned();

    let mut g = c.benchmark_group("admin_api/config_retrieve");
    g.bench_function("direct", |b| {
        b.iter(|| black_box(store.org_configs().retrieve(&op, &org).unwrap()))
    });
    let get = format!("GET /v1/orgs/bench/config HTTP/1.1\r\n{head}\r\n");
    g.bench_function("http", |b| {
        b.iter(|| black_box(request(addr, &get, "HTTP/1.1 200")))
    });
    let get_unix = "GET /v1/orgs/bench/config HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n";
    g.bench_function("socket", |b| {
        b.iter(|| black_box(request_unix(&socket, get_unix, "HTTP/1.1 200")))
    });
    let get_kept = get.replace("connection: close\r\n", "");
    let mut kept = Kept::connect(addr);
    g.bench_function("http_kept_alive", |b| {
        b.iter(|| black_box(kept.request(&get_kept, "HTTP/1.1 200")))
    });
    g.finish();

    let mut g = c.benchmark_group("admin_api/key_create");
    g.bench_function("direct", |b| {
        b.iter(|| black_box(store.keys().create(&op, &org, KeySpec::new("svc")).unwrap()))
    });
    let body = r#"{"name": "svc"}"#;
    let post = format!(
        "POST /v1/orgs/bench/keys HTTP/1.1\r\n{head}content-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    g.bench_function("http", |b| {
        b.iter(|| black_box(request(addr, &post, "HTTP/1.1 201")))
    });
    let post_kept = post.replace("connection: close\r\n", "");
    g.bench_function("http_kept_alive", |b| {
        b.iter(|| black_box(kept.request(&post_kept, "HTTP/1.1 201")))
    });
    g.finish();
    server.shutdown();
    unix.shutdown();
}

/// A client thread sending API requests in turn at a bounded rate while `on`.
struct Load {
    on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, requests: Vec<String>, per_second: u64) -> Self {
        let (on, stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let interval = Duration::from_secs(1) / u32::try_from(per_second.max(1)).unwrap();
        let (o, st, n) = (on.clone(), stop.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            let mut next = Instant::now();
            while !st.load(Ordering::Relaxed) {
                if !o.load(Ordering::Relaxed) {
                    // Off: parked until `set` wakes it, so an idle API costs the
                    // checking thread nothing (no polling wake-ups).
                    std::thread::park_timeout(Duration::from_millis(100));
                    next = Instant::now();
                    continue;
                }
                black_box(request(addr, &requests[i % requests.len()], "HTTP/1.1 200"));
                i += 1;
                n.fetch_add(1, Ordering::Relaxed);
                next += interval;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    // Behind (the machine is busy): no burst to catch up.
                    next = now;
                }
            }
        });
        Self {
            on,
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            t.join().unwrap();
        }
    }
}

/// Median per-check ns with the load as `a_on` says and with it off, over alternating
/// batches, and the median of their paired differences; and the load's rate during the `a`
/// batches (requests per second).
fn paired(
    store: &Store,
    keys: &[String],
    load: &Load,
    a_on: bool,
    rounds: usize,
) -> (f64, f64, f64, f64) {
    const BATCH: usize = 200_000;
    let (mut ja, mut jb) = (0, 0);
    let (mut sent, mut busy) = (0, Duration::ZERO);
    let (a, b, d) = support::warm::paired(
        rounds,
        BATCH,
        || {
            load.set(a_on);
            let before = load.sent.load(Ordering::Relaxed);
            let d = checks(store, keys, &mut ja, BATCH);
            load.set(false);
            sent += load.sent.load(Ordering::Relaxed) - before;
            busy += d;
            d
        },
        || checks(store, keys, &mut jb, BATCH),
    );
    (
        a,
        b,
        d,
        sent as f64 / busy.as_secs_f64().max(f64::MIN_POSITIVE),
    )
}

/// The warm check while the admin API is idle and while it serves requests.
fn check_under_load(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("load.redb");
    let store = StoreBuilder::new().non_durable().open(&db).unwrap();
    let op = Actor::Operator;
    let hot = OrgId::parse("hot").unwrap();
    let org = OrgId::parse("bench").unwrap();
    for id in [&hot, &org] {
        store
            .orgs()
            .create(&op, id, "Bench", &Email::parse("owner@bench.io").unwrap())
            .unwrap();
    }
    store
        .org_configs()
        .update(&op, &org, r#"{"rate_limiting": {"rpm": 1000}}"#)
        .unwrap();
    let keys: Vec<String> = (0..1000)
        .map(|i| {
            let k = store
                .keys()
                .create(&op, &hot, KeySpec::new(format!("k{i}")))
                .unwrap();
            k.key.expose().to_owned()
        })
        .collect();
    for i in 0..20 {
        store
            .keys()
            .create(&op, &org, KeySpec::new(format!("listed{i}")))
            .unwrap();
    }
    let (server, addr, head) = serve(&store, &db);
    let requests = vec![
        format!("GET /v1/orgs/bench/config HTTP/1.1\r\n{head}\r\n"),
        format!("GET /v1/orgs/bench/keys HTTP/1.1\r\n{head}\r\n"),
    ];
    let rate = std::env::var("ORGSTORE_BENCH_API_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let granted = store.gateway().check(&Request::new(
        &keys[0],
        "gpt-4o-mini",
        IpAddr::from([10, 0, 0, 1]),
    ));
    assert!(granted.is_ok(), "the bench's keys must be granted");
    drop(granted);
    let load = Load::start(addr, requests, rate);
    let mut g = c.benchmark_group("admin_api/check_under_load");
    let mut j = 0;
    g.bench_function("idle", |b| {
        b.iter_custom(|iters| checks(&store, &keys, &mut j, iters as usize))
    });
    load.set(true);
    g.bench_function("loaded", |b| {
        b.iter_custom(|iters| checks(&store, &keys, &mut j, iters as usize))
    });
    load.set(false);
    g.finish();
    for _ in 0..3 {
        let (a, b, d, r) = paired(&store, &keys, &load, true, 41);
        eprintln!(
            "admin_api/check paired: API loaded ({r:.0} req/s) {a:.1} ns, idle {b:.1} ns, \
             median difference {d:+.1} ns"
        );
        let (a, b, d, _) = paired(&store, &keys, &load, false, 41);
        eprintln!(
            "admin_api/check paired: idle {a:.1} ns, idle {b:.1} ns, median difference {d:+.1} ns"
        );
    }
    drop(load);
    server.shutdown();
}

criterion_group!(benches, admin_api, check_under_load);
criterion_main!(benches);
