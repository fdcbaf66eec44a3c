//! The HTTP layer (feature `tower`): wire format of denials and grants, body limits, the
//! client address behind trusted proxies, and usage settled from JSON and SSE responses
//! (or released when a response fails). Requests go through an axum router in process.

use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::response::IntoResponse;
use axum::routing::post;
use http_body_util::BodyExt;
use orgstore::http::{GatewayLayer, GrantHandle, PeerAddr};
use orgstore::{Budget, CreatedKey, KeySpec, Period, Usage, Usd};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::{Fixture, OP};

const PEER: &str = "203.0.113.9";

fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

/// A fake upstream: a chat completion with usage (12 in, 3 out), or its SSE stream when
/// `"stream": true`; `/fail` answers 500; `/settle` settles through the handle.
fn upstream() -> Router {
    async fn chat(Extension(grant): Extension<GrantHandle>, body: String) -> impl IntoResponse {
        let req: Value = serde_json::from_str(&body).unwrap();
        let who = json!({"org": grant.org_id().as_str(), "model": grant.model()});
        if req["stream"] == json!(true) {
            let chunks = [
                format!(
                    "data: {}\n\n",
                    json!({"choices": [{"delta": {"content": "hi"}}], "who": who})
                ),
                format!(
                    "data: {}\n\n",
                    json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5}})
                ),
                "data: [DONE]\n\n".to_owned(),
            ];
            let stream = futures_stream(chunks.to_vec());
            return (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response();
        }
        axum::Json(json!({
            "id": "c1", "who": who,
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3}
        }))
        .into_response()
    }
    async fn fail() -> impl IntoResponse {
        (http::StatusCode::BAD_GATEWAY, "upstream down")
    }
    async fn settle(Extension(grant): Extension<GrantHandle>) -> impl IntoResponse {
        grant.record_usage(Usage::new(1, 1, Usd::parse("0.5").unwrap()));
        axum::Json(json!({"usage": {"prompt_tokens": 1000, "completion_tokens": 1000}}))
    }
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/fail", post(fail))
        .route("/settle", post(settle))
}

/// A stream of frames, one per chunk (what a real upstream's SSE looks like).
fn futures_stream(
    chunks: Vec<String>,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    struct It(std::vec::IntoIter<String>);
    impl futures_core::Stream for It {
        type Item = Result<bytes::Bytes, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next().map(|s| Ok(bytes::Bytes::from(s))))
        }
    }
    It(chunks.into_iter())
}

/// One cent per token, whatever the model.
fn layer(f: &Fixture) -> GatewayLayer {
    GatewayLayer::new(f.store.gateway().clone())
        .estimate_with(|_| Some(Usd::parse("0.10").unwrap()))
        .price_with(|_, i, o| Usd::from_micros(((i + o) * 10_000) as i64).unwrap())
}

struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
    raw: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn kind(&self) -> &str {
        self.body["error"]["type"].as_str().unwrap_or("")
    }
}

async fn send(app: &Router, req: http::Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let raw = String::from_utf8(bytes.to_vec()).unwrap();
    let body = serde_json::from_str(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        raw,
    }
}

fn post_json(path: &str, key: Option<&str>, body: &str) -> http::Request<Body> {
    post_from(path, key, body, PEER)
}

fn post_from(path: &str, key: Option<&str>, body: &str, peer: &str) -> http::Request<Body> {
    let mut b = http::Request::post(path).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    let mut req = b.body(Body::from(body.to_owned())).unwrap();
    req.extensions_mut()
        .insert(PeerAddr(peer.parse::<IpAddr>().unwrap()));
    req
}

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

fn key(f: &Fixture, spec: KeySpec) -> CreatedKey {
    f.store.keys().create(&OP, &f.org, spec).unwrap()
}

fn spend(f: &Fixture, k: &CreatedKey) -> Usd {
    f.store.keys().usage(&OP, &k.info.id).unwrap().today
}

#[tokio::test]
async fn granted_json_gets_openai_rate_headers_and_settles_usage() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc").rpm(5).tpm(1000));
    let app = upstream().layer(layer(&f));
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["who"]["org"], "acme");
    assert_eq!(a.body["who"]["model"], "gpt-4o-mini");
    assert_eq!(a.header("x-ratelimit-limit-requests"), Some("5"));
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("4"));
    let reset: u64 = a
        .header("x-ratelimit-reset-requests")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&reset), "{reset}");
    assert_eq!(a.header("x-ratelimit-limit-tokens"), Some("1000"));
    // The library's older names are not sent.
    assert!(a.header("x-ratelimit-limit").is_none());
    // 15 tokens at a cent each.
    assert_eq!(spend(&f, &k), usd("0.15"));
    let u = f.store.keys().usage(&OP, &k.info.id).unwrap();
    assert_eq!(u.tpm.unwrap().used, 15);
}

#[tokio::test]
async fn granted_stream_settles_from_the_last_usage_chunk() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc"));
    let app = upstream().layer(layer(&f));
    let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#;
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), body),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert!(a.raw.contains("data: [DONE]"), "{}", a.raw);
    assert_eq!(spend(&f, &k), usd("0.12"));
}

#[tokio::test]
async fn a_settlement_through_the_handle_wins_over_the_body() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc"));
    let app = upstream().layer(layer(&f));
    let a = send(&app, post_json("/settle", Some(k.key.expose()), CHAT)).await;
    assert_eq!(a.status, 200);
    assert_eq!(spend(&f, &k), usd("0.5"));
}

#[tokio::test]
async fn failed_or_dropped_responses_release_the_reservation() {
    let f = Fixture::new();
    // The budget holds exactly one estimate: a leaked reservation would refuse the next.
    let k = key(
        &f,
        KeySpec::new("svc").budget(Budget::new(usd("0.10"), Period::Daily)),
    );
    let app = upstream().layer(layer(&f));
    for _ in 0..3 {
        let a = send(&app, post_json("/fail", Some(k.key.expose()), CHAT)).await;
        assert_eq!(a.status, 502);
    }
    // Dropped before the body was read.
    for _ in 0..3 {
        let resp = app
            .clone()
            .oneshot(post_json(
                "/v1/chat/completions",
                Some(k.key.expose()),
                CHAT,
            ))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);
    }
    assert_eq!(spend(&f, &k), usd("0"));
    // The budget is whole: a request whose usage costs 0.15 (over it) is still admitted
    // and charged, and the next one is refused as over budget.
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!(a.status, 429, "{}", a.raw);
    assert_eq!(a.code(), "budget_exceeded");
    assert_eq!(a.kind(), "insufficient_quota");
    assert!(a.header("retry-after").is_some());
}

#[tokio::test]
async fn key_denials_answer_the_error_body() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc"));
    let app = upstream().layer(layer(&f));
    let mut typo = k.key.expose().to_owned();
    let last = if typo.ends_with('x') { "y" } else { "x" };
    typo.replace_range(typo.len() - 1.., last);
    for (key, code) in [
        (None, "missing_key"),
        (Some(typo.as_str()), "malformed_key"),
        (Some("sk-agentcc-nope"), "malformed_key"),
    ] {
        let a = send(&app, post_json("/v1/chat/completions", key, CHAT)).await;
        assert_eq!(a.status, 401, "{}", a.raw);
        assert_eq!(a.code(), code, "{}", a.raw);
        assert_eq!(a.kind(), "authentication_error");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(a.body["error"].get("param").is_some());
        assert_eq!(a.header("content-type"), Some("application/json"));
        // The key is never echoed.
        assert!(!a.raw.contains(&typo));
    }
    // Well-formed but never issued.
    let unknown = orgstore::SecretKey::generate();
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(unknown.expose()), CHAT),
    )
    .await;
    assert_eq!((a.status, a.code()), (401, "unknown_key"));
    // x-api-key works too, and a Basic scheme is refused.
    let mut req = post_json("/v1/chat/completions", None, CHAT);
    req.headers_mut()
        .insert("x-api-key", k.key.expose().parse().unwrap());
    assert_eq!(send(&app, req).await.status, 200);
    let mut req = post_json("/v1/chat/completions", None, CHAT);
    req.headers_mut()
        .insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert_eq!(send(&app, req).await.code(), "malformed_key");
    // Revoked: the very next request.
    f.store.keys().revoke(&OP, &k.info.id).unwrap();
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!((a.status, a.code()), (401, "revoked"));
}

#[tokio::test]
async fn model_and_address_denials_are_permission_errors() {
    let f = Fixture::new();
    let k = key(
        &f,
        KeySpec::new("svc")
            .models(["gpt-4o-mini"])
            .ips(["203.0.113.0/24"]),
    );
    let app = upstream().layer(layer(&f));
    let other = r#"{"model":"gpt-4o","messages":[]}"#;
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), other),
    )
    .await;
    assert_eq!(
        (a.status, a.code(), a.kind()),
        (403, "model_not_allowed", "permission_error")
    );
    let a = send(
        &app,
        post_from(
            "/v1/chat/completions",
            Some(k.key.expose()),
            CHAT,
            "198.51.100.1",
        ),
    )
    .await;
    assert_eq!((a.status, a.code()), (403, "ip_not_allowed"));
}

#[tokio::test]
async fn rpm_exhausted_answers_retry_after_and_rate_headers() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc").rpm(2));
    let app = upstream().layer(layer(&f));
    for _ in 0..2 {
        let a = send(
            &app,
            post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
        )
        .await;
        assert_eq!(a.status, 200);
    }
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!(
        (a.status, a.code(), a.kind()),
        (429, "rate_limited", "rate_limit_error")
    );
    let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(a.header("x-ratelimit-limit-requests"), Some("2"));
    assert_eq!(a.header("x-ratelimit-remaining-requests"), Some("0"));
    assert_eq!(
        a.header("x-ratelimit-reset-requests"),
        Some(wait.to_string().as_str())
    );
}

#[tokio::test]
async fn bodies_the_layer_cannot_read_a_model_from() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc"));
    let app = upstream().layer(layer(&f).max_body_bytes(64));
    let key = Some(k.key.expose());
    let big = format!(r#"{{"model":"gpt-4o-mini","pad":"{}"}}"#, "x".repeat(100));
    let a = send(&app, post_json("/v1/chat/completions", key, &big)).await;
    assert_eq!((a.status, a.code()), (413, "request_too_large"));
    // Without a content-length (a stream), the limit holds as well.
    let mut req = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {}", k.key.expose()))
        .body(Body::from_stream(futures_stream(vec![big.clone(), big])))
        .unwrap();
    req.extensions_mut().insert(PeerAddr(PEER.parse().unwrap()));
    let a = send(&app, req).await;
    assert_eq!((a.status, a.code()), (413, "request_too_large"));
    for (body, code) in [
        ("not json", "invalid_json"),
        ("{\"messages\":[]}", "missing_model"),
        ("{\"model\":5}", "invalid_model"),
        ("{\"model\":\"\"}", "invalid_model"),
        ("[1,2]", "invalid_model"),
    ] {
        let a = send(&app, post_json("/v1/chat/completions", key, body)).await;
        assert_eq!((a.status, a.code()), (400, code), "{body}: {}", a.raw);
        assert_eq!(a.kind(), "invalid_request_error");
    }
    // An escaped model name is unescaped.
    let a = send(
        &app,
        post_json(
            "/v1/chat/completions",
            key,
            r#"{"model":"gpt\u002d4o-mini"}"#,
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(a.body["who"]["model"], "gpt-4o-mini");
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc").ips(["10.0.0.0/8"]));
    let forged = |peer: &str, xff: &str| {
        let mut req = post_from("/v1/chat/completions", Some(k.key.expose()), CHAT, peer);
        req.headers_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
        req
    };
    // By default no header is believed.
    let app = upstream().layer(layer(&f));
    let a = send(&app, forged("203.0.113.1", "10.1.2.3")).await;
    assert_eq!(a.code(), "ip_not_allowed");
    let a = send(&app, forged("127.0.0.1", "10.1.2.3")).await;
    assert_eq!(a.code(), "ip_not_allowed");
    // Behind a trusted proxy, the rightmost untrusted hop is the client.
    let app = upstream().layer(layer(&f).trusted_proxies(["127.0.0.1"]).unwrap());
    assert_eq!(
        send(&app, forged("127.0.0.1", "10.1.2.3")).await.status,
        200
    );
    // A client that forges an allowed address in front of its own is still itself.
    let a = send(&app, forged("127.0.0.1", "10.1.2.3, 198.51.100.4")).await;
    assert_eq!(a.code(), "ip_not_allowed");
    // An untrusted peer's header is ignored.
    let a = send(&app, forged("203.0.113.1", "10.1.2.3")).await;
    assert_eq!(a.code(), "ip_not_allowed");
    assert!(layer(&f).trusted_proxies(["nonsense"]).is_err());
}

#[tokio::test]
async fn a_model_extractor_leaves_the_body_unread() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc").models(["gpt-4o-mini"]));
    async fn echo(Extension(g): Extension<GrantHandle>, body: String) -> String {
        format!("{} {body}", g.model())
    }
    let app = Router::new()
        .route("/m/{model}", post(echo))
        .layer(layer(&f).model_with(|p| p.uri.path().strip_prefix("/m/")));
    let a = send(
        &app,
        post_json("/m/gpt-4o-mini", Some(k.key.expose()), "raw bytes"),
    )
    .await;
    assert_eq!((a.status, a.raw.as_str()), (200, "gpt-4o-mini raw bytes"));
    let a = send(&app, post_json("/m/gpt-4o", Some(k.key.expose()), "x")).await;
    assert_eq!(a.code(), "model_not_allowed");
}

#[tokio::test]
async fn a_request_without_a_peer_address_is_refused() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc"));
    let app = upstream().layer(layer(&f));
    let req = http::Request::post("/v1/chat/completions")
        .header("authorization", format!("Bearer {}", k.key.expose()))
        .body(Body::from(CHAT))
        .unwrap();
    let a = send(&app, req).await;
    assert_eq!((a.status, a.kind()), (500, "api_error"));
}

#[tokio::test]
async fn tpm_exhausted_answers_the_tokens_headers() {
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc").tpm(10));
    let app = upstream().layer(layer(&f));
    // 15 tokens used: over the 10 per minute for the next request.
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-limit-tokens"), Some("10"));
    assert!(a.header("x-ratelimit-limit-requests").is_none());
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!((a.status, a.code()), (429, "rate_limited"), "{}", a.raw);
    assert_eq!(a.header("x-ratelimit-limit-tokens"), Some("10"));
    assert_eq!(a.header("x-ratelimit-remaining-tokens"), Some("0"));
    let wait = a.header("retry-after").unwrap();
    assert_eq!(a.header("x-ratelimit-reset-tokens"), Some(wait));
    assert!(a.header("x-ratelimit-limit-requests").is_none());
}

/// The `*-tokens` headers of two granted requests in a row (the first one's 15 tokens are
/// charged before the second), for a key with `key_tpm` under an org with `org_tpm`.
async fn token_headers_of_two(
    key_tpm: Option<u64>,
    org_tpm: Option<u64>,
) -> [[Option<String>; 3]; 2] {
    let f = Fixture::new();
    if let Some(tpm) = org_tpm {
        f.update_config(&format!(r#"{{"rate_limiting":{{"tpm":{tpm}}}}}"#));
    }
    let spec = KeySpec::new("svc");
    let k = key(&f, key_tpm.map_or(spec.clone(), |t| spec.tpm(t)));
    let app = upstream().layer(layer(&f));
    let mut out: [[Option<String>; 3]; 2] = Default::default();
    for seen in &mut out {
        let a = send(
            &app,
            post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.raw);
        let names = [
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ];
        for (v, name) in seen.iter_mut().zip(names) {
            *v = a.header(name).map(str::to_owned);
        }
    }
    out
}

fn some(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// The reset of a 1000-per-minute limit after 15 tokens: the quiet minute after the TAT
/// (0.9 s ahead), less one emission interval, in whole seconds rounded up.
const RESET_AFTER_15_OF_1000: &str = "61";

/// A request under a tokens-per-minute limit of 1000 (the tighter one) shows it whole; the
/// next one, after the first one's 15 tokens, shows 985 left.
async fn assert_headers_of_a_1000_tpm_limit(key_tpm: Option<u64>, org_tpm: Option<u64>) {
    let [first, second] = token_headers_of_two(key_tpm, org_tpm).await;
    assert_eq!(
        first,
        [some("1000"), some("1000"), some("0")],
        "{key_tpm:?} {org_tpm:?}"
    );
    let after = [some("1000"), some("985"), some(RESET_AFTER_15_OF_1000)];
    assert_eq!(second, after, "{key_tpm:?} {org_tpm:?}");
}

#[tokio::test]
async fn grant_token_headers_follow_the_key_limit_alone() {
    assert_headers_of_a_1000_tpm_limit(Some(1000), None).await;
}

#[tokio::test]
async fn grant_token_headers_follow_the_org_limit_alone() {
    assert_headers_of_a_1000_tpm_limit(None, Some(1000)).await;
}

#[tokio::test]
async fn grant_token_headers_follow_the_tighter_of_key_and_org() {
    // The org's limit is the tighter one, then the key's.
    assert_headers_of_a_1000_tpm_limit(Some(5000), Some(1000)).await;
    assert_headers_of_a_1000_tpm_limit(Some(1000), Some(5000)).await;
}

#[tokio::test]
async fn grant_token_headers_are_absent_without_a_tpm_limit() {
    let [first, second] = token_headers_of_two(None, None).await;
    assert_eq!(first, [None, None, None]);
    assert_eq!(second, [None, None, None]);
    // A requests-per-minute limit alone sends only the `*-requests` headers.
    let f = Fixture::new();
    let k = key(&f, KeySpec::new("svc").rpm(5));
    let app = upstream().layer(layer(&f));
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!(a.header("x-ratelimit-limit-requests"), Some("5"));
    assert!(a.header("x-ratelimit-limit-tokens").is_none());
    assert!(a.header("x-ratelimit-remaining-tokens").is_none());
}

#[tokio::test]
async fn the_layer_releases_its_gateway_handle_when_dropped() {
    // The layer holds a clone of the handle, which holds the store file: once the store is
    // dropped the layer still settles, and once the layer is dropped too the file opens
    // again, with the spend written.
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::with_store(crate::common::open_file_fast(dir.path()));
    let k = key(&f, KeySpec::new("svc"));
    let app = upstream().layer(layer(&f));
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let (org, id) = (f.org.clone(), k.info.id);
    drop(f);
    let a = send(
        &app,
        post_json("/v1/chat/completions", Some(k.key.expose()), CHAT),
    )
    .await;
    // The store is gone: the layer's handle answers `unavailable`, never a stale grant.
    assert_eq!((a.status, a.code()), (503, "unavailable"), "{}", a.raw);
    let busy = orgstore::StoreBuilder::new()
        .non_durable()
        .open(crate::common::db_path(dir.path()));
    assert_eq!(
        busy.err().map(|e| e.kind()),
        Some(orgstore::ErrorKind::Busy)
    );
    drop(app);
    let store = crate::common::open_file_fast(dir.path());
    assert_eq!(store.keys().usage(&OP, &id).unwrap().today, usd("0.15"));
    assert!(store.orgs().get(&OP, &org).is_ok());
}

/// The grant a request's handle and its response body share sits in a slot that threads
/// recycle once nothing holds it. A handle kept after its response (here by the handler)
/// keeps its own grant while later requests reuse slots, concurrent requests on several
/// threads never see each other's, and settling through a kept handle after its response
/// settled changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_handles_and_concurrent_requests_keep_their_own_grants() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let f = Fixture::new();
    let keys: Vec<CreatedKey> = (0..6)
        .map(|i| key(&f, KeySpec::new(format!("k{i}"))))
        .collect();
    let kept: Arc<Mutex<Vec<(String, GrantHandle)>>> = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let keep = kept.clone();
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(move |Extension(g): Extension<GrantHandle>| {
                let (keep, seen) = (keep.clone(), seen.clone());
                async move {
                    let id = g.key_id().to_string();
                    // Every third handle outlives its response, dropped on whichever
                    // thread finishes the test.
                    if seen.fetch_add(1, Ordering::Relaxed) % 3 == 0 {
                        keep.lock().unwrap().push((id.clone(), g.clone()));
                    }
                    tokio::task::yield_now().await;
                    axum::Json(json!({"key": id, "still": g.key_id().to_string()}))
                }
            }),
        )
        .layer(layer(&f));
    let mut tasks = Vec::new();
    for k in &keys {
        let (app, secret, id) = (app.clone(), k.key.expose().to_owned(), k.info.id);
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                let a = send(&app, post_json("/v1/chat/completions", Some(&secret), CHAT)).await;
                assert_eq!(a.status, 200, "{}", a.raw);
                assert_eq!(a.body["key"], id.to_string());
                assert_eq!(a.body["still"], id.to_string());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // No usage in the answers: each request was charged its estimate (0.10).
    for k in &keys {
        assert_eq!(spend(&f, k), usd("4"));
    }
    let kept = std::mem::take(&mut *kept.lock().unwrap());
    assert_eq!(kept.len(), 80);
    for (id, g) in &kept {
        assert_eq!(&g.key_id().to_string(), id);
        assert_eq!(g.model(), "gpt-4o-mini");
        g.record_usage(Usage::new(1, 1, usd("100")));
    }
    for k in &keys {
        assert_eq!(spend(&f, k), usd("4"));
    }
}
