//! The admin API's cost over a direct library call, in the same run, on one store file
//! (non-durable commits, so the figures show the API and not fsync):
//!
//! - `admin_api/config_retrieve/{direct,http}`: `org_configs().retrieve` against
//!   `GET /v1/orgs/{org}/config` over loopback TCP with an operator bearer token;
//! - `admin_api/key_create/{direct,http}`: `keys().create` against `POST /v1/orgs/{org}/keys`;
//! - `admin_api/config_retrieve/socket`: the same `GET` over the Unix socket (the CLI's
//!   path: no bearer token, the peer's credentials).
//!
//! Each HTTP iteration is a whole request as a client makes it: connect, send, read the
//! answer to its end (the server answers one request per connection), with the token
//! checked and the call run on the server's blocking pool. Goal: the API adds at most
//! 200 us to the median of the direct call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use criterion::{Criterion, criterion_group, criterion_main};
use orgstore::server::{AdminServer, TokenHolder, Tokens};
use orgstore::{Actor, Email, KeySpec, OrgId, StoreBuilder};

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
    let (_, token) = Tokens::beside(&db)
        .create(TokenHolder::Operator, None)
        .unwrap();
    let server = AdminServer::new(&store)
        .serve_tcp(&db, "127.0.0.1:0".parse().unwrap())
        .unwrap();
    let addr = server.local_addr().unwrap();
    let unix = AdminServer::new(&store).serve_unix(&db).unwrap();
    let socket = unix.socket_path().to_owned();
    let head = format!("host: bench\r\nauthorization: Bearer {token}\r\nconnection: close\r\n");

    let mut g = c.benchmark_group("admin_api/config_retrieve");
    g.bench_function("direct", |b| {
        b.iter(|| black_box(store.org_configs().retrieve(&op, &org).unwrap()))
    });
    let get = format!("GET /v1/orgs/bench/config HTTP/1.1\r\n{head}\r\n");
    g.bench_function("http", |b| {
        b.iter(|| black_box(request(addr, &get, "HTTP/1.1 200")))
    });
    let get_unix = "GET /v1/orgs/bench/config HTTP/1.1\r\nhost: bench\r\n\r\n";
    g.bench_function("socket", |b| {
        b.iter(|| black_box(request_unix(&socket, get_unix, "HTTP/1.1 200")))
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
    g.finish();
    server.shutdown();
    unix.shutdown();
}

criterion_group!(benches, admin_api);
criterion_main!(benches);
