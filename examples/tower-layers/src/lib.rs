//! A Volley [`Router`] behind tower and tower-http layers, served by Volley's own server (no
//! axum), and a client with layers of its own between it and the wire.
//!
//! Server stack, outermost first:
//!
//! 1. `tower_http::trace::TraceLayer`: a `tracing` span per request; its callbacks also count
//!    requests and responses in [`Stats`];
//! 2. `tower_http::timeout::TimeoutLayer`: a call still running after [`Settings::timeout`]
//!    is answered `504 Gateway Timeout`, which every protocol's client reads as `unavailable`;
//! 3. `tower::limit::ConcurrencyLimitLayer`: at most [`Settings::max_concurrency`] calls in
//!    the router at once, the others wait (inside the timeout, so waiting counts).
//!
//! Client stack: a header on every request (`x-client`, a stand-in for auth or tracing
//! propagation), then tower's concurrency limit, then Volley's [`HttpTransport`].

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use tower::util::BoxCloneSyncService;
use tower::{ServiceBuilder, ServiceExt as _};
use volley::client::HttpTransport;
use volley::{
    Body, BoxError, Client, ClientConfig, Error, Idempotency, Request, Response, Router, Spec,
    StreamType,
};

/// Greets, naming the `x-client` header the client's layer set.
pub const GREET: Spec = Spec::new(
    "/layers.v1.Greeter/Greet",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);
/// Takes as many milliseconds as the request says before answering.
pub const NAP: Spec = Spec::new(
    "/layers.v1.Greeter/Nap",
    StreamType::Unary,
    Idempotency::Unknown,
);

/// What the layers and handlers observed.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests the trace layer saw start.
    pub requests: AtomicUsize,
    /// Responses the trace layer saw (timeouts included).
    pub responses: AtomicUsize,
    /// Responses with HTTP status 504, from the timeout layer.
    pub timed_out: AtomicUsize,
    /// Calls inside the router now.
    pub in_router: AtomicUsize,
    /// The most calls ever inside the router at once.
    pub max_in_router: AtomicUsize,
}

/// The server layers' settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Longest a call may take, waiting for the concurrency limit included.
    pub timeout: Duration,
    /// Most calls in the router at once.
    pub max_concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_concurrency: 64,
        }
    }
}

/// A layered HTTP service with its types erased: what [`server`] returns and [`client`]
/// runs over.
pub type Stack = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, BoxError>;

/// The router: [`GREET`] and [`NAP`], counting calls in flight in `stats`.
pub fn router(stats: Arc<Stats>) -> Router {
    let nap_stats = stats.clone();
    Router::new()
        .unary(GREET, |request: Request<StringValue>| async move {
            let client = request
                .headers()
                .get("x-client")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("nobody")
                .to_string();
            let name = &request.message().value;
            Ok::<_, Error>(Response::new(StringValue::from(format!(
                "Hello, {name}! (client: {client})"
            ))))
        })
        .unary(NAP, move |request: Request<StringValue>| {
            let stats = nap_stats.clone();
            async move {
                let now = stats.in_router.fetch_add(1, Ordering::SeqCst) + 1;
                stats.max_in_router.fetch_max(now, Ordering::SeqCst);
                let millis: u64 = request.message().value.parse().unwrap_or(0);
                // Counted out even when the timeout layer drops this future.
                let _leave = Leave(stats.clone());
                tokio::time::sleep(Duration::from_millis(millis)).await;
                Ok::<_, Error>(Response::new(StringValue::from("rested")))
            }
        })
}

/// Decrements the in-router count when a call leaves, however it ends.
struct Leave(Arc<Stats>);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.in_router.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The router behind the trace, timeout and concurrency-limit layers, ready for
/// [`Server::serve_service`](volley::server::Server::serve_service).
pub fn server(router: Router, stats: Arc<Stats>, settings: Settings) -> Stack {
    let on_request = stats.clone();
    let on_response = stats;
    let stack = ServiceBuilder::new()
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .on_request(move |_: &http::Request<Body>, _: &tracing::Span| {
                    on_request.requests.fetch_add(1, Ordering::SeqCst);
                })
                .on_response(
                    move |response: &http::Response<Body>, latency: Duration, _: &tracing::Span| {
                        on_response.responses.fetch_add(1, Ordering::SeqCst);
                        if response.status() == http::StatusCode::GATEWAY_TIMEOUT {
                            on_response.timed_out.fetch_add(1, Ordering::SeqCst);
                        }
                        tracing::info!(status = %response.status(), ?latency, "response");
                    },
                ),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            http::StatusCode::GATEWAY_TIMEOUT,
            settings.timeout,
        ))
        .concurrency_limit(settings.max_concurrency)
        .service(router)
        .map_response(|response: http::Response<_>| response.map(volley::boxed_body))
        .map_err(BoxError::from);
    BoxCloneSyncService::new(stack)
}

/// A client whose requests pass a header-setting layer and a concurrency limit (at most
/// `max_concurrency` calls on the wire at once) before Volley's transport.
pub fn client(config: ClientConfig, max_concurrency: usize) -> Result<Client<Stack>, Error> {
    let transport = HttpTransport::new(&config)?;
    let stack = ServiceBuilder::new()
        .map_request(|mut request: http::Request<Body>| {
            request
                .headers_mut()
                .insert("x-client", http::HeaderValue::from_static("tower-layers"));
            request
        })
        .concurrency_limit(max_concurrency)
        .service(transport)
        .map_err(BoxError::from);
    Ok(Client::with_transport(
        config,
        BoxCloneSyncService::new(stack),
    ))
}
