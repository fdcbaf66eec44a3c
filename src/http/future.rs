//! The future of the layer's service, written out so that a request costs no boxed future:
//! read the body (when the model is in it), decide, call the inner service, wrap the answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{Either, Full};
use tower_service::Service;

use super::{Config, GrantHandle, RequestBody, ResponseBody, Shared, admit, respond, wire};

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<F> {
        // Reading the request body, or holding a ready answer.
        Early,
        // The inner service's call.
        Calling { #[pin] fut: F },
        Done,
    }
}

/// What the body read needs besides the body.
struct Reading<S, B> {
    inner: S,
    parts: Parts,
    body: B,
    /// The first data frame, kept as it came; most JSON requests are one frame.
    first: Bytes,
    /// The body once it has more than one frame.
    joined: Option<Vec<u8>>,
    len: usize,
}

pin_project_lite::pin_project! {
    /// The future of [`super::GatewayService`].
    pub struct GatewayFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<RequestBody<ReqBody>>>,
    {
        #[pin]
        stage: Stage<S::Future>,
        reading: Option<Reading<S, ReqBody>>,
        answer: Option<Response<ResponseBody<ResBody>>>,
        shared: Option<Arc<Shared>>,
        config: Arc<Config>,
    }
}

impl<S, ReqBody, ResBody> std::fmt::Debug for GatewayFuture<S, ReqBody, ResBody>
where
    S: Service<Request<RequestBody<ReqBody>>>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> GatewayFuture<S, ReqBody, ResBody>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes> + Unpin,
    ResBody: Body<Data = Bytes>,
{
    /// Answers without calling the service.
    pub(crate) fn answer(config: Arc<Config>, resp: Response<ResponseBody<ResBody>>) -> Self {
        Self {
            stage: Stage::Early,
            reading: None,
            answer: Some(resp),
            shared: None,
            config,
        }
    }

    /// Reads the body for its model first.
    pub(crate) fn reading(inner: S, config: Arc<Config>, parts: Parts, body: ReqBody) -> Self {
        Self {
            stage: Stage::Early,
            reading: Some(Reading {
                inner,
                parts,
                body,
                first: Bytes::new(),
                joined: None,
                len: 0,
            }),
            answer: None,
            shared: None,
            config,
        }
    }

    /// Calls the service with a granted request.
    pub(crate) fn calling(
        mut inner: S,
        config: Arc<Config>,
        shared: Arc<Shared>,
        parts: Parts,
        body: RequestBody<ReqBody>,
    ) -> Self {
        let mut req = Request::from_parts(parts, body);
        req.extensions_mut().insert(GrantHandle {
            shared: shared.clone(),
        });
        Self {
            stage: Stage::Calling {
                fut: inner.call(req),
            },
            reading: None,
            answer: None,
            shared: Some(shared),
            config,
        }
    }
}

impl<S, ReqBody, ResBody> Future for GatewayFuture<S, ReqBody, ResBody>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: Body<Data = Bytes> + Unpin,
    ResBody: Body<Data = Bytes>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.stage.as_mut().project() {
                StageProj::Early => {
                    if let Some(resp) = this.answer.take() {
                        this.stage.set(Stage::Done);
                        return Poll::Ready(Ok(resp));
                    }
                    let Some(r) = this.reading.as_mut() else {
                        this.stage.set(Stage::Done);
                        return Poll::Pending;
                    };
                    let max = this.config.max_body;
                    // The whole body, at most `max` bytes.
                    let refused = loop {
                        match ready!(Pin::new(&mut r.body).poll_frame(cx)) {
                            None => break None,
                            Some(Err(_)) => break Some(wire::unreadable_body()),
                            Some(Ok(frame)) => {
                                let Ok(data) = frame.into_data() else {
                                    continue; // trailers
                                };
                                r.len = r.len.saturating_add(data.len());
                                if r.len > max {
                                    break Some(wire::too_large(max));
                                }
                                match &mut r.joined {
                                    Some(all) => all.extend_from_slice(&data),
                                    None if r.first.is_empty() => r.first = data,
                                    None => {
                                        let mut all = Vec::with_capacity(r.len);
                                        all.extend_from_slice(&r.first);
                                        all.extend_from_slice(&data);
                                        r.joined = Some(all);
                                    }
                                }
                            }
                        }
                    };
                    let Some(r) = this.reading.take() else {
                        continue;
                    };
                    if let Some(resp) = refused {
                        *this.answer = Some(resp);
                        continue;
                    }
                    let bytes = r.joined.map_or(r.first, Bytes::from);
                    let decided = wire::model_of(&bytes)
                        .and_then(|model| admit(this.config, &r.parts, model));
                    match decided {
                        Err(resp) => *this.answer = Some(resp),
                        Ok(shared) => {
                            let mut inner = r.inner;
                            let mut req =
                                Request::from_parts(r.parts, Either::Left(Full::new(bytes)));
                            req.extensions_mut().insert(GrantHandle {
                                shared: shared.clone(),
                            });
                            *this.shared = Some(shared);
                            this.stage.set(Stage::Calling {
                                fut: inner.call(req),
                            });
                        }
                    }
                }
                StageProj::Calling { fut } => {
                    let result = ready!(fut.poll(cx));
                    let shared = this.shared.take();
                    this.stage.set(Stage::Done);
                    let resp = result?;
                    return Poll::Ready(Ok(match shared {
                        Some(shared) => respond(this.config, shared, resp),
                        None => {
                            let (parts, body) = resp.into_parts();
                            let body = super::UsageBody::new(body, None, false, 0);
                            Response::from_parts(parts, Either::Right(body))
                        }
                    }));
                }
                // Polled after completion.
                StageProj::Done => return Poll::Pending,
            }
        }
    }
}
