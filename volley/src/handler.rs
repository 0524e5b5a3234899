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
    std::future::poll_fn(move |cx| match &mut input {
        Input::Single(bytes) => std::task::Poll::Ready(Ok(std::mem::take(bytes))),
        Input::Envelopes(reader) => loop {
            match std::task::ready!(reader.poll_message(cx)) {
                Some(Ok(message)) if first.is_none() => first = Some(message),
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
    })
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
        let codec = call.codec.clone();
        if let Some(chain) = call.interceptors.clone() {
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
            return Box::pin(async move {
                let message = codec.decode::<Req>(single(input, &spec).await?)?;
                let response =
                    intercepted_unary(f, chain, info, headers, extensions, arrival, message)
                        .await?;
                finish_single(&codec, response, None)
            });
        }
        let CallInput {
            headers,
            extensions,
            deadline,
            input,
            spec,
            arrival,
            ..
        } = call;
        if let Input::Single(bytes) = input {
            // The hot path: decode before boxing, so one future holds only the handler's.
            let fut = codec.decode::<Req>(bytes).map(|message| {
                (self.f)(Request::from_parts(
                    message, headers, extensions, deadline, spec, arrival,
                ))
            });
            return Box::pin(async move { finish_single(&codec, fut?.await?, None) });
        }
        let f = self.f.clone();
        Box::pin(async move {
            let message = codec.decode::<Req>(single(input, &spec).await?)?;
            let response = f(Request::from_parts(
                message, headers, extensions, deadline, spec, arrival,
            ))
            .await?;
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
        let f = self.f.clone();
        let (Some(chain), Some(info)) = (chain, info) else {
            // No interceptors: a future holding nothing for them.
            return Box::pin(async move {
                let message = codec.decode::<Req>(single(input, &spec).await?)?;
                let response = f(Request::from_parts(
                    message, headers, extensions, deadline, spec, arrival,
                ))
                .await?;
                Ok(finish_stream(&codec, response, None))
            });
        };
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
fn call_with_stream<F, Fut, Req, R>(
    f: &Arc<F>,
    call: CallInput,
    finish: fn(&CodecHandle, R, Option<Observers>) -> Result<CallOutput, Error>,
) -> HandlerFuture
where
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send + 'static,
    Req: Message,
    R: Send + 'static,
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
        return Box::pin(async move { finish(&codec, fut.await?, None) });
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
        call_with_stream(&self.f, call, |codec, response, observers| {
            Ok(finish_stream::<Res>(codec, response, observers))
        })
    }
}
