//! Production knobs over real sockets: tower layers on the server (`serve_service`) and on
//! the client (the transport as a tower `Service`, extensions reaching it), HTTP/2 and TCP
//! settings seen on the wire, connect and pool idle timeouts, Unix domain sockets, custom
//! listeners and dialers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use buffa_types::google::protobuf::StringValue;
use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;
use volley::client::{Dialed, HttpTransport, HttpVersion};
use volley::interceptor::{BoxFuture, CallInfo, Next, UnaryRequest, UnaryResponse};
use volley::server::{Listener, Server};
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Interceptor, Protocol, Request,
    Response, ResponseStream, Router, Spec, StreamObserver, StreamType,
};

const GREET: Spec = Spec::new(
    "/test.v1.Greeter/Greet",
    StreamType::Unary,
    Idempotency::Unknown,
);
const COUNT: Spec = Spec::new(
    "/test.v1.Greeter/Count",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const SLOW: Spec = Spec::new(
    "/test.v1.Greeter/Slow",
    StreamType::Unary,
    Idempotency::Unknown,
);
const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];
const STEP: Duration = Duration::from_secs(10);

/// Greets with the `x-layer` header a server layer added (or `-`), counts to the number asked,
/// and sleeps on `Slow`.
fn router() -> Router {
    Router::new()
        .unary(GREET, |request: Request<StringValue>| async move {
            let layer = request
                .headers()
                .get("x-layer")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_string();
            Ok(Response::new(StringValue::from(format!(
                "hello {} via {layer}",
                request.message().value
            ))))
        })
        .server_stream(COUNT, |request: Request<StringValue>| async move {
            let n: usize = request.message().value.parse().unwrap_or(0);
            let items = (0..n).map(|i| Ok(StringValue::from(i.to_string())));
            let stream: ResponseStream<StringValue> = Box::pin(futures_util::stream::iter(items));
            Ok(Response::new(stream))
        })
        .unary(SLOW, |_request: Request<StringValue>| async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(Response::new(StringValue::from("late")))
        })
}

fn config(base: &str, protocol: Protocol) -> ClientConfig {
    ClientConfig::new(base).unwrap().protocol(protocol)
}

async fn greet<T: volley::Transport>(client: &Client<T>, who: &str) -> Result<String, Error> {
    let reply = client
        .unary::<_, StringValue>(GREET, StringValue::from(who), CallOptions::new())
        .await?;
    Ok(reply.into_message().value)
}

async fn count<T: volley::Transport>(client: &Client<T>, n: usize) -> Result<Vec<String>, Error> {
    let reply = client
        .server_stream::<_, StringValue>(
            COUNT,
            StringValue::from(n.to_string()),
            CallOptions::new(),
        )
        .await?;
    let mut stream = reply.into_message();
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        out.push(item?.value);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Server: any tower service.

/// A tower layer adding a request header, so the handler shows it ran.
#[derive(Clone)]
struct AddHeader<S>(S);

impl<S, B> tower::Service<http::Request<B>> for AddHeader<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> S::Future {
        request
            .headers_mut()
            .insert("x-layer", http::HeaderValue::from_static("tower"));
        self.0.call(request)
    }
}

#[tokio::test]
async fn server_serves_a_router_behind_tower_layers() -> anyhow::Result<()> {
    let service = ServiceBuilder::new()
        .concurrency_limit(2)
        .layer_fn(AddHeader)
        .timeout(Duration::from_millis(300))
        .service(router());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve_service(service));
    for protocol in PROTOCOLS {
        let client = Client::new(config(&format!("http://{addr}"), protocol))?;
        assert_eq!(
            greet(&client, "ada").await?,
            "hello ada via tower",
            "{protocol:?}"
        );
        assert_eq!(count(&client, 3).await?, ["0", "1", "2"], "{protocol:?}");
        // tower's Timeout fails the call with an error, not a response: the server answers
        // it as `unavailable`, in the protocol of the request.
        let started = Instant::now();
        let err = client
            .unary::<_, StringValue>(SLOW, StringValue::from("x"), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{protocol:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{protocol:?}");
    }
    Ok(())
}

#[tokio::test]
async fn server_concurrency_limit_layer_queues_calls() -> anyhow::Result<()> {
    // At most one call in the router at a time: three calls of 200 ms take about 600 ms.
    const NAP: Spec = Spec::new(
        "/test.v1.Greeter/Nap",
        StreamType::Unary,
        Idempotency::Unknown,
    );
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (i, m) = (inside.clone(), most.clone());
    let router = Router::new().unary(NAP, move |_r: Request<StringValue>| {
        let (i, m) = (i.clone(), m.clone());
        async move {
            let now = i.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            i.fetch_sub(1, Ordering::SeqCst);
            Ok(Response::new(StringValue::from("ok")))
        }
    });
    let service = ServiceBuilder::new().concurrency_limit(1).service(router);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve_service(service));
    let client = Client::new(config(&format!("http://{addr}"), Protocol::Grpc))?;
    let started = Instant::now();
    let calls = (0..3)
        .map(|_| client.unary::<_, StringValue>(NAP, StringValue::from(""), CallOptions::new()));
    for result in futures_util::future::join_all(calls).await {
        result?;
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "the limit held");
    assert!(started.elapsed() >= Duration::from_millis(550));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Client: the transport is a tower service; extensions and headers reach it.

/// What a client-side layer saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    path: String,
    header: Option<String>,
    from_options: Option<&'static str>,
    from_interceptor: Option<&'static str>,
}

#[derive(Clone, Debug, PartialEq)]
struct OptionsTag(&'static str);
#[derive(Clone, Debug, PartialEq)]
struct InterceptorTag(&'static str);

/// Records every request passing it.
#[derive(Clone)]
struct Observe<S> {
    inner: S,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl<S, B> tower::Service<http::Request<B>> for Observe<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> S::Future {
        self.seen.lock().unwrap().push(Seen {
            path: request.uri().path().to_string(),
            header: request
                .headers()
                .get("x-call")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            from_options: request.extensions().get::<OptionsTag>().map(|t| t.0),
            from_interceptor: request.extensions().get::<InterceptorTag>().map(|t| t.0),
        });
        self.inner.call(request)
    }
}

/// A client interceptor stamping an extension on every call.
struct Stamp;

impl Interceptor for Stamp {
    fn unary<'a>(
        &'a self,
        mut request: UnaryRequest,
        next: Next<'a>,
    ) -> BoxFuture<'a, Result<UnaryResponse, Error>> {
        request.extensions.insert(InterceptorTag("unary"));
        next.run(request)
    }

    fn stream(
        &self,
        _info: &CallInfo,
        _headers: &mut http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> Result<Option<Box<dyn StreamObserver>>, Error> {
        extensions.insert(InterceptorTag("stream"));
        Ok(None)
    }
}

#[tokio::test]
async fn client_layers_see_headers_and_extensions() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve(router()));
    for protocol in PROTOCOLS {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = config(&format!("http://{addr}"), protocol).interceptor(Stamp);
        let transport = ServiceBuilder::new()
            .layer_fn(|inner| Observe {
                inner,
                seen: seen.clone(),
            })
            .concurrency_limit(4)
            .service(HttpTransport::new(&config)?);
        let client = Client::with_transport(config, transport);
        let options = || {
            CallOptions::new()
                .with_header("x-call", "yes")
                .with_extension(OptionsTag("opts"))
        };
        let reply = client
            .unary::<_, StringValue>(GREET, StringValue::from("bob"), options())
            .await?;
        assert_eq!(reply.message().value, "hello bob via -", "{protocol:?}");
        let reply = client
            .server_stream::<_, StringValue>(COUNT, StringValue::from("2"), options())
            .await?;
        let items: Vec<_> = reply.into_message().collect().await;
        assert_eq!(items.len(), 2, "{protocol:?}");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                Seen {
                    path: GREET.procedure.into(),
                    header: Some("yes".into()),
                    from_options: Some("opts"),
                    from_interceptor: Some("unary"),
                },
                Seen {
                    path: COUNT.procedure.into(),
                    header: Some("yes".into()),
                    from_options: Some("opts"),
                    from_interceptor: Some("stream"),
                },
            ],
            "{protocol:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn client_layer_error_is_the_calls_error() -> anyhow::Result<()> {
    // A tower timeout between the client and the wire fails the call (the server is slow).
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve(router()));
    let config = config(&format!("http://{addr}"), Protocol::Grpc);
    let transport = ServiceBuilder::new()
        .timeout(Duration::from_millis(200))
        .service(HttpTransport::new(&config)?);
    let client = Client::with_transport(config, transport);
    let started = Instant::now();
    let err = client
        .unary::<_, StringValue>(SLOW, StringValue::from(""), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(greet(&client, "x").await?, "hello x via -");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// HTTP/2 settings, seen on the wire.

/// Reads HTTP/2 frames from `io` until a SETTINGS frame (not an ACK) has been read and, if
/// `want_window` is set, a connection-level WINDOW_UPDATE too. Returns the settings and the
/// window increment.
async fn read_settings(
    io: &mut TcpStream,
    want_window: bool,
) -> anyhow::Result<(Vec<(u16, u32)>, Option<u32>)> {
    let mut settings = None;
    let mut window = None;
    while settings.is_none() || (want_window && window.is_none()) {
        let mut head = [0u8; 9];
        io.read_exact(&mut head).await?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        anyhow::ensure!(len <= 1 << 20, "frame too large: {len}");
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await?;
        match kind {
            4 if flags & 1 == 0 => {
                settings = Some(
                    payload
                        .chunks_exact(6)
                        .map(|c| {
                            (
                                u16::from_be_bytes([c[0], c[1]]),
                                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                            )
                        })
                        .collect::<Vec<_>>(),
                );
            }
            8 if stream == 0 => {
                window = Some(
                    u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]])
                        & 0x7fff_ffff,
                );
            }
            _ => {}
        }
    }
    Ok((settings.unwrap_or_default(), window))
}

fn setting(settings: &[(u16, u32)], id: u16) -> Option<u32> {
    settings
        .iter()
        .rev()
        .find(|(i, _)| *i == id)
        .map(|(_, v)| *v)
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[tokio::test]
async fn server_http2_settings_reach_the_wire() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::from_listener(listener)
        .max_concurrent_streams(7)
        .initial_stream_window_size(100_000)
        .initial_connection_window_size(3_000_000)
        .max_frame_size(32 * 1024)
        .max_header_list_size(8 * 1024);
    tokio::spawn(server.serve(router()));
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(PREFACE).await?;
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await?; // empty SETTINGS
    let (settings, window) = tokio::time::timeout(STEP, read_settings(&mut tcp, true)).await??;
    assert_eq!(
        setting(&settings, 3),
        Some(7),
        "MAX_CONCURRENT_STREAMS in {settings:?}"
    );
    assert_eq!(setting(&settings, 4), Some(100_000), "INITIAL_WINDOW_SIZE");
    assert_eq!(setting(&settings, 5), Some(32 * 1024), "MAX_FRAME_SIZE");
    assert_eq!(
        setting(&settings, 6),
        Some(8 * 1024),
        "MAX_HEADER_LIST_SIZE"
    );
    assert_eq!(window, Some(3_000_000 - 65_535), "connection window");
    Ok(())
}

#[tokio::test]
async fn server_http2_defaults_reach_the_wire() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve(router()));
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(PREFACE).await?;
    tcp.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await?;
    let (settings, window) = tokio::time::timeout(STEP, read_settings(&mut tcp, true)).await??;
    assert_eq!(
        setting(&settings, 3),
        Some(volley::server::DEFAULT_MAX_CONCURRENT_STREAMS)
    );
    assert_eq!(
        setting(&settings, 4),
        Some(volley::server::DEFAULT_INITIAL_STREAM_WINDOW)
    );
    assert_eq!(
        setting(&settings, 6),
        Some(volley::server::DEFAULT_MAX_HEADER_LIST_SIZE)
    );
    // 16 KiB is the protocol's default: sent or not, the value holds.
    assert!(matches!(
        setting(&settings, 5),
        None | Some(volley::server::DEFAULT_MAX_FRAME_SIZE)
    ));
    assert_eq!(
        window,
        Some(volley::server::DEFAULT_INITIAL_CONNECTION_WINDOW - 65_535)
    );
    Ok(())
}

#[tokio::test]
async fn client_http2_settings_reach_the_wire() -> anyhow::Result<()> {
    // A fake server reads what the client's HTTP/2 connection opens with.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let config = config(&format!("http://{addr}"), Protocol::Connect)
        .http_version(HttpVersion::Http2)
        .initial_stream_window_size(200_000)
        .initial_connection_window_size(4_000_000)
        .max_frame_size(64 * 1024)
        .max_header_list_size(4 * 1024)
        .timeout(Duration::from_secs(5));
    let client = Client::new(config)?;
    let call = tokio::spawn(async move { greet(&client, "x").await });
    let (mut tcp, _) = tokio::time::timeout(STEP, listener.accept()).await??;
    let mut preface = [0u8; 24];
    tcp.read_exact(&mut preface).await?;
    assert_eq!(&preface, PREFACE, "HTTP/2 prior knowledge");
    let (settings, window) = tokio::time::timeout(STEP, read_settings(&mut tcp, true)).await??;
    assert_eq!(
        setting(&settings, 4),
        Some(200_000),
        "INITIAL_WINDOW_SIZE in {settings:?}"
    );
    assert_eq!(setting(&settings, 5), Some(64 * 1024), "MAX_FRAME_SIZE");
    assert_eq!(
        setting(&settings, 6),
        Some(4 * 1024),
        "MAX_HEADER_LIST_SIZE"
    );
    assert_eq!(window, Some(4_000_000 - 65_535), "connection window");
    drop(tcp);
    let err = call.await?.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Connect timeout, pool idle timeout.

#[tokio::test]
async fn connect_timeout_bounds_a_blackholed_connect() -> anyhow::Result<()> {
    // A loopback listener that never accepts, its backlog full: further SYNs are dropped, so a
    // connect hangs as it would to a blackholed address.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let listener = socket.listen(0)?;
    let addr = listener.local_addr()?;
    let mut fillers = Vec::new();
    let mut blackholed = false;
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fillers.push(s),
            Ok(Err(e)) => anyhow::bail!("connect failed: {e}"),
            Err(_) => {
                blackholed = true;
                break;
            }
        }
    }
    anyhow::ensure!(blackholed, "the backlog never filled up");
    let config = config(&format!("http://{addr}"), Protocol::Connect)
        .connect_timeout(Duration::from_millis(300));
    let client = Client::new(config)?;
    let started = Instant::now();
    let err = greet(&client, "x").await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(
        elapsed >= Duration::from_millis(250) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    drop(listener);
    Ok(())
}

/// A TCP listener counting open connections (decremented when the server drops one).
struct Counting {
    listener: TcpListener,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

struct Counted {
    io: TcpStream,
    open: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl Listener for Counting {
    type Io = Counted;

    fn accept(
        &mut self,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<(Counted, Option<SocketAddr>)>> + Send + '_>>
    {
        Box::pin(async move {
            let (io, peer) = self.listener.accept().await?;
            self.open.fetch_add(1, Ordering::SeqCst);
            self.accepted.fetch_add(1, Ordering::SeqCst);
            let open = self.open.clone();
            Ok((Counted { io, open }, Some(peer)))
        })
    }
}

/// Serves the test router through a [`Counting`] listener.
async fn counting_server() -> anyhow::Result<(SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let open = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = Counting {
        listener,
        open: open.clone(),
        accepted: accepted.clone(),
    };
    tokio::spawn(Server::from_custom_listener(counting).serve(router()));
    Ok((addr, open, accepted))
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + STEP;
    while !check() {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn pool_idle_timeout_closes_unused_connections() -> anyhow::Result<()> {
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let (addr, open, accepted) = counting_server().await?;
        let base = format!("http://{addr}");
        // The default (90 s) keeps the connection...
        let kept = Client::new(config(&base, Protocol::Connect).http_version(version))?;
        assert_eq!(greet(&kept, "a").await?, "hello a via -");
        // ...a short idle timeout closes it once unused.
        let short = Client::new(
            config(&base, Protocol::Connect)
                .http_version(version)
                .pool_idle_timeout(Some(Duration::from_millis(300))),
        )?;
        assert_eq!(greet(&short, "b").await?, "hello b via -");
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "{version:?}");
        wait_for("the idle connection to close", || {
            open.load(Ordering::SeqCst) == 1
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            open.load(Ordering::SeqCst),
            1,
            "{version:?}: the default pool keeps one"
        );
        // The next call opens a new connection.
        assert_eq!(greet(&short, "c").await?, "hello c via -");
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "{version:?}");
        // And pooled connections are reused.
        assert_eq!(greet(&kept, "d").await?, "hello d via -");
        assert_eq!(accepted.load(Ordering::SeqCst), 3, "{version:?}");
    }
    Ok(())
}

#[tokio::test]
async fn pool_max_idle_per_host_zero_does_not_pool_http1() -> anyhow::Result<()> {
    let (addr, open, accepted) = counting_server().await?;
    let client = Client::new(
        config(&format!("http://{addr}"), Protocol::Connect)
            .http_version(HttpVersion::Http1)
            .pool_max_idle_per_host(0),
    )?;
    for i in 0..3 {
        assert_eq!(greet(&client, "x").await?, "hello x via -");
        assert_eq!(accepted.load(Ordering::SeqCst), i + 1);
    }
    wait_for("connections to close", || open.load(Ordering::SeqCst) == 0).await?;
    Ok(())
}

#[tokio::test]
async fn tcp_settings_apply_and_calls_work() -> anyhow::Result<()> {
    // TCP keepalive and Nagle on both sides: calls still succeed with every combination.
    for (nodelay, keepalive) in [(false, Some(Duration::from_secs(30))), (true, None)] {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = Server::from_listener(listener)
            .tcp_nodelay(nodelay)
            .tcp_keepalive(keepalive)
            .keepalive(Some((Duration::from_millis(100), Duration::from_secs(1))));
        tokio::spawn(server.serve(router()));
        for protocol in PROTOCOLS {
            let client = Client::new(
                config(&format!("http://{addr}"), protocol)
                    .tcp_nodelay(nodelay)
                    .tcp_keepalive(keepalive)
                    .keepalive(Some((Duration::from_millis(100), Duration::from_secs(1))))
                    .keepalive_while_idle(true)
                    .adaptive_window(true),
            )?;
            assert_eq!(greet(&client, "k").await?, "hello k via -");
            // Pings come and go on the idle connection; it stays usable.
            tokio::time::sleep(Duration::from_millis(350)).await;
            assert_eq!(count(&client, 4).await?.len(), 4, "{protocol:?}");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Unix domain sockets, custom listeners and dialers.

fn socket_path(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("volley-{name}-{}-{nanos}.sock", std::process::id()))
}

#[tokio::test]
async fn unix_socket_serves_every_protocol() -> anyhow::Result<()> {
    let path = socket_path("uds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::bind_unix(&path).serve_with_shutdown(router(), async move {
            let _ = stopped.await;
        }),
    );
    wait_for("the socket file", || path.exists()).await?;
    for protocol in PROTOCOLS {
        for version in [HttpVersion::Auto, HttpVersion::Http2] {
            let client = Client::new(
                config("http://localhost", protocol)
                    .http_version(version)
                    .unix_socket(&path),
            )?;
            assert_eq!(
                greet(&client, "uds").await?,
                "hello uds via -",
                "{protocol:?} {version:?}"
            );
            assert_eq!(count(&client, 3).await?, ["0", "1", "2"], "{protocol:?}");
        }
    }
    // A layered service over a Unix socket too.
    let path2 = socket_path("uds-layered");
    let layered = ServiceBuilder::new().layer_fn(AddHeader).service(router());
    tokio::spawn(Server::bind_unix(&path2).serve_service(layered));
    wait_for("the second socket file", || path2.exists()).await?;
    let client = Client::new(config("http://localhost", Protocol::Grpc).unix_socket(&path2))?;
    assert_eq!(greet(&client, "l").await?, "hello l via tower");

    let _ = stop.send(());
    tokio::time::timeout(STEP, server).await???;
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&path2);
    Ok(())
}

#[tokio::test]
async fn unix_socket_client_errors_are_unavailable() -> anyhow::Result<()> {
    let client = Client::new(
        config("http://localhost", Protocol::Grpc).unix_socket(socket_path("missing")),
    )?;
    let err = greet(&client, "x").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    // A stale socket file is not taken over by a new server.
    let path = socket_path("stale");
    let _held = tokio::net::UnixListener::bind(&path)?;
    let err = Server::bind_unix(&path).serve(router()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    let _ = std::fs::remove_file(&path);
    Ok(())
}

/// A listener over in-process pipes: connections handed over on a channel.
struct Pipes(tokio::sync::mpsc::Receiver<tokio::io::DuplexStream>);

impl Listener for Pipes {
    type Io = tokio::io::DuplexStream;

    fn accept(
        &mut self,
    ) -> Pin<Box<dyn Future<Output = std::io::Result<(Self::Io, Option<SocketAddr>)>> + Send + '_>>
    {
        Box::pin(async move {
            match self.0.recv().await {
                Some(io) => Ok((io, None)),
                None => std::future::pending().await,
            }
        })
    }
}

#[tokio::test]
async fn custom_listener_and_dialer_over_in_process_pipes() -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(Server::from_custom_listener(Pipes(rx)).serve(router()));
    let dialed = Arc::new(AtomicUsize::new(0));
    for protocol in PROTOCOLS {
        let (tx, dialed) = (tx.clone(), dialed.clone());
        let config = config("http://in-process", protocol).dialer(move |uri: http::Uri| {
            let (tx, dialed) = (tx.clone(), dialed.clone());
            async move {
                assert_eq!(uri.host(), Some("in-process"));
                let (client, server) = tokio::io::duplex(64 * 1024);
                tx.send(server)
                    .await
                    .map_err(|_| std::io::Error::other("server gone"))?;
                dialed.fetch_add(1, Ordering::SeqCst);
                Ok(Dialed::new(client))
            }
        });
        let client = Client::new(config)?;
        assert_eq!(
            greet(&client, "pipe").await?,
            "hello pipe via -",
            "{protocol:?}"
        );
        assert_eq!(count(&client, 2).await?, ["0", "1"], "{protocol:?}");
    }
    // One connection per client, give or take an HTTP/1.1 connection not yet back in the
    // pool when the next call starts.
    let dialed = dialed.load(Ordering::SeqCst);
    assert!((3..=6).contains(&dialed), "{dialed} connections dialed");
    Ok(())
}

#[tokio::test]
async fn dialer_redirects_to_a_tcp_address_and_connect_timeout_bounds_it() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve(router()));
    let client = Client::new(config("http://greeter.invalid", Protocol::Grpc).dialer(
        move |_uri: http::Uri| async move { Ok(Dialed::new(TcpStream::connect(addr).await?)) },
    ))?;
    assert_eq!(greet(&client, "dns-free").await?, "hello dns-free via -");
    // A dialer that never finishes is cut off by the connect timeout.
    let client = Client::new(
        config("http://greeter.invalid", Protocol::Grpc)
            .connect_timeout(Duration::from_millis(200))
            .dialer(|_uri: http::Uri| async {
                std::future::pending::<std::io::Result<Dialed>>().await
            }),
    )?;
    let started = Instant::now();
    let err = greet(&client, "x").await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Deadlines propagate from a handler to the calls it makes.

#[tokio::test]
async fn a_handlers_deadline_reaches_the_server_it_calls() -> anyhow::Result<()> {
    const FRONT: Spec = Spec::new(
        "/test.v1.Front/Get",
        StreamType::Unary,
        Idempotency::Unknown,
    );
    const BACK: Spec = Spec::new("/test.v1.Back/Get", StreamType::Unary, Idempotency::Unknown);
    // The back end reports the time left it sees ("none" without a deadline), and naps when
    // asked to, noting whether it was cancelled.
    let cancelled = Arc::new(AtomicUsize::new(0));
    let c = cancelled.clone();
    let back = Router::new().unary(BACK, move |request: Request<StringValue>| {
        let c = c.clone();
        async move {
            let left = match request.timeout() {
                Some(left) => left.as_millis().to_string(),
                None => "none".to_string(),
            };
            if request.message().value == "nap" {
                struct Cancelled(Arc<AtomicUsize>);
                impl Drop for Cancelled {
                    fn drop(&mut self) {
                        self.0.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let guard = Cancelled(c);
                tokio::time::sleep(Duration::from_secs(5)).await;
                std::mem::forget(guard);
            }
            Ok(Response::new(StringValue::from(left)))
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let back_addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve(back));
    for protocol in PROTOCOLS {
        let back_client = Client::new(config(&format!("http://{back_addr}"), protocol))?;
        let front = Router::new().unary(FRONT, move |request: Request<StringValue>| {
            let back_client = back_client.clone();
            async move {
                // Spend a little of the budget before calling on.
                tokio::time::sleep(Duration::from_millis(100)).await;
                let options = CallOptions::new().with_deadline_of(&request);
                back_client
                    .unary::<_, StringValue>(BACK, request.into_message(), options)
                    .await
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let front_addr = listener.local_addr()?;
        tokio::spawn(Server::from_listener(listener).serve(front));
        let client = Client::new(config(&format!("http://{front_addr}"), protocol))?;

        let call = |value: &str, timeout: Option<Duration>| {
            let mut options = CallOptions::new();
            if let Some(t) = timeout {
                options = options.with_timeout(t);
            }
            client.unary::<_, StringValue>(FRONT, StringValue::from(value), options)
        };
        // The back end sees the caller's 5 s, less what the front spent.
        let left: u128 = call("x", Some(Duration::from_secs(5)))
            .await?
            .into_message()
            .value
            .parse()?;
        assert!(
            (1_000..=4_900).contains(&left),
            "{protocol:?}: {left} ms left at the back end"
        );
        // No deadline at the front, none at the back.
        let left = call("x", None).await?.into_message().value;
        assert_eq!(left, "none", "{protocol:?}");
        // The chain gives up together: the back end is cancelled at the caller's deadline.
        let before = cancelled.load(Ordering::SeqCst);
        let started = Instant::now();
        let err = call("nap", Some(Duration::from_millis(600)))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::DeadlineExceeded, "{protocol:?}: {err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{protocol:?}");
        wait_for("the back end's cancellation", || {
            cancelled.load(Ordering::SeqCst) > before
        })
        .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_propagated_deadline_never_extends_the_calls_own_timeout() -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(Server::from_listener(listener).serve(router()));
    let client = Client::new(
        config(&format!("http://{addr}"), Protocol::Grpc).timeout(Duration::from_millis(300)),
    )?;
    // A far deadline does not lengthen the client's default timeout of 300 ms...
    let started = Instant::now();
    let err = client
        .unary::<_, StringValue>(
            SLOW,
            StringValue::from(""),
            CallOptions::new().with_deadline(Instant::now() + Duration::from_secs(60)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(2));
    // ...and a near one shortens it.
    let started = Instant::now();
    let err = client
        .unary::<_, StringValue>(
            SLOW,
            StringValue::from(""),
            CallOptions::new().with_deadline(Instant::now() + Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(
        started.elapsed() < Duration::from_millis(280),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}
