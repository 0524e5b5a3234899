//! The transport abstraction: anything that turns an HTTP request into a response. Every
//! `tower::Service` over HTTP qualifies, so tower middleware stacks plug in.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::error::BoxError;
use crate::stream::{Body, boxed_body};
use crate::{Code, Error};

/// Sends HTTP requests for a [`Client`](super::Client).
pub trait Transport: Clone + Send + Sync + 'static {
    /// Sends one request and resolves with the response head (the body streams on).
    fn send(
        &self,
        request: http::Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>>;
}

impl<S, B> Transport for S
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Into<Bytes> + bytes::Buf,
    B::Error: Into<BoxError>,
{
    fn send(
        &self,
        request: http::Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>> {
        Box::pin(SendFuture::<S, B> {
            service: Box::new(self.clone()),
            request: Some(request),
            call: None,
            _body: std::marker::PhantomData,
        })
    }
}

/// Drives `poll_ready` then `call` by hand: an `async` block here trips a compiler limitation
/// with higher-ranked lifetimes in `Box<dyn Error>` projections.
struct SendFuture<S: tower_service::Service<http::Request<Body>>, B> {
    service: Box<S>,
    request: Option<http::Request<Body>>,
    call: Option<Pin<Box<S::Future>>>,
    _body: std::marker::PhantomData<fn() -> B>,
}

impl<S, B> Future for SendFuture<S, B>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Into<Bytes> + bytes::Buf,
    B::Error: Into<BoxError>,
{
    type Output = Result<http::Response<Body>, Error>;

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if let Some(call) = this.call.as_mut() {
                return call.as_mut().poll(cx).map(|r| match r {
                    Ok(response) => Ok(response.map(boxed_body)),
                    Err(e) => Err(transport_error(e.into())),
                });
            }
            match this.service.poll_ready(cx) {
                std::task::Poll::Pending => return std::task::Poll::Pending,
                std::task::Poll::Ready(Err(e)) => {
                    return std::task::Poll::Ready(Err(transport_error(e.into())));
                }
                std::task::Poll::Ready(Ok(())) => {
                    let Some(request) = this.request.take() else {
                        return std::task::Poll::Ready(Err(Error::internal(
                            "request already sent",
                        )));
                    };
                    this.call = Some(Box::pin(this.service.call(request)));
                }
            }
        }
    }
}

/// Maps an HTTP/2 stream reset to the code the gRPC spec assigns it.
fn h2_code(reason: h2::Reason) -> Code {
    match reason {
        h2::Reason::REFUSED_STREAM => Code::Unavailable,
        h2::Reason::CANCEL => Code::Canceled,
        h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
        h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
        _ => Code::Internal,
    }
}

/// Classifies a transport failure: connection problems are `unavailable`, stream resets map
/// per the gRPC spec, everything else is `unavailable` with the cause kept.
pub(crate) fn transport_error(err: BoxError) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err.as_ref());
    while let Some(e) = source {
        if let Some(h2) = e.downcast_ref::<h2::Error>()
            && let Some(reason) = h2.reason()
        {
            let code = h2_code(reason);
            return Error::new(code, format!("HTTP/2 stream reset: {reason}")).with_source(err);
        }
        if let Some(volley) = e.downcast_ref::<Error>() {
            return Error::new(volley.code(), volley.message().to_string()).with_source(err);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return Error::new(Code::DeadlineExceeded, io.to_string()).with_source(err);
        }
        source = e.source();
    }
    Error::new(Code::Unavailable, err.to_string()).with_source(err)
}
