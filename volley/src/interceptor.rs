//! Interceptors: async hooks around every call, on the server ([`Router::interceptor`]) and
//! on the client ([`ClientConfig::interceptor`]), run in the order they were added.
//!
//! - Unary calls go through [`Interceptor::unary`], which sees the method [`Spec`], headers,
//!   extensions, peer and deadline and the typed message, may rewrite any of them, short-circuit
//!   with a response or an [`Error`], and sees (and may change) the response and its trailers.
//! - Streaming calls call [`Interceptor::stream`] once at the start (which may reject the call
//!   or stamp headers and extensions) and get back an optional [`StreamObserver`] told about every
//!   message each way and how the stream ended — including cancellation and deadline expiry.
//!
//! With no interceptor installed, calls take exactly the path they take without this module.
//!
//! [`Router::interceptor`]: crate::Router::interceptor
//! [`ClientConfig::interceptor`]: crate::ClientConfig::interceptor

use std::any::Any;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use http::{Extensions, HeaderMap};

use crate::{Error, Protocol, Spec};

/// A boxed future, as interceptors return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which end of the call an interceptor runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// In a [`Router`](crate::Router).
    Server,
    /// In a [`Client`](crate::Client).
    Client,
}

/// What an interceptor knows about the call.
///
/// Fields may be added: outside this crate, build one with [`CallInfo::new`] (to test an
/// interceptor) and set the public fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CallInfo {
    /// The method.
    pub spec: Spec,
    /// The wire protocol.
    pub protocol: Protocol,
    /// Server or client.
    pub side: Side,
    /// The peer's address (server side, built-in server).
    pub peer: Option<SocketAddr>,
    /// The call's deadline, if any.
    pub deadline: Option<Instant>,
}

impl CallInfo {
    /// About a call of `spec` in `protocol` on `side`, with no peer and no deadline.
    pub fn new(spec: Spec, protocol: Protocol, side: Side) -> Self {
        Self {
            spec,
            protocol,
            side,
            peer: None,
            deadline: None,
        }
    }
}

/// A unary request as interceptors see it: metadata plus the typed message behind `dyn Any`.
#[non_exhaustive]
pub struct UnaryRequest {
    /// About the call.
    pub info: CallInfo,
    /// Request headers (mutable: changes reach the handler, or the wire on the client).
    pub headers: HeaderMap,
    /// Request extensions (values set here reach the handler).
    pub extensions: Extensions,
    message: Box<dyn Any + Send>,
}

impl std::fmt::Debug for UnaryRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnaryRequest")
            .field("info", &self.info)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl UnaryRequest {
    /// A request carrying `message` (the method's request type), with no headers or
    /// extensions: for testing an interceptor by calling it directly.
    pub fn new<T: Send + 'static>(info: CallInfo, message: T) -> Self {
        Self::from_parts(info, HeaderMap::new(), Extensions::new(), Box::new(message))
    }

    pub(crate) fn from_parts(
        info: CallInfo,
        headers: HeaderMap,
        extensions: Extensions,
        message: Box<dyn Any + Send>,
    ) -> Self {
        Self {
            info,
            headers,
            extensions,
            message,
        }
    }

    /// The message, if it is a `T`.
    pub fn message<T: 'static>(&self) -> Option<&T> {
        self.message.downcast_ref()
    }

    /// The message, mutable, if it is a `T`.
    pub fn message_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.message.downcast_mut()
    }

    pub(crate) fn into_parts(self) -> (CallInfo, HeaderMap, Extensions, Box<dyn Any + Send>) {
        (self.info, self.headers, self.extensions, self.message)
    }
}

/// A unary response as interceptors see it.
#[non_exhaustive]
pub struct UnaryResponse {
    /// Response headers.
    pub headers: HeaderMap,
    /// Response trailers.
    pub trailers: HeaderMap,
    /// Response extensions (client side: the [`ConnectionInfo`](crate::ConnectionInfo) of the
    /// connection the call used). Not sent anywhere.
    pub extensions: Extensions,
    message: Box<dyn Any + Send>,
}

impl std::fmt::Debug for UnaryResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnaryResponse")
            .field("headers", &self.headers)
            .field("trailers", &self.trailers)
            .finish_non_exhaustive()
    }
}

impl UnaryResponse {
    /// A response carrying `message` (which must be the method's response type), for
    /// interceptors that answer without calling further.
    pub fn new<T: Send + 'static>(message: T) -> Self {
        Self {
            headers: HeaderMap::new(),
            trailers: HeaderMap::new(),
            extensions: Extensions::new(),
            message: Box::new(message),
        }
    }

    pub(crate) fn from_parts(
        message: Box<dyn Any + Send>,
        headers: HeaderMap,
        trailers: HeaderMap,
    ) -> Self {
        Self {
            headers,
            trailers,
            extensions: Extensions::new(),
            message,
        }
    }

    /// The message, if it is a `T`.
    pub fn message<T: 'static>(&self) -> Option<&T> {
        self.message.downcast_ref()
    }

    /// The message, mutable, if it is a `T`.
    pub fn message_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.message.downcast_mut()
    }

    pub(crate) fn into_message<T: 'static>(
        self,
    ) -> Result<(T, HeaderMap, HeaderMap, Extensions), Error> {
        match self.message.downcast::<T>() {
            Ok(m) => Ok((*m, self.headers, self.trailers, self.extensions)),
            Err(_) => Err(Error::internal(
                "an interceptor replaced the response with a message of another type",
            )),
        }
    }
}

/// The innermost step of a unary chain: the handler (server) or the wire (client).
pub(crate) type Endpoint =
    Arc<dyn Fn(UnaryRequest) -> BoxFuture<'static, Result<UnaryResponse, Error>> + Send + Sync>;

/// The rest of the chain, handed to each interceptor.
pub struct Next<'a> {
    rest: &'a [Arc<dyn Interceptor>],
    endpoint: &'a Endpoint,
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("remaining", &self.rest.len())
            .finish()
    }
}

impl<'a> Next<'a> {
    /// Runs the rest of the chain.
    pub fn run(self, request: UnaryRequest) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        match self.rest.split_first() {
            Some((first, rest)) => first.unary(
                request,
                Next {
                    rest,
                    endpoint: self.endpoint,
                },
            ),
            None => (self.endpoint)(request),
        }
    }
}

/// Runs `request` through `chain`, ending at `endpoint`.
pub(crate) async fn run_unary(
    chain: &[Arc<dyn Interceptor>],
    endpoint: Endpoint,
    request: UnaryRequest,
) -> Result<UnaryResponse, Error> {
    Next {
        rest: chain,
        endpoint: &endpoint,
    }
    .run(request)
    .await
}

/// Told about every message of a streaming call and how it ended.
pub trait StreamObserver: Send + 'static {
    /// A message arrived (typed: downcast to the method's input type on the server, output
    /// type on the client).
    fn on_receive(&mut self, message: &(dyn Any + Send)) {
        let _ = message;
    }
    /// A message is being sent.
    fn on_send(&mut self, message: &(dyn Any + Send)) {
        let _ = message;
    }
    /// The stream ended: `Ok` for success, else the error (cancellation and deadline expiry
    /// included). Called exactly once.
    fn on_end(&mut self, result: Result<(), &Error>) {
        let _ = result;
    }
}

/// An interceptor. Every method has a pass-through default.
///
/// Install it with [`Router::interceptor`](crate::Router::interceptor) (server) or
/// [`ClientConfig::interceptor`](crate::ClientConfig::interceptor) (client). This one times
/// unary calls and counts streaming ones:
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use volley::interceptor::{BoxFuture, CallInfo, Next, UnaryRequest, UnaryResponse};
/// use volley::{Error, Interceptor, Router, StreamObserver};
///
/// #[derive(Clone, Default)]
/// struct Metrics {
///     streams: Arc<AtomicUsize>,
/// }
///
/// impl Interceptor for Metrics {
///     fn unary<'a>(
///         &'a self,
///         request: UnaryRequest,
///         next: Next<'a>,
///     ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
///         Box::pin(async move {
///             let method = request.info.spec.method();
///             let started = std::time::Instant::now();
///             let result = next.run(request).await;
///             tracing::info!(method, elapsed = ?started.elapsed(), ok = result.is_ok());
///             result
///         })
///     }
///
///     fn stream(
///         &self,
///         _info: &CallInfo,
///         _headers: &mut http::HeaderMap,
///         _extensions: &mut http::Extensions,
///     ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
///         self.streams.fetch_add(1, Ordering::Relaxed);
///         Ok(None)
///     }
/// }
///
/// let router = Router::new().interceptor(Metrics::default());
/// # let _ = router;
/// ```
///
/// More, with a runnable server and client, in the
/// [interceptors guide](crate::guide::interceptors).
pub trait Interceptor: Send + Sync + 'static {
    /// Wraps a unary call. Call `next.run(request)` to continue, or return without calling it
    /// to short-circuit.
    fn unary<'a>(
        &'a self,
        request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        next.run(request)
    }

    /// Called when a streaming call starts. Return an error to reject the call, or an observer
    /// to follow its messages.
    fn stream(
        &self,
        info: &CallInfo,
        headers: &mut HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        let _ = (info, headers, extensions);
        Ok(None)
    }
}

/// The observers of one streaming call, shared by its input side, output side and end.
#[derive(Clone, Default)]
pub(crate) struct Observers {
    inner: Arc<Mutex<ObserverState>>,
    deadline: Option<Instant>,
}

#[derive(Default)]
struct ObserverState {
    observers: Vec<Box<dyn StreamObserver>>,
    ended: bool,
}

impl Observers {
    /// Runs every interceptor's `stream` hook; `None` when nobody observes.
    pub(crate) fn start(
        chain: &[Arc<dyn Interceptor>],
        info: &CallInfo,
        headers: &mut HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Option<Self>, Error> {
        let mut observers = Vec::new();
        for i in chain {
            if let Some(o) = i.stream(info, headers, extensions)? {
                observers.push(o);
            }
        }
        if observers.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            inner: Arc::new(Mutex::new(ObserverState {
                observers,
                ended: false,
            })),
            deadline: info.deadline,
        }))
    }

    pub(crate) fn received(&self, message: &(dyn Any + Send)) {
        if let Ok(mut s) = self.inner.lock() {
            s.observers.iter_mut().for_each(|o| o.on_receive(message));
        }
    }

    pub(crate) fn sent(&self, message: &(dyn Any + Send)) {
        if let Ok(mut s) = self.inner.lock() {
            s.observers.iter_mut().for_each(|o| o.on_send(message));
        }
    }

    pub(crate) fn end(&self, result: Result<(), &Error>) {
        if let Ok(mut s) = self.inner.lock()
            && !s.ended
        {
            s.ended = true;
            s.observers.iter_mut().for_each(|o| o.on_end(result));
        }
    }
}

/// Ends the observers if the call is dropped before it finished: `deadline_exceeded` when the
/// deadline has passed, else `canceled`.
pub(crate) struct EndGuard(pub(crate) Option<Observers>);

impl EndGuard {
    /// The call finished normally and reported its own end.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Some(o) = &self.0 {
            let expired = o.deadline.is_some_and(|d| Instant::now() >= d);
            let err = if expired {
                Error::deadline_exceeded("the deadline expired")
            } else {
                Error::canceled("the call was dropped before it finished")
            };
            o.end(Err(&err));
        }
    }
}

impl std::fmt::Debug for dyn Interceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interceptor")
    }
}
