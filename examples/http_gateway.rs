//! An OpenAI-compatible gateway on axum with orgstore's HTTP layer in front of a fake
//! upstream (in the same process): every request is authenticated, checked against the
//! key's and org's models, address rules, rate limits and budget, answered in the product's
//! wire format when refused, and charged from the upstream's `usage` when granted.
//!
//! ```text
//! cargo run --example http_gateway --features tower
//! ```
//!
//! It creates a temporary store with one org and a few keys, prints them, and listens on
//! `HTTP_GATEWAY_ADDR` (default `127.0.0.1:8080`; port 0 picks a free one), printing
//! `listening on ADDR` once ready. With `HTTP_GATEWAY_KEYS=PATH` it also writes the keys as
//! JSON to PATH (for the SDK test in `tests/sdk/`). Try:
//!
//! ```text
//! curl -s localhost:8080/v1/chat/completions -H "Authorization: Bearer $KEY" \
//!   -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
//! ```
//!
//! Example-only, on the loopback listener: `POST /_test/revoke/{key_id}` revokes a key and
//! `GET /_test/usage/{key_id}` shows its spend. The example trusts `X-Forwarded-For` from
//! loopback (as if a local proxy stood in front), so a test can choose the client address; a
//! real gateway lists its own proxies, or none.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use orgstore::http::GatewayLayer;
use orgstore::{Actor, Budget, Email, KeyId, KeySpec, OrgId, Period, SecretKey, Store, Usd};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The price list of the fake upstream, per token: what the layer charges from `usage`.
fn price(model: &str, input: u64, output: u64) -> Usd {
    let (per_in, per_out) = match model {
        "gpt-4o" => (200, 400),
        _ => (1, 2), // micro-dollars per token
    };
    let micros = input.saturating_mul(per_in) + output.saturating_mul(per_out);
    Usd::from_micros(i64::try_from(micros).unwrap_or(i64::MAX)).unwrap_or_default()
}

/// The fake upstream: an OpenAI-style chat completion, or its SSE stream.
async fn upstream_chat(body: String) -> Response {
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("unknown").to_owned();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let words = ["Hello", " from", " the", " fake", " upstream."];
    let usage = json!({"prompt_tokens": 20, "completion_tokens": words.len(), "total_tokens": 20 + words.len()});
    if req["stream"] == json!(true) {
        let mut events: Vec<String> = words
            .iter()
            .map(|w| {
                let chunk = json!({
                    "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": null}],
                });
                format!("data: {chunk}\n\n")
            })
            .collect();
        // The final chunk carries the usage (as with `stream_options.include_usage`).
        let last = json!({
            "id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
            "model": model, "choices": [], "usage": usage,
        });
        events.push(format!("data: {last}\n\n"));
        events.push("data: [DONE]\n\n".to_owned());
        let body = Body::from_stream(Events(events.into_iter()));
        return ([("content-type", "text/event-stream")], body).into_response();
    }
    axum::Json(json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": words.concat()},
                     "finish_reason": "stop"}],
        "usage": usage,
    }))
    .into_response()
}

/// SSE events as separate body frames, as a real upstream sends them.
struct Events(std::vec::IntoIter<String>);

impl futures_core::Stream for Events {
    type Item = Result<String, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next().map(Ok))
    }
}

/// The gateway's route: forward the (already checked) request to the upstream. The layer
/// put the grant into the request's extensions; it settles from the response's `usage`.
async fn forward(State(upstream): State<Router>, req: Request<Body>) -> Response {
    match upstream.oneshot(req).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    }
}

#[derive(Clone)]
struct Admin {
    store: Store,
}

async fn revoke(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Ok(id) = KeyId::parse(&id) else {
        return (StatusCode::BAD_REQUEST, "bad key id").into_response();
    };
    match admin.store.keys().revoke(&Actor::Operator, &id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn usage(State(admin): State<Admin>, Path(id): Path<String>) -> Response {
    let Ok(id) = KeyId::parse(&id) else {
        return (StatusCode::BAD_REQUEST, "bad key id").into_response();
    };
    match admin.store.keys().usage(&Actor::Operator, &id) {
        Ok(u) => axum::Json(json!({"today": u.today.to_string()})).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> Result<(), Box<dyn Error>> {
    // The tenants: done by an operator (or the `orgstore` CLI) in real life.
    let store = Store::open_temporary()?;
    let op = Actor::Operator;
    let acme = OrgId::parse("acme")?;
    store
        .orgs()
        .create(&op, &acme, "Acme", &Email::parse("owner@acme.example")?)?;
    store.org_configs().update(
        &op,
        &acme,
        r#"{"allowed_models": ["gpt-4o-mini", "gpt-4o"]}"#,
    )?;
    let keys = store.keys();
    let specs = [
        ("main", KeySpec::new("main").rpm(1000).tpm(100_000)),
        (
            "mini_only",
            KeySpec::new("mini-only").models(["gpt-4o-mini"]),
        ),
        ("office", KeySpec::new("office").ips(["10.0.0.0/8"])),
        ("rpm", KeySpec::new("rpm").rpm(30)),
        (
            "budget",
            KeySpec::new("budget").budget(Budget::new(Usd::parse("0.015")?, Period::Daily)),
        ),
        ("revocable", KeySpec::new("revocable")),
        ("deleted", KeySpec::new("deleted")),
    ];
    let mut out = BTreeMap::new();
    for (name, spec) in specs {
        let created = keys.create(&op, &acme, spec)?;
        out.insert(
            name,
            json!({"key": created.key.expose(), "id": created.info.id.to_string()}),
        );
        println!("key {name}: {} ({})", created.key.expose(), created.info.id);
        if name == "deleted" {
            keys.delete(&op, &created.info.id)?;
        }
    }
    // Well-formed, never issued: refused as unknown.
    let unknown = SecretKey::generate();
    out.insert("unknown", json!({"key": unknown.expose()}));
    if let Ok(path) = std::env::var("HTTP_GATEWAY_KEYS") {
        std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    }

    // Each request reserves one cent against the budgets until the upstream answers.
    let layer = GatewayLayer::new(store.gateway().clone())
        .estimate_with(|_| Usd::parse("0.01").ok())
        .price_with(price)
        .peer_addr_with(|p| {
            p.extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
        .trusted_proxies(["127.0.0.1", "::1"])?;
    let upstream = Router::new().route("/v1/chat/completions", post(upstream_chat));
    let gateway = Router::new()
        .route("/v1/chat/completions", post(forward))
        .with_state(upstream)
        .layer(layer);
    let admin = Router::new()
        .route("/_test/revoke/{key_id}", post(revoke))
        .route("/_test/usage/{key_id}", get(usage))
        .with_state(Admin {
            store: store.clone(),
        });
    let app = gateway.merge(admin);

    let addr = std::env::var("HTTP_GATEWAY_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // The server stopped: write the spend of the last flush interval.
    store.flush()?;
    Ok(())
}
