//! Request bodies: the content type, the size limit, JSON syntax and shape.

use axum::body::Body;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use super::reply::ApiError;

/// The media types a body may be sent as.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Media {
    /// `application/json`.
    Json,
    /// `application/merge-patch+json` (RFC 7396).
    MergePatch,
}

/// The media type of a request, refusing any other than `allowed` (415).
pub(crate) fn media(headers: &HeaderMap, allowed: &[Media]) -> Result<Media, ApiError> {
    let ty = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let found = match ty.as_deref() {
        Some("application/json") => Some(Media::Json),
        Some("application/merge-patch+json") => Some(Media::MergePatch),
        _ => None,
    };
    match found {
        Some(m) if allowed.contains(&m) => Ok(m),
        _ => {
            let names: Vec<&str> = allowed
                .iter()
                .map(|m| match m {
                    Media::Json => "application/json",
                    Media::MergePatch => "application/merge-patch+json",
                })
                .collect();
            Err(ApiError::field(
                415,
                "unsupported_media_type",
                "content-type",
                &format!("send the body as {}", names.join(" or ")),
            ))
        }
    }
}

/// The whole body, at most `limit` bytes (413 beyond).
pub(crate) async fn read(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            413,
            "body_too_large",
            &format!("the body is larger than {limit} bytes; send less"),
        )),
        Err(_) => Err(ApiError::new(
            400,
            "unreadable_body",
            "the body could not be read to its end; send it whole",
        )),
    }
}

/// The body as JSON of shape `T` (400 naming the problem and the expected shape).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "invalid_json"
        } else {
            "invalid_body"
        };
        ApiError::field(
            400,
            what,
            "body",
            &format!("{e}; send a JSON object like {shape}"),
        )
    })
}
