//! A [`tower`](https://docs.rs/tower) layer that puts [`Gateway::check`] in front of an
//! OpenAI-compatible HTTP service, speaking the product's wire format (feature `tower`).
//!
//! Per request the layer takes the key (`Authorization: Bearer` or `x-api-key`), the model
//! (the JSON body's `model`, buffered up to a limit, or a caller-supplied extractor) and the
//! client address (the connection's; forwarding headers only from configured trusted proxies),
//! calls `check`, and either answers the denial itself (status, JSON error body, `retry-after`
//! and rate headers) or passes the request on with a [`GrantHandle`] in its extensions, adds
//! the rate headers to the response and settles usage from the response's `usage` (a JSON
//! body, or the last chunk of an SSE stream that carries one). A response that fails, is
//! dropped before its end or answers an error status releases the reservation.
//!
//! See the README's "HTTP layer" section for the headers and error bodies.

// Refusals travel as ready responses (`Err(Response)`): the refusal path builds one anyway,
// and moving it is nothing beside building it.
#![allow(clippy::result_large_err)]

mod body;
mod forwarded;
mod future;
mod numbers;
mod scan;
mod shared;
mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{Either, Full};

use crate::{Gateway, KeyId, Limits, OrgId, RateHeaders, Usage, Usd};

pub use body::UsageBody;
pub use forwarded::InvalidProxy;
use forwarded::TrustedProxies;
pub use future::GatewayFuture;
use shared::Shared;

/// The body the inner service receives: the buffered request body (when the layer read the
/// model from it) or the original one (when a model extractor was configured).
pub type RequestBody<B> = Either<Full<Bytes>, B>;

/// The body the layer answers with: its own error bodies, or the inner service's body
/// wrapped to settle usage when it ends.
pub type ResponseBody<B> = Either<Full<Bytes>, UsageBody<B>>;

/// The default limit on a request body the layer buffers to read its `model` (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The default limit on a non-streaming response body the layer reads `usage` from (1 MiB);
/// a longer body is passed on whole and charged the estimate.
pub const DEFAULT_MAX_USAGE_BYTES: usize = 1 << 20;

const X_API_KEY: http::header::HeaderName = http::header::HeaderName::from_static("x-api-key");

/// The client address, for stacks that do not put a [`SocketAddr`] into the request
/// extensions. Insert it (or a `SocketAddr`) per connection, or configure
/// [`GatewayLayer::peer_addr_with`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub IpAddr);

type ModelFn = dyn for<'a> Fn(&'a Parts) -> Option<&'a str> + Send + Sync;
type EstimateFn = dyn Fn(&Parts) -> Option<Usd> + Send + Sync;
type PeerFn = dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync;
type PriceFn = dyn Fn(&str, u64, u64) -> Usd + Send + Sync;

#[derive(Clone)]
pub(crate) struct Config {
    gateway: Gateway,
    max_body: usize,
    max_usage: usize,
    trusted: TrustedProxies,
    model: Option<Arc<ModelFn>>,
    estimate: Option<Arc<EstimateFn>>,
    peer: Option<Arc<PeerFn>>,
    price: Option<Arc<PriceFn>>,
}

/// The layer. Build it once at start-up and apply it to a router or service.
///
/// ```ignore
/// let layer = GatewayLayer::new(store.gateway().clone())
///     .peer_addr_with(|p| p.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()));
/// let app = Router::new().route("/v1/chat/completions", post(chat)).layer(layer);
/// ```
///
/// The layer holds a clone of its [`Gateway`] handle (and each response in flight holds
/// the layer's configuration until its body ends). Spend still reaches the store file
/// through the background flush; call [`crate::Store::flush`] after the server stops so the
/// last interval's spend is written.
#[derive(Clone)]
pub struct GatewayLayer {
    config: Arc<Config>,
}

impl std::fmt::Debug for GatewayLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayLayer")
            .field("max_body", &self.config.max_body)
            .field("max_usage", &self.config.max_usage)
            .field("trusted_proxies", &self.config.trusted)
            .finish_non_exhaustive()
    }
}

impl GatewayLayer {
    /// A layer over `gateway` (a cheap clone of the store's handle, see
    /// [`crate::Store::gateway`]). Build it once at start-up, not per request.
    pub fn new(gateway: Gateway) -> Self {
        Self {
            config: Arc::new(Config {
                gateway,
                max_body: DEFAULT_MAX_BODY_BYTES,
                max_usage: DEFAULT_MAX_USAGE_BYTES,
                trusted: TrustedProxies::default(),
                model: None,
                estimate: None,
                peer: None,
                price: None,
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// The most request-body bytes buffered to read the model (default
    /// [`DEFAULT_MAX_BODY_BYTES`]); a longer body is answered 413 `request_too_large`.
    pub fn max_body_bytes(self, limit: usize) -> Self {
        self.edit(|c| c.max_body = limit)
    }

    /// The most response-body bytes read to find `usage` in a non-streaming response
    /// (default [`DEFAULT_MAX_USAGE_BYTES`]).
    pub fn max_usage_bytes(self, limit: usize) -> Self {
        self.edit(|c| c.max_usage = limit)
    }

    /// Proxies whose `X-Forwarded-For` / `Forwarded` headers are believed: addresses or
    /// CIDRs. The client is the rightmost hop that is not a trusted proxy. Without this
    /// (the default) the client is always the connection's peer.
    pub fn trusted_proxies<I, S>(self, rules: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let trusted = TrustedProxies::parse(rules)?;
        Ok(self.edit(|c| c.trusted = trusted))
    }

    /// Takes the model from the request head instead of the JSON body (the body is then
    /// passed on unread), e.g. from a path segment or a header. `None` answers 400
    /// `missing_model`.
    pub fn model_with(
        self,
        f: impl for<'a> Fn(&'a Parts) -> Option<&'a str> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|c| c.model = Some(Arc::new(f)))
    }

    /// The cost estimate reserved by `check` per request (e.g. per route); `None` uses the
    /// gateway's default.
    pub fn estimate_with(self, f: impl Fn(&Parts) -> Option<Usd> + Send + Sync + 'static) -> Self {
        self.edit(|c| c.estimate = Some(Arc::new(f)))
    }

    /// Where the connection's peer address is found. Default: a [`PeerAddr`] or a
    /// [`SocketAddr`] in the request extensions (axum's `ConnectInfo` needs this setter).
    /// A request without one is answered 500: the layer never guesses an address.
    pub fn peer_addr_with(
        self,
        f: impl Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|c| c.peer = Some(Arc::new(f)))
    }

    /// The price of a response's usage: `(model, input_tokens, output_tokens) -> cost`.
    /// Without it, a `usage.cost` number in the response is used, else the estimate.
    pub fn price_with(self, f: impl Fn(&str, u64, u64) -> Usd + Send + Sync + 'static) -> Self {
        self.edit(|c| c.price = Some(Arc::new(f)))
    }
}

impl<S> tower_layer::Layer<S> for GatewayLayer {
    type Service = GatewayService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GatewayService {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`GatewayLayer`].
#[derive(Clone)]
pub struct GatewayService<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> std::fmt::Debug for GatewayService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayService").finish_non_exhaustive()
    }
}

/// The grant of a request the layer let through, in the request's extensions. The service
/// may read the org, key and limits, and may settle usage itself
/// ([`GrantHandle::record_usage`]); the layer's own settling from the response's `usage` is
/// then a no-op.
#[derive(Clone)]
pub struct GrantHandle {
    shared: Shared,
}

impl std::fmt::Debug for GrantHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrantHandle")
            .field("grant", &self.shared.grant())
            .field("model", &self.shared.model())
            .finish()
    }
}

impl GrantHandle {
    /// The key's org.
    pub fn org_id(&self) -> &OrgId {
        self.shared.org_id()
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.shared.grant().map_or(KeyId::NIL, |g| g.key_id())
    }

    /// The model the request was checked for.
    pub fn model(&self) -> &str {
        self.shared.model()
    }

    /// The estimate `check` reserved.
    pub fn estimate(&self) -> Usd {
        self.shared.estimate()
    }

    /// The key's effective limits (see [`crate::Grant::limits`]).
    pub fn limits(&self) -> Limits {
        self.shared.grant().map(|g| g.limits()).unwrap_or_default()
    }

    /// The requests-per-minute header values (see [`crate::Grant::rate_headers`]).
    pub fn rate_headers(&self) -> Option<RateHeaders> {
        self.shared.grant().and_then(|g| g.rate_headers())
    }

    /// The tokens-per-minute header values now (see [`crate::Grant::token_headers`]).
    pub fn token_headers(&self) -> Option<RateHeaders> {
        self.shared.grant().and_then(|g| g.token_headers())
    }

    /// Whether a budget passed its warning threshold.
    pub fn budget_warning(&self) -> bool {
        self.shared.grant().is_some_and(|g| g.budget_warning())
    }

    /// Whether a soft budget is exceeded (the request was still allowed).
    pub fn over_soft_budget(&self) -> bool {
        self.shared.grant().is_some_and(|g| g.over_soft_budget())
    }

    /// Remaining budget of the key and of the org, in that order, when they have one.
    pub fn budget_remaining(&self) -> (Option<Usd>, Option<Usd>) {
        self.shared
            .grant()
            .map_or((None, None), |g| g.budget_remaining())
    }

    /// Settles the request's usage now (the first settlement counts; later ones, including
    /// the layer's from the response, are no-ops).
    pub fn record_usage(&self, usage: Usage) {
        self.shared.settle(usage);
    }
}

impl<S, ReqBody, ResBody> tower_service::Service<Request<ReqBody>> for GatewayService<S>
where
    S: tower_service::Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    ReqBody: Body<Data = Bytes> + Unpin,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = GatewayFuture<S, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone took `poll_ready`'s readiness: call the ready one, keep the clone.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let (parts, body) = req.into_parts();
        if let Some(extract) = &config.model {
            // The model is in the head: decide now, pass the body on unread.
            let decided = match extract(&parts) {
                Some(m) => admit(&config, &parts, Bytes::copy_from_slice(m.as_bytes())),
                None => Err(wire::missing_model()),
            };
            return match decided {
                Ok(shared) => {
                    GatewayFuture::calling(inner, config, shared, parts, Either::Right(body))
                }
                Err(resp) => GatewayFuture::answer(config, resp),
            };
        }
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > config.max_body as u64) {
            let resp = wire::too_large(config.max_body);
            return GatewayFuture::answer(config, resp);
        }
        GatewayFuture::reading(inner, config, parts, body)
    }
}

/// Decides the request: the key, the address, then `check`.
pub(crate) fn admit<ResBody>(
    config: &Arc<Config>,
    parts: &Parts,
    model: Bytes,
) -> Result<Shared, Response<ResponseBody<ResBody>>> {
    let header = |name: &http::header::HeaderName| {
        parts
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
    };
    // `Authorization` wins over `x-api-key`: the second is looked up only without the first.
    let key = match header(&http::header::AUTHORIZATION) {
        Some(auth) => crate::key_from_headers(Some(auth), None),
        None => crate::key_from_headers(None, header(&X_API_KEY)),
    }
    .map_err(wire::bad_key_header)?;
    let peer = config
        .peer
        .as_ref()
        .map_or_else(|| default_peer(parts), |f| f(parts))
        .ok_or_else(wire::no_peer)?;
    let client = config.trusted.client(peer, &parts.headers);
    let estimate = config
        .estimate
        .as_ref()
        .and_then(|f| f(parts))
        .unwrap_or(config.gateway.default_estimate());
    let model_str = std::str::from_utf8(&model).unwrap_or_default();
    let request = crate::Request::new(key, model_str, client).estimate(estimate);
    match config.gateway.check_owned(&request) {
        Ok(grant) => Ok(Shared::new(Arc::clone(config), grant, model, estimate)),
        Err(denial) => {
            tracing::debug!(
                code = denial.code(),
                status = denial.http_status(),
                "request refused"
            );
            Err(wire::denied(&config.gateway, key, &denial))
        }
    }
}

fn default_peer(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<PeerAddr>()
        .map(|p| p.0)
        .or_else(|| parts.extensions.get::<SocketAddr>().map(SocketAddr::ip))
}

/// Adds the rate headers and wraps the body to settle usage.
pub(crate) fn respond<ResBody: Body<Data = Bytes>>(
    config: &Config,
    shared: Shared,
    resp: Response<ResBody>,
) -> Response<ResponseBody<ResBody>> {
    let (mut parts, body) = resp.into_parts();
    if let Some(grant) = shared.grant() {
        wire::grant_headers(&mut parts.headers, grant);
    }
    let body = if parts.status.is_success() {
        let sse = is_event_stream(&parts.headers);
        UsageBody::new(body, Some(shared), sse, config.max_usage)
    } else {
        // An error answer releases the reservation (the grant is dropped here unless the
        // service settled it already).
        drop(shared);
        UsageBody::new(body, None, false, 0)
    };
    Response::from_parts(parts, Either::Right(body))
}

/// Whether the media type of an ASCII `content-type` (before any `;` parameter, surrounding
/// whitespace ignored, any case) is `text/event-stream`.
fn is_event_stream(headers: &HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        if !v.is_ascii() {
            return false;
        }
        let media = v.split(|&b| b == b';').next().unwrap_or(v);
        media
            .trim_ascii()
            .eq_ignore_ascii_case(b"text/event-stream")
    })
}

fn int_header(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}
