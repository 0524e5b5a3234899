//! One connection: its task (idle and shutdown handling), the server's registry of
//! connections, and the hyper service that counts calls in flight.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use hyper_util::server::conn::auto;

use super::body::{BodyLimits, DrainOnDrop, Framing, GuardedBody};
use super::{IDLE_CLOSE_GRACE, Limits};
use crate::Router;
use crate::request::{PeerAddr, PeerCertificates};
use crate::stream::boxed_body;

/// Drives one connection: graceful shutdown when the server stops or the connection has been
/// idle too long, dropped (closed) when the server forces it. The timers live in a watcher
/// task of their own, so that the connection's many wake-ups poll only the connection and two
/// flags, not every timer.
pub(super) async fn drive<C>(
    conn: C,
    registration: &Registration,
    stop: tokio::sync::watch::Receiver<bool>,
    limits: &Limits,
) where
    C: Future + GracefulConnection,
{
    let shared = &registration.shared;
    let watcher = AbortOnDrop(tokio::spawn(watch_connection(
        shared.clone(),
        stop,
        WatchLimits {
            header_read_timeout: limits.header_read_timeout,
            idle_timeout: limits.idle_timeout,
            send_timeout: limits.send_timeout,
        },
    )));
    tokio::pin!(conn);
    let mut closing = false;
    // One hand-written poll: the connection, then the close flags. This runs on every wake-up
    // of the connection, so it is kept to two atomic loads and a waker registration (a
    // `Notify` takes its lock on every poll).
    std::future::poll_fn(|cx| {
        loop {
            if conn.as_mut().poll(cx).is_ready() || shared.forced.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            if !closing && shared.graceful.load(Ordering::Acquire) {
                conn.as_mut().begin_graceful_shutdown();
                closing = true;
                // Polled again so that it starts sending its GOAWAY.
                continue;
            }
            shared.close.register(cx.waker());
            // A flag set between the loads above and the registration woke no one: look again.
            if shared.forced.load(Ordering::Acquire)
                || (!closing && shared.graceful.load(Ordering::Acquire))
            {
                continue;
            }
            return Poll::Pending;
        }
    })
    .await;
    drop(watcher);
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The limits a connection's watcher enforces.
struct WatchLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    send_timeout: Option<Duration>,
}

/// A connection's timers: asks for a graceful shutdown when the server stops or the connection
/// has been idle too long, forces the close when it is still open a grace period later or its
/// peer does not take a response within the send timeout.
async fn watch_connection(
    shared: Arc<ConnShared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    limits: WatchLimits,
) {
    let mut closing = false;
    let mut stop_open = true;
    let mut check = tokio::time::Instant::now() + limits.header_read_timeout;
    let stall_every = limits
        .send_timeout
        .map(|t| (t / 4).max(Duration::from_millis(10)));
    let mut stall_check = tokio::time::Instant::now() + stall_every.unwrap_or_default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(stall_check), if stall_every.is_some() => {
                if let (Some(timeout), Some(every)) = (limits.send_timeout, stall_every) {
                    if let Some(stalled) = shared.send_stalled(timeout) {
                        // A peer that does not take the response: end its calls (the
                        // handlers are dropped with the connection).
                        tracing::debug!(stalled_ms = stalled.as_millis() as u64, "closing a connection whose peer does not read");
                        shared.force_close();
                        return;
                    }
                    stall_check = tokio::time::Instant::now() + every;
                }
            }
            changed = stop.changed(), if stop_open => {
                if changed.is_err() || *stop.borrow() {
                    stop_open = false;
                    if !closing {
                        shared.ask_graceful();
                        closing = true;
                    }
                }
            }
            _ = tokio::time::sleep_until(check) => {
                if closing {
                    // Asked to close for idleness and still open: close it now.
                    if shared.active() == 0 {
                        shared.force_close();
                        return;
                    }
                    check = tokio::time::Instant::now() + limits.idle_timeout;
                    continue;
                }
                let limit = if shared.served() { limits.idle_timeout } else { limits.header_read_timeout };
                match shared.idle_for() {
                    Some(idle) if idle >= limit => {
                        tracing::debug!(idle_ms = idle.as_millis() as u64, "closing an idle connection");
                        shared.ask_graceful();
                        closing = true;
                        // The peer has a second to read the GOAWAY before the connection goes.
                        check = tokio::time::Instant::now() + IDLE_CLOSE_GRACE;
                    }
                    Some(idle) => check = tokio::time::Instant::now() + (limit - idle),
                    None => check = tokio::time::Instant::now() + limit,
                }
            }
        }
    }
}

/// A connection that can be asked to finish.
pub(super) trait GracefulConnection {
    fn begin_graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E, B> GracefulConnection for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<crate::BoxError>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    B: http_body::Body + 'static,
    B::Error: Into<crate::BoxError>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn begin_graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The server's connections.
#[derive(Default)]
pub(super) struct Tracker {
    conns: Mutex<TrackerState>,
    /// Notified (all waiters) each time a connection ends.
    pub(super) ended: tokio::sync::Notify,
}

#[derive(Default)]
struct TrackerState {
    next: u64,
    conns: HashMap<u64, Arc<ConnShared>>,
}

impl Tracker {
    pub(super) fn register(self: &Arc<Self>) -> Registration {
        let shared = Arc::new(ConnShared::new());
        let mut state = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let id = state.next;
        state.next += 1;
        state.conns.insert(id, shared.clone());
        Registration {
            tracker: self.clone(),
            id,
            shared,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .len()
    }

    pub(super) fn close_all(&self) {
        for conn in self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .values()
        {
            conn.force_close();
        }
    }

    /// Closes one idle connection (no call in flight), unless one being closed has not ended
    /// yet: of those idle for a second or more (younger ones may be in their handshake or
    /// first request), one that never started a call first, else the longest idle.
    pub(super) fn shed_idle(&self) {
        let state = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        if state.conns.values().any(|c| c.shed.load(Ordering::Relaxed)) {
            return;
        }
        let victim = state
            .conns
            .values()
            .filter_map(|c| {
                c.idle_for()
                    .map(|idle| (idle >= SHED_MIN_IDLE, !c.served(), idle, c))
            })
            .max_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        if let Some((_, _, idle, conn)) = victim {
            tracing::debug!(
                idle_ms = idle.as_millis() as u64,
                "shedding an idle connection"
            );
            conn.shed.store(true, Ordering::Relaxed);
            conn.force_close();
        }
    }
}

/// How long a connection must have been idle to be preferred for shedding.
const SHED_MIN_IDLE: Duration = Duration::from_secs(1);

/// A connection's entry in the [`Tracker`], removed when dropped (when its task ends).
pub(super) struct Registration {
    tracker: Arc<Tracker>,
    id: u64,
    pub(super) shared: Arc<ConnShared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.tracker
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .remove(&self.id);
        self.tracker.ended.notify_waiters();
    }
}

/// What a connection's task and its calls share.
pub(super) struct ConnShared {
    /// Calls in flight (until their response body is done or dropped).
    active: AtomicUsize,
    /// Whether a call ever started.
    served: std::sync::atomic::AtomicBool,
    /// Chosen to be closed for lack of descriptors or connections.
    shed: std::sync::atomic::AtomicBool,
    /// Since when no call is in flight.
    idle_since: Mutex<std::time::Instant>,
    /// Wakes the connection's task: to close when `forced`, to shut down gracefully when
    /// `graceful`.
    close: futures_util::task::AtomicWaker,
    /// The connection must close now.
    forced: AtomicBool,
    /// The connection should finish its calls and close.
    graceful: AtomicBool,
    /// The send progress of each response being sent (with a send timeout only).
    sending: Mutex<Sending>,
}

/// The responses being sent on a connection, for the send timeout: a slab of slots (reused, no
/// hashing or allocation per response once warm), each updated by its body under the lock.
#[derive(Default)]
struct Sending {
    slots: Vec<Watched>,
    free: Vec<usize>,
}

/// A response's send progress, updated by its body, and what the connection task last saw.
#[derive(Default)]
struct Watched {
    in_use: bool,
    /// How many times the body was polled.
    polls: u64,
    /// Whether the body has a frame taken but not yet the next poll: the connection owes the
    /// peer data it has not sent. A response starts owing (ready to be sent, not yet taken).
    waiting: bool,
    /// `polls` as the connection task last saw it.
    seen: u64,
    /// Since when the task has seen it waiting without progress (set by the task, so the body
    /// never reads the clock).
    since: Option<std::time::Instant>,
}

impl ConnShared {
    fn new() -> Self {
        Self {
            active: AtomicUsize::new(0),
            served: false.into(),
            shed: false.into(),
            idle_since: Mutex::new(std::time::Instant::now()),
            close: futures_util::task::AtomicWaker::new(),
            forced: false.into(),
            graceful: false.into(),
            sending: Mutex::new(Sending::default()),
        }
    }

    /// Starts watching a response's progress.
    fn watch(self: &Arc<Self>) -> SendWatch {
        let mut sending = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        let slot = Watched {
            in_use: true,
            waiting: true,
            ..Watched::default()
        };
        let index = match sending.free.pop() {
            Some(i) => {
                sending.slots[i] = slot;
                i
            }
            None => {
                sending.slots.push(slot);
                sending.slots.len() - 1
            }
        };
        SendWatch {
            conn: self.clone(),
            index,
        }
    }

    /// The longest a response has waited to send for at least `timeout`, if one has. A
    /// response is timed from the first check that sees it waiting without progress, so it is
    /// reported between `timeout` and `timeout` plus one check interval after it stalled.
    fn send_stalled(&self, timeout: Duration) -> Option<Duration> {
        let now = std::time::Instant::now();
        let mut sending = self.sending.lock().unwrap_or_else(|p| p.into_inner());
        let mut worst = None;
        for watched in sending.slots.iter_mut().filter(|w| w.in_use) {
            if watched.polls != watched.seen || !watched.waiting {
                watched.seen = watched.polls;
                watched.since = None;
                continue;
            }
            let since = *watched.since.get_or_insert(now);
            let stalled = now.duration_since(since);
            if stalled >= timeout && worst.is_none_or(|w| stalled > w) {
                worst = Some(stalled);
            }
        }
        worst
    }

    /// Closes the connection now.
    pub(super) fn force_close(&self) {
        self.forced.store(true, Ordering::Release);
        self.close.wake();
    }

    /// Asks the connection to finish its calls and close.
    fn ask_graceful(&self) {
        self.graceful.store(true, Ordering::Release);
        self.close.wake();
    }

    /// Resolves once the connection has been asked to close, either way: for the work
    /// before [`drive`] takes over (a TLS or QUIC handshake), from the same task.
    #[cfg(any(feature = "tls", feature = "http3"))]
    pub(super) async fn closing(&self) {
        std::future::poll_fn(|cx| {
            if self.close_asked() {
                return Poll::Ready(());
            }
            self.close.register(cx.waker());
            if self.close_asked() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    #[cfg(any(feature = "tls", feature = "http3"))]
    fn close_asked(&self) -> bool {
        self.forced.load(Ordering::Acquire) || self.graceful.load(Ordering::Acquire)
    }

    pub(super) fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// How long no call has been in flight, `None` while one is.
    fn idle_for(&self) -> Option<Duration> {
        if self.active() > 0 {
            return None;
        }
        Some(
            self.idle_since
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed(),
        )
    }

    fn begin_call(self: &Arc<Self>) -> CallGuard {
        self.served.store(true, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::AcqRel);
        CallGuard(self.clone())
    }
}

/// A response watched for send progress; unwatched when dropped.
struct SendWatch {
    conn: Arc<ConnShared>,
    index: usize,
}

impl SendWatch {
    /// Records a poll of the body: `owed` when it handed over a data frame and is not done.
    fn polled(&self, owed: bool) {
        let mut sending = self.conn.sending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = sending.slots.get_mut(self.index) {
            w.polls += 1;
            w.waiting = owed;
        }
    }
}

impl Drop for SendWatch {
    fn drop(&mut self) {
        let mut sending = self.conn.sending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = sending.slots.get_mut(self.index) {
            w.in_use = false;
            sending.free.push(self.index);
        }
    }
}

/// One call in flight on a connection.
struct CallGuard(Arc<ConnShared>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A tower service the server calls, its type erased (so connection tasks stay concrete).
pub(super) type BoxedService = Arc<
    dyn Fn(
            http::Request<crate::Body>,
        ) -> Pin<Box<dyn Future<Output = http::Response<crate::Body>> + Send>>
        + Send
        + Sync,
>;

/// What serves a connection's calls: a [`Router`] directly (the common case, no extra
/// allocation), or any tower service.
#[derive(Clone)]
pub(super) enum Dispatch {
    Router(Router),
    Service(BoxedService),
}

impl Dispatch {
    /// Erases a tower service: each call clones it, waits for readiness and calls it.
    pub(super) fn service<S, B>(service: S) -> Self
    where
        S: tower_service::Service<http::Request<crate::Body>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<crate::BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Into<bytes::Bytes> + bytes::Buf,
        B::Error: Into<crate::BoxError>,
    {
        Self::Service(Arc::new(move |request| {
            Box::pin(ServeCall::<S, B> {
                service: service.clone(),
                request: Some(request),
                content_type: None,
                call: None,
                _body: std::marker::PhantomData,
            })
        }))
    }
}

/// One call of a tower service: `poll_ready`, then `call`, then its future, written by hand
/// (an `async` block here trips a compiler limitation with higher-ranked lifetimes in
/// `Box<dyn Error>` projections). A service error (a layer that fails instead of answering,
/// like tower's `Timeout`) becomes an `unavailable` error in the protocol the request speaks.
struct ServeCall<S: tower_service::Service<http::Request<crate::Body>>, B> {
    service: S,
    request: Option<http::Request<crate::Body>>,
    /// The request's content type, to answer a service error in its protocol.
    content_type: Option<http::HeaderValue>,
    call: Option<Pin<Box<S::Future>>>,
    _body: std::marker::PhantomData<fn() -> B>,
}

// The service is never pinned: it is only used through `&mut`.
impl<S: tower_service::Service<http::Request<crate::Body>>, B> Unpin for ServeCall<S, B> {}

impl<S, B> Future for ServeCall<S, B>
where
    S: tower_service::Service<http::Request<crate::Body>, Response = http::Response<B>>,
    S::Error: Into<crate::BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Into<bytes::Bytes> + bytes::Buf,
    B::Error: Into<crate::BoxError>,
{
    type Output = http::Response<crate::Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if let Some(call) = this.call.as_mut() {
                return call.as_mut().poll(cx).map(|r| match r {
                    Ok(response) => response.map(boxed_body),
                    Err(e) => service_failed(this.content_type.take(), e.into()),
                });
            }
            match this.service.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    let ct = this
                        .request
                        .as_ref()
                        .and_then(|r| r.headers().get(http::header::CONTENT_TYPE).cloned());
                    return Poll::Ready(service_failed(ct, e.into()));
                }
                Poll::Ready(Ok(())) => {
                    let Some(request) = this.request.take() else {
                        return Poll::Ready(service_failed(
                            None,
                            "the call was polled after it completed".into(),
                        ));
                    };
                    this.content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
                    this.call = Some(Box::pin(this.service.call(request)));
                }
            }
        }
    }
}

fn service_failed(
    content_type: Option<http::HeaderValue>,
    e: crate::BoxError,
) -> http::Response<crate::Body> {
    tracing::debug!(error = %e, "the served service failed");
    let mut headers = http::HeaderMap::new();
    if let Some(ct) = content_type {
        headers.insert(http::header::CONTENT_TYPE, ct);
    }
    crate::error_response_for(&headers, &crate::Error::unavailable(e.to_string()))
}

/// The hyper service for one connection: counts calls in flight and stamps peer extensions.
#[derive(Clone)]
pub(super) struct Served {
    pub(super) dispatch: Dispatch,
    pub(super) peer: Option<SocketAddr>,
    pub(super) certs: Option<PeerCertificates>,
    /// The connection as handlers see it, made once and shared by its calls.
    pub(super) connection: Arc<crate::ConnectionInfo>,
    pub(super) conn: Arc<ConnShared>,
    pub(super) body_limits: BodyLimits,
    pub(super) send_timeout: Option<Duration>,
}

/// A boxed future as one that cannot fail: hyper's service future, without a second box
/// around the call's.
pub(super) struct Infallibly<T>(Pin<Box<dyn Future<Output = T> + Send + 'static>>);

impl<T> Future for Infallibly<T> {
    type Output = Result<T, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}

impl hyper::service::Service<http::Request<hyper::body::Incoming>> for Served {
    type Response = http::Response<ServedBody>;
    type Error = std::convert::Infallible;
    type Future = Infallibly<http::Response<ServedBody>>;

    fn call(&self, request: http::Request<hyper::body::Incoming>) -> Self::Future {
        let limits = self.body_limits;
        let framing = if limits.min_rate.is_some() {
            Framing::of(request.headers().get(http::header::CONTENT_TYPE))
        } else {
            Framing::Whole
        };
        let request = if request.version() < http::Version::HTTP_2 {
            request
                .map(|body| boxed_body(DrainOnDrop(Some(GuardedBody::new(body, limits, framing)))))
        } else {
            request.map(|body| boxed_body(GuardedBody::new(body, limits, framing)))
        };
        Infallibly(self.serve(request))
    }
}

impl Served {
    /// Serves one request whose body is already guarded: counts it in flight, stamps the
    /// peer extensions, dispatches it, and watches its response's send progress.
    pub(super) fn serve(
        &self,
        mut request: http::Request<crate::Body>,
    ) -> Pin<Box<dyn Future<Output = http::Response<ServedBody>> + Send + 'static>> {
        let guard = self.conn.begin_call();
        let dispatch = self.dispatch.clone();
        let watch = self.send_timeout.is_some().then(|| self.conn.clone());
        if let Some(certs) = self.certs.clone() {
            request.extensions_mut().insert(certs);
        }
        let connection = self.connection.clone();
        if let Dispatch::Service(_) = dispatch {
            // A tower service learns of the connection from extensions only; the router is
            // handed it directly (no allocation per call).
            let extensions = request.extensions_mut();
            if let Some(peer) = self.peer {
                extensions.insert(PeerAddr(peer));
            }
            extensions.insert(crate::ConnectionInfo::clone(&connection));
        }
        // The router's future is boxed as it is, with no `async` block around it that would
        // hold the request beside it (and push the box past glibc's per-thread cache).
        use futures_util::FutureExt as _;
        let response = match dispatch {
            Dispatch::Router(router) => {
                futures_util::future::Either::Left(router.handle_on(request, Some(connection)))
            }
            Dispatch::Service(service) => futures_util::future::Either::Right(service(request)),
        };
        Box::pin(response.map(move |response| {
            response.map(|body| ServedBody {
                body,
                watch: watch.map(|conn| conn.watch()),
                _guard: guard,
            })
        }))
    }
}

/// A response body that keeps its call counted as in flight until it is done or dropped.
pub(super) struct ServedBody {
    body: crate::Body,
    /// Its send progress, with a send timeout.
    watch: Option<SendWatch>,
    _guard: CallGuard,
}

impl http_body::Body for ServedBody {
    type Data = bytes::Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = std::pin::Pin::new(&mut this.body).poll_frame(cx);
        if let Some(watch) = &this.watch {
            // A frame handed over means the connection wants to poll again once it has sent
            // it: until then the response waits on the peer.
            let owed = matches!(&polled, std::task::Poll::Ready(Some(Ok(frame))) if frame.is_data())
                && !this.body.is_end_stream();
            watch.polled(owed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
