//! The built-in server: one port for HTTP/1.1, h2c (prior knowledge) and, with TLS, HTTP/2
//! and HTTP/1.1 negotiated by ALPN; graceful shutdown with a grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::Router;
use crate::request::{PeerAddr, PeerCertificates};
use crate::stream::boxed_body;

#[cfg(feature = "tls")]
pub use crate::tls::TlsConfig;

enum Listen {
    Addr(SocketAddr),
    Listener(TcpListener),
}

/// Serves a [`Router`] on a TCP port.
///
/// ```no_run
/// # async fn run(router: volley::Router) -> std::io::Result<()> {
/// volley::server::Server::bind(([127, 0, 0, 1], 8080)).serve(router).await
/// # }
/// ```
pub struct Server {
    listen: Listen,
    #[cfg(feature = "tls")]
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    grace_period: Duration,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("grace_period", &self.grace_period)
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

    fn with_listen(listen: Listen) -> Self {
        Self {
            listen,
            #[cfg(feature = "tls")]
            tls: None,
            grace_period: Duration::from_secs(10),
        }
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

    /// Serves until the process ends.
    pub async fn serve(self, router: Router) -> std::io::Result<()> {
        self.serve_with_shutdown(router, std::future::pending())
            .await
    }

    /// Serves until `signal` completes, then stops accepting, lets in-flight calls finish for
    /// the grace period, and closes what is left.
    pub async fn serve_with_shutdown(
        self,
        router: Router,
        signal: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        let listener = match self.listen {
            Listen::Addr(addr) => TcpListener::bind(addr).await?,
            Listen::Listener(l) => l,
        };
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(TokioTimer::new()).keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .enable_connect_protocol();
        let builder = Arc::new(builder);
        #[cfg(feature = "tls")]
        let acceptor = self.tls.map(tokio_rustls::TlsAcceptor::from);
        tokio::pin!(signal);
        loop {
            let (stream, peer) = tokio::select! {
                _ = &mut signal => break,
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let router = router.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            #[cfg(feature = "tls")]
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                #[cfg(feature = "tls")]
                if let Some(acceptor) = acceptor {
                    let tls = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let certs =
                        tls.get_ref().1.peer_certificates().map(|c| {
                            PeerCertificates(c.iter().map(|c| c.as_ref().to_vec()).collect())
                        });
                    let svc = connection_service(router, peer, certs);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                    return;
                }
                let svc = connection_service(router, peer, None);
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                let _ = watcher.watch(conn.into_owned()).await;
            });
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(self.grace_period) => {
                tracing::info!("grace period over: closing remaining connections");
            }
        }
        Ok(())
    }
}

fn connection_service(
    router: Router,
    peer: SocketAddr,
    certs: Option<PeerCertificates>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<crate::Body>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<http::Response<crate::Body>, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let router = router.clone();
        let certs = certs.clone();
        async move {
            let mut request = if request.version() < http::Version::HTTP_2 {
                request.map(|body| boxed_body(DrainOnDrop(Some(body))))
            } else {
                request.map(boxed_body)
            };
            request.extensions_mut().insert(PeerAddr(peer));
            if let Some(certs) = certs {
                request.extensions_mut().insert(certs);
            }
            Ok(router.handle(request).await)
        }
    })
}

/// The most of an unread HTTP/1.1 request body drained after its handler is done with it.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;
/// How long draining an unread HTTP/1.1 request body may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// An HTTP/1.1 request body that, dropped before its end (an error answered before the whole
/// request was read), drains the rest in the background. Otherwise hyper closes the connection
/// with unread bytes in the socket, the peer's TCP stack gets a reset, and the client sees a
/// broken pipe or an unexpected EOF instead of the response it was sent.
struct DrainOnDrop(Option<hyper::body::Incoming>);

impl http_body::Body for DrainOnDrop {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, hyper::Error>>> {
        match self.0.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .as_ref()
            .map(http_body::Body::size_hint)
            .unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if http_body::Body::is_end_stream(&body) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use http_body_util::BodyExt as _;
            let drain = async {
                let mut read = 0;
                while let Some(Ok(frame)) = body.frame().await {
                    read += frame.data_ref().map_or(0, bytes::Bytes::len);
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
}
