//! A gateway for services known only at run time: it loads its backend's descriptors at
//! startup (an encoded `FileDescriptorSet`, or the backend's gRPC reflection), registers every
//! method of every service under its runtime name, and forwards each call, whatever protocol
//! and codec it arrived in (Connect with JSON from curl, gRPC, gRPC-Web), to the backend over
//! gRPC with the binary codec.
//!
//! Binary requests are forwarded without being decoded; JSON ones are transcoded with the
//! method's descriptors ([`volley_dynamic::Dynamic::described`]). The caller's deadline goes
//! along. Every stream type is forwarded; a client or bidi stream whose incoming side fails
//! ends the backend's request stream there, and the call fails with that error.

use futures_util::StreamExt as _;
use volley::client::Transport;
use volley::{
    CallOptions, Client, Error, Request, Response, ResponseStream, Router, StreamType, Streaming,
};
use volley_dynamic::{Dynamic, Method, Schema};

/// A router forwarding every method of `schema` to `backend`.
pub fn gateway<T: Transport>(schema: &Schema, backend: Client<T>) -> Router {
    schema
        .methods()
        .into_iter()
        .fold(Router::new(), |router, method| {
            forward(router, method, backend.clone())
        })
}

/// The options of the backend call: the caller's deadline.
fn options<M>(request: &Request<M>) -> CallOptions {
    CallOptions::new().with_deadline_of(request)
}

/// Registers one method, forwarding to `backend`.
fn forward<T: Transport>(router: Router, method: Method, backend: Client<T>) -> Router {
    let spec = method.spec();
    let (input, output) = (method.input(), method.output());
    match spec.stream_type {
        StreamType::Unary => router.unary(spec, move |request: Request<Dynamic>| {
            let (backend, input, output) = (backend.clone(), input.clone(), output.clone());
            async move {
                let options = options(&request);
                let message = request.into_message().described(input);
                let response = backend
                    .unary::<Dynamic, Dynamic>(spec, message, options)
                    .await?;
                Ok(Response::new(response.into_message().described(output)))
            }
        }),
        StreamType::ServerStream => router.server_stream(spec, move |request: Request<Dynamic>| {
            let (backend, input, output) = (backend.clone(), input.clone(), output.clone());
            async move {
                let options = options(&request);
                let message = request.into_message().described(input);
                let replies = backend
                    .server_stream::<Dynamic, Dynamic>(spec, message, options)
                    .await?
                    .into_message();
                Ok(Response::new(described(replies, output)))
            }
        }),
        StreamType::ClientStream => {
            router.client_stream(spec, move |request: Request<Streaming<Dynamic>>| {
                let (backend, input, output) = (backend.clone(), input.clone(), output.clone());
                async move {
                    let options = options(&request);
                    let (requests, failure) = until_error(request.into_message(), input);
                    let response = backend
                        .client_stream::<Dynamic, Dynamic, _>(spec, requests, options)
                        .await;
                    failure.check()?;
                    Ok(Response::new(response?.into_message().described(output)))
                }
            })
        }
        StreamType::BidiStream => {
            router.bidi_stream(spec, move |request: Request<Streaming<Dynamic>>| {
                let (backend, input, output) = (backend.clone(), input.clone(), output.clone());
                async move {
                    let options = options(&request);
                    let stream = backend
                        .bidi_stream::<Dynamic, Dynamic>(spec, options)
                        .await?;
                    let (mut sender, receiver) = stream.into_split();
                    let (requests, failure) = until_error(request.into_message(), input);
                    let pump = tokio::spawn(async move {
                        let mut requests = std::pin::pin!(requests);
                        while let Some(message) = requests.next().await {
                            if sender.send(message).await.is_err() {
                                break;
                            }
                        }
                        sender.close();
                    });
                    let replies = futures_util::stream::unfold(
                        (receiver, Some(failure), Some(pump)),
                        |(mut receiver, failure, pump)| async move {
                            match receiver.message().await {
                                Ok(Some(m)) => Some((Ok(m), (receiver, failure, pump))),
                                Ok(None) => {
                                    // The backend is done: report a failed incoming side.
                                    if let Some(pump) = pump {
                                        let _ = pump.await;
                                    }
                                    let err = failure.and_then(|f| f.check().err())?;
                                    Some((Err(err), (receiver, None, None)))
                                }
                                Err(e) => Some((Err(e), (receiver, None, None))),
                            }
                        },
                    );
                    Ok(Response::new(described(replies, output)))
                }
            })
        }
    }
}

/// Each message of `stream`, described by `descriptor`, as a response stream.
fn described(
    stream: impl futures_util::Stream<Item = Result<Dynamic, Error>> + Send + 'static,
    descriptor: volley_dynamic::prost_reflect::MessageDescriptor,
) -> ResponseStream<Dynamic> {
    Box::pin(stream.map(move |item| item.map(|m| m.described(descriptor.clone()))))
}

/// Where a forwarded request stream records the error it stopped at.
struct Failure(std::sync::Arc<std::sync::Mutex<Option<Error>>>);

impl Failure {
    /// The recorded error, if the incoming stream failed.
    fn check(&self) -> Result<(), Error> {
        match self.0.lock().map(|mut e| e.take()) {
            Ok(Some(e)) => Err(e),
            _ => Ok(()),
        }
    }
}

/// The messages of `incoming` up to its first error (which is recorded in the [`Failure`]),
/// each described by `descriptor`.
fn until_error(
    incoming: Streaming<Dynamic>,
    descriptor: volley_dynamic::prost_reflect::MessageDescriptor,
) -> (
    impl futures_util::Stream<Item = Dynamic> + Send + 'static,
    Failure,
) {
    let slot: std::sync::Arc<std::sync::Mutex<Option<Error>>> = std::sync::Arc::default();
    let record = slot.clone();
    let stream = incoming
        .take_while(move |item| {
            let ok = match item {
                Ok(_) => true,
                Err(e) => {
                    if let Ok(mut slot) = record.lock() {
                        // `Error` is not `Clone`: the code and message go along.
                        *slot = Some(Error::new(e.code(), e.message().to_string()));
                    }
                    false
                }
            };
            std::future::ready(ok)
        })
        .filter_map(move |item| {
            std::future::ready(item.ok().map(|m| m.described(descriptor.clone())))
        });
    (stream, Failure(slot))
}
