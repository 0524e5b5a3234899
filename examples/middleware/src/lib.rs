//! Interceptors and tower middleware with Volley, on a small admin service:
//!
//! - [`BearerAuth`], a server interceptor: reads `authorization: Bearer <token>`, rejects
//!   unknown callers with `unauthenticated`, stamps the [`Caller`] into the request extensions
//!   for handlers, and enforces the `(acme.admin.v1.required_role)` custom method option
//!   (an ACL written in the proto) with `permission_denied`. It guards streams too.
//! - [`RequestIdLayer`], a plain tower layer in front of the router (here through axum): it
//!   stamps a [`RequestId`] extension that handlers read, and echoes `x-request-id`.
//! - [`CallLog`], a client interceptor logging every call's method, outcome and duration
//!   (unary and streaming), through `tracing` and into a list tests can read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::FutureExt as _;
use volley::interceptor::{BoxFuture, CallInfo, Next, UnaryRequest, UnaryResponse};
use volley::{Code, Error, Interceptor, Request, Response, ResponseStream, Router, StreamObserver};

/// Generated messages and service code for `acme.admin.v1`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

use proto::acme::admin::v1 as pb;

/// Field number of the `(acme.admin.v1.required_role)` method option.
pub const REQUIRED_ROLE_OPTION: u32 = 50001;

/// The authenticated caller, set by [`BearerAuth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub name: String,
    /// Their role (`admin`, `user`, ...).
    pub role: String,
}

/// A request id, set by [`RequestIdLayer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Authenticates bearer tokens and enforces each method's `required_role` option.
#[derive(Debug, Clone, Default)]
pub struct BearerAuth {
    tokens: HashMap<String, Caller>,
}

impl BearerAuth {
    /// Accepts the given `token -> caller` table.
    pub fn new(tokens: impl IntoIterator<Item = (String, Caller)>) -> Self {
        Self {
            tokens: tokens.into_iter().collect(),
        }
    }

    fn authorize(&self, info: &CallInfo, headers: &http::HeaderMap) -> Result<Caller, Error> {
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| Error::unauthenticated("missing bearer token"))?;
        let caller = self
            .tokens
            .get(token)
            .cloned()
            .ok_or_else(|| Error::unauthenticated("unknown bearer token"))?;
        if let Some(role) = info.spec.option_bytes(REQUIRED_ROLE_OPTION)
            && role != caller.role.as_bytes()
        {
            return Err(Error::new(
                Code::PermissionDenied,
                format!(
                    "{} needs role {}",
                    info.spec.method(),
                    String::from_utf8_lossy(role)
                ),
            ));
        }
        Ok(caller)
    }
}

impl Interceptor for BearerAuth {
    fn unary<'a>(
        &'a self,
        mut request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        Box::pin(async move {
            let caller = self.authorize(&request.info, &request.headers)?;
            request.extensions.insert(caller);
            next.run(request).await
        })
    }

    fn stream(
        &self,
        info: &CallInfo,
        headers: &mut http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        extensions.insert(self.authorize(info, headers)?);
        Ok(None)
    }
}

/// The admin service: reads what the interceptor and the tower layer stamped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Admin;

fn whoami<T>(request: &Request<T>) -> pb::WhoamiResponse {
    let caller = request.extensions().get::<Caller>().cloned();
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0.clone());
    pb::WhoamiResponse {
        caller: caller.as_ref().map(|c| c.name.clone()).unwrap_or_default(),
        role: caller.map(|c| c.role).unwrap_or_default(),
        request_id: request_id.unwrap_or_default(),
        ..Default::default()
    }
}

impl pb::AdminService for Admin {
    async fn whoami(
        &self,
        request: Request<pb::WhoamiRequest>,
    ) -> Result<Response<pb::WhoamiResponse>, Error> {
        Ok(Response::new(whoami(&request)))
    }

    async fn shutdown(
        &self,
        request: Request<pb::WhoamiRequest>,
    ) -> Result<Response<pb::WhoamiResponse>, Error> {
        Ok(Response::new(whoami(&request)))
    }

    async fn count(
        &self,
        request: Request<pb::CountRequest>,
    ) -> Result<Response<ResponseStream<pb::CountResponse>>, Error> {
        let up_to = request.message().up_to.max(0);
        let items = (1..=up_to).map(|n| {
            Ok(pb::CountResponse {
                n,
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(futures_util::stream::iter(items))))
    }
}

/// The admin service behind [`BearerAuth`].
pub fn router(auth: BearerAuth) -> Router {
    pb::register_admin_service(Router::new(), Admin).interceptor(auth)
}

/// The whole app as axum serves it: the Volley router as a fallback service, behind
/// [`RequestIdLayer`].
pub fn app(auth: BearerAuth) -> axum::Router {
    axum::Router::new()
        .fallback_service(router(auth))
        .layer(RequestIdLayer::default())
}

/// A tower layer stamping a [`RequestId`] extension (from `x-request-id`, or a fresh one) and
/// echoing it as a response header.
#[derive(Debug, Clone, Default)]
pub struct RequestIdLayer {
    next: Arc<AtomicU64>,
}

impl<S> tower_layer::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService {
            inner,
            next: self.next.clone(),
        }
    }
}

/// The service [`RequestIdLayer`] builds.
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
    next: Arc<AtomicU64>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for RequestIdService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| format!("req-{}", self.next.fetch_add(1, Ordering::Relaxed) + 1));
        request.extensions_mut().insert(RequestId(id.clone()));
        Box::pin(self.inner.call(request).map(move |result| {
            result.map(|mut response| {
                if let Ok(v) = http::HeaderValue::from_str(&id) {
                    response.headers_mut().insert("x-request-id", v);
                }
                response
            })
        }))
    }
}

/// One logged call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// `Service/Method`.
    pub method: String,
    /// `ok` or the error code's name.
    pub outcome: String,
}

/// A client interceptor logging every call's method, outcome and duration.
#[derive(Debug, Clone, Default)]
pub struct CallLog {
    entries: Arc<Mutex<Vec<LogEntry>>>,
}

impl CallLog {
    /// The calls logged so far, in completion order.
    pub fn entries(&self) -> Vec<LogEntry> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn record(&self, info: &CallInfo, result: Result<(), &Error>, started: Instant) {
        let outcome = result.map_or_else(|e| e.code().to_string(), |()| "ok".to_string());
        let method = format!("{}/{}", info.spec.service(), info.spec.method());
        tracing::info!(%method, %outcome, elapsed_ms = started.elapsed().as_millis() as u64, "rpc");
        if let Ok(mut e) = self.entries.lock() {
            e.push(LogEntry { method, outcome });
        }
    }
}

impl Interceptor for CallLog {
    fn unary<'a>(
        &'a self,
        request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        Box::pin(async move {
            let info = request.info.clone();
            let started = Instant::now();
            let result = next.run(request).await;
            self.record(&info, result.as_ref().map(|_| ()), started);
            result
        })
    }

    fn stream(
        &self,
        info: &CallInfo,
        _headers: &mut http::HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        Ok(Some(Box::new(StreamLog {
            log: self.clone(),
            info: info.clone(),
            started: Instant::now(),
        })))
    }
}

struct StreamLog {
    log: CallLog,
    info: CallInfo,
    started: Instant,
}

impl StreamObserver for StreamLog {
    fn on_end(&mut self, result: Result<(), &Error>) {
        self.log.record(&self.info, result, self.started);
    }
}
