//! The built-in transport: hyper-util's pooled client over TCP, h2c with prior knowledge, and
//! HTTPS with ALPN through rustls (see `connector`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::connector::{Connector, Dialer};
use super::{ClientConfig, transport::transport_error};
use crate::Error;
use crate::stream::{Body, boxed_body};

/// Which HTTP version the built-in transport speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpVersion {
    /// HTTPS: negotiate by ALPN. Cleartext: HTTP/1.1, except gRPC, which needs HTTP/2 (h2c).
    #[default]
    Auto,
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only: h2c with prior knowledge on cleartext.
    Http2,
    /// HTTP/3 only, over QUIC (feature `http3`; the base URI must be `https`): one pooled
    /// QUIC connection per host and port, every call multiplexed on it.
    #[cfg(feature = "http3")]
    Http3,
    /// HTTP/3 when the server answers over QUIC, else TCP as [`Auto`](Self::Auto) (feature
    /// `http3`): a host whose QUIC connection cannot be opened is called over TCP for the
    /// next 5 minutes before HTTP/3 is tried again.
    #[cfg(feature = "http3")]
    Http3Preferred,
}

/// Default TCP (and TLS) connect timeout ([`ClientConfig::connect_timeout`]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time an unused pooled connection is kept ([`ClientConfig::pool_idle_timeout`]).
pub const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default HTTP/2 initial stream window of the client ([`ClientConfig::initial_stream_window_size`]),
/// hyper's: 2 MiB.
pub const DEFAULT_CLIENT_STREAM_WINDOW: u32 = 2 * 1024 * 1024;
/// Default HTTP/2 initial connection window of the client
/// ([`ClientConfig::initial_connection_window_size`]), hyper's: 5 MiB.
pub const DEFAULT_CLIENT_CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
/// Default largest HTTP/2 frame the client accepts ([`ClientConfig::max_frame_size`]): 16 KiB.
pub const DEFAULT_CLIENT_MAX_FRAME_SIZE: u32 = 16 * 1024;
/// Default largest response header list the client accepts
/// ([`ClientConfig::max_header_list_size`]), hyper's: 16 KiB.
pub const DEFAULT_CLIENT_MAX_HEADER_LIST_SIZE: u32 = 16 * 1024;
/// Default time between unanswered TCP keepalive probes of the client
/// ([`ClientConfig::tcp_keepalive_interval`]), the server's: 15 s.
pub const DEFAULT_CLIENT_TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Default unanswered TCP keepalive probes after which the client drops a connection
/// ([`ClientConfig::tcp_keepalive_retries`]), the server's: 4.
pub const DEFAULT_CLIENT_TCP_KEEPALIVE_RETRIES: u32 = 4;

#[derive(Clone)]
pub(crate) struct HttpSettings {
    version: HttpVersion,
    #[cfg(feature = "tls")]
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    keepalive: Option<(Duration, Duration)>,
    keepalive_while_idle: bool,
    initial_stream_window: u32,
    initial_connection_window: u32,
    adaptive_window: bool,
    max_frame_size: u32,
    max_header_list_size: u32,
    tcp_nodelay: bool,
    tcp_keepalive: Option<Duration>,
    tcp_keepalive_interval: Option<Duration>,
    tcp_keepalive_retries: Option<u32>,
    pub(crate) dial: Dial,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            version: HttpVersion::Auto,
            #[cfg(feature = "tls")]
            tls: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            pool_idle_timeout: Some(DEFAULT_POOL_IDLE_TIMEOUT),
            pool_max_idle_per_host: usize::MAX,
            keepalive: None,
            keepalive_while_idle: false,
            initial_stream_window: DEFAULT_CLIENT_STREAM_WINDOW,
            initial_connection_window: DEFAULT_CLIENT_CONNECTION_WINDOW,
            adaptive_window: false,
            max_frame_size: DEFAULT_CLIENT_MAX_FRAME_SIZE,
            max_header_list_size: DEFAULT_CLIENT_MAX_HEADER_LIST_SIZE,
            tcp_nodelay: true,
            tcp_keepalive: None,
            tcp_keepalive_interval: Some(DEFAULT_CLIENT_TCP_KEEPALIVE_INTERVAL),
            tcp_keepalive_retries: Some(DEFAULT_CLIENT_TCP_KEEPALIVE_RETRIES),
            dial: Dial::Tcp,
        }
    }
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("version", &self.version)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_idle_timeout", &self.pool_idle_timeout)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("keepalive", &self.keepalive)
            .field("initial_stream_window", &self.initial_stream_window)
            .field("initial_connection_window", &self.initial_connection_window)
            .field("adaptive_window", &self.adaptive_window)
            .field("max_frame_size", &self.max_frame_size)
            .field("max_header_list_size", &self.max_header_list_size)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("tcp_keepalive_interval", &self.tcp_keepalive_interval)
            .field("tcp_keepalive_retries", &self.tcp_keepalive_retries)
            .field("dial", &self.dial)
            .finish_non_exhaustive()
    }
}

/// How the built-in transport opens connections.
#[derive(Clone)]
pub(crate) enum Dial {
    /// TCP to the URI's host and port.
    Tcp,
    /// TCP to this address, whatever the URI's authority (a balanced, resolved endpoint).
    Fixed(std::net::SocketAddr),
    /// A Unix domain socket at this path, whatever the URI's authority.
    #[cfg(unix)]
    Unix(Arc<std::path::Path>),
    /// The user's connector.
    Custom(Arc<dyn Dialer>),
}

impl std::fmt::Debug for Dial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp => f.write_str("Tcp"),
            Self::Fixed(addr) => f.debug_tuple("Fixed").field(addr).finish(),
            #[cfg(unix)]
            Self::Unix(path) => f.debug_tuple("Unix").field(path).finish(),
            Self::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl ClientConfig {
    /// The HTTP version (default [`HttpVersion::Auto`]). [`HttpVersion::Http2`] is the
    /// HTTP/2-only mode: h2c with prior knowledge on cleartext, `h2` alone offered by ALPN.
    pub fn http_version(mut self, version: HttpVersion) -> Self {
        self.http.version = version;
        self
    }

    /// Bounds the time to open a connection: TCP connect (for a host with several addresses,
    /// each attempt), or a Unix socket or custom connector's connect; a TLS handshake is not
    /// included (default [`DEFAULT_CONNECT_TIMEOUT`], 10 s). A call whose connection cannot be
    /// opened in time fails `unavailable`, like any other connection failure.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.http.connect_timeout = timeout;
        self
    }

    /// How long an unused pooled connection is kept open before the client closes it
    /// (default [`DEFAULT_POOL_IDLE_TIMEOUT`], 90 s; `None` keeps connections until the
    /// server closes them).
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.http.pool_idle_timeout = timeout;
        self
    }

    /// The most unused connections kept per host (default unlimited, `usize::MAX`; `0`
    /// disables pooling for HTTP/1.1). HTTP/2 multiplexes calls on one connection per host
    /// anyway.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.http.pool_max_idle_per_host = max;
        self
    }

    /// HTTP/2 keepalive: a ping every `interval`, the connection closed when one is not
    /// acknowledged within `timeout` (default `None`, no pings). Pings are sent only while
    /// calls are open unless [`keepalive_while_idle`](Self::keepalive_while_idle) is on.
    pub fn keepalive(mut self, keepalive: Option<(Duration, Duration)>) -> Self {
        self.http.keepalive = keepalive;
        self
    }

    /// Sends HTTP/2 keepalive pings on connections with no call open too (default off).
    pub fn keepalive_while_idle(mut self, enabled: bool) -> Self {
        self.http.keepalive_while_idle = enabled;
        self
    }

    /// The HTTP/2 initial flow-control window of each stream, in bytes: how much of a
    /// response the server may send before the caller reads it (default
    /// [`DEFAULT_CLIENT_STREAM_WINDOW`], 2 MiB).
    pub fn initial_stream_window_size(mut self, bytes: u32) -> Self {
        self.http.initial_stream_window = bytes;
        self
    }

    /// The HTTP/2 initial flow-control window of a connection, in bytes (default
    /// [`DEFAULT_CLIENT_CONNECTION_WINDOW`], 5 MiB).
    pub fn initial_connection_window_size(mut self, bytes: u32) -> Self {
        self.http.initial_connection_window = bytes;
        self
    }

    /// HTTP/2 adaptive flow control (BDP estimation), overriding the initial window sizes
    /// (default off).
    pub fn adaptive_window(mut self, enabled: bool) -> Self {
        self.http.adaptive_window = enabled;
        self
    }

    /// The largest HTTP/2 frame payload the client accepts, 16 KiB to 16 MiB - 1 (default
    /// [`DEFAULT_CLIENT_MAX_FRAME_SIZE`], 16 KiB; values outside the range are clamped).
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.http.max_frame_size = bytes.clamp(16 * 1024, (1 << 24) - 1);
        self
    }

    /// The largest response header list accepted (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`),
    /// in bytes (default [`DEFAULT_CLIENT_MAX_HEADER_LIST_SIZE`], 16 KiB).
    pub fn max_header_list_size(mut self, bytes: u32) -> Self {
        self.http.max_header_list_size = bytes;
        self
    }

    /// `TCP_NODELAY` on the client's TCP connections (default on).
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.http.tcp_nodelay = enabled;
        self
    }

    /// TCP keepalive on the client's TCP connections: probes start after this much idleness
    /// (default `None`, off).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.http.tcp_keepalive = idle;
        self
    }

    /// Time between unanswered TCP keepalive probes once [`tcp_keepalive`](Self::tcp_keepalive)
    /// is on (default [`DEFAULT_CLIENT_TCP_KEEPALIVE_INTERVAL`], 15 s; `None` leaves the
    /// system's, 75 s on Linux).
    pub fn tcp_keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.http.tcp_keepalive_interval = interval;
        self
    }

    /// Unanswered TCP keepalive probes after which the connection is dropped, once
    /// [`tcp_keepalive`](Self::tcp_keepalive) is on (default
    /// [`DEFAULT_CLIENT_TCP_KEEPALIVE_RETRIES`], 4; `None` leaves the system's, 9 on Linux).
    pub fn tcp_keepalive_retries(mut self, retries: Option<u32>) -> Self {
        self.http.tcp_keepalive_retries = retries;
        self
    }

    /// Connects to the Unix domain socket at `path` instead of over TCP (Unix only). The base
    /// URI still names the scheme and the `:authority` (`http://localhost`): `https` runs TLS
    /// over the socket, verifying the URI's host.
    #[cfg(unix)]
    pub fn unix_socket(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.http.dial = Dial::Unix(Arc::from(path.as_ref()));
        self
    }

    /// Opens connections with your own [`Dialer`] instead of TCP: a proxy tunnel, an
    /// in-process pipe, your own TLS. The [connect timeout](Self::connect_timeout) bounds it.
    pub fn dialer(mut self, dialer: impl Dialer) -> Self {
        self.http.dial = Dial::Custom(Arc::new(dialer));
        self
    }

    /// Trusts these PEM CA certificates instead of the built-in web PKI roots, and optionally
    /// presents a client certificate (mTLS).
    #[cfg(feature = "tls")]
    pub fn tls_from_pem(
        mut self,
        ca_pem: Option<&[u8]>,
        client_identity: Option<(&[u8], &[u8])>,
    ) -> Result<Self, Error> {
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal(e.to_string()))?;
        let roots = match ca_pem {
            Some(pem) => {
                crate::tls::roots_from_pem(pem).map_err(|e| Error::internal(e.to_string()))?
            }
            None => web_roots(),
        };
        let builder = builder.with_root_certificates(roots);
        let config = match client_identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let certs =
                    crate::tls::certs_from_pem(cert).map_err(|e| Error::internal(e.to_string()))?;
                let key =
                    crate::tls::key_from_pem(key).map_err(|e| Error::internal(e.to_string()))?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| Error::internal(e.to_string()))?
            }
        };
        self.http.tls = Some(Arc::new(config));
        Ok(self)
    }

    /// Uses a rustls client configuration you built (ALPN is set by the transport).
    #[cfg(feature = "tls")]
    pub fn tls_config(mut self, config: rustls::ClientConfig) -> Self {
        self.http.tls = Some(Arc::new(config));
        self
    }
}

#[cfg(feature = "tls")]
fn web_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    roots
}

/// The built-in pooled HTTP/1.1 + HTTP/2 transport, a `tower::Service` over
/// `http::Request<Body>`.
///
/// [`Client::new`](super::Client::new) builds one from its configuration; build it yourself
/// to put tower layers between the client and the wire, then hand the stack to
/// [`Client::with_transport`](super::Client::with_transport):
///
/// ```
/// # fn main() -> Result<(), volley::Error> {
/// use tower::ServiceBuilder;
/// use volley::client::HttpTransport;
/// use volley::{Client, ClientConfig};
///
/// let config = ClientConfig::new("http://127.0.0.1:8080")?;
/// let transport = ServiceBuilder::new()
///     .concurrency_limit(32)
///     .service(HttpTransport::new(&config)?);
/// let client = Client::with_transport(config, transport);
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
///
/// Layers see each request with its headers and the extensions set by interceptors and
/// [`CallOptions::with_extension`](super::CallOptions::with_extension). A layer that
/// buffers requests (tower's `Buffer`) must keep the stack `Clone + Send + Sync`.
#[derive(Clone, Debug)]
pub struct HttpTransport {
    client: HyperClient<Connector, Body>,
    /// The HTTP/3 client, with [`HttpVersion::Http3`] or [`HttpVersion::Http3Preferred`].
    #[cfg(feature = "http3")]
    h3: Option<H3Mode>,
}

/// The HTTP/3 client of a transport, and whether it falls back to TCP.
#[cfg(feature = "http3")]
#[derive(Clone, Debug)]
struct H3Mode {
    client: super::http3::H3Client,
    fallback: bool,
}

impl HttpTransport {
    /// The transport for `config`: its HTTP version, TLS, connection and pool settings (the
    /// protocol, codec and call settings are the [`Client`](super::Client)'s business).
    pub fn new(config: &ClientConfig) -> Result<Self, Error> {
        Self::for_config(config)
    }

    pub(crate) fn for_config(config: &ClientConfig) -> Result<Self, Error> {
        Self::build(config, config.http.dial.clone())
    }

    /// The transport for `config` connecting over TCP to `addr` whatever the request URI's
    /// authority (which still names the server to TLS and in `Host` / `:authority`).
    pub(crate) fn dialing(
        config: &ClientConfig,
        addr: std::net::SocketAddr,
    ) -> Result<Self, Error> {
        Self::build(config, Dial::Fixed(addr))
    }

    fn build(config: &ClientConfig, dial: Dial) -> Result<Self, Error> {
        let settings = &config.http;
        let http2_only = match settings.version {
            HttpVersion::Http2 => true,
            HttpVersion::Http1 => false,
            _ => config.protocol.requires_http2() && config.base_uri.scheme_str() != Some("https"),
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(settings.tcp_nodelay);
        http.set_keepalive(settings.tcp_keepalive);
        // hyper-util turns keepalive on when any of the three is set: the probe settings
        // only go with an idle time.
        if settings.tcp_keepalive.is_some() {
            http.set_keepalive_interval(settings.tcp_keepalive_interval);
            http.set_keepalive_retries(settings.tcp_keepalive_retries);
        }
        http.set_connect_timeout(Some(settings.connect_timeout));
        let dial = (dial, settings.connect_timeout);
        #[cfg(feature = "tls")]
        let (connector, h3) = {
            let mut tls = match &settings.tls {
                Some(c) => (**c).clone(),
                None => rustls::ClientConfig::builder_with_provider(crate::tls::provider())
                    .with_safe_default_protocol_versions()
                    .map_err(|e| Error::internal(e.to_string()))?
                    .with_root_certificates(web_roots())
                    .with_no_client_auth(),
            };
            #[cfg(feature = "http3")]
            let h3 = match settings.version {
                HttpVersion::Http3 | HttpVersion::Http3Preferred => {
                    Some(super::http3::H3Client::new(super::http3::H3Settings {
                        tls: tls.clone(),
                        connect_timeout: settings.connect_timeout,
                        idle_timeout: settings.pool_idle_timeout,
                        keepalive: settings.keepalive.map(|(interval, _)| interval),
                        max_header_list_size: settings.max_header_list_size,
                        stream_window: settings.initial_stream_window,
                        connection_window: settings.initial_connection_window,
                    })?)
                }
                _ => None,
            };
            #[cfg(feature = "http3")]
            let h3 = h3.map(|client| H3Mode {
                client,
                fallback: settings.version != HttpVersion::Http3,
            });
            #[cfg(not(feature = "http3"))]
            let h3 = ();
            tls.alpn_protocols = match settings.version {
                HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
                HttpVersion::Http2 => vec![b"h2".to_vec()],
                _ => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            };
            (Connector::new(http, dial, tls), h3)
        };
        #[cfg(not(feature = "tls"))]
        let (connector, h3) = (Connector::new(http, dial), ());
        let mut builder = HyperClient::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            .http2_only(http2_only)
            .http2_initial_stream_window_size(settings.initial_stream_window)
            .http2_initial_connection_window_size(settings.initial_connection_window)
            .http2_adaptive_window(settings.adaptive_window)
            .http2_max_frame_size(settings.max_frame_size)
            .http2_max_header_list_size(settings.max_header_list_size);
        if let Some((interval, timeout)) = settings.keepalive {
            builder
                .http2_keep_alive_interval(interval)
                .http2_keep_alive_timeout(timeout)
                .http2_keep_alive_while_idle(settings.keepalive_while_idle);
        }
        let client = builder.build(connector);
        #[cfg(not(feature = "http3"))]
        let () = h3;
        Ok(Self {
            client,
            #[cfg(feature = "http3")]
            h3,
        })
    }
}

impl tower_service::Service<http::Request<Body>> for HttpTransport {
    type Response = http::Response<Body>;
    type Error = Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Error>> {
        // The pool queues requests itself: always ready.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        #[cfg(feature = "http3")]
        if let Some(h3) = &self.h3
            && !(h3.fallback && h3.client.is_broken(request.uri()))
        {
            let sent = h3.client.send(request, h3.fallback);
            let client = self.client.clone();
            return Box::pin(async move {
                match sent.await {
                    Ok(response) => Ok(response),
                    Err(Err(e)) => Err(e),
                    Err(Ok(request)) => send_hyper(&client, request).await,
                }
            });
        }
        send_hyper(&self.client, request)
    }
}

/// Sends a request on hyper's pooled client.
fn send_hyper(
    client: &HyperClient<Connector, Body>,
    request: http::Request<Body>,
) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>> {
    let fut = client.request(request);
    Box::pin(async move {
        let response = fut.await.map_err(|e| {
            if e.is_connect() {
                // Refused, unreachable or timed out: the server is unavailable, whatever
                // the I/O error's kind.
                let message = match std::error::Error::source(&e) {
                    Some(cause) => format!("connecting failed: {cause}"),
                    None => format!("connecting failed: {e}"),
                };
                crate::Error::new(crate::Code::Unavailable, message).with_source(Box::new(e))
            } else {
                transport_error(Box::new(e))
            }
        })?;
        Ok(response.map(boxed_body))
    })
}
