//! What the HTTP layer adds to a request (feature `tower`): the same chat-completion request
//! through a bare axum handler and through the handler behind `GatewayLayer`, as in-process
//! `tower::Service` calls (no sockets), each response body read to its end (where the layer
//! settles usage). The key has a requests-per-minute limit far above the bench's rate and a
//! budget, so the grant path takes its limits, reserves and settles.
//!
//! Three cases, the same request and the same answer body:
//! * `bare axum handler`: the handler answers; nothing checks the key.
//! * `handler calling check itself`: the handler does the gateway's part by hand, as a
//!   gateway without the layer would at the least: the key from `Authorization`, `check`
//!   (the model named in code, the body unread), `record_usage` with fixed counts. No
//!   rate headers, no body read, no usage read from the answer.
//! * `through GatewayLayer`: the bare handler behind the layer, which reads the key, the
//!   model from the body, the client address, calls `check`, adds the rate headers and
//!   settles from the answer's `usage` when its body ends.
//!
//! The routers are prepared with `with_state(())`, as `axum::serve` does
//! (`into_make_service`); the layer's per-route closures are built once.
//!
//! ```text
//! cargo bench --bench http_layer --features tower
//! ```
//!
//! Instruction counts per request (load-independent), under callgrind:
//!
//! ```text
//! cargo bench --bench http_layer --features tower --no-run
//! HTTP_LAYER_INSTRUCTIONS=layer:1000 valgrind --tool=callgrind \
//!     --toggle-collect='*http_layer::drive*' target/release/deps/http_layer-<hash>
//! ```
//!
//! (`bare`, `check`, `shape` (a do-nothing layer of the same shape) or `layer`; divide the
//! count by 1050: 50 warm-up requests and 1000.)
//!
//! Reported: each case's median, and paired differences (batches of two cases alternate, so
//! both see the same moments of the machine), per request: the layer against the bare
//! handler (goal: at most 1 us at the median) and against the handler calling `check`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use criterion::{Criterion, criterion_group};
use http_body_util::{BodyExt, Either, Full};
use orgstore::http::{GatewayLayer, PeerAddr};
use orgstore::{Actor, Budget, Email, Gateway, KeySpec, OrgId, Period, Store, Usage, Usd};
use tower::{Service, ServiceExt};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"c","object":"chat.completion","created":0,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#;

async fn handler() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("content-type", "application/json")], ANSWER)
}

fn router() -> Router {
    Router::new().route("/v1/chat/completions", post(handler))
}

/// The bare handler plus the gateway's part, by hand.
fn checking_router(gateway: Gateway, estimate: Usd) -> Router {
    let chat = move |req: axum::extract::Request| async move {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let key = orgstore::key_from_headers(auth, None).unwrap();
        let ip = IpAddr::from([203, 0, 113, 9]);
        let req = orgstore::Request::new(key, "gpt-4o-mini", ip).estimate(estimate);
        let grant = gateway.check(&req).unwrap();
        gateway.record_usage(&grant, Usage::new(12, 3, Usd::from_micros(15).unwrap()));
        handler().await
    };
    Router::new().route("/v1/chat/completions", post(chat))
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

/// The routers of the three cases (and of a do-nothing layer, for instruction counts), over
/// one store with one key.
struct Setup {
    _store: Store,
    auth: String,
    bare: Router,
    checking: Router,
    layered: Router,
    shape: Router,
}

fn setup() -> Setup {
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
    let estimate = Usd::parse("0.0001").unwrap();
    let layer = GatewayLayer::new(store.gateway().clone())
        .estimate_with(move |_| Some(estimate))
        .price_with(|_, i, o| Usd::from_micros((i + o) as i64).unwrap_or_default());
    Setup {
        auth,
        bare: router().with_state(()),
        checking: checking_router(store.gateway().clone(), estimate).with_state(()),
        layered: router().layer(layer).with_state(()),
        shape: same_shape(router()).with_state(()),
        _store: store,
    }
}

/// A layer that does nothing but has the gateway layer's shape (its own request and
/// response body types, one value inserted into the request's extensions): what any layer
/// costs in axum (it boxes the layered route's future and bodies).
fn same_shape(app: Router) -> Router {
    let tag = std::sync::Arc::new(0u8);
    app.layer(
        tower::ServiceBuilder::new()
            .map_request(move |mut req: http::Request<Body>| {
                req.extensions_mut().insert(tag.clone());
                req.map(Either::<Full<Bytes>, Body>::Right)
            })
            .map_response(|resp: http::Response<Body>| {
                resp.map(Either::<Full<Bytes>, Body>::Right)
            }),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let Setup {
        _store,
        auth,
        mut bare,
        mut checking,
        mut layered,
        ..
    } = setup();
    let rt = runtime();

    let mut g = c.benchmark_group("http_layer");
    g.bench_function("bare axum handler", |b| {
        b.iter(|| rt.block_on(once(&mut bare, &auth)))
    });
    g.bench_function("handler calling check itself", |b| {
        b.iter(|| rt.block_on(once(&mut checking, &auth)))
    });
    g.bench_function("through GatewayLayer", |b| {
        b.iter(|| rt.block_on(once(&mut layered, &auth)))
    });
    g.finish();

    let against_bare = paired(&rt, &mut bare, &mut layered, &auth);
    println!(
        "http_layer: the layer adds {} over the bare handler (goal <= 1000 ns)",
        against_bare
    );
    let against_check = paired(&rt, &mut checking, &mut layered, &auth);
    println!("http_layer: the layer adds {against_check} over the handler calling check itself");
}

/// Alternating batches of `base` and `case` for 5 s: the medians of both per request and of
/// the per-batch differences.
fn paired(
    rt: &tokio::runtime::Runtime,
    base: &mut Router,
    case: &mut Router,
    auth: &str,
) -> String {
    let batch = 256u32;
    let (mut diffs, mut bases, mut cases) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let t0 = Instant::now();
        rt.block_on(async {
            for _ in 0..batch {
                once(base, auth).await;
            }
        });
        let t_base = t0.elapsed().as_nanos() as f64 / f64::from(batch);
        let t1 = Instant::now();
        rt.block_on(async {
            for _ in 0..batch {
                once(case, auth).await;
            }
        });
        let t_case = t1.elapsed().as_nanos() as f64 / f64::from(batch);
        bases.push(t_base);
        cases.push(t_case);
        diffs.push(t_case - t_base);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    format!(
        "{:.0} ns per request at the median of {} paired batches of {batch} (medians: {:.0} ns against {:.0} ns)",
        median(&mut diffs),
        diffs.len(),
        median(&mut cases),
        median(&mut bases),
    )
}

/// `n` requests of one case: what `HTTP_LAYER_INSTRUCTIONS` runs under callgrind.
#[inline(never)]
fn drive(rt: &tokio::runtime::Runtime, app: &mut Router, auth: &str, n: u32) {
    rt.block_on(async {
        for _ in 0..n {
            once(app, auth).await;
        }
    });
}

/// `HTTP_LAYER_INSTRUCTIONS=CASE:N` (`CASE` one of `bare`, `check`, `shape`, `layer`): runs
/// 50 requests of the case to warm it up, then `N` in `drive`, and nothing else. Under
/// `valgrind --tool=callgrind --toggle-collect='*http_layer::drive*'` the instructions per
/// request are the count over `N + 50`.
fn instructions(spec: &str) {
    let (case, n) = spec.split_once(':').unwrap_or((spec, "1000"));
    let n: u32 = n
        .parse()
        .expect("HTTP_LAYER_INSTRUCTIONS=CASE:N, N a count");
    let mut s = setup();
    let app = match case {
        "bare" => &mut s.bare,
        "check" => &mut s.checking,
        "shape" => &mut s.shape,
        "layer" => &mut s.layered,
        _ => panic!("HTTP_LAYER_INSTRUCTIONS: the case is bare, check, shape or layer"),
    };
    let rt = runtime();
    drive(&rt, app, &s.auth, 50);
    drive(&rt, app, &s.auth, n);
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(spec) = std::env::var("HTTP_LAYER_INSTRUCTIONS") {
        return instructions(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
