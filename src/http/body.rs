//! The response body wrapper that settles a grant's usage when the response ends.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use serde::Deserialize;

use super::{Shared, scan};
use crate::{Usage, Usd};

pin_project_lite::pin_project! {
    /// The inner service's response body, passed on frame by frame unchanged. At its end
    /// the layer settles the grant: from the `usage` object of a JSON body, or of the last
    /// SSE event carrying one; a body that ends without one is charged the estimate. A body
    /// that fails or is dropped before its end releases the reservation instead.
    pub struct UsageBody<B> {
        #[pin]
        inner: B,
        state: State,
    }
}

impl<B> std::fmt::Debug for UsageBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageBody")
            .field("settles", &self.state.shared.is_some())
            .field("sse", &self.state.sse)
            .finish_non_exhaustive()
    }
}

struct State {
    shared: Option<Shared>,
    sse: bool,
    /// The most bytes kept: a JSON body longer than this, or an SSE line longer, is not
    /// read for usage.
    max: usize,
    /// JSON: the first data frame, kept without copying (most bodies are one frame).
    first: Option<Bytes>,
    /// JSON: the body once it has more than one frame. SSE: an event line split across
    /// frames.
    buf: Vec<u8>,
    /// JSON: the body outgrew `max`.
    over: bool,
    /// SSE: the last usage seen.
    last: Option<Found>,
}

#[derive(Clone, Copy)]
struct Found {
    input: u64,
    output: u64,
    cost: Option<Usd>,
}

impl<B> UsageBody<B> {
    pub(crate) fn new(inner: B, shared: Option<Shared>, sse: bool, max: usize) -> Self {
        Self {
            inner,
            state: State {
                shared,
                sse,
                max,
                first: None,
                buf: Vec::new(),
                over: false,
                last: None,
            },
        }
    }
}

impl<B: Body<Data = Bytes>> Body for UsageBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let state = this.state;
        let mut inner = this.inner;
        match ready!(inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if state.shared.is_some() {
                    if let Some(data) = frame.data_ref() {
                        state.observe(data);
                    }
                    if inner.is_end_stream() {
                        state.finish();
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => {
                // A failed response: the grant is released, nothing charged.
                state.shared = None;
                Poll::Ready(Some(Err(e)))
            }
            None => {
                state.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl State {
    fn observe(&mut self, data: &Bytes) {
        if self.sse {
            self.observe_sse(data);
        } else if !self.over {
            match &self.first {
                None if self.buf.is_empty() => {
                    if data.len() > self.max {
                        self.over = true;
                    } else {
                        self.first = Some(data.clone());
                    }
                }
                _ => {
                    if let Some(first) = self.first.take() {
                        self.buf.extend_from_slice(&first);
                    }
                    if self.buf.len().saturating_add(data.len()) > self.max {
                        self.over = true;
                        self.buf = Vec::new();
                    } else {
                        self.buf.extend_from_slice(data);
                    }
                }
            }
        }
    }

    fn observe_sse(&mut self, data: &[u8]) {
        let mut rest = data;
        if !self.buf.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.buf.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut self.buf);
                    self.sse_line(&line);
                    rest = &rest[i + 1..];
                }
                None => {
                    self.keep_partial(rest);
                    return;
                }
            }
        }
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.sse_line(&rest[..i]);
            rest = &rest[i + 1..];
        }
        if !rest.is_empty() {
            self.keep_partial(rest);
        }
    }

    fn keep_partial(&mut self, part: &[u8]) {
        if self.buf.len().saturating_add(part.len()) > self.max {
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(part);
        }
    }

    fn sse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data.first() != Some(&b'{') || !contains(data, b"\"usage\"") {
            return;
        }
        if let Some(found) = usage_of(data) {
            self.last = Some(found);
        }
    }

    /// The response ended: settle from what was seen.
    fn finish(&mut self) {
        let Some(shared) = self.shared.take() else {
            return;
        };
        let found = if self.sse {
            if !self.buf.is_empty() {
                let line = std::mem::take(&mut self.buf);
                self.sse_line(&line);
            }
            self.last
        } else if self.over {
            None
        } else {
            match self.first.take() {
                Some(first) => usage_of(&first),
                None => usage_of(&self.buf),
            }
        };
        let usage = match found {
            Some(f) => Usage::new(f.input, f.output, shared.cost(f.input, f.output, f.cost)),
            None => Usage::new(0, 0, shared.estimate()),
        };
        shared.settle(usage);
    }
}

/// Where the last `"usage"` starts: a backward walk over the closing quotes (the key is near
/// the end of the usual body, where a searcher costs more to set up than the walk).
fn rfind_usage_key(json: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"usage\"";
    let mut end = json.len();
    while let Some(q) = memchr::memrchr(b'"', &json[..end]) {
        if let Some(start) = (q + 1).checked_sub(KEY.len())
            && &json[start..=q] == KEY
        {
            return Some(start);
        }
        end = q;
    }
    None
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    usage: Option<UsageJson>,
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Option<u64>,
    #[serde(default)]
    cost: Option<serde_json::Number>,
}

/// The `usage` of an OpenAI-style response (chat completions' `prompt_tokens` /
/// `completion_tokens`, or the Responses API's `input_tokens` / `output_tokens`).
fn usage_of(json: &[u8]) -> Option<Found> {
    if let Some(found) = last_member_usage(json) {
        return Some(found);
    }
    let u = serde_json::from_slice::<Envelope>(json).ok()?.usage?;
    Some(Found::of(&u))
}

impl Found {
    fn of(u: &UsageJson) -> Found {
        Found {
            input: u.prompt_tokens.unwrap_or(0),
            output: u.completion_tokens.unwrap_or(0),
            cost: u.cost.as_ref().and_then(|n| Usd::from_json(n).ok()),
        }
    }
}

/// The `usage` of a JSON object whose last member it is (where OpenAI-style responses put
/// it), read without parsing the members before it: the last `"usage"` key that follows `{`
/// or `,`, whose value is followed only by the closing `}` of the body. The value is read
/// by a single scan where it is laid out plainly, else by serde_json. `None` when the body
/// is not laid out so; the whole body is parsed then.
fn last_member_usage(json: &[u8]) -> Option<Found> {
    const KEY: &[u8] = b"\"usage\"";
    let at = rfind_usage_key(json)?;
    if !matches!(json[..at].trim_ascii_end().last(), Some(b'{' | b',')) {
        return None;
    }
    let value = json[at + KEY.len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?;
    if let Some((tokens, used)) = scan::usage_tokens(value) {
        return (value[used..].trim_ascii() == b"}").then_some(Found {
            input: tokens.input.unwrap_or(0),
            output: tokens.output.unwrap_or(0),
            cost: None,
        });
    }
    let mut values = serde_json::Deserializer::from_slice(value).into_iter::<UsageJson>();
    let usage = values.next()?.ok()?;
    (value[values.byte_offset()..].trim_ascii() == b"}").then(|| Found::of(&usage))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_found_as_the_last_member_or_by_parsing_the_body() {
        let read = |j: &str| usage_of(j.as_bytes()).map(|f| (f.input, f.output));
        // The usual layout, and usage elsewhere in the object.
        let tail = r#"{"id":"x","choices":[{"text":"a \"usage\": {}"}], "usage" : {"prompt_tokens":1,"completion_tokens":2} }"#;
        assert_eq!(read(tail), Some((1, 2)));
        assert!(last_member_usage(tail.as_bytes()).is_some());
        // A usage the scan leaves to serde (a cost), still read as the last member.
        let cost = r#"{"id":"x","usage":{"prompt_tokens":1,"completion_tokens":2,"cost":0.5}}"#;
        assert_eq!(read(cost), Some((1, 2)));
        assert!(last_member_usage(cost.as_bytes()).is_some());
        let first = r#"{"usage":{"prompt_tokens":3,"completion_tokens":4},"id":"x"}"#;
        assert_eq!(read(first), Some((3, 4)));
        assert!(last_member_usage(first.as_bytes()).is_none());
        // A nested `usage` after the top-level one is not taken for it.
        let nested = r#"{"usage":{"prompt_tokens":5,"completion_tokens":6},"meta":{"usage":{"prompt_tokens":99}}}"#;
        assert_eq!(read(nested), Some((5, 6)));
        // Inside a string, and a string value `"usage"`: no usage.
        assert_eq!(
            read(r#"{"text":"x\"usage\":{\"prompt_tokens\":9}}"}"#),
            None
        );
        assert_eq!(read(r#"{"kind":"usage"}"#), None);
        assert_eq!(read(r#"{"choices":[],"usage":null}"#), None);
        assert_eq!(rfind_usage_key(br#""usage""#), Some(0));
        assert_eq!(rfind_usage_key(br#"{"usage":{"a":"usage"}}"#), Some(14));
        assert_eq!(rfind_usage_key(br#"usage" "usag"#), None);
    }

    #[test]
    fn usage_is_read_in_both_spellings() {
        let f =
            usage_of(br#"{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":3}}"#).unwrap();
        assert_eq!((f.input, f.output), (12, 3));
        assert!(f.cost.is_none());
        let f = usage_of(br#"{"usage":{"input_tokens":5,"output_tokens":7,"cost":0.25}}"#).unwrap();
        assert_eq!((f.input, f.output), (5, 7));
        assert_eq!(f.cost, Some(Usd::parse("0.25").unwrap()));
        assert!(usage_of(br#"{"usage":null}"#).is_none());
        assert!(usage_of(b"not json").is_none());
    }

    #[test]
    fn sse_lines_split_across_frames_are_joined() {
        let mut s = State {
            shared: None,
            sse: true,
            max: 1024,
            first: None,
            buf: Vec::new(),
            over: false,
            last: None,
        };
        s.observe_sse(b"data: {\"choices\":[]}\n\ndata: {\"usage\":{\"prompt_");
        assert!(s.last.is_none());
        s.observe_sse(b"tokens\":4,\"completion_tokens\":9}}\r\n\r\ndata: [DONE]\n\n");
        let f = s.last.unwrap();
        assert_eq!((f.input, f.output), (4, 9));
    }
}
