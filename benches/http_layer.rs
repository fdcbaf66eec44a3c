//! What the HTTP layer adds to a request (feature `tower`): the same chat-completion request
//! through a bare axum handler and through the handler behind `GatewayLayer`, as in-process
//! `tower::Service` calls (no sockets), each response body read to its end (where the layer
//! settles usage). The key has a requests-per-minute limit far above the bench's rate and a
//! budget, so the grant path takes its limits, reserves and settles.
//!
//! ```text
//! cargo bench --bench http_layer --features tower
//! ```
//!
//! Reported: each case's median, and the paired difference (batches of both cases
//! alternate, so both see the same moments of the machine), per request. Goal: the layer
//! adds at most 1 us at the median.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use orgstore::http::{GatewayLayer, PeerAddr};
use orgstore::{Actor, Budget, Email, KeySpec, OrgId, Period, Store, Usd};
use tower::{Service, ServiceExt};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":0,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#;

async fn handler() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("content-type", "application/json")], ANSWER)
}

fn router() -> Router {
    Router::new().route("/v1/chat/completions", post(handler))
}

fn request(auth: &str) -> http::Request<Body> {
    let mut req = http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", auth)
        .body(Body::from(Bytes::from_static(CHAT.as_bytes())))
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr(IpAddr::from([203, 0, 113, 9])));
    req
}

/// One request through `svc`, its body read to the end.
async fn once(svc: &mut Router, auth: &str) {
    let resp = ServiceExt::<http::Request<Body>>::ready(svc)
        .await
        .unwrap()
        .call(request(auth))
        .await
        .unwrap();
    assert!(resp.status().is_success());
    black_box(resp.into_body().collect().await.unwrap());
}

fn bench(c: &mut Criterion) {
    let store = Store::open_temporary().unwrap();
    let op = Actor::Operator;
    let org = OrgId::parse("acme").unwrap();
    store
        .orgs()
        .create(&op, &org, "Acme", &Email::parse("o@acme.example").unwrap())
        .unwrap();
    let spec = KeySpec::new("bench")
        .rpm(u32::MAX / 2)
        .budget(Budget::new(Usd::parse("1000000").unwrap(), Period::Total));
    let key = store.keys().create(&op, &org, spec).unwrap();
    let auth = format!("Bearer {}", key.key.expose());
    let layer = GatewayLayer::new(store.gateway().clone())
        .estimate_with(|_| Usd::parse("0.0001").ok())
        .price_with(|_, i, o| Usd::from_micros((i + o) as i64).unwrap_or_default());
    let mut bare = router();
    let mut layered = router().layer(layer);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut g = c.benchmark_group("http_layer");
    g.bench_function("bare axum handler", |b| {
        b.iter(|| rt.block_on(once(&mut bare, &auth)))
    });
    g.bench_function("through GatewayLayer", |b| {
        b.iter(|| rt.block_on(once(&mut layered, &auth)))
    });
    g.finish();

    // Paired: alternate batches, take the median of the per-batch differences.
    let batch = 256u32;
    let mut diffs = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let t0 = Instant::now();
        rt.block_on(async {
            for _ in 0..batch {
                once(&mut bare, &auth).await;
            }
        });
        let t_bare = t0.elapsed();
        let t1 = Instant::now();
        rt.block_on(async {
            for _ in 0..batch {
                once(&mut layered, &auth).await;
            }
        });
        let t_layer = t1.elapsed();
        diffs.push((t_layer.as_nanos() as f64 - t_bare.as_nanos() as f64) / f64::from(batch));
    }
    diffs.sort_by(f64::total_cmp);
    let p50 = diffs[diffs.len() / 2];
    println!(
        "http_layer: the layer adds {p50:.0} ns per request at the median of {} paired batches of {batch} (goal <= 1000 ns)",
        diffs.len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
