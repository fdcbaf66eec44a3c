//! Answers: JSON bodies, and errors as `{"error": {"code", "message", ...}}` with the status
//! of their kind.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header::CONTENT_TYPE};
use serde_json::{Value, json};

use crate::error::{Error, ErrorKind};

/// A refused request: status, stable code, message and extra fields of the error object.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: u16,
    body: Value,
}

impl ApiError {
    /// An error raised by the server itself (not by the store).
    pub(crate) fn new(status: u16, code: &str, message: &str) -> Self {
        Self {
            status,
            body: json!({ "error": { "code": code, "message": message } }),
        }
    }

    /// The same with the field it is about.
    pub(crate) fn field(status: u16, code: &str, field: &str, message: &str) -> Self {
        let mut e = Self::new(status, code, message);
        e.body["error"]["field"] = Value::from(field);
        e
    }

    /// The HTTP response.
    pub(crate) fn response(self) -> Response {
        json_response(self.status, &self.body)
    }
}

/// A library error as an answer: its kind decides the status; an invalid value is 422 (the
/// server's own checks of syntax and shape answer 400); the field and the message say what
/// to fix; a denial names the action, the role and the deciding policies.
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match e.kind() {
            ErrorKind::Invalid => (422, "invalid"),
            ErrorKind::Conflict => (409, "conflict"),
            ErrorKind::NotFound => (404, "not_found"),
            ErrorKind::Denied => (403, "denied"),
            ErrorKind::Busy => (503, "busy"),
            ErrorKind::Unavailable => (503, "unavailable"),
            ErrorKind::Storage => (503, "storage"),
            ErrorKind::Corrupt => (503, "corrupt"),
            ErrorKind::TooNew => (503, "too_new"),
        };
        let mut body = json!({
            "error": { "code": code, "message": e.message(), "field": e.field() }
        });
        if let Some(d) = e.denial() {
            body["error"]["action"] = Value::from(d.action());
            body["error"]["role"] = d.role().map_or(Value::Null, |r| Value::from(r.as_str()));
            body["error"]["policy_ids"] = Value::from(d.policy_ids().to_vec());
            body["error"]["who_may"] = Value::from(d.who_may());
        }
        Self { status, body }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.response()
    }
}

/// `value` as a JSON response with `status`.
pub(crate) fn json_response(status: u16, value: &Value) -> Response {
    let mut resp = Response::new(Body::from(value.to_string()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// JSON text the library wrote (a config, a diff's value) as a value. The library writes it
/// from a JSON value, so it always reads back.
pub(crate) fn text_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Any serializable answer as JSON (an encoding failure is a 500 that says so).
pub(crate) fn to_json(v: &impl serde::Serialize) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|_| {
        ApiError::new(
            500,
            "internal",
            "the answer could not be encoded as JSON; report this",
        )
    })
}
