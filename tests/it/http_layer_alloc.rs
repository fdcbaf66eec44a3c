//! What the HTTP layer allocates on the grant path, counted per thread: a granted request
//! through `GatewayLayer` against the same request through a do-nothing layer of the same
//! shape (a service that is not zero-sized, a future of its own, a request body and a
//! response body of other types than axum's, one value inserted into the request's
//! extensions). axum boxes each of those for any layer; what is left is the layer's own.

use std::future::Future;
use std::net::IpAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use orgstore::http::{GatewayLayer, PeerAddr};
use orgstore::{Budget, KeySpec, Period, Usd};
use tower::{Service, ServiceBuilder};

use crate::common::{Fixture, OP};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;
const ANSWER: &str = r#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":3}}"#;

async fn handler() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("content-type", "application/json")], ANSWER)
}

fn router() -> Router {
    Router::new().route("/v1/chat/completions", post(handler))
}

/// A layer that does nothing but has the gateway layer's shape.
fn same_shape(app: Router) -> Router {
    let tag = Arc::new(0u8);
    app.layer(
        ServiceBuilder::new()
            .map_request(move |mut req: http::Request<Body>| {
                req.extensions_mut().insert(tag.clone());
                req.map(Either::<Full<Bytes>, Body>::Right)
            })
            .map_response(|resp: http::Response<Body>| {
                resp.map(Either::<Full<Bytes>, Body>::Right)
            }),
    )
}

fn request(key: &str) -> http::Request<Body> {
    let mut req = http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::from(Bytes::from_static(CHAT.as_bytes())))
        .unwrap();
    req.extensions_mut()
        .insert(PeerAddr(IpAddr::from([203, 0, 113, 9])));
    req
}

/// Runs `fut`, which never waits on anything (in-process services, bodies in memory).
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("an in-process request did not finish");
}

/// The allocations of one request through `app`, its response body read to the end; the
/// request is built before counting starts.
fn allocations(app: &mut Router, key: &str) -> u64 {
    let req = request(key);
    let info = allocation_counter::measure(|| {
        run(async {
            let resp = app.call(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
        })
    });
    info.count_total
}

/// Allocations of (bare handler, do-nothing layer, gateway layer), after warming all up.
fn counts(spec: KeySpec) -> (u64, u64, u64) {
    let f = Fixture::new();
    let key = f.store.keys().create(&OP, &f.org, spec).unwrap();
    let key = key.key.expose().to_owned();
    let layer = GatewayLayer::new(f.store.gateway().clone());
    let mut bare = router().with_state(());
    let mut shape = same_shape(router()).with_state(());
    let mut gated = router().layer(layer).with_state(());
    for _ in 0..3 {
        for app in [&mut bare, &mut shape, &mut gated] {
            allocations(app, &key);
        }
    }
    (
        allocations(&mut bare, &key),
        allocations(&mut shape, &key),
        allocations(&mut gated, &key),
    )
}

#[test]
fn the_grant_path_allocates_nothing_beyond_the_stack() {
    // rpm and a budget: the limits are taken, the budget reserved and settled, the rate
    // header values (below 10000) come from the static table.
    let spec = KeySpec::new("svc")
        .rpm(1000)
        .budget(Budget::new(Usd::parse("100").unwrap(), Period::Daily));
    let (bare, shape, gated) = counts(spec);
    assert!(
        shape > bare,
        "the stack's boxing is counted: {shape} vs {bare}"
    );
    // None of the layer's own: the grant that the request's `GrantHandle` and the response
    // body share sits in a slot that the thread kept from an earlier request.
    assert_eq!(
        gated, shape,
        "bare {bare}, same shape {shape}, gateway layer {gated}"
    );
}

#[test]
fn rate_header_values_of_large_limits_allocate_nothing_per_response() {
    // Limits and counts of 10000 and more: their digits are slices of a per-thread chunk
    // that about a hundred such responses share (allocated during the warm-up here). Six
    // rate headers besides the service's two pass the response header map's first
    // capacity (six entries): http grows it, its index and its entries (two more).
    let spec = KeySpec::new("svc").rpm(1_000_000).tpm(50_000_000);
    let (bare, shape, gated) = counts(spec);
    assert_eq!(
        gated,
        shape + 2,
        "bare {bare}, same shape {shape}, gateway layer {gated}"
    );
}

#[test]
fn rate_header_values_of_large_limits_take_one_chunk_per_many_responses() {
    // The same as above over a run of responses: one chunk of digits (4 KiB) serves
    // about a hundred of them, so 200 responses start at most two chunks (two allocations
    // each: the buffer and the header that its slices share).
    let spec = KeySpec::new("svc").rpm(1_000_000).tpm(50_000_000);
    let f = Fixture::new();
    let key = f.store.keys().create(&OP, &f.org, spec).unwrap();
    let key = key.key.expose().to_owned();
    let mut shape = same_shape(router()).with_state(());
    let mut gated = router()
        .layer(GatewayLayer::new(f.store.gateway().clone()))
        .with_state(());
    for app in [&mut shape, &mut gated] {
        allocations(app, &key);
    }
    let n = 200;
    let (mut shape_total, mut gated_total) = (0, 0);
    for _ in 0..n {
        shape_total += allocations(&mut shape, &key);
        gated_total += allocations(&mut gated, &key);
    }
    // Per response: the header map's growth (two).
    let extra = gated_total as i64 - shape_total as i64 - 2 * n as i64;
    assert!(
        (0..=4).contains(&extra),
        "{extra} allocations beyond the header map's growth in {n} responses"
    );
}
