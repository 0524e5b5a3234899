//! The four RPC kinds adapted onto one streaming core. Every handler, whatever its kind, is
//! erased to "raw messages in, raw messages out"; unary is the special case with one of each.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Extensions, HeaderMap};

use crate::codec::{CodecHandle, Message};
use crate::interceptor::{
    CallInfo, Endpoint, Interceptor, Observers, Side, UnaryRequest, UnaryResponse, run_unary,
};
use crate::stream::{
    Encoded, FrameReader, Outgoing, OutgoingStream, RawStream, ResponseStream, Streaming,
};
use crate::{Error, Request, Response, Spec};

/// Incoming messages, before decoding.
pub(crate) enum Input {
    /// A Connect unary body (already decompressed).
    Single(Bytes),
    /// Enveloped messages, read as the handler asks for them (a unary handler reads one
    /// without boxing the reader; a streaming one gets it as a [`RawStream`]).
    Envelopes(FrameReader),
}

/// Outgoing messages, encoded but not compressed or framed.
pub(crate) enum Output {
    Single(Encoded),
    Stream(OutgoingStream),
}

pub(crate) struct CallInput {
    pub(crate) protocol: crate::Protocol,
    pub(crate) interceptors: Option<Chain>,
    pub(crate) headers: HeaderMap,
    pub(crate) extensions: Extensions,
    pub(crate) deadline: Option<Instant>,
    pub(crate) codec: CodecHandle,
    pub(crate) input: Input,
    pub(crate) spec: Spec,
    pub(crate) arrival: crate::peer::Arrival,
}

pub(crate) struct CallOutput {
    pub(crate) observers: Option<Observers>,
    pub(crate) headers: HeaderMap,
    pub(crate) trailers: HeaderMap,
    pub(crate) output: Output,
}

pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<CallOutput, Error>> + Send>>;

/// A handler of any kind, erased.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn call(&self, input: CallInput) -> HandlerFuture;
}

pub(crate) type SharedHandler = Arc<dyn ErasedHandler>;

/// The interceptors of a router, shared by every call.
pub(crate) type Chain = Arc<Vec<Arc<dyn Interceptor>>>;

fn call_info(input: &CallInput) -> CallInfo {
    CallInfo {
        spec: input.spec,
        protocol: input.protocol,
        side: Side::Server,
        peer: input.arrival.peer_addr(&input.extensions),
        deadline: input.deadline,
    }
}

/// Reads exactly one message from a unary request.
///
/// A future that holds the input once: an `async fn` would keep the reader twice in its state
/// (the argument and the binding it is matched into), and every unary gRPC call's boxed
/// future holds this one.
fn single(input: Input, spec: &Spec) -> impl Future<Output = Result<Bytes, Error>> + Send + '_ {
    let mut input = input;
    let mut first = None;
    std::future::poll_fn(move |cx| poll_single(&mut input, &mut first, spec, cx))
}

/// Polls `input` for its one message; `first` holds it while the reader is asked whether
/// another follows.
fn poll_single(
    input: &mut Input,
    first: &mut Option<Bytes>,
    spec: &Spec,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Result<Bytes, Error>> {
    match input {
        Input::Single(bytes) => std::task::Poll::Ready(Ok(std::mem::take(bytes))),
        Input::Envelopes(reader) => loop {
            match std::task::ready!(reader.poll_message(cx)) {
                Some(Ok(message)) if first.is_none() => *first = Some(message),
                Some(Ok(_)) => {
                    return std::task::Poll::Ready(Err(Error::unimplemented(format!(
                        "unary request for {} has multiple messages",
                        spec.procedure
                    ))));
                }
                Some(Err(err)) => return std::task::Poll::Ready(Err(err)),
                None => {
                    return std::task::Poll::Ready(first.take().ok_or_else(|| {
                        Error::unimplemented(format!(
                            "unary request for {} has zero messages",
                            spec.procedure
                        ))
                    }));
                }
            }
        },
    }
}

fn into_stream(input: Input) -> RawStream {
    match input {
        Input::Single(b) => Box::pin(futures_util::stream::once(async move { Ok(b) })),
        Input::Envelopes(mut reader) => Box::pin(futures_util::stream::poll_fn(move |cx| {
            reader.poll_message(cx)
        })),
    }
}

fn encode_one<M: Message>(codec: &CodecHandle, message: &M) -> Result<Encoded, Error> {
    Encoded::new(codec, message)
}

fn encode_stream<M: Message>(
    codec: CodecHandle,
    stream: ResponseStream<M>,
    observers: Option<Observers>,
) -> OutgoingStream {
    Box::new(EncodeEach {
        codec,
        stream,
        observers,
    })
}

/// A handler's response stream, each message shown to the hooks and then encoded into the
/// body's buffer as the body asks for it.
struct EncodeEach<M> {
    codec: CodecHandle,
    stream: ResponseStream<M>,
    observers: Option<Observers>,
}

impl<M: Message> Outgoing for EncodeEach<M> {
    fn poll_encode(
        &mut self,
        cx: &mut std::task::Context<'_>,
        buf: &mut bytes::BytesMut,
    ) -> std::task::Poll<Option<Result<(), Error>>> {
        let item = std::task::ready!(self.stream.poll_next_unpin(cx));
        std::task::Poll::Ready(item.map(|item| {
            let mut message = item?;
            if let Some(o) = &self.observers {
                o.sent(&mut message)?;
            }
            Encoded::append(&self.codec, &message, buf)
        }))
    }
}

fn finish_single<M: Message>(
    codec: &CodecHandle,
    response: Response<M>,
    observers: Option<Observers>,
) -> Result<CallOutput, Error> {
    let (mut message, headers, trailers) = response.into_parts();
    if let Some(o) = &observers {
        o.sent(&mut message)?;
    }
    let output = Output::Single(encode_one(codec, &message)?);
    Ok(CallOutput {
        observers,
        headers,
        trailers,
        output,
    })
}

fn finish_stream_ok<M: Message>(
    codec: &CodecHandle,
    response: Response<ResponseStream<M>>,
    observers: Option<Observers>,
) -> Result<CallOutput, Error> {
    Ok(finish_stream(codec, response, observers))
}

pin_project_lite::pin_project! {
    /// A handler's future, then its response made the call's output: every kind's boxed
    /// future when no interceptor runs. Written out because an `async` block awaiting the
    /// handler's future keeps that future twice (as captured and as awaited), more than
    /// doubling what is allocated and copied per call, and past the size the allocator
    /// serves from its per-thread cache.
    struct Finish<Fut, Fin> {
        #[pin]
        fut: Fut,
        codec: CodecHandle,
        // How the response becomes the call's output: `finish_single` for one message,
        // `finish_stream_ok` for a stream (a function item: no size, a direct call).
        finish: Fin,
    }
}

impl<Fut, R, Fin> Future for Finish<Fut, Fin>
where
    Fut: Future<Output = Result<R, Error>>,
    Fin: Fn(&CodecHandle, R, Option<Observers>) -> Result<CallOutput, Error>,
{
    type Output = Result<CallOutput, Error>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.fut.poll(cx))?;
        std::task::Poll::Ready((this.finish)(this.codec, response, None))
    }
}

/// What starting a handler of one request message takes besides that message.
struct Start<F, Req, Fin> {
    f: Arc<F>,
    codec: CodecHandle,
    finish: Fin,
    headers: HeaderMap,
    extensions: Extensions,
    deadline: Option<Instant>,
    arrival: crate::peer::Arrival,
    _request: PhantomData<fn() -> Req>,
}

pin_project_lite::pin_project! {
    /// A call of one request message (unary, server stream) whose message is still to be
    /// read from its envelopes, then the handler's [`Finish`]. Two states of one future rather than an `async` block, which
    /// would keep the reader and the handler's inputs beside the handler's future for the
    /// whole call.
    #[project = ReadThenCallProj]
    enum ReadThenCall<F, Req, Fut, Fin> {
        Reading {
            input: Input,
            first: Option<Bytes>,
            spec: Spec,
            start: Option<Start<F, Req, Fin>>,
        },
        Calling {
            #[pin]
            call: Finish<Fut, Fin>,
        },
    }
}

impl<F, Fut, Req, R, Fin> Future for ReadThenCall<F, Req, Fut, Fin>
where
    F: Fn(Request<Req>) -> Fut,
    Fut: Future<Output = Result<R, Error>>,
    Req: Message,
    Fin: Fn(&CodecHandle, R, Option<Observers>) -> Result<CallOutput, Error>,
{
    type Output = Result<CallOutput, Error>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        loop {
            let call = match self.as_mut().project() {
                ReadThenCallProj::Calling { call } => return call.poll(cx),
                ReadThenCallProj::Reading {
                    input,
                    first,
                    spec,
                    start,
                } => {
                    let read = std::task::ready!(poll_single(input, first, spec, cx));
                    // Taken once the message is in: a call polled again after it failed
                    // finds it gone.
                    let Some(s) = start.take() else {
                        return std::task::Poll::Ready(Err(Error::internal(
                            "a unary call polled after it ended",
                        )));
                    };
                    let message = read.and_then(|bytes| s.codec.decode::<Req>(bytes))?;
                    Finish {
                        fut: (s.f)(Request::from_parts(
                            message,
                            s.headers,
                            s.extensions,
                            s.deadline,
                            *spec,
                            s.arrival,
                        )),
                        codec: s.codec,
                        finish: s.finish,
                    }
                }
            };
            self.set(ReadThenCall::Calling { call });
        }
    }
}

impl<F, Req, Fut, Fin> ReadThenCall<F, Req, Fut, Fin>
where
    F: Fn(Request<Req>) -> Fut,
    Req: Message,
{
    /// The boxed future of a call of one request message without interceptors: a Connect
    /// unary body is decoded and the handler started at once, enveloped input is read first.
    fn start<R>(f: &Arc<F>, call: CallInput, finish: Fin) -> HandlerFuture
    where
        F: Send + Sync + 'static,
        Fut: Future<Output = Result<R, Error>> + Send + 'static,
        Fin: Fn(&CodecHandle, R, Option<Observers>) -> Result<CallOutput, Error> + Send + 'static,
        Req: 'static,
    {
        let CallInput {
            headers,
            extensions,
            deadline,
            input,
            spec,
            arrival,
            codec,
            ..
        } = call;
        if let Input::Single(bytes) = input {
            // The hot path: decode before boxing, so the boxed future holds only the
            // handler's future and the codec.
            return match codec.decode::<Req>(bytes) {
                Ok(message) => Box::pin(Finish {
                    fut: f(Request::from_parts(
                        message, headers, extensions, deadline, spec, arrival,
                    )),
                    codec,
                    finish,
                }),
                Err(err) => Box::pin(std::future::ready(Err(err))),
            };
        }
        Box::pin(ReadThenCall::Reading {
            input,
            first: None,
            spec,
            start: Some(Start {
                f: f.clone(),
                codec,
                finish,
                headers,
                extensions,
                deadline,
                arrival,
                _request: PhantomData,
            }),
        })
    }
}

fn finish_stream<M: Message>(
    codec: &CodecHandle,
    response: Response<ResponseStream<M>>,
    observers: Option<Observers>,
) -> CallOutput {
    let (stream, headers, trailers) = response.into_parts();
    let output = Output::Stream(encode_stream(codec.clone(), stream, observers.clone()));
    CallOutput {
        observers,
        headers,
        trailers,
        output,
    }
}

/// Ends the observers with the handler's error before any response exists; a message a hook
/// rejected fails the call even if the handler then succeeded.
fn observe_error<T>(observers: &Option<Observers>, result: Result<T, Error>) -> Result<T, Error> {
    let Some(o) = observers else {
        return result;
    };
    let mut result = result.and_then(|v| o.failure().map_or(Ok(v), Err));
    if let Err(e) = &mut result {
        o.end_error(e);
    }
    result
}

/// A unary call through the interceptor chain: the message travels typed, behind `dyn Any`.
async fn intercepted_unary<F, Fut, Req, Res>(
    f: Arc<F>,
    chain: Chain,
    info: CallInfo,
    headers: HeaderMap,
    extensions: Extensions,
    arrival: crate::peer::Arrival,
    message: Req,
) -> Result<Response<Res>, Error>
where
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Res>, Error>> + Send + 'static,
    Req: Message,
    Res: Message,
{
    let endpoint: Endpoint = Arc::new(move |request: UnaryRequest| {
        let f = f.clone();
        let arrival = arrival.clone();
        Box::pin(async move {
            let (info, headers, extensions, message) = request.into_parts();
            let message = *message.downcast::<Req>().map_err(|_| {
                Error::internal(
                    "an interceptor replaced the request with a message of another type",
                )
            })?;
            let request = Request::from_parts(
                message,
                headers,
                extensions,
                info.deadline,
                info.spec,
                arrival,
            );
            let (m, h, t) = f(request).await?.into_parts();
            Ok(UnaryResponse::from_parts(Box::new(m), h, t))
        })
    });
    let request = UnaryRequest::from_parts(info, headers, extensions, Box::new(message));
    let (m, h, t, _) = run_unary(&chain, endpoint, request)
        .await?
        .into_message::<Res>()?;
    Ok(Response::from_parts(m, h, t))
}

macro_rules! adapter {
    ($name:ident) => {
        pub(crate) struct $name<F, Req, Res> {
            f: Arc<F>,
            _types: PhantomData<fn(Req) -> Res>,
        }

        impl<F, Req, Res> $name<F, Req, Res> {
            pub(crate) fn new(f: F) -> Self {
                Self {
                    f: Arc::new(f),
                    _types: PhantomData,
                }
            }
        }
    };
}

adapter!(Unary);
adapter!(ServerStream);
adapter!(ClientStream);
adapter!(BidiStream);

impl<F, Fut, Req, Res> ErasedHandler for Unary<F, Req, Res>
where
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Res>, Error>> + Send + 'static,
    Req: Message,
    Res: Message,
{
    fn call(&self, call: CallInput) -> HandlerFuture {
        let Some(chain) = call.interceptors.clone() else {
            return ReadThenCall::start(&self.f, call, finish_single::<Res>);
        };
        let codec = call.codec.clone();
        let info = call_info(&call);
        let f = self.f.clone();
        let CallInput {
            headers,
            extensions,
            input,
            spec,
            arrival,
            ..
        } = call;
        Box::pin(async move {
            let message = codec.decode::<Req>(single(input, &spec).await?)?;
            let response =
                intercepted_unary(f, chain, info, headers, extensions, arrival, message).await?;
            finish_single(&codec, response, None)
        })
    }
}

impl<F, Fut, Req, Res> ErasedHandler for ServerStream<F, Req, Res>
where
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<ResponseStream<Res>>, Error>> + Send + 'static,
    Req: Message,
    Res: Message,
{
    fn call(&self, call: CallInput) -> HandlerFuture {
        let Some(chain) = call.interceptors.clone() else {
            return ReadThenCall::start(&self.f, call, finish_stream_ok::<Res>);
        };
        let codec = call.codec.clone();
        let info = call_info(&call);
        let CallInput {
            mut headers,
            mut extensions,
            deadline,
            input,
            spec,
            arrival,
            ..
        } = call;
        let f = self.f.clone();
        Box::pin(async move {
            // The open hooks run first: a refusal means the handler never runs.
            let observers = Observers::start(&chain, info, &mut headers, &mut extensions).await?;
            let obs = observers.clone();
            let mut guard = crate::interceptor::EndGuard(observers.clone());
            let decoder = codec.clone();
            let result = async move {
                let mut message = decoder.decode::<Req>(single(input, &spec).await?)?;
                if let Some(o) = &obs {
                    o.received(&mut message)?;
                }
                f(Request::from_parts(
                    message, headers, extensions, deadline, spec, arrival,
                ))
                .await
            }
            .await;
            guard.disarm();
            let response = observe_error(&observers, result)?;
            Ok(finish_stream(&codec, response, observers))
        })
    }
}

/// The shared driver of the two kinds whose input is a stream: hands the handler a
/// [`Streaming`] request, then turns its response into output with `finish`.
fn call_with_stream<F, Fut, Req, R, Fin>(f: &Arc<F>, call: CallInput, finish: Fin) -> HandlerFuture
where
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
    Req: Message,
    R: Send + 'static,
    Fin: Fn(&CodecHandle, R, Option<Observers>) -> Result<CallOutput, Error> + Send + 'static,
{
    let codec = call.codec.clone();
    let chain = call.interceptors.clone();
    let info = chain.as_ref().map(|_| call_info(&call));
    let CallInput {
        mut headers,
        mut extensions,
        deadline,
        input,
        spec,
        arrival,
        ..
    } = call;
    let (Some(chain), Some(info)) = (chain, info) else {
        let stream = Streaming::new(into_stream(input), codec.clone(), Arc::default());
        let fut = f(Request::from_parts(
            stream, headers, extensions, deadline, spec, arrival,
        ));
        return Box::pin(Finish { fut, codec, finish });
    };
    let f = f.clone();
    Box::pin(async move {
        // The open hooks run first: a refusal means the handler never runs.
        let observers = Observers::start(&chain, info, &mut headers, &mut extensions).await?;
        let stream = Streaming::new(into_stream(input), codec.clone(), Arc::default())
            .observed(observers.clone(), false);
        let fut = f(Request::from_parts(
            stream, headers, extensions, deadline, spec, arrival,
        ));
        let mut guard = crate::interceptor::EndGuard(observers.clone());
        let result = fut.await;
        guard.disarm();
        let response = observe_error(&observers, result)?;
        let output = finish(&codec, response, observers.clone());
        observe_error(&observers, output)
    })
}

impl<F, Fut, Req, Res> ErasedHandler for ClientStream<F, Req, Res>
where
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Res>, Error>> + Send + 'static,
    Req: Message,
    Res: Message,
{
    fn call(&self, call: CallInput) -> HandlerFuture {
        call_with_stream(&self.f, call, finish_single::<Res>)
    }
}

impl<F, Fut, Req, Res> ErasedHandler for BidiStream<F, Req, Res>
where
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<ResponseStream<Res>>, Error>> + Send + 'static,
    Req: Message,
    Res: Message,
{
    fn call(&self, call: CallInput) -> HandlerFuture {
        call_with_stream(&self.f, call, finish_stream_ok::<Res>)
    }
}
