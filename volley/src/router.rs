//! Routing: procedure path -> handler, and the protocol-agnostic request side (compression
//! lookup and negotiation, deadlines, limits, body reading). What each protocol's request head
//! and errors look like is asked of [`crate::protocol`]. The [`Router`] is a `tower::Service`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt as _;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Method, StatusCode};

use crate::codec::{Codec, Codecs, Message};
use crate::compression::{Compression, Registry, decompress_off_worker};
use crate::cors::Cors;
use crate::error::BoxError;
use crate::handler::{self, CallInput, ErasedHandler, Input, SharedHandler};
use crate::peer::Arrival;
use crate::protocol::connect::{self, GetRefusal};
use crate::protocol::{Classified, ContentType, accept_post, classify};
use crate::respond::{Call, negotiate, unsupported_encoding};
use crate::stream::{
    Body, FrameReader, FrameSource, FrameWriter, ResponseStream, Streaming, boxed_body, empty_body,
};
use crate::{Error, Idempotency, Request, Response, Spec, StreamType};

/// Default receive limit: 4 MiB per message, after decompression.
pub const DEFAULT_RECEIVE_LIMIT: usize = 4 * 1024 * 1024;

#[derive(Clone)]
struct Route {
    spec: Spec,
    handler: SharedHandler,
}

/// The route table's hasher: FNV-1a over the path. The table is fixed when the server starts
/// and lookups never insert, so a peer choosing paths that collide can only make its own
/// lookup compare against the few registered paths: SipHash's flooding resistance buys
/// nothing here, and FNV is several times cheaper on a 30-byte path.
#[derive(Clone, Copy, Default)]
struct PathHash;

impl std::hash::BuildHasher for PathHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The catch-all handler, adapted twice: as a unary handler for Connect unary requests (whose
/// body is one bare message) and as a bidi handler for everything enveloped.
#[derive(Clone)]
struct Fallback {
    unary: SharedHandler,
    stream: SharedHandler,
}

/// The procedure in the [`Spec`] of a call the [fallback](Router::fallback) handles (the
/// path the client asked for is in the request's `http::Uri` extension).
pub const FALLBACK_PROCEDURE: &str = "/*";

impl Fallback {
    /// The route for a call with this content type: Connect's unenveloped content types are
    /// unary; every other RPC is treated as a bidi stream.
    fn route(&self, classified: &Classified) -> Route {
        let unary = matches!(classified, Classified::Known(ct) if ct.is_unenveloped());
        let (stream_type, handler) = if unary {
            (StreamType::Unary, self.unary.clone())
        } else {
            (StreamType::BidiStream, self.stream.clone())
        };
        Route {
            spec: Spec::new(FALLBACK_PROCEDURE, stream_type, Idempotency::Unknown),
            handler,
        }
    }
}

#[derive(Clone)]
struct Inner {
    /// Each procedure's index in `table`: a call holds its route by index, so its future owns
    /// everything it needs (the router included) without borrowing from a caller.
    routes: HashMap<&'static str, usize, PathHash>,
    table: Vec<Route>,
    fallback: Option<Fallback>,
    compression: Registry,
    /// The codecs accepted, by name.
    codecs: Codecs,
    /// The accept-encoding value advertised on every response, made once from `compression`.
    accept_encoding: Option<HeaderValue>,
    receive_limit: usize,
    send_limit: usize,
    require_protocol_header: bool,
    cors: Option<Cors>,
    interceptors: Option<handler::Chain>,
    max_timeout: Option<Duration>,
    budget: Option<Arc<crate::budget::Budget>>,
}

/// Routes RPCs to handlers and speaks Connect, gRPC and gRPC-Web on the same paths.
///
/// Build it with the registration functions generated code emits (or the `unary`,
/// `server_stream`, `client_stream` and `bidi_stream` methods), then serve it with
/// [`Server`](crate::server::Server) or mount it in axum: it is a
/// `tower::Service<http::Request<B>>` for any body of bytes. Cloning is cheap (the routes are
/// shared).
///
/// ```
/// use buffa_types::google::protobuf::StringValue;
/// use volley::{Cors, Idempotency, Request, Response, Router, Spec, StreamType};
///
/// const GREET: Spec = Spec::new(
///     "/greet.v1.GreetService/Greet",
///     StreamType::Unary,
///     Idempotency::NoSideEffects,
/// );
///
/// let router = Router::new()
///     .unary(GREET, |request: Request<StringValue>| async move {
///         Ok(Response::new(StringValue::from(format!("Hello, {}!", request.message().value))))
///     })
///     .receive_limit(1024 * 1024)
///     .cors(Cors::allow_any_origin());
/// assert_eq!(router.specs()[0].procedure, "/greet.v1.GreetService/Greet");
/// ```
///
/// Generated code does the registering: `register_greet_service(Router::new(), Greeter)`.
/// Serve the router with [`Server`](crate::server::Server), mount it in axum
/// ([guide](crate::guide::serving)), or call it in memory with
/// [`Client::with_transport`](crate::Client::with_transport) ([guide](crate::guide::testing)).
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut procedures: Vec<_> = self.inner.routes.keys().collect();
        procedures.sort();
        f.debug_struct("Router")
            .field("procedures", &procedures)
            .field("fallback", &self.inner.fallback.is_some())
            .field("compression", &self.inner.compression)
            .field("receive_limit", &self.inner.receive_limit)
            .field("send_limit", &self.inner.send_limit)
            .finish()
    }
}

impl Router {
    /// An empty router with the default options: every built-in compression, a 4 MiB receive
    /// limit, no send limit, `connect-protocol-version` optional, no CORS.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                routes: HashMap::default(),
                table: Vec::new(),
                fallback: None,
                compression: Registry::default(),
                codecs: Codecs::default(),
                accept_encoding: accept_encoding(&Registry::default()),
                receive_limit: DEFAULT_RECEIVE_LIMIT,
                send_limit: usize::MAX,
                require_protocol_header: false,
                cors: None,
                interceptors: None,
                max_timeout: Some(crate::timeout::DEFAULT_MAX_TIMEOUT),
                budget: Some(crate::budget::Budget::new(
                    crate::budget::DEFAULT_REQUEST_BUFFER_BUDGET,
                )),
            }),
        }
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    fn route(mut self, spec: Spec, handler: impl ErasedHandler) -> Self {
        self.inner_mut().insert(Route {
            spec,
            handler: Arc::new(handler),
        });
        self
    }

    /// Registers a unary handler.
    pub fn unary<Req, Res, F, Fut>(self, spec: Spec, handler: F) -> Self
    where
        Req: Message,
        Res: Message,
        F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Res>, Error>> + Send + 'static,
    {
        self.route(spec, handler::Unary::new(handler))
    }

    /// Registers a server-streaming handler.
    pub fn server_stream<Req, Res, F, Fut>(self, spec: Spec, handler: F) -> Self
    where
        Req: Message,
        Res: Message,
        F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<ResponseStream<Res>>, Error>> + Send + 'static,
    {
        self.route(spec, handler::ServerStream::new(handler))
    }

    /// Registers a client-streaming handler.
    pub fn client_stream<Req, Res, F, Fut>(self, spec: Spec, handler: F) -> Self
    where
        Req: Message,
        Res: Message,
        F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<Res>, Error>> + Send + 'static,
    {
        self.route(spec, handler::ClientStream::new(handler))
    }

    /// Registers a bidirectional-streaming handler.
    pub fn bidi_stream<Req, Res, F, Fut>(self, spec: Spec, handler: F) -> Self
    where
        Req: Message,
        Res: Message,
        F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<ResponseStream<Res>>, Error>> + Send + 'static,
    {
        self.route(spec, handler::BidiStream::new(handler))
    }

    /// Registers a catch-all handler for every path no route matches (default: none, and
    /// such paths get `unimplemented` / HTTP 404), for gateways and proxies that forward
    /// methods they learn at run time.
    ///
    /// The handler sees every call as a bidi stream of messages: a Connect unary request (a
    /// bare `application/json` or `application/proto` body) arrives as a stream of one and
    /// must be answered with exactly one message; any enveloped request (gRPC, gRPC-Web,
    /// Connect streaming) streams both ways. The path the client asked for is the request's
    /// `http::Uri` extension (`request.extensions().get::<http::Uri>()`), and the [`Spec`]
    /// interceptors see has the procedure [`FALLBACK_PROCEDURE`] with the stream type so
    /// inferred. Connect GET is not offered (HTTP 405). Messages stay undecoded until the
    /// handler decodes them, so `Req` and `Res` are usually raw or dynamic message types.
    pub fn fallback<Req, Res, F, Fut>(mut self, handler: F) -> Self
    where
        Req: Message,
        Res: Message,
        F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Response<ResponseStream<Res>>, Error>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let f = handler.clone();
        let unary = move |request: Request<Streaming<Req>>| {
            let fut = f(request);
            async move { only_message(fut.await?).await }
        };
        let g = handler;
        let stream = move |request: Request<Streaming<Req>>| g(request);
        self.inner_mut().fallback = Some(Fallback {
            unary: Arc::new(handler::ClientStream::new(unary)),
            stream: Arc::new(handler::BidiStream::new(stream)),
        });
        self
    }

    /// Merges another router's routes into this one (this router's options are kept; its
    /// [fallback](Self::fallback) too, or else the other's).
    pub fn merge(mut self, other: Router) -> Self {
        let inner = self.inner_mut();
        for route in &other.inner.table {
            inner.insert(route.clone());
        }
        if inner.fallback.is_none() {
            inner.fallback = other.inner.fallback.clone();
        }
        self
    }

    /// Accepts (and answers in) another codec, by its [`name`](Codec::name): requests in
    /// `application/{name}`, `application/connect+{name}`, `application/grpc+{name}`,
    /// `application/grpc-web+{name}` (and `-text`), and Connect GET with `encoding={name}`.
    /// A codec named like one already present replaces it (`proto` and `json` included).
    /// By default a router accepts [`ProtoCodec`](crate::ProtoCodec) and
    /// [`JsonCodec`](crate::JsonCodec); any other codec name is answered with the protocol's
    /// unsupported-media-type response.
    ///
    /// # Panics
    ///
    /// When the name is not a lowercase content-type token (`a`-`z`, `0`-`9`, `-`, `.`, `_`).
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.inner_mut().codecs.register(codec);
        self
    }

    /// Sets the compression algorithms accepted and offered (default: all built-in ones).
    pub fn compression(mut self, registry: Registry) -> Self {
        let inner = self.inner_mut();
        inner.accept_encoding = accept_encoding(&registry);
        inner.compression = registry;
        self
    }

    /// Sets the largest message accepted, after decompression (default 4 MiB).
    pub fn receive_limit(mut self, bytes: usize) -> Self {
        self.inner_mut().receive_limit = bytes;
        self
    }

    /// Sets the largest message sent, before compression (default: unlimited).
    pub fn send_limit(mut self, bytes: usize) -> Self {
        self.inner_mut().send_limit = bytes;
        self
    }

    /// The longest timeout a client may ask for: longer `grpc-timeout` / `connect-timeout-ms`
    /// values are cut to it (default [`DEFAULT_MAX_TIMEOUT`](crate::timeout::DEFAULT_MAX_TIMEOUT),
    /// 24 hours; `None` for no maximum). Calls without a timeout are not affected.
    pub fn max_timeout(mut self, max: Option<Duration>) -> Self {
        self.inner_mut().max_timeout = max;
        self
    }

    /// The most request bytes all calls together may hold buffered while their messages
    /// arrive (default [`DEFAULT_REQUEST_BUFFER_BUDGET`](crate::budget::DEFAULT_REQUEST_BUFFER_BUDGET),
    /// 256 MiB; `None` for no budget). Each call buffers its first 16 KiB for free; past the
    /// budget, calls get `resource_exhausted`. Shared by every clone of this router.
    pub fn request_buffer_budget(mut self, bytes: Option<usize>) -> Self {
        self.inner_mut().budget = bytes.map(crate::budget::Budget::new);
        self
    }

    /// Requires Connect requests to carry `connect-protocol-version: 1` (or `connect=v1` for
    /// GET). Default: not required.
    pub fn require_connect_protocol_header(mut self, required: bool) -> Self {
        self.inner_mut().require_protocol_header = required;
        self
    }

    /// Answers CORS preflights and adds CORS headers, for browser clients on other origins.
    /// Default: off.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.inner_mut().cors = Some(cors);
        self
    }

    /// Adds an interceptor; interceptors run in the order they are added, outermost first.
    /// Default: none (calls then skip the interceptor machinery entirely).
    pub fn interceptor(mut self, interceptor: impl crate::Interceptor) -> Self {
        let inner = self.inner_mut();
        let mut chain: Vec<_> = inner.interceptors.as_deref().cloned().unwrap_or_default();
        chain.push(Arc::new(interceptor));
        inner.interceptors = Some(Arc::new(chain));
        self
    }

    /// The registered procedures' specs, sorted by path.
    pub fn specs(&self) -> Vec<Spec> {
        let mut specs: Vec<Spec> = self.inner.table.iter().map(|r| r.spec).collect();
        specs.sort_by_key(|s| s.procedure);
        specs
    }

    /// Handles one HTTP request.
    pub fn handle(
        &self,
        request: http::Request<Body>,
    ) -> impl Future<Output = http::Response<Body>> + Send + '_ {
        self.clone().handle_on(request, None)
    }

    /// Handles one HTTP request that arrived on `connection` (the built-in server's, handed
    /// over directly rather than as a request extension).
    ///
    /// The head is read here, before the future exists, so that the future holds only what
    /// the call still needs (an `async fn` held the request's parts twice over in 2.8 KB). The
    /// future owns the router rather than borrowing it, so a caller can box it as it is,
    /// without an `async` block around it that would keep the request beside it: the server
    /// boxes one per call, and a box over 1,032 bytes misses glibc's per-thread cache and costs
    /// several times as much to allocate and free.
    pub(crate) fn handle_on(
        self,
        request: http::Request<Body>,
        connection: Option<Arc<crate::ConnectionInfo>>,
    ) -> impl Future<Output = http::Response<Body>> + Send + 'static {
        use futures_util::future::Either;
        let origin = match &self.inner.cors {
            Some(_) => request.headers().get(http::header::ORIGIN).cloned(),
            None => None,
        };
        match self.inner.route(request, connection) {
            Routed::Answered(mut response) => {
                self.inner.decorate(origin, &mut response);
                Either::Left(std::future::ready(response))
            }
            // Boxed: the rarer path's state would otherwise make every call's future larger.
            Routed::Get(route, parts, arrival) => {
                Either::Right(Either::Left(Box::pin(async move {
                    let inner = &*self.inner;
                    let mut response = inner
                        .connect_get(inner.resolve(&route), parts, arrival)
                        .await;
                    inner.decorate(origin, &mut response);
                    response
                })))
            }
            Routed::Call(prepared) => Either::Right(Either::Right(self.run(prepared, origin))),
        }
    }

    /// Answers an accepted POST: reads its body (a unary Connect one whole, an enveloped one
    /// as the handler asks), runs its handler, writes its response.
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` keeps its argument and the binding it moves into both in its state: twice the request's parts in every call's future"
    )]
    fn run(
        self,
        p: Prepared,
        origin: Option<HeaderValue>,
    ) -> impl Future<Output = http::Response<Body>> + Send + 'static {
        async move {
            let inner = &*self.inner;
            // The read's result is unwrapped in the statement that reads it: a named result
            // would keep its slot (near 300 bytes) in this future beside the handler's.
            let input = match if p.ct.is_unenveloped() {
                inner
                    .read_unary_body(p.body, p.head.request_compression.as_ref())
                    .await
                    .map(Input::Single)
            } else {
                let source =
                    FrameSource::new(p.body, inner.receive_limit, p.ct.is_text(), body_error)
                        .with_budget(inner.budget.as_ref());
                Ok(Input::Envelopes(FrameReader::new(
                    source,
                    p.head.request_compression.clone(),
                    inner.receive_limit,
                    0,
                )))
            } {
                Ok(input) => input,
                Err(err) => {
                    let mut response = p.ct.immediate_error(&err);
                    inner.decorate(origin, &mut response);
                    return response;
                }
            };
            let route = inner.resolve(&p.route);
            let mut response = inner.call(route, p.ct, p.head, p.parts, input).await;
            inner.decorate(origin, &mut response);
            response
        }
    }
}

impl<B> tower_service::Service<http::Request<B>> for Router
where
    B: http_body::Body + Send + 'static,
    B::Data: Into<Bytes> + bytes::Buf,
    B::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Box::pin(
            self.clone()
                .handle_on(request.map(boxed_body), None)
                .map(Ok),
        )
    }
}

fn body_error(e: BoxError) -> Error {
    Error::canceled(format!("reading the request body failed: {e}"))
}

struct Head {
    request_compression: Option<Arc<dyn Compression>>,
    response_compression: Option<Arc<dyn Compression>>,
    deadline: Option<Instant>,
}

/// A route found in the table (its index there), or the fallback's, made for this request.
enum RouteKey {
    Table(usize),
    Fallback(Route),
}

/// What a request's head decides, before any of its body is read.
enum Routed {
    /// Answered without a handler: a preflight, an unknown procedure, a refused head.
    Answered(http::Response<Body>),
    /// A Connect GET, the message in the query.
    Get(RouteKey, http::request::Parts, Arrival),
    /// A POST for a handler.
    Call(Prepared),
}

/// A POST whose head has been read and accepted.
struct Prepared {
    route: RouteKey,
    ct: ContentType,
    head: Head,
    parts: (HeaderMap, http::Extensions, Arrival),
    body: Body,
}

impl Inner {
    /// Registers `route`, replacing a route of the same procedure.
    fn insert(&mut self, route: Route) {
        match self.routes.get(route.spec.procedure) {
            Some(&index) => self.table[index] = route,
            None => {
                self.routes.insert(route.spec.procedure, self.table.len());
                self.table.push(route);
            }
        }
    }

    fn resolve<'a>(&'a self, key: &'a RouteKey) -> &'a Route {
        match key {
            RouteKey::Table(index) => &self.table[*index],
            RouteKey::Fallback(route) => route,
        }
    }

    /// Reads the request's head: the route, the protocol and codec, the encodings and the
    /// deadline. Synchronous, so that none of the request's parts outlive it in a future.
    fn route(
        &self,
        request: http::Request<Body>,
        connection: Option<Arc<crate::ConnectionInfo>>,
    ) -> Routed {
        if request.method() == Method::OPTIONS
            && let Some(cors) = &self.cors
        {
            return Routed::Answered(cors.preflight(request.headers()));
        }
        let (mut parts, body) = request.into_parts();
        let classified = classify(
            parts
                .headers
                .get(CONTENT_TYPE)
                .map_or(&b""[..], |v| v.as_bytes()),
            &self.codecs,
        );
        let route = match (self.routes.get(parts.uri.path()), &self.fallback) {
            (Some(&index), _) => RouteKey::Table(index),
            (None, Some(fallback)) => {
                parts.extensions.insert(parts.uri.clone());
                RouteKey::Fallback(fallback.route(&classified))
            }
            (None, None) => {
                let err = Error::unimplemented(format!("unknown procedure {}", parts.uri.path()));
                return Routed::Answered(classified.or_fallback().not_found(&err));
            }
        };
        let spec = self.resolve(&route).spec;
        let arrival = Arrival::of(&parts, connection);
        let get_allowed =
            spec.stream_type == StreamType::Unary && spec.idempotency == Idempotency::NoSideEffects;
        if parts.method == Method::GET && get_allowed {
            return Routed::Get(route, parts, arrival);
        }
        if parts.method != Method::POST {
            return Routed::Answered(method_not_allowed(get_allowed));
        }
        let ct = match classified {
            Classified::Known(ct) if ct.accepts(spec.stream_type) => ct,
            _ => return Routed::Answered(self.unsupported_media_type(spec.stream_type)),
        };
        let head = match self.read_head(&ct, &parts.headers) {
            Ok(head) => head,
            Err(err) => {
                // An unknown encoding is answered with the ones we accept, as gRPC asks.
                let mut res = ct.immediate_error(&err);
                self.advertise_encodings(&ct, res.headers_mut());
                return Routed::Answered(res);
            }
        };
        Routed::Call(Prepared {
            route,
            ct,
            head,
            parts: (parts.headers, parts.extensions, arrival),
            body,
        })
    }

    /// Adds the CORS headers for the request's `origin`, when CORS is on.
    fn decorate(&self, origin: Option<HeaderValue>, response: &mut http::Response<Body>) {
        if let (Some(cors), Some(origin)) = (&self.cors, origin) {
            cors.decorate(&origin, response.headers_mut());
        }
    }

    /// Starts the handler and returns the future of its response. The handler's future is
    /// made here, so the returned one holds only it and what writing the response needs.
    fn call(
        &self,
        route: &Route,
        ct: ContentType,
        head: Head,
        (headers, extensions, arrival): (HeaderMap, http::Extensions, Arrival),
        input: Input,
    ) -> impl Future<Output = http::Response<Body>> + Send + use<'_> {
        let spec = route.spec;
        let call_input = CallInput {
            arrival,
            protocol: ct.protocol,
            interceptors: self.interceptors.clone(),
            headers,
            extensions,
            deadline: head.deadline,
            codec: ct.codec.clone(),
            input,
            spec,
        };
        let span = tracing::info_span!(
            "rpc",
            otel.kind = "server",
            rpc.system = ct.protocol.rpc_system(),
            rpc.service = spec.service(),
            rpc.method = spec.method(),
            rpc.status_code = tracing::field::Empty,
        );
        let fut = tracing::Instrument::instrument(
            std::panic::AssertUnwindSafe(route.handler.call(call_input)).catch_unwind(),
            span.clone(),
        );
        async move {
            let result = match head.deadline {
                Some(deadline) => match tokio::time::timeout_at(deadline.into(), fut).await {
                    Ok(r) => r,
                    Err(_) => Ok(Err(Error::deadline_exceeded("the deadline expired"))),
                },
                None => fut.await,
            };
            let result = result.unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(procedure = spec.procedure, panic = %what, "handler panicked");
                Err(Error::internal("handler panicked"))
            });
            if !span.is_disabled() {
                let code = result.as_ref().err().map_or("ok", |e| e.code().as_str());
                span.record("rpc.status_code", code);
            }
            let writer = FrameWriter {
                codec: ct.codec.clone(),
                compression: head.response_compression,
                min_size: self.compression.min_size(),
                send_limit: self.send_limit,
            };
            let encoding_header = ct.encoding_headers().1;
            let mut res = ContentType::respond(
                Call {
                    content_type: ct,
                    writer,
                    deadline: head.deadline,
                },
                result,
            );
            if let Some(v) = &self.accept_encoding {
                res.headers_mut().insert(encoding_header, v.clone());
            }
            res
        }
    }

    /// Adds the protocol's accept-encoding header listing the compressions we accept
    /// (`grpc-accept-encoding`, `connect-accept-encoding`, or `accept-encoding` for Connect
    /// unary), as connect-go and grpc-go do.
    fn advertise_encodings(&self, ct: &ContentType, h: &mut HeaderMap) {
        if let Some(v) = &self.accept_encoding {
            h.insert(ct.encoding_headers().1, v.clone());
        }
    }

    fn read_head(&self, ct: &ContentType, h: &HeaderMap) -> Result<Head, Error> {
        let wire = ct.read_head(h, self.require_protocol_header)?;
        let request_compression = self.lookup_encoding(wire.encoding)?;
        let response_compression = negotiate(
            &self.compression,
            request_compression.as_ref(),
            wire.accept_encoding,
        );
        let deadline = wire
            .timeout?
            .map(|t| deadline_from(crate::timeout::clamp(t, self.max_timeout)));
        Ok(Head {
            request_compression,
            response_compression,
            deadline,
        })
    }

    fn lookup_encoding(
        &self,
        value: Option<&HeaderValue>,
    ) -> Result<Option<Arc<dyn Compression>>, Error> {
        let Some(value) = value else { return Ok(None) };
        // A name that is not visible ASCII is an unknown encoding, never identity.
        let Ok(name) = value.to_str().map(str::trim) else {
            let lossy = String::from_utf8_lossy(value.as_bytes());
            return Err(unsupported_encoding(&lossy, &self.compression));
        };
        if name.is_empty() || name == "identity" {
            return Ok(None);
        }
        self.compression
            .get(name)
            .map(Some)
            .ok_or_else(|| unsupported_encoding(name, &self.compression))
    }

    async fn read_unary_body(
        &self,
        body: Body,
        compression: Option<&Arc<dyn Compression>>,
    ) -> Result<Bytes, Error> {
        let bytes = crate::stream::read_body_limited(
            body,
            self.receive_limit,
            self.budget.as_ref(),
            body_error,
            "request",
        )
        .await?;
        self.decompress_unary(bytes, compression).await
    }

    async fn decompress_unary(
        &self,
        bytes: Bytes,
        compression: Option<&Arc<dyn Compression>>,
    ) -> Result<Bytes, Error> {
        match compression {
            // Never decompress an empty body: it is the empty message whatever the encoding.
            Some(algo) if !bytes.is_empty() => {
                decompress_off_worker(algo.clone(), bytes, self.receive_limit).await
            }
            _ if bytes.len() > self.receive_limit => Err(Error::resource_exhausted(format!(
                "message is larger than the limit of {} bytes",
                self.receive_limit
            ))),
            _ => Ok(bytes),
        }
    }

    async fn connect_get(
        &self,
        route: &Route,
        parts: http::request::Parts,
        arrival: Arrival,
    ) -> http::Response<Body> {
        let get = match connect::read_get(
            parts.uri.query().unwrap_or(""),
            &self.codecs,
            &parts.headers,
            self.require_protocol_header,
        ) {
            Ok(get) => get,
            Err(GetRefusal::UnknownCodec) => {
                return self.unsupported_media_type(StreamType::Unary);
            }
            Err(GetRefusal::Error(ct, err)) => return ct.immediate_error(&err),
        };
        let ct = get.content_type;
        let request_compression = match self.lookup_encoding(get.compression.as_ref()) {
            Ok(c) => c,
            Err(err) => return ct.immediate_error(&err),
        };
        let message = match self
            .decompress_unary(Bytes::from(get.message), request_compression.as_ref())
            .await
        {
            Ok(m) => m,
            Err(err) => return ct.immediate_error(&err),
        };
        let deadline = match get.timeout {
            Ok(timeout) => {
                timeout.map(|t| deadline_from(crate::timeout::clamp(t, self.max_timeout)))
            }
            Err(err) => return ct.immediate_error(&err),
        };
        let response_compression = negotiate(&self.compression, None, get.accept_encoding);
        let head = Head {
            request_compression: None,
            response_compression,
            deadline,
        };
        // The query is the request for a GET: handlers can read it from the `Uri` extension.
        let mut extensions = parts.extensions;
        extensions.insert(parts.uri);
        self.call(
            route,
            ct,
            head,
            (parts.headers, extensions, arrival),
            Input::Single(message),
        )
        .await
    }
}

/// The one message of a response stream that answers a unary call.
async fn only_message<Res: Message>(
    response: Response<ResponseStream<Res>>,
) -> Result<Response<Res>, Error> {
    use futures_util::StreamExt as _;
    let (mut stream, headers, trailers) = response.into_parts();
    let message = stream
        .next()
        .await
        .transpose()?
        .ok_or_else(|| Error::internal("the fallback answered a unary call with no message"))?;
    if stream.next().await.is_some() {
        return Err(Error::internal(
            "the fallback answered a unary call with more than one message",
        ));
    }
    Ok(Response::from_parts(message, headers, trailers))
}

/// The value of the accept-encoding headers for `registry`, `None` when it has no algorithm.
fn accept_encoding(registry: &Registry) -> Option<HeaderValue> {
    let accepted = registry.accept_header();
    if accepted.is_empty() {
        return None;
    }
    HeaderValue::from_str(&accepted).ok()
}

fn deadline_from(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(86400 * 365))
}

fn method_not_allowed(get_allowed: bool) -> http::Response<Body> {
    let mut res = http::Response::new(empty_body());
    *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let allow = if get_allowed { "GET, POST" } else { "POST" };
    res.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    res
}

impl Inner {
    /// 415 with the content types this router accepts for `stream_type`.
    fn unsupported_media_type(&self, stream_type: StreamType) -> http::Response<Body> {
        let mut res = http::Response::new(empty_body());
        *res.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        res.headers_mut()
            .insert("accept-post", accept_post(stream_type, &self.codecs));
        res
    }
}
