//! OpenTelemetry for [Volley](volley): one [`Interceptor`] that gives every call, unary or
//! streaming, on the server and on the client,
//!
//! - a **span** named `package.Service/Method`, of kind `SERVER` or `CLIENT`, that ends when
//!   the call ends (for streams: when the stream ends, not when the handler returns), with the
//!   status set as the RPC conventions ask and an `rpc.message` event per message;
//! - **metrics**: `rpc.{server,client}.duration` (ms), `rpc.{server,client}.request.size` and
//!   `.response.size` (bytes, per message), `rpc.{server,client}.requests_per_rpc` and
//!   `.responses_per_rpc`, with `rpc.system`, `rpc.service`, `rpc.method`, the status
//!   (`rpc.grpc.status_code` or `rpc.connect_rpc.error_code`) and `server.address` /
//!   `server.port` when configured;
//! - **W3C trace-context propagation**: the client writes `traceparent` and `tracestate` from
//!   the current OpenTelemetry [`Context`] (or one passed in the call's extensions), and the
//!   server reads them and makes its span a child of the client's.
//!
//! The names, units and attributes follow the OpenTelemetry semantic conventions for RPC,
//! **version 1.37.0**, the last release with all five metrics per side (1.38 deprecated the
//! messages-per-RPC ones, 1.39 replaced `rpc.*.duration` in ms by `rpc.*.call.duration` in
//! seconds, 1.40 dropped the sizes). The instrumentation scope carries that schema URL.
//!
//! # Setup
//!
//! Build one interceptor (it is cheap to clone) and install it on the router and on clients.
//! Without providers it uses the global ones (`opentelemetry::global`), so an application that
//! set those up already needs nothing more:
//!
//! ```
//! use volley::{ClientConfig, Router};
//! use volley_otel::OtelInterceptor;
//!
//! let otel = OtelInterceptor::new();
//! let router = Router::new().interceptor(otel.clone());
//! let config = ClientConfig::new("http://localhost:8080").unwrap().interceptor(otel);
//! # let _ = (router, config);
//! ```
//!
//! Or with explicit providers (here the SDK's, exporting wherever they were set up to), the
//! server's address for the client's attributes, and the message types whose sizes to record:
//!
//! ```
//! # use buffa_types::google::protobuf::StringValue;
//! use opentelemetry_sdk::metrics::SdkMeterProvider;
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use volley_otel::OtelInterceptor;
//!
//! let tracers = SdkTracerProvider::builder().build();
//! let meters = SdkMeterProvider::builder().build();
//! let otel = OtelInterceptor::builder()
//!     .tracer_provider(&tracers)
//!     .meter_provider(&meters)
//!     .server_address("api.example.com", Some(443))
//!     .measure::<StringValue>()
//!     .build();
//! # let _ = otel;
//! ```
//!
//! # Trace context in handlers and nested calls
//!
//! On the server, the context holding the call's span is in the request's extensions
//! ([`context_of`] reads it). A unary handler also runs with it as the current context; a
//! streaming handler's future is not wrapped, so attach the context yourself where the handler
//! starts spans or makes calls:
//!
//! ```
//! use opentelemetry::trace::FutureExt as _;
//! use volley::{CallOptions, Request};
//!
//! async fn handler(request: Request<String>) {
//!     let cx = volley_otel::context_of(&request);
//!     // An outgoing call made here becomes a child of this call's span, either by passing
//!     // the context explicitly...
//!     let options = CallOptions::new().with_extension(cx.clone());
//!     // ...or by running the work with the context attached.
//!     async { /* client.unary(..., CallOptions::new()).await */ }
//!         .with_context(cx)
//!         .await;
//!     # let _ = options;
//! }
//! ```
//!
//! # Spans
//!
//! Every span has `rpc.system` (`connect_rpc` for Connect, `grpc` for gRPC and gRPC-Web),
//! `rpc.service`, `rpc.method` and, when configured, `server.address` / `server.port`. Server
//! spans add the caller's `client.address` / `client.port` and `network.peer.*`; client spans
//! of unary calls add the `network.peer.*` of the connection used (and `server.address` /
//! `server.port` from it when none was configured). At the end, gRPC calls get
//! `rpc.grpc.status_code` (0 for success) and failed Connect calls `rpc.connect_rpc.error_code`.
//!
//! The status is `Error` for every failed client call and every failed Connect call; a gRPC
//! server marks only the codes that mean it failed (`UNKNOWN`, `DEADLINE_EXCEEDED`,
//! `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`), as the conventions' gRPC table
//! says. A call dropped before it finished (cancelled, or its deadline passed) ends as
//! `cancelled` or `deadline_exceeded`. A client span covers the whole call, retries included.
//!
//! One interceptor can serve a router and clients alike (each side records its own metrics);
//! build one per side when their `server.address` differs.
//!
//! # Message sizes
//!
//! Interceptors see typed messages, not their encodings, so the size metrics and the
//! `rpc.message.uncompressed_size` event attribute are recorded only for the message types
//! registered with [`Builder::measure`]: their size is computed as the length of their binary
//! protobuf encoding (what the conventions call the uncompressed size, whichever codec the call
//! used). Computing it walks the message once more; types not registered cost nothing.
//!
//! Sizes are recorded as each message passes, with the call's attributes but not its status
//! (which is not known yet); duration and messages-per-RPC are recorded when the call ends,
//! with the status.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use http::{Extensions, HeaderMap};
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    FutureExt as _, SpanBuilder, SpanKind, Status, TraceContextExt as _, Tracer as _,
    TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use volley::interceptor::{BoxFuture, CallInfo, Next, Side, UnaryRequest, UnaryResponse};
use volley::{Code, ConnectionInfo, Error, Interceptor, Protocol, StreamObserver};

mod propagation;

pub use propagation::TraceContextPropagator;
use propagation::{HeaderExtractor, HeaderInjector};

/// The semantic-conventions schema the telemetry follows.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.37.0";

const SCOPE: &str = "volley-otel";

/// The OpenTelemetry context of a call, as the server side of [`OtelInterceptor`] left it in
/// the request's extensions (holding the call's server span); the current context when there
/// is none.
pub fn context_of<T>(request: &volley::Request<T>) -> Context {
    request
        .extensions()
        .get::<Context>()
        .cloned()
        .unwrap_or_else(Context::current)
}

/// The interceptor: spans, metrics and trace-context propagation for every call. See the
/// [crate documentation](crate).
#[derive(Clone)]
pub struct OtelInterceptor {
    inner: Arc<Inner>,
}

impl fmt::Debug for OtelInterceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelInterceptor")
            .field("server_address", &self.inner.server_address)
            .field("server_port", &self.inner.server_port)
            .field("measured_types", &self.inner.sizes.by_type.len())
            .finish_non_exhaustive()
    }
}

impl Default for OtelInterceptor {
    fn default() -> Self {
        Self::new()
    }
}

impl OtelInterceptor {
    /// An interceptor on the global tracer and meter providers, with the W3C propagator.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to choose providers, the propagator, the server address and the measured
    /// message types.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

enum Propagation {
    W3c(TraceContextPropagator),
    Global,
    Custom(Box<dyn TextMapPropagator + Send + Sync>),
}

impl Propagation {
    fn inject(&self, cx: &Context, headers: &mut HeaderMap) {
        let mut injector = HeaderInjector(headers);
        match self {
            Propagation::W3c(p) => p.inject_context(cx, &mut injector),
            Propagation::Global => opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(cx, &mut injector)
            }),
            Propagation::Custom(p) => p.inject_context(cx, &mut injector),
        }
    }

    fn extract(&self, headers: &HeaderMap) -> Context {
        let extractor = HeaderExtractor(headers);
        Context::map_current(|cx| match self {
            Propagation::W3c(p) => p.extract_with_context(cx, &extractor),
            Propagation::Global => opentelemetry::global::get_text_map_propagator(|p| {
                p.extract_with_context(cx, &extractor)
            }),
            Propagation::Custom(p) => p.extract_with_context(cx, &extractor),
        })
    }
}

/// Builds an [`OtelInterceptor`].
pub struct Builder {
    tracer: Option<BoxedTracer>,
    meter: Option<Meter>,
    propagation: Propagation,
    server_address: Option<String>,
    server_port: Option<u16>,
    message_events: bool,
    sizes: Sizes,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("server_address", &self.server_address)
            .field("server_port", &self.server_port)
            .field("message_events", &self.message_events)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            tracer: None,
            meter: None,
            propagation: Propagation::W3c(TraceContextPropagator::new()),
            server_address: None,
            server_port: None,
            message_events: true,
            sizes: Sizes::default(),
        }
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build()
}

impl Builder {
    /// Spans from `provider` (default: the global tracer provider).
    pub fn tracer_provider<P, T, S>(mut self, provider: &P) -> Self
    where
        P: TracerProvider<Tracer = T>,
        T: opentelemetry::trace::Tracer<Span = S> + Send + Sync + 'static,
        S: opentelemetry::trace::Span + Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(
            provider.tracer_with_scope(scope()),
        )));
        self
    }

    /// Metrics from `provider` (default: the global meter provider).
    pub fn meter_provider(mut self, provider: &impl MeterProvider) -> Self {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }

    /// Propagate trace context with `propagator` instead of the built-in W3C one (for
    /// example a composite one that adds baggage).
    pub fn propagator(
        mut self,
        propagator: impl TextMapPropagator + Send + Sync + 'static,
    ) -> Self {
        self.propagation = Propagation::Custom(Box::new(propagator));
        self
    }

    /// Propagate trace context with the globally installed propagator
    /// (`opentelemetry::global::set_text_map_propagator`) instead of the built-in W3C one.
    pub fn global_propagator(mut self) -> Self {
        self.propagation = Propagation::Global;
        self
    }

    /// The `server.address` (and `server.port`) attributes of every call: on a client, the
    /// host it calls (`api.example.com`); on a server, its own name.
    pub fn server_address(mut self, host: impl Into<String>, port: Option<u16>) -> Self {
        self.server_address = Some(host.into());
        self.server_port = port;
        self
    }

    /// Whether spans get an `rpc.message` event per message sent and received (default: yes).
    pub fn message_events(mut self, enabled: bool) -> Self {
        self.message_events = enabled;
        self
    }

    /// Record the size of messages of type `T` (see
    /// [Message sizes](crate#message-sizes)). Register the request and response types of the
    /// methods to measure.
    pub fn measure<T: buffa::Message + 'static>(mut self) -> Self {
        self.sizes.add::<T>();
        self
    }

    /// The interceptor.
    pub fn build(self) -> OtelInterceptor {
        let tracer = self
            .tracer
            .unwrap_or_else(|| opentelemetry::global::tracer_with_scope(scope()));
        let meter = self
            .meter
            .unwrap_or_else(|| opentelemetry::global::meter_with_scope(scope()));
        OtelInterceptor {
            inner: Arc::new(Inner {
                tracer,
                server: Instruments::new(&meter, "server"),
                client: Instruments::new(&meter, "client"),
                propagation: self.propagation,
                server_address: self.server_address,
                server_port: self.server_port,
                message_events: self.message_events,
                sizes: self.sizes,
            }),
        }
    }
}

/// The encoded size of a message, if it is of the type the function was made for.
type SizeOf = fn(&dyn Any) -> Option<usize>;

/// Size functions of the measured message types.
#[derive(Default)]
struct Sizes {
    by_type: HashMap<TypeId, SizeOf>,
    requests: Vec<fn(&UnaryRequest) -> Option<usize>>,
    responses: Vec<fn(&UnaryResponse) -> Option<usize>>,
}

fn encoded_len<T: buffa::Message>(message: &T) -> usize {
    message.compute_size(&mut buffa::SizeCache::new()) as usize
}

impl Sizes {
    fn add<T: buffa::Message + 'static>(&mut self) {
        if self
            .by_type
            .insert(TypeId::of::<T>(), |m| {
                m.downcast_ref::<T>().map(encoded_len)
            })
            .is_none()
        {
            self.requests.push(|r| r.message::<T>().map(encoded_len));
            self.responses.push(|r| r.message::<T>().map(encoded_len));
        }
    }

    fn of(&self, message: &(dyn Any + Send)) -> Option<usize> {
        let id = (*message).type_id();
        let message: &dyn Any = message;
        self.by_type.get(&id).and_then(|f| f(message))
    }

    fn of_request(&self, request: &UnaryRequest) -> Option<usize> {
        self.requests.iter().find_map(|f| f(request))
    }

    fn of_response(&self, response: &UnaryResponse) -> Option<usize> {
        self.responses.iter().find_map(|f| f(response))
    }
}

/// The five histograms of one side.
struct Instruments {
    duration: Histogram<f64>,
    request_size: Histogram<u64>,
    response_size: Histogram<u64>,
    requests_per_rpc: Histogram<u64>,
    responses_per_rpc: Histogram<u64>,
}

const SIZE_BOUNDARIES: [f64; 12] = [
    0.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];
const COUNT_BOUNDARIES: [f64; 12] = [
    0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 16384.0,
];

impl Instruments {
    fn new(meter: &Meter, side: &'static str) -> Self {
        let inbound = if side == "server" {
            "inbound"
        } else {
            "outbound"
        };
        Self {
            duration: meter
                .f64_histogram(format!("rpc.{side}.duration"))
                .with_unit("ms")
                .with_description(format!("Measures the duration of {inbound} RPC."))
                .build(),
            request_size: meter
                .u64_histogram(format!("rpc.{side}.request.size"))
                .with_unit("By")
                .with_description("Measures the size of RPC request messages (uncompressed).")
                .with_boundaries(SIZE_BOUNDARIES.to_vec())
                .build(),
            response_size: meter
                .u64_histogram(format!("rpc.{side}.response.size"))
                .with_unit("By")
                .with_description("Measures the size of RPC response messages (uncompressed).")
                .with_boundaries(SIZE_BOUNDARIES.to_vec())
                .build(),
            requests_per_rpc: meter
                .u64_histogram(format!("rpc.{side}.requests_per_rpc"))
                .with_unit("{count}")
                .with_description("Measures the number of messages received per RPC.")
                .with_boundaries(COUNT_BOUNDARIES.to_vec())
                .build(),
            responses_per_rpc: meter
                .u64_histogram(format!("rpc.{side}.responses_per_rpc"))
                .with_unit("{count}")
                .with_description("Measures the number of messages sent per RPC.")
                .with_boundaries(COUNT_BOUNDARIES.to_vec())
                .build(),
        }
    }
}

struct Inner {
    tracer: BoxedTracer,
    server: Instruments,
    client: Instruments,
    propagation: Propagation,
    server_address: Option<String>,
    server_port: Option<u16>,
    message_events: bool,
    sizes: Sizes,
}

/// The `rpc.system` value of a protocol.
fn rpc_system(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Connect => "connect_rpc",
        _ => "grpc",
    }
}

/// The `rpc.connect_rpc.error_code` value: Connect's code names, spelled as the conventions
/// list them (`cancelled`, where Connect writes `canceled`).
fn connect_error_code(code: Code) -> &'static str {
    match code {
        Code::Canceled => "cancelled",
        other => other.as_str(),
    }
}

/// Whether a failed call's span gets status `Error`: always for Connect and on a gRPC client;
/// on a gRPC server only for the codes that mean the server failed (semantic conventions,
/// gRPC status table).
fn span_error(grpc: bool, side: Side, code: Code) -> bool {
    if !grpc || side == Side::Client {
        return true;
    }
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

impl Inner {
    fn instruments(&self, side: Side) -> &Instruments {
        if side == Side::Server {
            &self.server
        } else {
            &self.client
        }
    }

    /// Starts a call: the parent context (extracted from the headers on a server; from the
    /// extensions or the current context on a client), the span, and propagation (the
    /// span's context into the server's extensions, or into the client's headers).
    fn start(
        self: &Arc<Self>,
        info: &CallInfo,
        headers: &mut HeaderMap,
        extensions: &mut Extensions,
    ) -> Call {
        let server = info.side == Side::Server;
        let parent = if server {
            self.propagation.extract(headers)
        } else {
            extensions
                .get::<Context>()
                .cloned()
                .unwrap_or_else(Context::current)
        };
        let grpc = info.protocol != Protocol::Connect;
        let mut attributes = vec![
            KeyValue::new("rpc.system", rpc_system(info.protocol)),
            KeyValue::new("rpc.service", info.spec.service()),
            KeyValue::new("rpc.method", info.spec.method()),
        ];
        if let Some(host) = &self.server_address {
            attributes.push(KeyValue::new("server.address", host.clone()));
        }
        if let Some(port) = self.server_port {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        let mut span_attributes = attributes.clone();
        if let Some(peer) = info.peer.filter(|_| server) {
            span_attributes.extend(peer_attributes("client", peer));
        }
        let name = info.spec.procedure.trim_start_matches('/');
        let kind = if server {
            SpanKind::Server
        } else {
            SpanKind::Client
        };
        let span = self.tracer.build_with_context(
            SpanBuilder::from_name(name)
                .with_kind(kind)
                .with_attributes(span_attributes),
            &parent,
        );
        let cx = parent.with_span(span);
        if server {
            extensions.insert(cx.clone());
        } else {
            self.propagation.inject(&cx, headers);
        }
        Call {
            inner: self.clone(),
            side: info.side,
            grpc,
            cx,
            started: Instant::now(),
            deadline: info.deadline,
            attributes,
            sent: 0,
            received: 0,
            finished: false,
        }
    }
}

/// `client.*` (or `server.*`) and `network.peer.*` attributes of a peer address.
fn peer_attributes(prefix: &str, peer: std::net::SocketAddr) -> [KeyValue; 6] {
    let ip = peer.ip().to_string();
    let port = i64::from(peer.port());
    [
        KeyValue::new(format!("{prefix}.address"), ip.clone()),
        KeyValue::new(format!("{prefix}.port"), port),
        KeyValue::new("network.peer.address", ip),
        KeyValue::new("network.peer.port", port),
        KeyValue::new("network.transport", "tcp"),
        KeyValue::new("network.type", if peer.is_ipv4() { "ipv4" } else { "ipv6" }),
    ]
}

/// One call in progress. Ends its span and records its metrics once: when told, or when
/// dropped unfinished (then as cancelled, or deadline exceeded past the deadline).
struct Call {
    inner: Arc<Inner>,
    side: Side,
    grpc: bool,
    cx: Context,
    started: Instant,
    deadline: Option<Instant>,
    attributes: Vec<KeyValue>,
    sent: u64,
    received: u64,
    finished: bool,
}

impl Call {
    fn message(&mut self, sent: bool, size: Option<usize>) {
        let n = if sent {
            self.sent += 1;
            self.sent
        } else {
            self.received += 1;
            self.received
        };
        let instruments = self.inner.instruments(self.side);
        // A request is what the client sends and the server receives.
        let request = sent == (self.side == Side::Client);
        if let Some(size) = size {
            let histogram = if request {
                &instruments.request_size
            } else {
                &instruments.response_size
            };
            histogram.record(size as u64, &self.attributes);
        }
        if self.inner.message_events {
            let span = self.cx.span();
            if span.is_recording() {
                let mut attributes = vec![
                    KeyValue::new("rpc.message.type", if sent { "SENT" } else { "RECEIVED" }),
                    KeyValue::new("rpc.message.id", n as i64),
                ];
                if let Some(size) = size {
                    attributes.push(KeyValue::new("rpc.message.uncompressed_size", size as i64));
                }
                span.add_event("rpc.message", attributes);
            }
        }
    }

    /// The request message of a unary call passed.
    fn request(&mut self, size: Option<usize>) {
        self.message(self.side == Side::Client, size);
    }

    /// The response message of a unary call passed.
    fn response(&mut self, size: Option<usize>) {
        self.message(self.side == Side::Server, size);
    }

    /// The client learnt which server it reached (unary calls: from the response).
    fn connection(&self, connection: Option<&ConnectionInfo>) {
        let Some(peer) = connection.and_then(|c| c.remote_addr) else {
            return;
        };
        let [address, port, peer_address, peer_port, transport, kind] =
            peer_attributes("server", peer);
        let span = self.cx.span();
        span.set_attributes([peer_address, peer_port, transport, kind]);
        // `server.address` is required on client spans: the address reached, when the
        // builder was not told a name.
        if self.inner.server_address.is_none() {
            span.set_attributes([address, port]);
        }
    }

    fn finish(&mut self, result: Result<(), &Error>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64() * 1000.0;
        let code = result.err().map(Error::code);
        let status = if self.grpc {
            Some(KeyValue::new(
                "rpc.grpc.status_code",
                code.map_or(0, |c| i64::from(c.as_u32())),
            ))
        } else {
            code.map(|c| KeyValue::new("rpc.connect_rpc.error_code", connect_error_code(c)))
        };
        let mut attributes = self.attributes.clone();
        let span = self.cx.span();
        if let Some(status) = status {
            span.set_attribute(status.clone());
            attributes.push(status);
        }
        if let Err(e) = result
            && span_error(self.grpc, self.side, e.code())
        {
            span.set_status(Status::error(e.message().to_string()));
        }
        span.end();
        let instruments = self.inner.instruments(self.side);
        instruments.duration.record(elapsed, &attributes);
        let (requests, responses) = if self.side == Side::Server {
            (self.received, self.sent)
        } else {
            (self.sent, self.received)
        };
        instruments.requests_per_rpc.record(requests, &attributes);
        instruments.responses_per_rpc.record(responses, &attributes);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.finished {
            let err = if self.deadline.is_some_and(|d| Instant::now() >= d) {
                Error::deadline_exceeded("the deadline expired")
            } else {
                Error::canceled("the call was dropped before it finished")
            };
            self.finish(Err(&err));
        }
    }
}

/// Follows a streaming call for its [`Call`].
struct Observer {
    call: Call,
}

impl StreamObserver for Observer {
    fn on_receive(&mut self, message: &(dyn Any + Send)) {
        let size = self.call.inner.sizes.of(message);
        self.call.message(false, size);
    }

    fn on_send(&mut self, message: &(dyn Any + Send)) {
        let size = self.call.inner.sizes.of(message);
        self.call.message(true, size);
    }

    fn on_end(&mut self, result: Result<(), &Error>) {
        self.call.finish(result);
    }
}

impl Interceptor for OtelInterceptor {
    fn unary<'a>(
        &'a self,
        mut request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        let mut call =
            self.inner
                .start(&request.info, &mut request.headers, &mut request.extensions);
        call.request(self.inner.sizes.of_request(&request));
        let cx = call.cx.clone();
        Box::pin(async move {
            let result = next.run(request).with_context(cx).await;
            match &result {
                Ok(response) => {
                    call.response(self.inner.sizes.of_response(response));
                    if call.side == Side::Client {
                        call.connection(response.extensions.get::<ConnectionInfo>());
                    }
                    call.finish(Ok(()));
                }
                Err(e) => call.finish(Err(e)),
            }
            result
        })
    }

    fn stream(
        &self,
        info: &CallInfo,
        headers: &mut HeaderMap,
        extensions: &mut Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        let call = self.inner.start(info, headers, extensions);
        Ok(Some(Box::new(Observer { call })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_codes_are_spelled_as_the_conventions_list_them() {
        assert_eq!(connect_error_code(Code::Canceled), "cancelled");
        assert_eq!(
            connect_error_code(Code::InvalidArgument),
            "invalid_argument"
        );
        assert_eq!(connect_error_code(Code::Unauthenticated), "unauthenticated");
    }

    #[test]
    fn grpc_servers_mark_only_their_own_failures() {
        assert!(span_error(true, Side::Server, Code::Internal));
        assert!(!span_error(true, Side::Server, Code::NotFound));
        assert!(span_error(true, Side::Client, Code::NotFound));
        assert!(span_error(false, Side::Server, Code::NotFound));
    }
}
