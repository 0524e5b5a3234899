//! Interceptors: async hooks around every call, on the server ([`Router::interceptor`]) and
//! on the client ([`ClientConfig::interceptor`]), run in the order they were added.
//!
//! - Unary calls go through [`Interceptor::unary`], which sees the method [`Spec`], headers,
//!   extensions, peer and deadline and the typed message, may rewrite any of them, short-circuit
//!   with a response or an [`Error`], and sees (and may change) the response and its trailers.
//! - Streaming calls call [`Interceptor::stream`] once at the start (which may reject the call
//!   or stamp headers and extensions) and get back an optional [`StreamObserver`] told about every
//!   message each way and how the stream ended — including cancellation and deadline expiry.
//! - Streaming calls also call [`Interceptor::open_stream`], an async hook at the start (before
//!   the handler runs on the server, before the request is sent on the client) that may refuse
//!   the call, change headers and extensions, and return [`StreamHooks`] that may inspect,
//!   rewrite or reject every message each way and see the end with its status and trailers.
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

/// A streaming call as it opens, as [`Interceptor::open_stream`] sees it: before the handler
/// runs (server) or the request is sent (client).
///
/// Changes to the headers reach the handler (server) or the wire (client); values put in the
/// extensions reach the handler (server) or the HTTP request (client, for the transport).
#[derive(Debug)]
#[non_exhaustive]
pub struct StreamStart {
    /// About the call.
    pub info: CallInfo,
    /// Request headers.
    pub headers: HeaderMap,
    /// Request extensions.
    pub extensions: Extensions,
}

impl StreamStart {
    /// A stream opening for `info` with no headers or extensions: for testing an interceptor
    /// by calling it directly.
    pub fn new(info: CallInfo) -> Self {
        Self {
            info,
            headers: HeaderMap::new(),
            extensions: Extensions::new(),
        }
    }
}

/// How a streaming call ended, as [`StreamHooks::on_end`] sees it.
#[derive(Debug)]
#[non_exhaustive]
pub struct StreamEnd<'a> {
    /// `Ok` for success, else the error: the handler's, a hook's, a protocol or transport
    /// error, cancellation or deadline expiry.
    pub result: Result<(), &'a Error>,
    /// The trailers. Server: those about to be sent, which a hook may change; when the call
    /// fails before its response started, the error's metadata, sent as its trailers. Client:
    /// those received (what [`Streaming::trailers`](crate::Streaming::trailers) then returns),
    /// or the error's metadata when the call failed.
    pub trailers: &'a mut HeaderMap,
}

/// Hooks on every message of one streaming call and on its end, returned by
/// [`Interceptor::open_stream`]. Unlike a [`StreamObserver`], they may change messages and
/// reject them.
///
/// Messages are typed: downcast them to the method's request type (`on_receive` on the
/// server, `on_send` on the client) or response type (`on_send` on the server, `on_receive` on
/// the client) with [`downcast_mut`](https://doc.rust-lang.org/std/any/trait.Any.html#method.downcast_mut-2).
///
/// Returning an error from a message hook rejects the message: it goes no further, and the
/// call fails with that error, whatever follows (server: the handler reading the request
/// stream gets the error, and the response ends with it even if the handler then succeeds;
/// client: the caller gets the error instead of the message, or of the transport error that
/// cancelling the request body causes).
///
/// Messages pass the hooks of a chain in the order they travel: on the server, incoming
/// messages meet the first interceptor first and outgoing ones the last first; on the client,
/// outgoing messages meet the first interceptor first and incoming ones the last first. Ends
/// are reported innermost first. [`StreamObserver`]s see each message after the hooks.
pub trait StreamHooks: Send + 'static {
    /// A message arrived: request messages on the server, response messages on the client.
    fn on_receive(&mut self, message: &mut (dyn Any + Send)) -> Result<(), Error> {
        let _ = message;
        Ok(())
    }
    /// A message is about to be sent: response messages on the server, request messages on
    /// the client.
    fn on_send(&mut self, message: &mut (dyn Any + Send)) -> Result<(), Error> {
        let _ = message;
        Ok(())
    }
    /// The stream ended. Called exactly once, cancellation and deadline expiry included.
    fn on_end(&mut self, end: StreamEnd<'_>) {
        let _ = end;
    }
}

impl std::fmt::Debug for dyn StreamHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamHooks")
    }
}

/// What [`Interceptor::open_stream`] returns: hooks for the stream, none, or the error that
/// refuses it.
pub type OpenStream<'a> = BoxFuture<'a, Result<Option<Box<dyn StreamHooks>>, Error>>;

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

    /// Called when a streaming call opens, after [`stream`](Self::stream): an async hook
    /// (look a token up, ask a policy service) that sees the method, headers, extensions and
    /// peer in `start` and may change the headers and extensions. Return an error to refuse
    /// the call before its handler runs (server) or its request is sent (client), or
    /// [`StreamHooks`] to see and rewrite its messages and see its end. The default does
    /// nothing.
    ///
    /// ```
    /// use std::any::Any;
    /// use volley::interceptor::{OpenStream, StreamEnd, StreamHooks, StreamStart};
    /// use volley::{Error, Interceptor};
    ///
    /// /// Looks the bearer token up (asynchronously) before any stream runs, and times it.
    /// struct StreamAuth;
    ///
    /// async fn lookup(token: &str) -> Option<String> {
    ///     (token == "Bearer s3cret").then(|| "ada".to_string())
    /// }
    ///
    /// struct Timer(std::time::Instant);
    ///
    /// impl StreamHooks for Timer {
    ///     fn on_receive(&mut self, message: &mut (dyn Any + Send)) -> Result<(), Error> {
    ///         // Downcast to the method's type to inspect or rewrite.
    ///         let _ = message;
    ///         Ok(())
    ///     }
    ///     fn on_end(&mut self, end: StreamEnd<'_>) {
    ///         let ok = end.result.is_ok();
    ///         tracing::info!(elapsed = ?self.0.elapsed(), ok, "stream ended");
    ///     }
    /// }
    ///
    /// impl Interceptor for StreamAuth {
    ///     fn open_stream<'a>(&'a self, start: &'a mut StreamStart) -> OpenStream<'a> {
    ///         Box::pin(async move {
    ///             let token = start.headers.get("authorization").and_then(|v| v.to_str().ok());
    ///             let user = lookup(token.unwrap_or_default())
    ///                 .await
    ///                 .ok_or_else(|| Error::unauthenticated("unknown token"))?;
    ///             start.extensions.insert(user);
    ///             Ok(Some(Box::new(Timer(std::time::Instant::now())) as Box<dyn StreamHooks>))
    ///         })
    ///     }
    /// }
    /// ```
    fn open_stream<'a>(&'a self, start: &'a mut StreamStart) -> OpenStream<'a> {
        let _ = start;
        // A zero-sized future: boxing it allocates nothing.
        Box::pin(NoHooks)
    }
}

/// The default `open_stream`: ready at once, with no hooks.
struct NoHooks;

impl Future for NoHooks {
    type Output = Result<Option<Box<dyn StreamHooks>>, Error>;

    fn poll(
        self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::task::Poll::Ready(Ok(None))
    }
}

/// The observers and hooks of one streaming call, shared by its input side, output side and
/// end.
#[derive(Clone)]
pub(crate) struct Observers {
    inner: Arc<Mutex<ObserverState>>,
    deadline: Option<Instant>,
}

struct ObserverState {
    observers: Vec<Box<dyn StreamObserver>>,
    /// In chain order, outermost first.
    hooks: Vec<Box<dyn StreamHooks>>,
    side: Side,
    ended: bool,
    /// The first error a hook rejected a message with: the call's outcome from then on.
    failure: Option<Error>,
}

impl ObserverState {
    fn end(&mut self, result: Result<(), &Error>, trailers: &mut HeaderMap) {
        if self.ended {
            return;
        }
        self.ended = true;
        // Innermost first, as a unary chain returns.
        for h in self.hooks.iter_mut().rev() {
            h.on_end(StreamEnd {
                result,
                trailers: &mut *trailers,
            });
        }
        self.observers.iter_mut().for_each(|o| o.on_end(result));
    }

    /// Runs `f` on every hook in the order a message travels in that direction: outermost
    /// first for what comes in from the wire on the server and goes out on the client.
    fn run_hooks(
        &mut self,
        outermost_first: bool,
        mut f: impl FnMut(&mut dyn StreamHooks) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let result = if outermost_first {
            self.hooks.iter_mut().try_for_each(|h| f(h.as_mut()))
        } else {
            self.hooks.iter_mut().rev().try_for_each(|h| f(h.as_mut()))
        };
        if let Err(e) = &result
            && self.failure.is_none()
        {
            self.failure = Some(copy_error(e));
        }
        result
    }
}

impl Observers {
    /// Runs every interceptor's `stream` and `open_stream` hooks, in chain order; `None` when
    /// nobody observes or hooks the stream. An error refuses the call: the interceptors already
    /// opened are told the stream ended with it.
    pub(crate) async fn start(
        chain: &[Arc<dyn Interceptor>],
        info: CallInfo,
        headers: &mut HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Option<Self>, Error> {
        let deadline = info.deadline;
        let mut state = ObserverState {
            observers: Vec::new(),
            hooks: Vec::new(),
            side: info.side,
            ended: false,
            failure: None,
        };
        let mut start = StreamStart {
            info,
            headers: std::mem::take(headers),
            extensions: std::mem::take(extensions),
        };
        let mut refused = None;
        for i in chain {
            match i.stream(&start.info, &mut start.headers, &mut start.extensions) {
                Ok(Some(o)) => state.observers.push(o),
                Ok(None) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
            match i.open_stream(&mut start).await {
                Ok(Some(h)) => state.hooks.push(h),
                Ok(None) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        *headers = start.headers;
        *extensions = start.extensions;
        if let Some(mut e) = refused {
            end_with_error(&mut state, &mut e);
            return Err(e);
        }
        if state.observers.is_empty() && state.hooks.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            inner: Arc::new(Mutex::new(state)),
            deadline,
        }))
    }

    /// A message arrived: the hooks may change or reject it, then the observers see it.
    pub(crate) fn received(&self, message: &mut (dyn Any + Send)) -> Result<(), Error> {
        let Ok(mut s) = self.inner.lock() else {
            return Ok(());
        };
        let outermost_first = s.side == Side::Server;
        s.run_hooks(outermost_first, |h| h.on_receive(&mut *message))?;
        s.observers.iter_mut().for_each(|o| o.on_receive(&*message));
        Ok(())
    }

    /// A message is about to be sent: the hooks may change or reject it, then the observers
    /// see it.
    pub(crate) fn sent(&self, message: &mut (dyn Any + Send)) -> Result<(), Error> {
        let Ok(mut s) = self.inner.lock() else {
            return Ok(());
        };
        let outermost_first = s.side == Side::Client;
        s.run_hooks(outermost_first, |h| h.on_send(&mut *message))?;
        s.observers.iter_mut().for_each(|o| o.on_send(&*message));
        Ok(())
    }

    /// The error a hook rejected a message with, if one did.
    pub(crate) fn failure(&self) -> Option<Error> {
        self.inner
            .lock()
            .ok()
            .and_then(|s| s.failure.as_ref().map(copy_error))
    }

    /// Ends the stream (once; later calls do nothing) with `result` and `trailers`.
    pub(crate) fn end(&self, result: Result<(), &Error>, trailers: &mut HeaderMap) {
        if let Ok(mut s) = self.inner.lock() {
            s.end(result, trailers);
        }
    }

    /// Ends the stream with `error`, whose metadata the hooks see (and may change) as the
    /// trailers.
    pub(crate) fn end_error(&self, error: &mut Error) {
        if let Ok(mut s) = self.inner.lock() {
            end_with_error(&mut s, error);
        }
    }
}

/// A copy of `error`: code, message, details, metadata, headers and wire flag (its source,
/// which cannot be copied, stays with the original).
fn copy_error(error: &Error) -> Error {
    let mut copy = Error::new(error.code(), error.message())
        .with_metadata(error.metadata().clone())
        .with_headers(error.headers().clone());
    for d in error.details() {
        copy.push_detail(d.clone());
    }
    if error.is_wire() {
        copy.into_wire()
    } else {
        copy
    }
}

fn end_with_error(state: &mut ObserverState, error: &mut Error) {
    let mut trailers = std::mem::take(error.metadata_mut());
    state.end(Err(&*error), &mut trailers);
    *error.metadata_mut() = trailers;
}

/// The outcome of a call that failed with `error`: the error a hook rejected a message with
/// wins (the transport error it caused is its consequence); the observers are told.
pub(crate) fn fail(observers: Option<&Observers>, error: Error) -> Error {
    let Some(o) = observers else {
        return error;
    };
    let mut error = o.failure().unwrap_or(error);
    o.end_error(&mut error);
    error
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
            o.end(Err(&err), &mut HeaderMap::new());
        }
    }
}

impl std::fmt::Debug for dyn Interceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Interceptor")
    }
}
