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
    /// One variant per stage, so the future is as large as its largest stage (the inner
    /// service's future), not the sum of them.
    #[project = StageProj]
    #[project_replace = StageOwned]
    enum Stage<S, B, F, R> {
        // Reading the request body for its model.
        Reading { reading: Reading<S, B> },
        // A ready answer: a refusal.
        Answer { resp: R },
        // The inner service's call.
        Calling { #[pin] fut: F, shared: Shared },
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

type StageOf<S, ReqBody, ResBody> = Stage<
    S,
    ReqBody,
    <S as Service<Request<RequestBody<ReqBody>>>>::Future,
    Response<ResponseBody<ResBody>>,
>;

pin_project_lite::pin_project! {
    /// The future of [`super::GatewayService`].
    pub struct GatewayFuture<S, ReqBody, ResBody>
    where
        S: Service<Request<RequestBody<ReqBody>>>,
    {
        #[pin]
        stage: StageOf<S, ReqBody, ResBody>,
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
            stage: Stage::Answer { resp },
            config,
        }
    }

    /// Reads the body for its model first.
    pub(crate) fn reading(inner: S, config: Arc<Config>, parts: Parts, body: ReqBody) -> Self {
        Self {
            stage: Stage::Reading {
                reading: Reading {
                    inner,
                    parts,
                    body,
                    first: Bytes::new(),
                    joined: None,
                    len: 0,
                },
            },
            config,
        }
    }

    /// Calls the service with a granted request.
    pub(crate) fn calling(
        inner: S,
        config: Arc<Config>,
        shared: Shared,
        parts: Parts,
        body: RequestBody<ReqBody>,
    ) -> Self {
        Self {
            stage: call(inner, shared, parts, body),
            config,
        }
    }
}

/// The inner service's call of a granted request, its [`GrantHandle`] in the extensions.
fn call<S, ReqBody, ResBody>(
    mut inner: S,
    shared: Shared,
    mut parts: Parts,
    body: RequestBody<ReqBody>,
) -> StageOf<S, ReqBody, ResBody>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
{
    parts.extensions.insert(GrantHandle {
        shared: shared.clone(),
    });
    Stage::Calling {
        fut: inner.call(Request::from_parts(parts, body)),
        shared,
    }
}

/// Reads the whole body, at most `max` bytes: `Some(refusal)` when it cannot be used.
fn read_body<S, B: Body<Data = Bytes> + Unpin, R>(
    r: &mut Reading<S, B>,
    max: usize,
    cx: &mut Context<'_>,
) -> Poll<Option<Response<ResponseBody<R>>>> {
    loop {
        match ready!(Pin::new(&mut r.body).poll_frame(cx)) {
            None => return Poll::Ready(None),
            Some(Err(_)) => return Poll::Ready(Some(wire::unreadable_body())),
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                r.len = r.len.saturating_add(data.len());
                if r.len > max {
                    return Poll::Ready(Some(wire::too_large(max)));
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
                StageProj::Reading { reading } => {
                    let refused = ready!(read_body(reading, this.config.max_body, cx));
                    let StageOwned::Reading { reading: r } =
                        this.stage.as_mut().project_replace(Stage::Done)
                    else {
                        continue;
                    };
                    let decided = match refused {
                        Some(resp) => Err(resp),
                        None => {
                            let bytes = r.joined.map_or(r.first, Bytes::from);
                            wire::model_of(&bytes)
                                .and_then(|model| admit(this.config, &r.parts, model))
                                .map(|shared| (shared, bytes))
                        }
                    };
                    this.stage.set(match decided {
                        Err(resp) => Stage::Answer { resp },
                        Ok((shared, bytes)) => {
                            call(r.inner, shared, r.parts, Either::Left(Full::new(bytes)))
                        }
                    });
                }
                StageProj::Answer { .. } => {
                    if let StageOwned::Answer { resp } =
                        this.stage.as_mut().project_replace(Stage::Done)
                    {
                        return Poll::Ready(Ok(resp));
                    }
                }
                StageProj::Calling { fut, .. } => {
                    let result = ready!(fut.poll(cx));
                    let StageOwned::Calling { shared, .. } =
                        this.stage.as_mut().project_replace(Stage::Done)
                    else {
                        continue;
                    };
                    return Poll::Ready(result.map(|resp| respond(this.config, shared, resp)));
                }
                // Polled after completion.
                StageProj::Done => return Poll::Pending,
            }
        }
    }
}
