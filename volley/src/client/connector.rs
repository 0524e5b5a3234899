//! The built-in transport's connector: TCP through hyper-util's `HttpConnector`, and with the
//! `tls` feature HTTPS through tokio-rustls with ALPN chosen from the HTTP version. Written
//! here rather than taken from hyper-rustls so that TLS on the server does not pull in a second
//! HTTP client stack.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{BoxError, ConnectionInfo};

/// Connects to a URI's authority: plain TCP for `http`, TLS over TCP for `https`.
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    #[cfg(feature = "tls")]
    tls: tokio_rustls::TlsConnector,
}

impl Connector {
    /// Plain TCP only: an `https` URI fails to connect with a clear error.
    #[cfg(not(feature = "tls"))]
    pub(crate) fn new(http: HttpConnector) -> Self {
        Self { http }
    }

    /// TCP, and TLS with `config` for `https` URIs.
    #[cfg(feature = "tls")]
    pub(crate) fn new(http: HttpConnector, config: rustls::ClientConfig) -> Self {
        Self {
            http,
            tls: tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)),
        }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme_str() == Some("https");
        let connecting = self.http.call(uri.clone());
        #[cfg(feature = "tls")]
        let tls = self.tls.clone();
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(Stream::Plain(tcp));
            }
            #[cfg(feature = "tls")]
            {
                let host = uri.host().ok_or("https URI without a host")?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let name = rustls_pki_types::ServerName::try_from(host.to_owned())?;
                // rustls sends SNI for DNS names only.
                let sni = matches!(name, rustls_pki_types::ServerName::DnsName(_))
                    .then(|| host.to_owned());
                let stream = tls.connect(name, tcp.into_inner()).await?;
                Ok(Stream::Tls(Box::new(TokioIo::new(stream)), sni))
            }
            #[cfg(not(feature = "tls"))]
            {
                drop(tcp);
                Err(format!("{uri}: https needs volley's `tls` feature").into())
            }
        })
    }
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
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => Pin::new(&mut **s).poll_shutdown(cx),
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
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Self::Tls(s, _) => s.is_write_vectored(),
        }
    }
}
