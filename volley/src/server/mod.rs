//! The built-in server: one port for HTTP/1.1, h2c (prior knowledge) and, with TLS, HTTP/2
//! and HTTP/1.1 negotiated by ALPN; graceful shutdown with a grace period.

mod body;
mod conn;
#[cfg(feature = "http3")]
mod http3;
mod listen;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::Router;
#[cfg(feature = "tls")]
use crate::request::PeerCertificates;
use conn::{Dispatch, Served, Tracker, drive};
use listen::{Accepted, Accepting, Stream};
pub use listen::{Io, Listener};

#[cfg(feature = "tls")]
pub use crate::tls::TlsConfig;

enum Listen {
    Addr(SocketAddr),
    Listener(TcpListener),
    #[cfg(unix)]
    UnixPath(std::path::PathBuf),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
    Custom(Box<dyn listen::ErasedListener>),
}

/// Default most connections served at once ([`Server::max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default most concurrent HTTP/2 streams per connection ([`Server::max_concurrent_streams`]).
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 200;
/// Default time to receive a request head ([`Server::header_read_timeout`]).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a connection may stay open with no call in flight
/// ([`Server::idle_timeout`]).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default interval between HTTP/3 (QUIC) keepalive pings ([`Server::keepalive`]; HTTP/2
/// pings are off unless set).
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
/// Default time to wait for a QUIC keepalive ping's acknowledgement ([`Server::keepalive`]).
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default idle time before TCP keepalive probes start on accepted TCP connections
/// ([`Server::tcp_keepalive`]).
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Default time between unanswered TCP keepalive probes ([`Server::tcp_keepalive_interval`]).
pub const DEFAULT_TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Default number of unanswered TCP keepalive probes after which the kernel drops the
/// connection ([`Server::tcp_keepalive_retries`]).
pub const DEFAULT_TCP_KEEPALIVE_RETRIES: u32 = 4;
/// Default time a request body may make no progress while read
/// ([`Server::body_progress_timeout`]).
pub const DEFAULT_BODY_PROGRESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Default HTTP/2 initial stream flow-control window ([`Server::initial_stream_window_size`]),
/// hyper's: 1 MiB.
pub const DEFAULT_INITIAL_STREAM_WINDOW: u32 = 1024 * 1024;
/// Default HTTP/2 initial connection flow-control window
/// ([`Server::initial_connection_window_size`]), hyper's: 1 MiB.
pub const DEFAULT_INITIAL_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Default largest HTTP/2 frame payload the server accepts ([`Server::max_frame_size`]): the
/// protocol's minimum, 16 KiB.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024;
/// Default largest header list (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`) the server accepts
/// ([`Server::max_header_list_size`]), hyper's: 16 KiB.
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Default minimum average rate of a request message being received, in bytes per second
/// ([`Server::min_body_rate`]).
pub const DEFAULT_MIN_BODY_RATE: u64 = 1024;
/// Default time a request message may take before [`DEFAULT_MIN_BODY_RATE`] applies
/// ([`Server::min_body_rate`]).
pub const DEFAULT_MIN_BODY_RATE_GRACE: Duration = Duration::from_secs(20);
/// Default time a response may wait for the peer to take it ([`Server::send_timeout`]).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a connection closed for idleness has to finish its graceful close (an HTTP/2
/// GOAWAY waits for a ping acknowledgement) before it is dropped.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves a [`Router`] on a TCP port.
///
/// ```no_run
/// # async fn run(router: volley::Router) -> std::io::Result<()> {
/// volley::server::Server::bind(([127, 0, 0, 1], 8080)).serve(router).await
/// # }
/// ```
///
/// # Limits and timeouts
///
/// Every connection is bounded in time and every server in connections, with defaults chosen
/// the way hyper, grpc-go and nginx choose theirs:
///
/// | setting | default | why |
/// | --- | --- | --- |
/// | [`max_connections`](Self::max_connections) | 10,000 | at it, a connection accepted waits to be served (the kernel's backlog holds the next ones) while the server closes an idle connection to make room (one idle for a second or more, never used first, else longest idle); when every connection has a call in flight it waits for one to end |
/// | [`max_concurrent_streams`](Self::max_concurrent_streams) | 200 | hyper's default; nginx uses 128, grpc-go leaves it unbounded |
/// | [`header_read_timeout`](Self::header_read_timeout) | 30 s | hyper's HTTP/1.1 default, for every request head (so an HTTP/1.1 keep-alive connection idle that long is closed); also the time a new connection of either version has to start its first call |
/// | [`idle_timeout`](Self::idle_timeout) | 5 min | an HTTP/2 connection with no call in flight is closed (GOAWAY) after it: long enough for client pools between bursts, short enough that abandoned connections do not pile up |
/// | [`keepalive`](Self::keepalive) | HTTP/2: off; HTTP/3: ping every 60 s, 20 s to answer | on HTTP/2, TCP keepalive finds dead peers at no cost per call, while hyper's ping bookkeeping takes a clock reading and a lock on every frame read (about 2% of the instructions of a small unary call); QUIC closes a connection that is silent past its idle timeout, so long quiet calls need pings there |
/// | [`body_progress_timeout`](Self::body_progress_timeout) | 30 s | a request body read by its handler that delivers nothing for this long fails the call (nginx's `client_body_timeout` is 60 s) |
/// | [`min_body_rate`](Self::min_body_rate) | 1 KiB/s after 20 s | a request message being received may take 20 s plus 1 s per KiB of it (time its handler spends not reading does not count; neither does time between messages), else the call fails: Apache's `mod_reqtimeout` (`body=20,MinRate=500`), so a body trickling a byte every few seconds cannot hold a call |
/// | [`send_timeout`](Self::send_timeout) | 60 s | a response with data to send that the peer does not take for this long (a zero HTTP/2 window, a socket it never reads) closes its connection, dropping its calls' handlers: nginx's `send_timeout` |
/// | [`raise_open_files_limit`](Self::raise_open_files_limit) | on | raises the soft `RLIMIT_NOFILE` to the hard limit, as Go's runtime does |
/// | [`initial_stream_window_size`](Self::initial_stream_window_size) / [`initial_connection_window_size`](Self::initial_connection_window_size) | 1 MiB / 1 MiB | hyper's HTTP/2 flow-control windows; [`adaptive_window`](Self::adaptive_window) (off) sizes them by BDP instead |
/// | [`max_frame_size`](Self::max_frame_size) | 16 KiB | the HTTP/2 minimum |
/// | [`max_header_list_size`](Self::max_header_list_size) | 16 KiB | hyper's; larger request headers are refused |
/// | [`tcp_nodelay`](Self::tcp_nodelay) / [`tcp_keepalive`](Self::tcp_keepalive) | on / probes after 60 s idle | on accepted TCP connections; Go's listeners turn TCP keepalive on too, so a peer that vanished mid-stream is found without HTTP/2 pings |
/// | [`tcp_keepalive_interval`](Self::tcp_keepalive_interval) / [`tcp_keepalive_retries`](Self::tcp_keepalive_retries) | 15 s / 4 | a connection whose peer stopped answering is dropped two minutes after it went quiet, where Linux's defaults (75 s, 9 probes) take over twelve |
///
/// Serve a [`Router`] behind tower layers with [`serve_service`](Self::serve_service), on a
/// Unix socket with [`bind_unix`](Self::bind_unix), from your own listener with
/// [`from_custom_listener`](Self::from_custom_listener): see the
/// [production guide](crate::guide::production).
///
/// With the `http3` feature, `Server::http3` also serves HTTP/3 over QUIC on the
/// same port number (UDP), under the same limits.
///
/// When `accept` fails for lack of file descriptors (`EMFILE`, `ENFILE`) the server logs it,
/// closes its longest-idle connection, backs off briefly and goes on accepting.
///
/// # Memory
///
/// What a peer can make the server hold is bounded: per connection, hyper's HTTP/2 flow
/// control windows (1 MiB per connection by default; larger or adaptive windows raise the
/// bound) and 400 KiB of send buffer; per call, the [`Router`]'s receive limit (4 MiB); and
/// server-wide, the router's budget of buffered request
/// bytes ([`Router::request_buffer_budget`], 256 MiB by default) beyond a 16 KiB allowance per
/// call, plus up to 16 KiB the envelope decoder reserves ahead. So with the defaults, what
/// peers can make the server buffer is at most 256 MiB + connections x (1.4 MiB + 200
/// streams x 32 KiB), about 7.8 MiB per connection: 2 connections cost at most about 272 MiB
/// however many partial messages they send (the attack tests measure under 300 MiB peak
/// resident for 2 x 200 streams x 4 MB). Messages being decompressed add at most the receive
/// limit per blocking-pool slot (half the CPUs). Lower
/// [`max_connections`](Self::max_connections) or
/// [`max_concurrent_streams`](Self::max_concurrent_streams) for a tighter bound.
pub struct Server {
    listen: Listen,
    #[cfg(feature = "tls")]
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    grace_period: Duration,
    limits: Limits,
    #[cfg(feature = "http3")]
    http3: http3::Http3Settings,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: usize,
    max_concurrent_streams: u32,
    header_read_timeout: Duration,
    idle_timeout: Duration,
    keepalive: Option<(Duration, Duration)>,
    #[cfg(feature = "http3")]
    quic_keepalive: Option<(Duration, Duration)>,
    body_progress_timeout: Option<Duration>,
    min_body_rate: Option<(u64, Duration)>,
    send_timeout: Option<Duration>,
    raise_open_files_limit: bool,
    h2: H2Settings,
    tcp_nodelay: bool,
    tcp_keepalive: Option<Duration>,
    tcp_keepalive_interval: Option<Duration>,
    tcp_keepalive_retries: Option<u32>,
}

/// The HTTP/2 settings beyond the limits above.
#[derive(Debug, Clone, Copy)]
struct H2Settings {
    initial_stream_window: u32,
    initial_connection_window: u32,
    adaptive_window: bool,
    max_frame_size: u32,
    max_header_list_size: u32,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("grace_period", &self.grace_period)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server that will listen on `addr`.
    pub fn bind(addr: impl Into<SocketAddr>) -> Self {
        Self::with_listen(Listen::Addr(addr.into()))
    }

    /// A server on an already-bound listener (bind port 0 to learn the port first).
    pub fn from_listener(listener: TcpListener) -> Self {
        Self::with_listen(Listen::Listener(listener))
    }

    /// A server that will listen on a Unix domain socket at `path` (Unix only). The socket file
    /// is created when serving starts; a file already there is an error (`AddrInUse`), so
    /// remove a stale one first. Connections over it carry no [`PeerAddr`](crate::PeerAddr).
    #[cfg(unix)]
    pub fn bind_unix(path: impl Into<std::path::PathBuf>) -> Self {
        Self::with_listen(Listen::UnixPath(path.into()))
    }

    /// A server on an already-bound Unix domain socket listener (Unix only).
    #[cfg(unix)]
    pub fn from_unix_listener(listener: tokio::net::UnixListener) -> Self {
        Self::with_listen(Listen::Unix(listener))
    }

    /// A server accepting connections from your own [`Listener`]: any source of
    /// `AsyncRead + AsyncWrite` streams (an in-process pipe, a socket activated by systemd,
    /// your own TLS terminator). The TCP settings ([`tcp_nodelay`](Self::tcp_nodelay),
    /// [`tcp_keepalive`](Self::tcp_keepalive)) are the listener's business then; everything
    /// else applies.
    pub fn from_custom_listener(listener: impl Listener) -> Self {
        Self::with_listen(Listen::Custom(Box::new(listener)))
    }

    fn with_listen(listen: Listen) -> Self {
        Self {
            listen,
            #[cfg(feature = "tls")]
            tls: None,
            grace_period: Duration::from_secs(10),
            limits: Limits {
                max_connections: DEFAULT_MAX_CONNECTIONS,
                max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
                header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
                idle_timeout: DEFAULT_IDLE_TIMEOUT,
                keepalive: None,
                #[cfg(feature = "http3")]
                quic_keepalive: Some((DEFAULT_KEEPALIVE_INTERVAL, DEFAULT_KEEPALIVE_TIMEOUT)),
                body_progress_timeout: Some(DEFAULT_BODY_PROGRESS_TIMEOUT),
                min_body_rate: Some((DEFAULT_MIN_BODY_RATE, DEFAULT_MIN_BODY_RATE_GRACE)),
                send_timeout: Some(DEFAULT_SEND_TIMEOUT),
                raise_open_files_limit: true,
                h2: H2Settings {
                    initial_stream_window: DEFAULT_INITIAL_STREAM_WINDOW,
                    initial_connection_window: DEFAULT_INITIAL_CONNECTION_WINDOW,
                    adaptive_window: false,
                    max_frame_size: DEFAULT_MAX_FRAME_SIZE,
                    max_header_list_size: DEFAULT_MAX_HEADER_LIST_SIZE,
                },
                tcp_nodelay: true,
                tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
                tcp_keepalive_interval: Some(DEFAULT_TCP_KEEPALIVE_INTERVAL),
                tcp_keepalive_retries: Some(DEFAULT_TCP_KEEPALIVE_RETRIES),
            },
            #[cfg(feature = "http3")]
            http3: http3::Http3Settings::default(),
        }
    }

    /// Also serves HTTP/3 (feature `http3`): QUIC on a UDP socket bound to the TCP listener's
    /// address and port, TLS from [`tls`](Self::tls) (required) with ALPN `h3`. The same
    /// router or service answers, with the same limits and timeouts:
    /// [`max_concurrent_streams`](Self::max_concurrent_streams) bounds the concurrent request
    /// streams of a QUIC connection, [`max_header_list_size`](Self::max_header_list_size) its
    /// header sections, [`initial_stream_window_size`](Self::initial_stream_window_size) and
    /// [`initial_connection_window_size`](Self::initial_connection_window_size) its flow
    /// control; [`keepalive`](Self::keepalive) pings are QUIC pings. Graceful shutdown sends an
    /// HTTP/3 GOAWAY. Serving fails at start (`InvalidInput`) without TLS or without a TCP
    /// address to share (a Unix or custom listener: use [`http3_socket`](Self::http3_socket)).
    #[cfg(feature = "http3")]
    pub fn http3(mut self, enabled: bool) -> Self {
        self.http3.enabled = enabled;
        self
    }

    /// Serves HTTP/3 on this UDP socket (feature `http3`) instead of one bound to the TCP
    /// listener's address; turns [`http3`](Self::http3) on.
    #[cfg(feature = "http3")]
    pub fn http3_socket(mut self, socket: std::net::UdpSocket) -> Self {
        self.http3.enabled = true;
        self.http3.socket = Some(socket);
        self
    }

    /// Advertises HTTP/3 on responses sent over TCP with `Alt-Svc: h3=":PORT"; ma=86400`
    /// (feature `http3`; default off), so browsers and other clients that support it move to
    /// QUIC. Takes effect only with [`http3`](Self::http3) on.
    #[cfg(feature = "http3")]
    pub fn advertise_http3(mut self, enabled: bool) -> Self {
        self.http3.advertise = enabled;
        self
    }

    /// Serves TLS (HTTP/2 and HTTP/1.1 by ALPN) instead of cleartext.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, config: TlsConfig) -> Self {
        self.tls = Some(config.into_server_config());
        self
    }

    /// How long in-flight calls may run after shutdown starts before connections are closed
    /// (default 10 s).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace_period = grace;
        self
    }

    /// The most connections served at once (default [`DEFAULT_MAX_CONNECTIONS`], 10,000; at
    /// least 1). At the limit a connection accepted waits to be served, and the server stops
    /// accepting more, while it closes an idle connection (no call in flight) to make room: of
    /// those idle for a second or more, one that never started a call first, else the longest
    /// idle. With every connection busy, it waits for one to end.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.limits.max_connections = max.max(1);
        self
    }

    /// The most concurrent HTTP/2 streams a connection may open (default
    /// [`DEFAULT_MAX_CONCURRENT_STREAMS`], 200).
    pub fn max_concurrent_streams(mut self, max: u32) -> Self {
        self.limits.max_concurrent_streams = max;
        self
    }

    /// How long a client has to send an HTTP/1.1 request head, and a new connection of either
    /// version to start its first call (default [`DEFAULT_HEADER_READ_TIMEOUT`], 30 s).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// How long a connection may stay open with no call in flight before it is closed
    /// gracefully (default [`DEFAULT_IDLE_TIMEOUT`], 5 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// Keepalive pings: a ping every `interval`, the connection closed when one is not
    /// acknowledged within `timeout`; `None` turns pings off. Applies to HTTP/2 and HTTP/3.
    ///
    /// By default HTTP/2 sends none (TCP keepalive, [`tcp_keepalive`](Self::tcp_keepalive),
    /// finds dead peers instead: hyper's ping bookkeeping reads the clock and takes a lock on
    /// every frame, about 2% of a small call's instructions) and HTTP/3 pings every 60 s with
    /// 20 s to answer ([`DEFAULT_KEEPALIVE_INTERVAL`], [`DEFAULT_KEEPALIVE_TIMEOUT`]), since
    /// QUIC closes a connection that stays silent past its idle timeout. Turn HTTP/2 pings on
    /// when a proxy or NAT between you and your clients drops quiet connections, or to notice
    /// a peer that keeps its TCP connection up but stops answering.
    pub fn keepalive(mut self, keepalive: Option<(Duration, Duration)>) -> Self {
        self.limits.keepalive = keepalive;
        #[cfg(feature = "http3")]
        {
            self.limits.quic_keepalive = keepalive;
        }
        self
    }

    /// How long a request body being read may deliver nothing before the call fails (default
    /// [`DEFAULT_BODY_PROGRESS_TIMEOUT`], 30 s; `None` for no limit). Time a handler spends
    /// not reading does not count.
    pub fn body_progress_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.body_progress_timeout = timeout;
        self
    }

    /// The minimum average rate, in bytes per second, at which a request message being
    /// received must arrive once it has taken `grace` (default [`DEFAULT_MIN_BODY_RATE`],
    /// 1 KiB/s, after [`DEFAULT_MIN_BODY_RATE_GRACE`], 20 s; `None` for no minimum): a message
    /// may take `grace` plus its size divided by the rate, counting only time its handler
    /// spends waiting for it, or the read fails and so does the call. A message is an
    /// envelope for the enveloped protocols (time between messages of a stream does not count)
    /// and the whole body for Connect unary calls and gRPC-Web text.
    pub fn min_body_rate(mut self, rate: Option<(u64, Duration)>) -> Self {
        self.limits.min_body_rate = rate.map(|(r, grace)| (r.max(1), grace));
        self
    }

    /// How long a response with data to send may wait for the peer to take it (default
    /// [`DEFAULT_SEND_TIMEOUT`], 60 s; `None` for no limit): then its connection is closed,
    /// and with it every call on it. A peer that keeps an HTTP/2 stream's window shut or
    /// never reads its socket cannot pin a call and its handler. Time a response spends
    /// producing its next message does not count.
    pub fn send_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.send_timeout = timeout;
        self
    }

    /// Whether to raise the process's soft open-files limit (`RLIMIT_NOFILE`) to its hard
    /// limit when serving starts, as Go's runtime does (default on; Unix only).
    pub fn raise_open_files_limit(mut self, raise: bool) -> Self {
        self.limits.raise_open_files_limit = raise;
        self
    }

    /// The HTTP/2 initial flow-control window of each stream, in bytes: how much of a request
    /// body a client may send before the handler reads it (default
    /// [`DEFAULT_INITIAL_STREAM_WINDOW`], 1 MiB).
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Self {
        self.limits.h2.initial_stream_window = bytes;
        self
    }

    /// The HTTP/2 initial flow-control window of a connection, in bytes, shared by its streams
    /// (default [`DEFAULT_INITIAL_CONNECTION_WINDOW`], 1 MiB).
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Self {
        self.limits.h2.initial_connection_window = bytes;
        self
    }

    /// HTTP/2 adaptive flow control (BDP estimation): windows grow to fit the connection's
    /// bandwidth-delay product, overriding the two initial window sizes (default off).
    pub fn adaptive_window(mut self, enabled: bool) -> Self {
        self.limits.h2.adaptive_window = enabled;
        self
    }

    /// The largest HTTP/2 frame payload the server accepts, 16 KiB to 16 MiB - 1 (default
    /// [`DEFAULT_MAX_FRAME_SIZE`], 16 KiB; values outside the range are clamped).
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.limits.h2.max_frame_size = bytes.clamp(16 * 1024, (1 << 24) - 1);
        self
    }

    /// The largest request header list accepted (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`, as
    /// HPACK counts it), in bytes (default [`DEFAULT_MAX_HEADER_LIST_SIZE`], 16 KiB).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.limits.h2.max_header_list_size = bytes;
        self
    }

    /// `TCP_NODELAY` on accepted TCP connections (default on: responses are written whole,
    /// so Nagle's algorithm only adds latency).
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.limits.tcp_nodelay = enabled;
        self
    }

    /// TCP keepalive on accepted TCP connections: probes start after the connection has
    /// been idle this long, at the system's probe interval and count (default
    /// [`DEFAULT_TCP_KEEPALIVE`], 60 s; `None` turns it off). It finds a peer that vanished
    /// in the middle of a long stream without any per-call cost; HTTP/2
    /// [`keepalive`](Self::keepalive) pings are the heavier alternative.
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.limits.tcp_keepalive = idle;
        self
    }

    /// Time between TCP keepalive probes that go unanswered (default
    /// [`DEFAULT_TCP_KEEPALIVE_INTERVAL`], 15 s; `None` leaves the system's, 75 s on Linux).
    /// Applies where the platform lets a socket set it (Linux, Android, the BSDs, macOS and
    /// the other Apple systems, illumos, Windows).
    pub fn tcp_keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.limits.tcp_keepalive_interval = interval;
        self
    }

    /// Unanswered TCP keepalive probes after which the connection is dropped (default
    /// [`DEFAULT_TCP_KEEPALIVE_RETRIES`], 4; `None` leaves the system's, 9 on Linux). With
    /// the defaults a peer that vanished is noticed 60 s + 4 x 15 s after it went quiet.
    /// Applies on the platforms [`tcp_keepalive_interval`](Self::tcp_keepalive_interval) names.
    pub fn tcp_keepalive_retries(mut self, retries: Option<u32>) -> Self {
        self.limits.tcp_keepalive_retries = retries;
        self
    }

    /// Serves until the process ends.
    pub async fn serve(self, router: Router) -> std::io::Result<()> {
        self.serve_with_shutdown(router, std::future::pending())
            .await
    }

    /// Serves until `signal` completes, then stops accepting, asks every connection to finish
    /// (HTTP/2 GOAWAY; HTTP/1.1 closes after the response in flight), lets in-flight calls run
    /// for the grace period, and then closes every connection left. Returns once no connection
    /// task is left.
    pub async fn serve_with_shutdown(
        self,
        router: Router,
        signal: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        self.run(Dispatch::Router(router), Box::pin(signal)).await
    }

    /// Serves any tower service over HTTP until the process ends: a [`Router`] behind
    /// `tower::ServiceBuilder` layers (timeouts, concurrency limits, tracing, auth), no axum
    /// needed. Requests reach it with a [`Body`](crate::Body) body; a [`Router`] accepts that,
    /// and so does any layer generic over the body.
    ///
    /// ```no_run
    /// # async fn run(router: volley::Router) -> std::io::Result<()> {
    /// use tower::ServiceBuilder;
    /// let service = ServiceBuilder::new()
    ///     .concurrency_limit(64)
    ///     .service(router);
    /// volley::server::Server::bind(([127, 0, 0, 1], 8080))
    ///     .serve_service(service)
    ///     .await
    /// # }
    /// ```
    ///
    /// An error from the service (a layer that fails rather than answering, like tower's
    /// `Timeout`) is answered as an `unavailable` error in the protocol the request speaks;
    /// the service is polled for readiness before each call, so a concurrency limit waits
    /// instead of failing. See the [production guide](crate::guide::production).
    pub async fn serve_service<S, B>(self, service: S) -> std::io::Result<()>
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
        self.serve_service_with_shutdown(service, std::future::pending())
            .await
    }

    /// [`serve_service`](Self::serve_service) with the graceful shutdown of
    /// [`serve_with_shutdown`](Self::serve_with_shutdown).
    pub async fn serve_service_with_shutdown<S, B>(
        self,
        service: S,
        signal: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()>
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
        self.run(Dispatch::service(service), Box::pin(signal)).await
    }

    /// The accept loop and graceful stop. Not generic (the signal is boxed), so it is compiled
    /// once, in this crate, whatever the signal and the runtime that drives it.
    async fn run(
        self,
        dispatch: Dispatch,
        mut signal: std::pin::Pin<Box<dyn Future<Output = ()> + Send + '_>>,
    ) -> std::io::Result<()> {
        let mut listener = match self.listen {
            Listen::Addr(addr) => Accepting::Tcp(TcpListener::bind(addr).await?),
            Listen::Listener(l) => Accepting::Tcp(l),
            #[cfg(unix)]
            Listen::UnixPath(path) => Accepting::Unix(tokio::net::UnixListener::bind(path)?),
            #[cfg(unix)]
            Listen::Unix(l) => Accepting::Unix(l),
            Listen::Custom(l) => Accepting::Custom(l),
        };
        let limits = self.limits;
        if limits.raise_open_files_limit {
            raise_nofile_limit();
        }
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(limits.header_read_timeout);
        {
            let mut h2 = builder.http2();
            h2.timer(TokioTimer::new())
                .enable_connect_protocol()
                .max_concurrent_streams(limits.max_concurrent_streams)
                .initial_stream_window_size(limits.h2.initial_stream_window)
                .initial_connection_window_size(limits.h2.initial_connection_window)
                .adaptive_window(limits.h2.adaptive_window)
                .max_frame_size(limits.h2.max_frame_size)
                .max_header_list_size(limits.h2.max_header_list_size);
            if let Some((interval, timeout)) = limits.keepalive {
                h2.keep_alive_interval(interval).keep_alive_timeout(timeout);
            }
        }
        let builder = Arc::new(builder);
        #[cfg(feature = "http3")]
        let h3_tls = self.tls.clone();
        #[cfg(feature = "tls")]
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        let tracker = Arc::new(Tracker::default());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        #[cfg(feature = "http3")]
        let (dispatch, _quic) = {
            let tcp_addr = match &listener {
                Accepting::Tcp(l) => l.local_addr().ok(),
                _ => None,
            };
            http3::begin(
                self.http3,
                h3_tls.as_deref(),
                tcp_addr,
                dispatch,
                &tracker,
                &stop_rx,
                limits,
            )?
        };
        let mut last_warning: Option<std::time::Instant> = None;
        'accept: loop {
            let accepted = tokio::select! {
                _ = &mut signal => break 'accept,
                accepted = listener.accept(&limits) => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        let exhausted = is_resource_exhaustion(&e);
                        if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                            tracing::warn!(error = %e, connections = tracker.len(), "accept failed");
                            last_warning = Some(std::time::Instant::now());
                        }
                        if exhausted {
                            // Out of file descriptors: free one and back off, then go on.
                            tracker.shed_idle();
                            tokio::select! {
                                _ = &mut signal => break 'accept,
                                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                            }
                        }
                        continue;
                    }
                },
            };
            // At the limit, the connection accepted waits (and the kernel's backlog holds the
            // next ones) until one ends; an idle one is closed to make room.
            while tracker.len() >= limits.max_connections {
                tracker.shed_idle();
                let ended = tracker.ended.notified();
                tokio::select! {
                    _ = &mut signal => break 'accept,
                    _ = ended => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            let dispatch = dispatch.clone();
            let builder = builder.clone();
            let conn = tracker.register();
            let stop = stop_rx.clone();
            #[cfg(feature = "tls")]
            let acceptor = acceptor.clone();
            let mut connection = crate::ConnectionInfo::new(accepted.peer());
            if let Accepted::Tcp(tcp, _) = &accepted {
                connection.local_addr = tcp.local_addr().ok();
            }
            tokio::spawn(async move {
                let served = Served {
                    dispatch,
                    peer: accepted.peer(),
                    certs: None,
                    connection: Arc::new(connection),
                    conn: conn.shared.clone(),
                    body_limits: body::BodyLimits {
                        progress: limits.body_progress_timeout,
                        min_rate: limits.min_body_rate,
                    },
                    send_timeout: limits.send_timeout,
                };
                #[cfg(feature = "tls")]
                if let Some(acceptor) = acceptor {
                    let io: Box<dyn Io> = match accepted {
                        Accepted::Tcp(tcp, _) => Box::new(tcp),
                        Accepted::Other(io, _) => io,
                    };
                    let handshake = tokio::time::timeout(
                        limits.header_read_timeout.min(Duration::from_secs(10)),
                        acceptor.accept(io),
                    );
                    let tls = tokio::select! {
                        r = handshake => match r {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                        _ = conn.shared.closing() => return,
                    };
                    let certs =
                        tls.get_ref().1.peer_certificates().map(|c| {
                            PeerCertificates(c.iter().map(|c| c.as_ref().to_vec()).collect())
                        });
                    let session = tls.get_ref().1;
                    let info = crate::TlsInfo::new(
                        session.server_name().map(str::to_owned),
                        session.alpn_protocol().map(<[u8]>::to_vec),
                        certs.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
                    );
                    let connection =
                        Arc::new(crate::ConnectionInfo::clone(&served.connection).with_tls(info));
                    let served = Served {
                        certs,
                        connection,
                        ..served
                    };
                    let io = Stream::Tls(Box::new(tls));
                    serve_io(builder, io, served, conn, stop, limits).await;
                    return;
                }
                let io = match accepted {
                    Accepted::Tcp(tcp, _) => Stream::Tcp(tcp),
                    Accepted::Other(io, _) => Stream::Other(io),
                };
                serve_io(builder, io, served, conn, stop, limits).await;
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let deadline = tokio::time::Instant::now() + self.grace_period;
        // Calls in flight finish until the grace period is over...
        loop {
            let ended = tracker.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if tracker.len() == 0 {
                return Ok(());
            }
            tokio::select! {
                _ = ended => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        tracing::info!(
            connections = tracker.len(),
            "grace period over: closing remaining connections"
        );
        // ...then every connection left is closed, and serving ends when their tasks have.
        loop {
            let ended = tracker.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            tracker.close_all();
            if tracker.len() == 0 {
                return Ok(());
            }
            ended.await;
        }
    }
}

/// Serves one connection until it ends. Boxed outside any `async` block, so that the
/// connection task's `Send` check sees concrete types (a generic stream type inside the
/// spawned block trips a compiler limitation with higher-ranked lifetimes).
fn serve_io(
    builder: Arc<auto::Builder<TokioExecutor>>,
    io: Stream,
    served: Served,
    conn: conn::Registration,
    stop: tokio::sync::watch::Receiver<bool>,
    limits: Limits,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let http = builder.serve_connection_with_upgrades(TokioIo::new(io), served);
        drive(http, &conn, stop, &limits).await;
    })
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C; on non-Unix systems Ctrl-C only): pass it
/// to [`Server::serve_with_shutdown`] for a graceful stop under a process manager.
///
/// ```no_run
/// # async fn run(router: volley::Router) -> std::io::Result<()> {
/// use volley::server::{Server, shutdown_signal};
/// Server::bind(([127, 0, 0, 1], 8080))
///     .serve_with_shutdown(router, shutdown_signal())
///     .await
/// # }
/// ```
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM: Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Raises the soft open-files limit to the hard one (Unix; a failure is logged, not fatal).
fn raise_nofile_limit() {
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open-files limit"),
        Err(e) => tracing::debug!(error = %e, "cannot raise the open-files limit"),
    }
}

/// `accept` failures that mean the process or system is out of a resource (descriptors,
/// buffers, memory) rather than a problem with one connection.
fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    // EMFILE and ENFILE are 24 and 23 on Linux, the BSDs and macOS; ENOBUFS 105 (Linux) or 55
    // (BSD, macOS); ENOMEM 12.
    matches!(e.raw_os_error(), Some(23 | 24 | 12)) || matches!(e.raw_os_error(), Some(105 | 55))
}
