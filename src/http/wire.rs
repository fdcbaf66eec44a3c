//! The wire format: error bodies, statuses, `retry-after` and the rate-limit headers.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::{Either, Full};
use serde::Deserialize;

use super::{ResponseBody, int_header, numbers, status};
use crate::gateway::OwnedGrant;
use crate::{Denial, Gateway, HeaderError, Scope, Timestamp};

/// `x-ratelimit-limit-requests` and its siblings (OpenAI's names, integer values).
pub(crate) const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
pub(crate) const REMAINING_REQUESTS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-requests");
pub(crate) const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
pub(crate) const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
pub(crate) const REMAINING_TOKENS: HeaderName =
    HeaderName::from_static("x-ratelimit-remaining-tokens");
pub(crate) const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
pub(crate) const BUDGET_WARNING: HeaderName = HeaderName::from_static("x-agentcc-budget-warning");

/// The OpenAI error `type` of a status.
fn error_type(status: u16, code: &str) -> &'static str {
    match (status, code) {
        (_, "budget_exceeded") => "insufficient_quota",
        (400 | 404 | 413 | 415 | 422, _) => "invalid_request_error",
        (401, _) => "authentication_error",
        (403, _) => "permission_error",
        (429, _) => "rate_limit_error",
        (503, _) => "service_unavailable",
        _ => "api_error",
    }
}

/// `{"error": {"message", "type", "code", "param"}}` with its status.
pub(crate) fn error<B>(
    status_code: u16,
    code: &str,
    message: &str,
    param: Option<&str>,
) -> Response<ResponseBody<B>> {
    let body = serde_json::json!({
        "error": {
            "message": message,
            "type": error_type(status_code, code),
            "code": code,
            "param": param,
        }
    });
    let mut resp = Response::new(Either::Left(Full::new(Bytes::from(body.to_string()))));
    *resp.status_mut() = status(status_code);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub(crate) fn missing_model<B>() -> Response<ResponseBody<B>> {
    error(
        400,
        "missing_model",
        "the request names no model: give `model` in the JSON body",
        Some("model"),
    )
}

pub(crate) fn too_large<B>(limit: usize) -> Response<ResponseBody<B>> {
    error(
        413,
        "request_too_large",
        &format!("the request body is longer than {limit} bytes"),
        None,
    )
}

pub(crate) fn unreadable_body<B>() -> Response<ResponseBody<B>> {
    error(
        400,
        "invalid_body",
        "the request body could not be read",
        None,
    )
}

pub(crate) fn no_peer<B>() -> Response<ResponseBody<B>> {
    tracing::error!(
        "the HTTP layer found no client address: insert PeerAddr or SocketAddr into the \
         request extensions, or configure GatewayLayer::peer_addr_with"
    );
    error(
        500,
        "internal_error",
        "the gateway could not determine the client address",
        None,
    )
}

pub(crate) fn bad_key_header<B>(e: HeaderError) -> Response<ResponseBody<B>> {
    let code = match e {
        HeaderError::Missing => "missing_key",
        _ => "malformed_key",
    };
    error(401, code, &e.to_string(), None)
}

#[derive(Deserialize)]
struct ModelOnly<'a> {
    #[serde(borrow, default)]
    model: Option<std::borrow::Cow<'a, str>>,
}

/// The `model` of an OpenAI-style JSON body, as a slice of `body` where it has no escapes.
/// A single scan answers for the usual body; serde_json parses the others (and words the
/// refusals).
pub(crate) fn model_of<B>(body: &Bytes) -> Result<Bytes, Response<ResponseBody<B>>> {
    if let Some(model) = super::scan::model(body) {
        return Ok(body.slice_ref(model));
    }
    let parsed: ModelOnly<'_> = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) if e.is_data() => {
            return Err(error(
                400,
                "invalid_model",
                "`model` must be a string naming the model",
                Some("model"),
            ));
        }
        Err(_) => {
            return Err(error(
                400,
                "invalid_json",
                "the request body is not a JSON object: send an OpenAI-style JSON request",
                None,
            ));
        }
    };
    match parsed.model {
        None => Err(missing_model()),
        Some(std::borrow::Cow::Borrowed(m)) => Ok(body.slice_ref(m.as_bytes())),
        Some(std::borrow::Cow::Owned(m)) => Ok(Bytes::from(m)),
    }
}

/// Whole seconds, rounded up.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs();
    if d.subsec_nanos() > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

/// The rate headers of a granted request: values from the static table of small numbers,
/// or (for large ones) slices of the thread's shared chunk of digits, a large limit
/// rendered once while it stays the same (see [`numbers::limit_value`]). The response's header map grows only when the service's own
/// headers and these pass its capacity.
pub(crate) fn grant_headers(headers: &mut HeaderMap, grant: &OwnedGrant) {
    let mut put = |name: HeaderName, v: Option<HeaderValue>| {
        if let Some(v) = v {
            headers.insert(name, v);
        }
    };
    if let Some(h) = grant.rate_headers() {
        put(LIMIT_REQUESTS, numbers::limit_value(0, h.limit));
        put(REMAINING_REQUESTS, numbers::value(h.remaining));
        put(RESET_REQUESTS, numbers::value(ceil_secs(h.reset)));
    }
    if let Some(h) = grant.token_headers() {
        put(LIMIT_TOKENS, numbers::limit_value(1, h.limit));
        put(REMAINING_TOKENS, numbers::value(h.remaining));
        put(RESET_TOKENS, numbers::value(ceil_secs(h.reset)));
    }
    if grant.budget_warning() {
        headers.insert(BUDGET_WARNING, HeaderValue::from_static("true"));
    }
}

/// The answer to a denial: its status, the error body with its stable code, and for a rate
/// limit `retry-after` and the rate headers of the limit that refused it.
pub(crate) fn denied<B>(
    gateway: &Gateway,
    key: &str,
    denial: &Denial,
) -> Response<ResponseBody<B>> {
    let mut resp = error(
        denial.http_status(),
        denial.code(),
        &denial.to_string(),
        None,
    );
    let headers = resp.headers_mut();
    match denial {
        Denial::RateLimited {
            scope,
            tokens,
            retry_after,
        } => {
            let wait = ceil_secs(*retry_after).max(1);
            headers.insert(RETRY_AFTER, int_header(wait));
            // The limit's value: a look-up off the grant path, on refusals only.
            let limit = gateway.lookup(key).ok().and_then(|k| {
                let l = k.limits;
                match (scope, tokens) {
                    (Scope::Key, false) => l.key_rpm,
                    (Scope::Org, false) => l.org_rpm,
                    (Scope::Key, true) => l.key_tpm,
                    (Scope::Org, true) => l.org_tpm,
                }
            });
            let (lim, rem, reset) = if *tokens {
                (LIMIT_TOKENS, REMAINING_TOKENS, RESET_TOKENS)
            } else {
                (LIMIT_REQUESTS, REMAINING_REQUESTS, RESET_REQUESTS)
            };
            if let Some(limit) = limit {
                headers.insert(lim, int_header(limit));
            }
            headers.insert(rem, int_header(0));
            headers.insert(reset, int_header(wait));
        }
        Denial::BudgetExceeded {
            resets_at: Some(at),
            ..
        } => {
            let micros = at.as_micros().saturating_sub(Timestamp::now().as_micros());
            let secs = u64::try_from(micros)
                .unwrap_or(0)
                .div_ceil(1_000_000)
                .max(1);
            headers.insert(RETRY_AFTER, int_header(secs));
        }
        Denial::Unavailable => {
            headers.insert(RETRY_AFTER, int_header(1));
        }
        _ => {}
    }
    resp
}
