//! Calling Connect, gRPC and gRPC-Web servers: configuration, per-call options, and the call
//! drivers, written once per stream type over any [`Transport`].

#[cfg(feature = "client")]
mod balance;
#[cfg(feature = "client")]
mod connector;
#[cfg(feature = "client")]
mod http;
#[cfg(all(feature = "client", feature = "http3"))]
mod http3;
pub(crate) mod read;
mod retry;
mod transport;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::header::{CONTENT_TYPE, HeaderValue};
use ::http::{HeaderMap, Method, Uri};
use std::task::Poll;

use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt as _;

use crate::codec::{Codec, CodecHandle, Message};
use crate::compression::{Compression, Registry};
use crate::headers;
use crate::interceptor::{EndGuard, Observers, fail};
use crate::protocol::{ClientHead, ContentType, Protocol, connect};
use crate::stream::{Batch, Body, Encoded, FrameWriter, Streaming, full_body};
use crate::{ConnectionInfo, Error, Idempotency, Response, Spec};

#[cfg(feature = "client")]
pub use self::balance::{
    Balanced, DEFAULT_EJECTION_TIME, DEFAULT_REFRESH_INTERVAL, MAX_ADDRESSES_PER_NAME,
    RESOLVE_TIMEOUT, Resolver, SystemResolver,
};
#[cfg(feature = "client")]
pub use self::connector::{Dialed, DialedIo, Dialer};
#[cfg(feature = "client")]
pub use self::http::{
    DEFAULT_CLIENT_CONNECTION_WINDOW, DEFAULT_CLIENT_MAX_FRAME_SIZE,
    DEFAULT_CLIENT_MAX_HEADER_LIST_SIZE, DEFAULT_CLIENT_STREAM_WINDOW,
    DEFAULT_CLIENT_TCP_KEEPALIVE_INTERVAL, DEFAULT_CLIENT_TCP_KEEPALIVE_RETRIES,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_POOL_IDLE_TIMEOUT, HttpTransport, HttpVersion,
};
pub use read::BidiStream;
pub use retry::{
    DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BACKOFF, DEFAULT_RETRY_BUFFER_LIMIT,
    RetryPolicy,
};
pub use transport::Transport;

/// How a [`Client`] calls: where, in which protocol and codec, with which compression,
/// limits, default timeout and headers.
///
/// Every setting has a default (see [`new`](Self::new)); the builder methods change one each.
///
/// ```
/// use std::time::Duration;
/// use volley::{ClientConfig, JsonCodec, Protocol};
///
/// # fn main() -> Result<(), volley::Error> {
/// let config = ClientConfig::new("http://127.0.0.1:8080")?
///     .protocol(Protocol::GrpcWeb)
///     .codec(JsonCodec)
///     .send_compression("gzip")
///     .timeout(Duration::from_secs(10))
///     .receive_limit(16 * 1024 * 1024)
///     .header("x-client", "docs");
/// assert_eq!(config.get_protocol(), Protocol::GrpcWeb);
/// # Ok(())
/// # }
/// ```
///
/// More in the [clients guide](crate::guide::clients).
#[derive(Clone, Debug)]
pub struct ClientConfig {
    base_uri: Uri,
    protocol: Protocol,
    grpc_web_text: bool,
    codec: CodecHandle,
    compression: Registry,
    send_compression: Option<&'static str>,
    receive_limit: usize,
    send_limit: usize,
    timeout: Option<Duration>,
    headers: HeaderMap,
    use_get: bool,
    get_url_limit: usize,
    interceptors: Option<crate::handler::Chain>,
    retry: Option<RetryPolicy>,
    #[cfg(feature = "client")]
    pub(crate) http: self::http::HttpSettings,
}

impl ClientConfig {
    /// A configuration for the server at `base_uri` (`http://127.0.0.1:8080`). Defaults:
    /// Connect, binary protobuf, no request compression, every built-in compression accepted,
    /// 4 MiB receive limit, no send limit, no timeout, Connect GET off.
    pub fn new(base_uri: impl AsRef<str>) -> Result<Self, Error> {
        let base_uri: Uri = base_uri
            .as_ref()
            .trim_end_matches('/')
            .parse()
            .map_err(|e| Error::invalid_argument(format!("invalid base URI: {e}")))?;
        Ok(Self {
            base_uri,
            protocol: Protocol::Connect,
            grpc_web_text: false,
            codec: CodecHandle::Proto,
            compression: Registry::default(),
            send_compression: None,
            receive_limit: crate::DEFAULT_RECEIVE_LIMIT,
            send_limit: usize::MAX,
            timeout: None,
            headers: HeaderMap::new(),
            use_get: false,
            get_url_limit: 8 * 1024,
            interceptors: None,
            retry: None,
            #[cfg(feature = "client")]
            http: Default::default(),
        })
    }

    /// The protocol (default Connect).
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// With the gRPC-Web protocol, speaks its text variant (`application/grpc-web-text`):
    /// the same framed body, base64-encoded in both directions, for peers (and proxies) that
    /// only pass text. Ignored with the other protocols. Default off (binary gRPC-Web).
    pub fn grpc_web_text(mut self, enabled: bool) -> Self {
        self.grpc_web_text = enabled;
        self
    }

    /// The codec requests are sent in; responses must come back in it. Default
    /// [`ProtoCodec`](crate::ProtoCodec) (binary protobuf); [`JsonCodec`](crate::JsonCodec)
    /// for canonical JSON, or any [`Codec`] the server has registered by the same name.
    ///
    /// # Panics
    ///
    /// When the name is not a lowercase content-type token (`a`-`z`, `0`-`9`, `-`, `.`, `_`).
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.codec = crate::codec::checked(codec);
        self
    }

    /// Compresses requests with this algorithm (by name, from the registry); default none.
    pub fn send_compression(mut self, name: &'static str) -> Self {
        self.send_compression = Some(name).filter(|n| *n != "identity");
        self
    }

    /// The algorithms accepted in responses and available to send (default: all built-in).
    pub fn compression(mut self, registry: Registry) -> Self {
        self.compression = registry;
        self
    }

    /// Largest response message accepted, after decompression (default 4 MiB).
    pub fn receive_limit(mut self, bytes: usize) -> Self {
        self.receive_limit = bytes;
        self
    }

    /// Largest request message sent, before compression (default unlimited).
    pub fn send_limit(mut self, bytes: usize) -> Self {
        self.send_limit = bytes;
        self
    }

    /// Default timeout for every call (default none).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A header sent on every call.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name or `value` not a valid header value (a control
    /// character, a non-ASCII byte): meant for literals, like `HeaderValue::from_static`. For
    /// values from elsewhere (a token read from a file), use [`try_header`](Self::try_header).
    #[track_caller]
    pub fn header(self, name: &str, value: &str) -> Self {
        headers::expect_valid(self.try_header(name, value))
    }

    /// A header sent on every call; an `invalid_argument` error when `name` or `value` is not
    /// valid in a header.
    ///
    /// ```
    /// use volley::{ClientConfig, Code};
    ///
    /// let config = ClientConfig::new("http://127.0.0.1:8080").unwrap();
    /// let err = config.try_header("x-token", "two\nlines").unwrap_err();
    /// assert_eq!(err.code(), Code::InvalidArgument);
    /// ```
    pub fn try_header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let (n, v) = headers::parse_header(name, value)?;
        self.headers.append(n, v);
        Ok(self)
    }

    /// Uses Connect GET for side-effect-free methods (default off); URLs longer than
    /// `url_limit` bytes fall back to POST.
    pub fn connect_get(mut self, enabled: bool, url_limit: usize) -> Self {
        self.use_get = enabled;
        self.get_url_limit = url_limit;
        self
    }

    /// Adds an interceptor; interceptors run in the order they are added, outermost first.
    /// Default: none.
    pub fn interceptor(mut self, interceptor: impl crate::Interceptor) -> Self {
        let mut chain: Vec<_> = self.interceptors.as_deref().cloned().unwrap_or_default();
        chain.push(Arc::new(interceptor));
        self.interceptors = Some(Arc::new(chain));
        self
    }

    /// Retries failed idempotent calls by `policy` (default: no retries). See
    /// [`RetryPolicy`] for which calls are retried and how the budget bounds them.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The protocol in use.
    pub fn get_protocol(&self) -> Protocol {
        self.protocol
    }
}

/// Per-call overrides of the client's configuration.
///
/// Pass them to [`Client::unary`] and friends, or to a typed client's `*_with` methods
/// (`client.greet_with(request, options)`). Headers add to the configuration's; the other
/// settings replace it for this call.
///
/// ```
/// use std::time::Duration;
/// use volley::CallOptions;
///
/// let options = CallOptions::new()
///     .with_timeout(Duration::from_millis(500))
///     .with_header("authorization", "Bearer secret")
///     .with_binary_header("trace-bin", &[1, 2, 3])
///     .with_send_compression(None)
///     .with_receive_limit(64 * 1024);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct CallOptions {
    timeout: Option<Duration>,
    headers: HeaderMap,
    send_compression: Option<Option<&'static str>>,
    receive_limit: Option<usize>,
    send_limit: Option<usize>,
    deadline: Option<Instant>,
    extensions: ::http::Extensions,
}

impl CallOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// A timeout for this call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// A deadline for this call: it ends at `deadline` or at its timeout (this call's, or the
    /// client's default), whichever comes first. The time left is what travels on the wire.
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        self
    }

    /// Propagates a handler's deadline: the call ends no later than the request being
    /// handled must (nothing changes if its caller sent no deadline). Use it for every call a
    /// handler makes downstream, so the whole chain gives up together; see the
    /// [production guide](crate::guide::production#deadlines) for why this is explicit.
    pub fn with_deadline_of<T>(self, request: &crate::Request<T>) -> Self {
        match request.deadline() {
            Some(deadline) => self.with_deadline(deadline),
            None => self,
        }
    }

    /// A header for this call (`-bin` names take raw bytes via
    /// [`with_binary_header`](Self::with_binary_header)).
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not valid in a header: meant for literals. Values from
    /// elsewhere go through [`try_with_header`](Self::try_with_header).
    #[track_caller]
    pub fn with_header(self, name: &str, value: &str) -> Self {
        headers::expect_valid(self.try_with_header(name, value))
    }

    /// A header for this call; an `invalid_argument` error when `name` or `value` is not
    /// valid in a header.
    ///
    /// ```
    /// use volley::{CallOptions, Code};
    ///
    /// let token = "secret\r\nx-injected: 1"; // e.g. read from a file
    /// let err = CallOptions::new()
    ///     .try_with_header("authorization", &format!("Bearer {token}"))
    ///     .unwrap_err();
    /// assert_eq!(err.code(), Code::InvalidArgument);
    /// ```
    pub fn try_with_header(mut self, name: &str, value: &str) -> Result<Self, Error> {
        let (n, v) = headers::parse_header(name, value)?;
        self.headers.append(n, v);
        Ok(self)
    }

    /// A binary header (name must end in `-bin`), sent base64-encoded.
    ///
    /// # Panics
    ///
    /// When `name` is not a valid header name or does not end in `-bin`; see
    /// [`try_with_binary_header`](Self::try_with_binary_header).
    #[track_caller]
    pub fn with_binary_header(self, name: &str, value: &[u8]) -> Self {
        headers::expect_valid(self.try_with_binary_header(name, value))
    }

    /// A binary header; an `invalid_argument` error when `name` is not a valid header name or
    /// does not end in `-bin`.
    pub fn try_with_binary_header(mut self, name: &str, value: &[u8]) -> Result<Self, Error> {
        let (n, v) = headers::parse_binary_header(name, value)?;
        self.headers.append(n, v);
        Ok(self)
    }

    /// Headers for this call, mutable.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Request compression for this call (`None` for identity).
    pub fn with_send_compression(mut self, name: Option<&'static str>) -> Self {
        self.send_compression = Some(name);
        self
    }

    /// Receive limit for this call.
    pub fn with_receive_limit(mut self, bytes: usize) -> Self {
        self.receive_limit = Some(bytes);
        self
    }

    /// Send limit for this call.
    pub fn with_send_limit(mut self, bytes: usize) -> Self {
        self.send_limit = Some(bytes);
        self
    }

    /// An extension for this call: interceptors see it (and may replace it), and it reaches
    /// the transport in the HTTP request's extensions, for tower layers between the client
    /// and the wire (a routing hint, a per-call credential, a tracing context).
    pub fn with_extension<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.extensions.insert(value);
        self
    }

    /// Extensions for this call, mutable.
    pub fn extensions_mut(&mut self) -> &mut ::http::Extensions {
        &mut self.extensions
    }
}

/// A client for one server, shared cheaply by clone. Generated typed clients wrap it.
///
/// [`Client::new`] uses the built-in HTTP transport (feature `client`);
/// [`Client::with_transport`] takes any [`Transport`], such as a tower stack or a
/// [`Router`](crate::Router) called in memory, as here:
///
/// ```
/// use buffa_types::google::protobuf::StringValue;
/// use volley::{CallOptions, Client, ClientConfig, Idempotency, Request, Response, Router};
/// use volley::{Spec, StreamType};
///
/// const GREET: Spec = Spec::new(
///     "/greet.v1.GreetService/Greet",
///     StreamType::Unary,
///     Idempotency::Unknown,
/// );
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), volley::Error> {
/// let router = Router::new().unary(GREET, |request: Request<StringValue>| async move {
///     Ok(Response::new(StringValue::from(format!("Hello, {}!", request.message().value))))
/// });
/// let client = Client::with_transport(ClientConfig::new("http://in-memory")?, router);
/// let reply = client
///     .unary::<_, StringValue>(GREET, StringValue::from("you"), CallOptions::new())
///     .await?;
/// assert_eq!(reply.message().value, "Hello, you!");
/// # Ok(())
/// # }
/// ```
///
/// Over the network, with generated code:
///
/// ```no_run
/// # #[cfg(feature = "client")]
/// # async fn run() -> Result<(), volley::Error> {
/// let config = volley::ClientConfig::new("http://127.0.0.1:8080")?
///     .protocol(volley::Protocol::Grpc);
/// let client = volley::Client::new(config)?;
/// // let greeter = GreetServiceClient::new(client);
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Client<T> {
    config: Arc<ClientConfig>,
    transport: T,
}

#[cfg(feature = "client")]
impl Client<HttpTransport> {
    /// A client over the built-in pooled HTTP transport (HTTP/1.1, h2c, HTTPS with ALPN).
    pub fn new(config: ClientConfig) -> Result<Self, Error> {
        let transport = HttpTransport::for_config(&config)?;
        Ok(Self::with_transport(config, transport))
    }
}

/// The resolved settings of one call.
#[derive(Clone)]
pub(crate) struct Prepared {
    pub(crate) content_type: ContentType,
    pub(crate) writer: FrameWriter,
    pub(crate) accepted: Registry,
    pub(crate) receive_limit: usize,
    pub(crate) deadline: Option<Instant>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) headers: HeaderMap,
    /// Set on the HTTP request: from [`CallOptions`] and interceptors.
    pub(crate) extensions: ::http::Extensions,
}

impl Prepared {
    /// The settings for attempt number `attempt` (1-based) of a retried call: after the
    /// first, the timeout sent is the time left before the deadline.
    fn for_attempt(&self, attempt: u32) -> Self {
        let mut p = self.clone();
        if attempt > 1
            && let Some(deadline) = self.deadline
        {
            p.timeout = Some(deadline.saturating_duration_since(Instant::now()));
        }
        p
    }
}

impl<T: Transport> Client<T> {
    /// A client over any transport: a `tower::Service<http::Request<Body>>` returning HTTP
    /// responses (a tower stack around hyper's client, or a [`Router`](crate::Router) for
    /// calls in memory: see the [testing guide](crate::guide::testing)).
    pub fn with_transport(config: ClientConfig, transport: T) -> Self {
        Self {
            config: Arc::new(config),
            transport,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn prepare(&self, spec: &Spec, options: CallOptions) -> Result<Prepared, Error> {
        let c = &self.config;
        let content_type = ContentType::for_client(
            c.protocol,
            c.codec.clone(),
            spec.stream_type,
            c.grpc_web_text,
        );
        let send_name = options.send_compression.unwrap_or(c.send_compression);
        let compression: Option<Arc<dyn Compression>> = match send_name {
            Some(name) => Some(c.compression.get(name).ok_or_else(|| {
                Error::internal(format!("compression {name:?} is not registered"))
            })?),
            None => None,
        };
        let mut timeout = options.timeout.or(c.timeout);
        let mut deadline = timeout.map(|t| Instant::now() + t);
        if let Some(propagated) = options.deadline
            && deadline.is_none_or(|d| propagated < d)
        {
            // A propagated deadline sooner than the call's own timeout wins.
            deadline = Some(propagated);
            timeout = Some(propagated.saturating_duration_since(Instant::now()));
        }
        let mut headers = c.headers.clone();
        for (name, value) in options.headers.iter() {
            headers.append(name.clone(), value.clone());
        }
        Ok(Prepared {
            content_type,
            writer: FrameWriter {
                codec: c.codec.clone(),
                compression,
                min_size: c.compression.min_size(),
                send_limit: options.send_limit.unwrap_or(c.send_limit),
            },
            accepted: c.compression.clone(),
            receive_limit: options.receive_limit.unwrap_or(c.receive_limit),
            deadline,
            timeout,
            headers,
            extensions: options.extensions,
        })
    }

    fn request_head(&self, p: &Prepared, method: Method, uri: Uri) -> ::http::request::Builder {
        let ct = &p.content_type;
        let mut builder = ::http::Request::builder().method(method).uri(uri);
        let is_get = builder.method_ref() == Some(&Method::GET);
        if let Some(h) = builder.headers_mut() {
            h.extend(p.headers.clone());
            if !is_get {
                h.insert(CONTENT_TYPE, ct.header_value());
            }
            let head = ClientHead {
                compression: p.writer.compression.as_ref().map(|a| a.name()),
                accept: HeaderValue::from_str(&p.accepted.accept_header()).ok(),
                timeout: p.timeout,
            };
            ct.request_headers(h, &head);
        }
        if let Some(extensions) = builder.extensions_mut() {
            extensions.extend(p.extensions.clone());
        }
        builder
    }

    fn uri_for(&self, spec: &Spec, query: Option<&str>) -> Result<Uri, Error> {
        let base = self.config.base_uri.to_string();
        let base = base.trim_end_matches('/');
        let s = match query {
            Some(q) => format!("{base}{}?{q}", spec.procedure),
            None => format!("{base}{}", spec.procedure),
        };
        s.parse()
            .map_err(|e| Error::internal(format!("building request URI: {e}")))
    }

    /// Calls a unary method.
    pub async fn unary<Req: Message, Res: Message>(
        &self,
        spec: Spec,
        request: Req,
        options: CallOptions,
    ) -> Result<Response<Res>, Error> {
        let p = self.prepare(&spec, options)?;
        let span = self.span(&spec);
        let call = async move {
            match self.config.interceptors.clone() {
                None => self.unary_prepared(spec, request, p).await,
                Some(chain) => self.unary_intercepted(chain, spec, request, p).await,
            }
        };
        let result = tracing::Instrument::instrument(call, span.clone()).await;
        record_status(&span, result.as_ref().err());
        result
    }

    /// A span per call following OpenTelemetry's RPC conventions (disabled, and nearly free,
    /// without a subscriber).
    fn span(&self, spec: &Spec) -> tracing::Span {
        tracing::info_span!(
            "rpc",
            otel.kind = "client",
            rpc.system = self.config.protocol.rpc_system(),
            rpc.service = spec.service(),
            rpc.method = spec.method(),
            rpc.status_code = tracing::field::Empty,
        )
    }

    async fn unary_intercepted<Req: Message, Res: Message>(
        &self,
        chain: crate::handler::Chain,
        spec: Spec,
        request: Req,
        mut p: Prepared,
    ) -> Result<Response<Res>, Error> {
        use crate::interceptor::{
            CallInfo, Endpoint, Side, UnaryRequest, UnaryResponse, run_unary,
        };
        let info = CallInfo {
            spec,
            protocol: self.config.protocol,
            side: Side::Client,
            peer: None,
            deadline: p.deadline,
        };
        let headers = std::mem::take(&mut p.headers);
        let extensions = std::mem::take(&mut p.extensions);
        let this = self.clone();
        let endpoint: Endpoint = Arc::new(move |request: UnaryRequest| {
            let this = this.clone();
            let mut p = p.clone();
            Box::pin(async move {
                let (_, headers, extensions, message) = request.into_parts();
                p.headers = headers;
                p.extensions = extensions;
                let message = *message.downcast::<Req>().map_err(|_| {
                    Error::internal(
                        "an interceptor replaced the request with a message of another type",
                    )
                })?;
                let (m, h, t, e) = this
                    .unary_prepared::<Req, Res>(spec, message, p)
                    .await?
                    .into_all();
                let mut response = UnaryResponse::from_parts(Box::new(m), h, t);
                response.extensions = e;
                Ok(response)
            })
        });
        let request = UnaryRequest::from_parts(info, headers, extensions, Box::new(request));
        let (m, h, t, e) = run_unary(&chain, endpoint, request)
            .await?
            .into_message::<Res>()?;
        let mut response = Response::from_parts(m, h, t);
        *response.extensions_mut() = e;
        Ok(response)
    }

    async fn unary_prepared<Req: Message, Res: Message>(
        &self,
        spec: Spec,
        request: Req,
        p: Prepared,
    ) -> Result<Response<Res>, Error> {
        let deadline = p.deadline;
        let call = async move {
            let encoded = p.writer.encode(&request)?;
            match self.config.retry.as_ref().filter(|r| r.applies_to(&spec)) {
                None => self.unary_attempt(&spec, p, encoded).await,
                Some(policy) => {
                    let mut attempt = 1;
                    loop {
                        let result = self
                            .unary_attempt(&spec, p.for_attempt(attempt), encoded.clone())
                            .await;
                        match result {
                            Ok(response) => {
                                policy.succeeded();
                                return Ok(response);
                            }
                            Err(e) => match policy.next(attempt, e.code(), p.deadline) {
                                None => return Err(e),
                                Some(wait) => {
                                    tracing::debug!(attempt, error = %e, ?wait, "retrying");
                                    tokio::time::sleep(wait).await;
                                    attempt += 1;
                                }
                            },
                        }
                    }
                }
            }
        };
        with_deadline(deadline, call).await
    }

    /// One attempt of a unary call.
    async fn unary_attempt<Res: Message>(
        &self,
        spec: &Spec,
        p: Prepared,
        encoded: Encoded,
    ) -> Result<Response<Res>, Error> {
        if p.content_type.is_unenveloped() {
            self.connect_unary(spec, p, encoded).await
        } else {
            let body = full_body(frame_one(&p.writer, &p.content_type, encoded)?);
            let (headers, mut stream, connection) = self.open_stream::<Res>(spec, p, body).await?;
            with_connection(read::finish_unary(headers, &mut stream).await?, connection)
        }
    }

    /// Runs the streaming interceptors' open hooks for a client call, before anything is sent.
    async fn observe(&self, spec: Spec, p: &mut Prepared) -> Result<Option<Observers>, Error> {
        let Some(chain) = &self.config.interceptors else {
            return Ok(None);
        };
        let info = crate::interceptor::CallInfo {
            spec,
            protocol: self.config.protocol,
            side: crate::interceptor::Side::Client,
            peer: None,
            deadline: p.deadline,
        };
        Observers::start(chain, info, &mut p.headers, &mut p.extensions).await
    }

    async fn connect_unary<Res: Message>(
        &self,
        spec: &Spec,
        p: Prepared,
        encoded: Encoded,
    ) -> Result<Response<Res>, Error> {
        let get_url_limit = (self.config.use_get && spec.idempotency == Idempotency::NoSideEffects)
            .then_some(self.config.get_url_limit);
        let request = connect::unary_request(
            &p,
            encoded,
            get_url_limit,
            |query| self.uri_for(spec, query),
            |method, uri| self.request_head(&p, method, uri),
        )?;
        let response = self.transport.send(request).await?;
        let connection = connection_of(&response);
        with_connection(
            connect::read_unary_response(response, &p).await?,
            connection,
        )
    }

    /// Sends an enveloped request and returns the response headers, message stream and the
    /// connection used.
    async fn open_stream<Res: Message>(
        &self,
        spec: &Spec,
        p: Prepared,
        body: Body,
    ) -> Result<(HeaderMap, Streaming<Res>, Option<ConnectionInfo>), Error> {
        let request = self
            .request_head(&p, Method::POST, self.uri_for(spec, None)?)
            .body(body)
            .map_err(|e| Error::internal(format!("building request: {e}")))?;
        let response = self.transport.send(request).await?;
        let connection = connection_of(&response);
        let (headers, stream) = read::open_response(response, &p)?;
        Ok((headers, stream, connection))
    }

    /// Calls a server-streaming method.
    ///
    /// Returns at the response headers; under a [`RetryPolicy`] that applies to the method,
    /// once the first message (or the end) has arrived instead, so that a failure before it
    /// can be retried.
    pub async fn server_stream<Req: Message, Res: Message>(
        &self,
        spec: Spec,
        request: Req,
        options: CallOptions,
    ) -> Result<Response<Streaming<Res>>, Error> {
        let mut p = self.prepare(&spec, options)?;
        let observers = self.observe(spec, &mut p).await?;
        let deadline = p.deadline;
        let mut request = request;
        if let Some(o) = &observers
            && let Err(e) = o.sent(&mut request)
        {
            return Err(fail(Some(o), e));
        }
        let open = async move {
            let encoded = p.writer.encode(&request)?;
            let Some(policy) = self.config.retry.as_ref().filter(|r| r.applies_to(&spec)) else {
                let body = full_body(frame_one(&p.writer, &p.content_type, encoded)?);
                return self.open_stream::<Res>(&spec, p, body).await;
            };
            // Retried until the first message (or the end) arrives: the call commits then.
            let mut attempt = 1;
            loop {
                let body = full_body(frame_one(&p.writer, &p.content_type, encoded.clone())?);
                let opened = self
                    .open_stream::<Res>(&spec, p.for_attempt(attempt), body)
                    .await;
                let (e, opened) = match opened {
                    Ok((headers, mut stream, connection)) => {
                        match stream.take_first_error().await {
                            None => {
                                policy.succeeded();
                                return Ok((headers, stream, connection));
                            }
                            Some(e) => (e, Some((headers, stream, connection))),
                        }
                    }
                    Err(e) => (e, None),
                };
                match policy.next(attempt, e.code(), p.deadline) {
                    Some(wait) => {
                        tracing::debug!(attempt, error = %e, ?wait, "retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    // Not retried: an error in the stream stays the stream's first item.
                    None => match opened {
                        Some((headers, stream, connection)) => {
                            return Ok((headers, stream.with_first_error(e), connection));
                        }
                        None => return Err(e),
                    },
                }
            }
        };
        let span = self.span(&spec);
        // Dropped while opening (the caller gave up), the call reports `canceled`.
        let mut guard = EndGuard(observers.clone());
        let opened =
            tracing::Instrument::instrument(with_deadline(deadline, open), span.clone()).await;
        guard.disarm();
        record_status(&span, opened.as_ref().err());
        let (headers, stream, connection) = match opened {
            Ok(x) => x,
            Err(e) => return Err(fail(observers.as_ref(), e)),
        };
        let stream = read::with_stream_deadline(stream, deadline).observed(observers, true);
        with_connection(
            Response::from_parts(stream, headers, HeaderMap::new()),
            connection,
        )
    }

    /// Calls a client-streaming method with the messages of `requests`. Under a
    /// [`RetryPolicy`] that applies to the method, the messages sent are kept (up to its
    /// [buffer limit](RetryPolicy::buffer_limit)) so that a retry can send them again.
    pub async fn client_stream<Req, Res, S>(
        &self,
        spec: Spec,
        requests: S,
        options: CallOptions,
    ) -> Result<Response<Res>, Error>
    where
        Req: Message,
        Res: Message,
        S: Stream<Item = Req> + Send + 'static,
    {
        let mut p = self.prepare(&spec, options)?;
        let observers = self.observe(spec, &mut p).await?;
        if let Some(policy) = self.config.retry.clone().filter(|r| r.applies_to(&spec)) {
            return self
                .client_stream_retried(spec, requests, p, observers, policy)
                .await;
        }
        let deadline = p.deadline;
        let body = request_body(&p, requests, observers.clone());
        let span = self.span(&spec);
        // Dropped before the end (the caller gave up), the call reports `canceled`.
        let mut guard = EndGuard(observers.clone());
        let obs = observers.clone();
        let call = async move {
            let (headers, stream, connection) = self.open_stream::<Res>(&spec, p, body).await?;
            let mut stream = stream.observed(obs, true);
            with_connection(read::finish_unary(headers, &mut stream).await?, connection)
        };
        let result = tracing::Instrument::instrument(with_deadline(deadline, call), span.clone())
            .await
            .map_err(|e| fail(observers.as_ref(), e));
        guard.disarm();
        record_status(&span, result.as_ref().err());
        result
    }

    /// A client stream under a retry policy: the messages sent are kept (up to the policy's
    /// buffer limit) and sent again by each retry; observers see the call's end once.
    async fn client_stream_retried<Req, Res, S>(
        &self,
        spec: Spec,
        requests: S,
        p: Prepared,
        observers: Option<Observers>,
        policy: RetryPolicy,
    ) -> Result<Response<Res>, Error>
    where
        Req: Message,
        Res: Message,
        S: Stream<Item = Req> + Send + 'static,
    {
        let deadline = p.deadline;
        let replay = retry::Replay::new(
            request_frames(&p, requests, observers.clone()),
            policy.get_buffer_limit(),
        );
        // Reports a dropped call's end to the observers.
        let mut guard = crate::interceptor::EndGuard(observers.clone());
        let span = self.span(&spec);
        let obs = observers.clone();
        let call = async move {
            let mut attempt = 1;
            loop {
                let body = replay.body();
                let result = async {
                    let (headers, mut stream, connection) = self
                        .open_stream::<Res>(&spec, p.for_attempt(attempt), body)
                        .await?;
                    with_connection(read::finish_unary(headers, &mut stream).await?, connection)
                }
                .await;
                let e = match result {
                    Ok(response) => {
                        policy.succeeded();
                        return Ok(response);
                    }
                    Err(e) => e,
                };
                // A message a hook rejected is not sent again.
                if !replay.replayable() || obs.as_ref().is_some_and(|o| o.failure().is_some()) {
                    return Err(e);
                }
                match policy.next(attempt, e.code(), p.deadline) {
                    None => return Err(e),
                    Some(wait) => {
                        tracing::debug!(attempt, error = %e, ?wait, "retrying");
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                }
            }
        };
        let result =
            tracing::Instrument::instrument(with_deadline(deadline, call), span.clone()).await;
        record_status(&span, result.as_ref().err());
        let result = match (result, &observers) {
            (Ok(mut response), Some(o)) => match o.received(response.message_mut()) {
                Ok(()) => {
                    o.end(Ok(()), response.trailers_mut());
                    Ok(response)
                }
                Err(e) => Err(fail(Some(o), e)),
            },
            (Err(e), Some(o)) => Err(fail(Some(o), e)),
            (result, None) => result,
        };
        guard.disarm();
        result
    }

    /// Opens a bidirectional stream. The request goes out at once; send and receive from the
    /// returned handle (or its split halves, from separate tasks).
    pub async fn bidi_stream<Req: Message, Res: Message>(
        &self,
        spec: Spec,
        options: CallOptions,
    ) -> Result<BidiStream<Req, Res>, Error> {
        let mut p = self.prepare(&spec, options)?;
        let observers = self.observe(spec, &mut p).await?;
        let deadline = p.deadline;
        let (tx, rx) = tokio::sync::mpsc::channel::<Req>(16);
        let body = request_body(&p, tokio_stream_from(rx), observers.clone());
        let this = self.clone();
        let obs = observers.clone();
        let open = async move {
            let (headers, stream, connection) = this.open_stream::<Res>(&spec, p, body).await?;
            Ok((headers, stream.observed(obs, true), connection))
        };
        let open = async move {
            // Dropped while opening (the stream was dropped), the call reports `canceled`.
            let mut guard = EndGuard(observers.clone());
            let opened = with_deadline(deadline, open)
                .await
                .map_err(|e| fail(observers.as_ref(), e));
            guard.disarm();
            opened
        };
        Ok(BidiStream::new(tx, Box::pin(open), deadline))
    }
}

impl<T: Transport> Client<T>
where
    T: Clone,
{
    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }
}

/// The connection a transport reported on its response.
fn connection_of<B>(response: &::http::Response<B>) -> Option<ConnectionInfo> {
    response.extensions().get::<ConnectionInfo>().cloned()
}

/// Puts the connection the call used on its response.
fn with_connection<T>(
    mut response: Response<T>,
    connection: Option<ConnectionInfo>,
) -> Result<Response<T>, Error> {
    if let Some(c) = connection {
        response.extensions_mut().insert(c);
    }
    Ok(response)
}

/// Records the call's outcome on its span.
fn record_status(span: &tracing::Span, error: Option<&Error>) {
    if !span.is_disabled() {
        span.record("rpc.status_code", error.map_or("ok", |e| e.code().as_str()));
    }
}

/// One message, framed as the call's body carries it.
fn frame_one(writer: &FrameWriter, ct: &ContentType, encoded: Encoded) -> Result<Bytes, Error> {
    Ok(ct.body_chunk(writer.frame(encoded)?))
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A streaming request body: each message encoded, compressed and framed as it comes.
fn request_body<Req: Message, S>(p: &Prepared, requests: S, observers: Option<Observers>) -> Body
where
    S: Stream<Item = Req> + Send + 'static,
{
    let frames = request_frames(p, requests, observers).map(|r| {
        r.map(::http_body::Frame::data)
            .map_err(|e: Error| -> crate::BoxError { Box::new(e) })
    });
    http_body_util::BodyExt::boxed_unsync(http_body_util::StreamBody::new(frames))
}

/// The body chunks of a streaming request: each message encoded, compressed and framed, the
/// messages ready together gathered into one chunk (up to [`crate::stream::BATCH_LIMIT`]) in a buffer reused
/// between chunks.
fn request_frames<Req: Message, S>(
    p: &Prepared,
    requests: S,
    observers: Option<Observers>,
) -> impl Stream<Item = Result<Bytes, Error>> + Send + 'static
where
    S: Stream<Item = Req> + Send + 'static,
{
    let (writer, ct) = (p.writer.clone(), p.content_type.clone());
    let mut requests = Box::pin(requests);
    let mut batch = Batch::default();
    // An error met while gathering, sent after the messages gathered before it.
    let mut failed: Option<Error> = None;
    let mut done = false;
    futures_util::stream::poll_fn(move |cx| {
        if let Some(err) = failed.take() {
            done = true;
            return Poll::Ready(Some(Err(err)));
        }
        if done {
            return Poll::Ready(None);
        }
        while !batch.is_full() {
            let mut message = match requests.as_mut().poll_next(cx) {
                Poll::Pending if batch.is_empty() => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(None) => {
                    done = true;
                    break;
                }
                Poll::Ready(Some(message)) => message,
            };
            // A hook's rejection fails the body, cancelling the request; the caller sees the
            // hook's error (see `interceptor::fail`).
            let pushed = batch.push(&writer, |buf| {
                let encoded = observers
                    .as_ref()
                    .map_or(Ok(()), |o| o.sent(&mut message))
                    .and_then(|()| Encoded::append(&writer.codec, &message, buf));
                Poll::Ready(Some(encoded))
            });
            if let Poll::Ready(Some(Err(err))) = pushed {
                failed = Some(err);
                break;
            }
        }
        match batch.take() {
            Some(chunk) => Poll::Ready(Some(Ok(ct.body_chunk(chunk)))),
            None => Poll::Ready(failed.take().map(|err| {
                done = true;
                Err(err)
            })),
        }
    })
}

async fn with_deadline<F, T>(deadline: Option<Instant>, fut: F) -> Result<T, Error>
where
    F: std::future::Future<Output = Result<T, Error>>,
{
    match deadline {
        None => fut.await,
        Some(d) => match tokio::time::timeout_at(d.into(), fut).await {
            Ok(result) => result.map_err(|e| read::deadline_attributed(e, d)),
            Err(_) => Err(Error::deadline_exceeded(
                "the deadline expired before the call completed",
            )),
        },
    }
}
