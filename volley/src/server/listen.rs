//! Where connections come from: TCP, Unix domain sockets, or a user's [`Listener`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::Limits;

/// A connection's byte stream: anything readable and writable asynchronously.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A source of connections for [`Server::from_custom_listener`](super::Server::from_custom_listener).
///
/// Implement it to serve over your own transport: a socket inherited from a supervisor, an
/// in-process duplex pipe, a stream your own TLS or proxy-protocol layer has already
/// unwrapped. An error from `accept` is logged and accepting goes on (after a short pause
/// when it reports a lack of descriptors), as with TCP.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use volley::server::Listener;
///
/// /// Connections handed over on a channel (from an in-process client, say).
/// struct Handed(tokio::sync::mpsc::Receiver<tokio::io::DuplexStream>);
///
/// impl Listener for Handed {
///     type Io = tokio::io::DuplexStream;
///     fn accept(
///         &mut self,
///     ) -> Pin<Box<dyn Future<Output = std::io::Result<(Self::Io, Option<std::net::SocketAddr>)>> + Send + '_>>
///     {
///         Box::pin(async move {
///             match self.0.recv().await {
///                 Some(io) => Ok((io, None)),
///                 // No more connections: wait for shutdown.
///                 None => std::future::pending().await,
///             }
///         })
///     }
/// }
/// ```
pub trait Listener: Send + 'static {
    /// The connections accepted.
    type Io: Io;

    /// Waits for the next connection; returns it with the peer's address, if it has one
    /// (it becomes the request's [`PeerAddr`](crate::PeerAddr)).
    #[allow(clippy::type_complexity)]
    fn accept(
        &mut self,
    ) -> Pin<Box<dyn Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send + '_>>;
}

/// A [`Listener`] with its stream type erased.
pub(super) trait ErasedListener: Send + 'static {
    fn accept_boxed(&mut self) -> Pin<Box<dyn Future<Output = io::Result<Accepted>> + Send + '_>>;
}

impl<L: Listener> ErasedListener for L {
    fn accept_boxed(&mut self) -> Pin<Box<dyn Future<Output = io::Result<Accepted>> + Send + '_>> {
        Box::pin(async move {
            let (io, peer) = self.accept().await?;
            Ok(Accepted::Other(Box::new(io), peer))
        })
    }
}

/// The server's listener, opened.
pub(super) enum Accepting {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener),
    Custom(Box<dyn ErasedListener>),
}

/// One accepted connection: TCP stays concrete (the common case, no dynamic dispatch),
/// everything else is boxed.
pub(super) enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Other(Box<dyn Io>, Option<SocketAddr>),
}

/// An accepted connection's byte stream, as the HTTP stack serves it: one type for every
/// transport, so hyper's HTTP/1.1 and HTTP/2 code is compiled once (per stream type it would
/// be another ~70 KiB of machine code each). TCP stays concrete, with no dynamic dispatch on
/// the common path; TLS and other listeners' streams are boxed.
pub(super) enum Stream {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<Box<dyn Io>>>),
    Other(Box<dyn Io>),
}

/// Forwards one `AsyncRead` / `AsyncWrite` call to whichever stream `$self` holds.
macro_rules! forward {
    ($self:ident, $io:ident => $call:expr) => {
        match $self.get_mut() {
            Stream::Tcp($io) => $call,
            #[cfg(feature = "tls")]
            Stream::Tls($io) => $call,
            Stream::Other($io) => $call,
        }
    };
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        forward!(self, io => Pin::new(io).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        forward!(self, io => Pin::new(io).poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        forward!(self, io => Pin::new(io).poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Tcp(io) => io.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::Tls(io) => io.is_write_vectored(),
            Self::Other(io) => io.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, io => Pin::new(io).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        forward!(self, io => Pin::new(io).poll_shutdown(cx))
    }
}

impl Accepted {
    pub(super) fn peer(&self) -> Option<SocketAddr> {
        match self {
            Self::Tcp(_, peer) => Some(*peer),
            Self::Other(_, peer) => *peer,
        }
    }
}

impl Accepting {
    pub(super) async fn accept(&mut self, limits: &Limits) -> io::Result<Accepted> {
        match self {
            Self::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                configure_tcp(&stream, limits);
                Ok(Accepted::Tcp(stream, peer))
            }
            #[cfg(unix)]
            Self::Unix(l) => {
                let (stream, _) = l.accept().await?;
                Ok(Accepted::Other(Box::new(stream), None))
            }
            Self::Custom(l) => l.accept_boxed().await,
        }
    }
}

/// Applies the server's TCP settings to an accepted connection (failures are logged: the
/// connection is still served).
fn configure_tcp(stream: &TcpStream, limits: &Limits) {
    if let Err(e) = stream.set_nodelay(limits.tcp_nodelay) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    if let Some(idle) = limits.tcp_keepalive {
        let keepalive = tcp_keepalive(
            idle,
            limits.tcp_keepalive_interval,
            limits.tcp_keepalive_retries,
        );
        if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
            tracing::debug!(error = %e, "cannot set TCP keepalive");
        }
    }
}

/// TCP keepalive settings: probes after `idle`, then every `interval`, `retries` of them
/// unanswered dropping the connection (`None`: the system's; ignored where the platform has
/// no per-socket setting).
fn tcp_keepalive(
    idle: std::time::Duration,
    interval: Option<std::time::Duration>,
    retries: Option<u32>,
) -> socket2::TcpKeepalive {
    let keepalive = socket2::TcpKeepalive::new().with_time(idle);
    // Read only where the platform has per-socket probe settings.
    let _ = (&interval, &retries);
    #[cfg(any(
        target_os = "android",
        target_os = "freebsd",
        target_os = "fuchsia",
        target_os = "illumos",
        target_os = "ios",
        target_os = "linux",
        target_os = "macos",
        target_os = "netbsd",
        target_os = "tvos",
        target_os = "watchos",
        target_os = "windows",
    ))]
    let keepalive = {
        let mut keepalive = keepalive;
        if let Some(interval) = interval {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = retries {
            keepalive = keepalive.with_retries(retries);
        }
        keepalive
    };
    keepalive
}
