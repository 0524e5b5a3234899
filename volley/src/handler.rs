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

use crate::codec::{Codec, Message};
use crate::stream::{RawStream, ResponseStream, Streaming};
use crate::{Error, Request, Response, Spec};

/// Incoming messages, before decoding.
pub(crate) enum Input {
    /// A Connect unary body (already decompressed).
    Single(Bytes),
    /// Enveloped messages.
    Stream(RawStream),
}

/// Outgoing messages, encoded but not compressed or framed.
pub(crate) enum Output {
    Single(Bytes),
    Stream(RawStream),
}

pub(crate) struct CallInput {
    pub(crate) headers: HeaderMap,
    pub(crate) extensions: Extensions,
    pub(crate) deadline: Option<Instant>,
    pub(crate) codec: Codec,
    pub(crate) input: Input,
    pub(crate) spec: Spec,
}

pub(crate) struct CallOutput {
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

/// Reads exactly one message from a unary request.
async fn single(input: Input, spec: &Spec) -> Result<Bytes, Error> {
    match input {
        Input::Single(b) => Ok(b),
        Input::Stream(mut s) => {
            let first = s.next().await.transpose()?.ok_or_else(|| {
                Error::unimplemented(format!(
                    "unary request for {} has zero messages",
                    spec.procedure
                ))
            })?;
            if s.next().await.transpose()?.is_some() {
                return Err(Error::unimplemented(format!(
                    "unary request for {} has multiple messages",
                    spec.procedure
                )));
            }
            Ok(first)
        }
    }
}

fn into_stream(input: Input) -> RawStream {
    match input {
        Input::Single(b) => Box::pin(futures_util::stream::once(async move { Ok(b) })),
        Input::Stream(s) => s,
    }
}

fn encode_one<M: Message>(codec: Codec, message: &M) -> Result<Bytes, Error> {
    let mut buf = bytes::BytesMut::new();
    codec.encode(message, &mut buf)?;
    Ok(buf.freeze())
}

fn encode_stream<M: Message>(codec: Codec, stream: ResponseStream<M>) -> RawStream {
    Box::pin(stream.map(move |item| item.and_then(|m| encode_one(codec, &m))))
}

fn finish_single<M: Message>(codec: Codec, response: Response<M>) -> Result<CallOutput, Error> {
    let (message, headers, trailers) = response.into_parts();
    Ok(CallOutput {
        headers,
        trailers,
        output: Output::Single(encode_one(codec, &message)?),
    })
}

fn finish_stream<M: Message>(codec: Codec, response: Response<ResponseStream<M>>) -> CallOutput {
    let (stream, headers, trailers) = response.into_parts();
    CallOutput {
        headers,
        trailers,
        output: Output::Stream(encode_stream(codec, stream)),
    }
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
        let codec = call.codec;
        let CallInput {
            headers,
            extensions,
            deadline,
            input,
            spec,
            ..
        } = call;
        if let Input::Single(bytes) = input {
            // The hot path: decode before boxing, so one future holds only the handler's.
            let fut = codec.decode::<Req>(bytes).map(|message| {
                (self.f)(Request::from_parts(
                    message, headers, extensions, deadline, spec,
                ))
            });
            return Box::pin(async move { finish_single(codec, fut?.await?) });
        }
        let f = self.f.clone();
        Box::pin(async move {
            let message = codec.decode::<Req>(single(input, &spec).await?)?;
            let response = f(Request::from_parts(
                message, headers, extensions, deadline, spec,
            ))
            .await?;
            finish_single(codec, response)
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
        let codec = call.codec;
        let CallInput {
            headers,
            extensions,
            deadline,
            input,
            spec,
            ..
        } = call;
        let f = self.f.clone();
        Box::pin(async move {
            let message = codec.decode::<Req>(single(input, &spec).await?)?;
            let response = f(Request::from_parts(
                message, headers, extensions, deadline, spec,
            ))
            .await?;
            Ok(finish_stream(codec, response))
        })
    }
}

impl<F, Fut, Req, Res> ErasedHandler for ClientStream<F, Req, Res>
where
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<Res>, Error>> + Send + 'static,
    Req: Message,
    Res: Message,
{
    fn call(&self, call: CallInput) -> HandlerFuture {
        let codec = call.codec;
        let CallInput {
            headers,
            extensions,
            deadline,
            input,
            spec,
            ..
        } = call;
        let stream = Streaming::new(into_stream(input), codec, Arc::default());
        let fut = (self.f)(Request::from_parts(
            stream, headers, extensions, deadline, spec,
        ));
        Box::pin(async move { finish_single(codec, fut.await?) })
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
        let codec = call.codec;
        let CallInput {
            headers,
            extensions,
            deadline,
            input,
            spec,
            ..
        } = call;
        let stream = Streaming::new(into_stream(input), codec, Arc::default());
        let fut = (self.f)(Request::from_parts(
            stream, headers, extensions, deadline, spec,
        ));
        Box::pin(async move { Ok(finish_stream(codec, fut.await?)) })
    }
}
