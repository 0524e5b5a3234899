//! The built-in transport's connector: TCP through hyper-util's `HttpConnector`, a Unix
//! domain socket, or the user's [`Dialer`]; and with the `tls` feature HTTPS through
//! tokio-rustls with ALPN chosen from the HTTP version. Written here rather than taken from
//! hyper-rustls so that TLS on the server does not pull in a second HTTP client stack.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::http::Dial;
use crate::{BoxError, ConnectionInfo};

/// A connection's byte stream, as a [`Dialer`] returns it.
pub trait DialedIo: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> DialedIo for T {}

/// A connection a [`Dialer`] opened.
pub struct Dialed {
    io: Box<dyn DialedIo>,
    /// Already secured by the dialer (no TLS added for `https`), and whether it agreed on
    /// HTTP/2.
    secured: Option<bool>,
}

impl Dialed {
    /// A raw byte stream: for an `https` base URI the transport runs its TLS over it.
    pub fn new(io: impl DialedIo) -> Self {
        Self {
            io: Box::new(io),
            secured: None,
        }
    }

    /// A stream the dialer has already secured (its own TLS): used as is, whatever the
    /// scheme; `http2` says whether it negotiated HTTP/2 (ALPN `h2`), otherwise the
    /// configured [`HttpVersion`](super::HttpVersion) decides.
    pub fn secured(io: impl DialedIo, http2: bool) -> Self {
        Self {
            io: Box::new(io),
            secured: Some(http2),
        }
    }
}

impl std::fmt::Debug for Dialed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialed")
            .field("secured", &self.secured)
            .finish_non_exhaustive()
    }
}

/// Opens connections for the built-in transport in place of TCP
/// ([`ClientConfig::dialer`](super::ClientConfig::dialer)): a tunnel through a proxy, an
/// in-process pipe, your own TLS. Closures `Fn(Uri) -> impl Future<Output =
/// io::Result<Dialed>>` are dialers.
///
/// ```
/// # fn main() -> Result<(), volley::Error> {
/// use volley::ClientConfig;
/// use volley::client::Dialed;
///
/// // Every connection goes to one address, whatever the URI says.
/// let config = ClientConfig::new("http://greeter.internal")?.dialer(|_uri: http::Uri| async {
///     let tcp = tokio::net::TcpStream::connect("127.0.0.1:8080").await?;
///     Ok(Dialed::new(tcp))
/// });
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
pub trait Dialer: Send + Sync + 'static {
    /// Opens a connection for `uri` (scheme and authority of the call).
    fn dial(&self, uri: Uri) -> Pin<Box<dyn Future<Output = io::Result<Dialed>> + Send + 'static>>;
}

impl<F, Fut> Dialer for F
where
    F: Fn(Uri) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<Dialed>> + Send + 'static,
{
    fn dial(&self, uri: Uri) -> Pin<Box<dyn Future<Output = io::Result<Dialed>> + Send + 'static>> {
        Box::pin(self(uri))
    }
}

/// Connects to a URI's authority: plain TCP for `http`, TLS over TCP for `https` (or over the
/// Unix socket or dialer configured instead of TCP).
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    dial: Dial,
    connect_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: tokio_rustls::TlsConnector,
}

impl Connector {
    /// Plain connections only: an `https` URI fails to connect with a clear error.
    #[cfg(not(feature = "tls"))]
    pub(crate) fn new(http: HttpConnector, (dial, connect_timeout): (Dial, Duration)) -> Self {
        Self {
            http,
            dial,
            connect_timeout,
        }
    }

    /// And TLS with `config` for `https` URIs.
    #[cfg(feature = "tls")]
    pub(crate) fn new(
        http: HttpConnector,
        (dial, connect_timeout): (Dial, Duration),
        config: rustls::ClientConfig,
    ) -> Self {
        Self {
            http,
            dial,
            connect_timeout,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self.dial {
            Dial::Tcp | Dial::Fixed(_) => self.http.poll_ready(cx).map_err(Into::into),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme_str() == Some("https");
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        let other: Pin<Box<dyn Future<Output = io::Result<Dialed>> + Send>> = match &self.dial {
            Dial::Tcp | Dial::Fixed(_) => {
                // A fixed address is dialed in place of the URI's authority, which stays the
                // name TLS verifies and requests carry.
                let target = match &self.dial {
                    Dial::Fixed(addr) => match fixed_target(&uri, *addr) {
                        Ok(target) => target,
                        Err(e) => return Box::pin(async move { Err(e) }),
                    },
                    _ => uri.clone(),
                };
                let connecting = self.http.call(target);
                return Box::pin(async move {
                    let tcp = connecting.await?;
                    if !https {
                        return Ok(Stream::Plain(tcp));
                    }
                    #[cfg(feature = "tls")]
                    {
                        let name = server_name(&uri)?;
                        // rustls sends SNI for DNS names only.
                        let sni = match &name {
                            rustls_pki_types::ServerName::DnsName(dns) => {
                                Some(dns.as_ref().to_owned())
                            }
                            _ => None,
                        };
                        let stream = tls.connect(name, tcp.into_inner()).await?;
                        Ok(Stream::Tls(Box::new(TokioIo::new(stream)), sni))
                    }
                    #[cfg(not(feature = "tls"))]
                    {
                        drop(tcp);
                        Err(format!("{uri}: https needs volley's `tls` feature").into())
                    }
                });
            }
            #[cfg(unix)]
            Dial::Unix(path) => {
                let path: Arc<std::path::Path> = path.clone();
                Box::pin(async move {
                    let unix = tokio::net::UnixStream::connect(&*path).await.map_err(|e| {
                        io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                    Ok(Dialed::new(unix))
                })
            }
            Dial::Custom(dialer) => dialer.dial(uri.clone()),
        };
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let dialed = match tokio::time::timeout(timeout, other).await {
                Ok(dialed) => dialed?,
                Err(_) => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout").into());
                }
            };
            if let Some(h2) = dialed.secured {
                return Ok(Stream::Other(TokioIo::new(dialed.io), h2));
            }
            if !https {
                return Ok(Stream::Other(TokioIo::new(dialed.io), false));
            }
            #[cfg(feature = "tls")]
            {
                let name = server_name(&uri)?;
                let stream = tls.connect(name, dialed.io).await?;
                let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                Ok(Stream::Other(TokioIo::new(Box::new(stream)), h2))
            }
            #[cfg(not(feature = "tls"))]
            {
                drop(dialed);
                Err(format!("{uri}: https needs volley's `tls` feature").into())
            }
        })
    }
}

/// The URI TCP connects to for a `Dial::Fixed` address.
fn fixed_target(uri: &Uri, addr: std::net::SocketAddr) -> Result<Uri, BoxError> {
    Ok(Uri::builder()
        .scheme(uri.scheme_str().unwrap_or("http"))
        .authority(addr.to_string())
        .path_and_query("/")
        .build()?)
}

/// The name a TLS server must prove it is: the URI's host.
#[cfg(feature = "tls")]
fn server_name(uri: &Uri) -> Result<rustls_pki_types::ServerName<'static>, BoxError> {
    let host = uri.host().ok_or("https URI without a host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(rustls_pki_types::ServerName::try_from(host.to_owned())?)
}

/// A connection made by [`Connector`].
pub(crate) enum Stream {
    Plain(TokioIo<TcpStream>),
    #[cfg(feature = "tls")]
    /// A TLS stream and the server name sent (SNI), if any.
    Tls(
        Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>,
        Option<String>,
    ),
    /// Over a Unix socket or a dialer's stream (TLS included), and whether it speaks HTTP/2
    /// by negotiation.
    Other(TokioIo<Box<dyn DialedIo>>, bool),
}

impl Connection for Stream {
    /// The connection's description; hyper-util sets its extra, a [`ConnectionInfo`], on every
    /// response received over it.
    fn connected(&self) -> Connected {
        match self {
            Self::Plain(tcp) => {
                let info = tcp_info(tcp.inner());
                tcp.connected().extra(info)
            }
            #[cfg(feature = "tls")]
            Self::Tls(tls, sni) => {
                let (tcp, session) = tls.inner().get_ref();
                let connected = tcp.connected();
                let info = tcp_info(tcp).with_tls(crate::TlsInfo::new(
                    sni.clone(),
                    session.alpn_protocol().map(<[u8]>::to_vec),
                    session
                        .peer_certificates()
                        .map(|c| c.iter().map(|c| c.as_ref().to_vec()).collect())
                        .unwrap_or_default(),
                ));
                let connected = connected.extra(info);
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
            Self::Other(_, h2) => {
                if *h2 {
                    Connected::new().negotiated_h2()
                } else {
                    Connected::new()
                }
            }
        }
    }
}

fn tcp_info(tcp: &TcpStream) -> ConnectionInfo {
    let mut info = ConnectionInfo::new(tcp.peer_addr().ok());
    info.local_addr = tcp.local_addr().ok();
    info
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => Pin::new(&mut **s).poll_read(cx, buf),
            Self::Other(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => Pin::new(&mut **s).poll_write(cx, buf),
            Self::Other(s, _) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => Pin::new(&mut **s).poll_flush(cx),
            Self::Other(s, _) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => Pin::new(&mut **s).poll_shutdown(cx),
            Self::Other(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
            Self::Other(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => s.is_write_vectored(),
            Self::Other(s, _) => s.is_write_vectored(),
        }
    }
}
