//! HTTP/3 (feature `http3`): the server's calls over QUIC with quinn and h3, on a UDP socket
//! beside the TCP listener. Each QUIC connection is tracked like a TCP one (limits, idle and
//! header timeouts, send timeout, graceful shutdown through `conn::drive`); each request
//! stream is served by the same [`Served`] as HTTP/1.1 and HTTP/2, its body guarded the same
//! way.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;

use super::Limits;
use super::body::{BodyLimits, Framing, GuardedBody};
use super::conn::{Dispatch, GracefulConnection, Registration, Served, Tracker, drive};
use crate::h3_body::RecvBody;
use crate::request::PeerCertificates;
use crate::stream::boxed_body;

/// The ALPN protocol of HTTP/3.
pub(super) const ALPN_H3: &[u8] = b"h3";

/// How long an `Alt-Svc` advertisement may be cached by clients, in seconds (a day, as
/// connect-go and most servers use).
const ALT_SVC_MAX_AGE: u64 = 86_400;

/// The HTTP/3 settings of a [`Server`](super::Server).
#[derive(Debug, Default)]
pub(super) struct Http3Settings {
    /// Whether to serve HTTP/3 at all.
    pub(super) enabled: bool,
    /// A UDP socket to serve on, instead of one bound to the TCP listener's address.
    pub(super) socket: Option<std::net::UdpSocket>,
    /// Whether TCP responses advertise HTTP/3 with `Alt-Svc`.
    pub(super) advertise: bool,
}

/// What the QUIC side of a running server keeps: dropped when serving ends, it stops
/// accepting and closes the endpoint (every connection has ended by then, or is being
/// dropped).
pub(super) struct Running {
    endpoint: quinn::Endpoint,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.accept.abort();
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"server stopped");
    }
}

/// Starts serving HTTP/3 when the settings ask for it; returns the dispatch TCP connections
/// should use (with `Alt-Svc` when advertised) and what to keep while serving.
pub(super) fn begin(
    settings: Http3Settings,
    tls: Option<&tokio_rustls::rustls::ServerConfig>,
    tcp_addr: Option<SocketAddr>,
    dispatch: Dispatch,
    tracker: &Arc<Tracker>,
    stop: &tokio::sync::watch::Receiver<bool>,
    limits: Limits,
) -> std::io::Result<(Dispatch, Option<Running>)> {
    if !settings.enabled {
        return Ok((dispatch, None));
    }
    let tls = tls.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "HTTP/3 needs TLS: set Server::tls",
        )
    })?;
    let advertise = settings.advertise;
    let (running, port) = start(
        settings,
        tls,
        tcp_addr,
        dispatch.clone(),
        tracker.clone(),
        stop.clone(),
        limits,
    )?;
    let tcp_dispatch = if advertise {
        with_alt_svc(dispatch, port)
    } else {
        dispatch
    };
    Ok((tcp_dispatch, Some(running)))
}

/// Wraps a dispatch so that every response carries `Alt-Svc: h3=":PORT"`.
fn with_alt_svc(dispatch: Dispatch, port: u16) -> Dispatch {
    let value = http::HeaderValue::try_from(format!("h3=\":{port}\"; ma={ALT_SVC_MAX_AGE}"))
        .unwrap_or_else(|_| http::HeaderValue::from_static("clear"));
    Dispatch::Service(Arc::new(move |request| {
        let dispatch = dispatch.clone();
        let value = value.clone();
        Box::pin(async move {
            let mut response = match dispatch {
                Dispatch::Router(router) => router.handle_on(request, None).await,
                Dispatch::Service(service) => service(request).await,
            };
            response
                .headers_mut()
                .entry(http::header::ALT_SVC)
                .or_insert(value);
            response
        })
    }))
}

/// Binds the QUIC endpoint (on `socket`, else UDP at `tcp_addr`) and starts accepting.
fn start(
    settings: Http3Settings,
    tls: &tokio_rustls::rustls::ServerConfig,
    tcp_addr: Option<SocketAddr>,
    dispatch: Dispatch,
    tracker: Arc<Tracker>,
    stop: tokio::sync::watch::Receiver<bool>,
    limits: Limits,
) -> std::io::Result<(Running, u16)> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let mut tls = tls.clone();
    tls.alpn_protocols = vec![ALPN_H3.to_vec()];
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| invalid(format!("HTTP/3 needs TLS 1.3: {e}")))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(Arc::new(transport_config(&limits)));
    let socket = match settings.socket {
        Some(socket) => socket,
        None => {
            let addr = tcp_addr.ok_or_else(|| {
                invalid("HTTP/3 needs a TCP listener's address or a UDP socket".into())
            })?;
            std::net::UdpSocket::bind(addr)?
        }
    };
    let port = socket.local_addr()?.port();
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("HTTP/3 needs a Tokio runtime"))?;
    let endpoint = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket,
        runtime,
    )?;
    let accept = tokio::spawn(accept_loop(
        endpoint.clone(),
        dispatch,
        tracker,
        stop,
        limits,
    ));
    Ok((Running { endpoint, accept }, port))
}

/// QUIC transport settings from the server's limits.
fn transport_config(limits: &Limits) -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(quinn::VarInt::from_u32(limits.max_concurrent_streams));
    // The peer's control and QPACK streams, and a few spare.
    transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(8));
    transport.stream_receive_window(quinn::VarInt::from_u32(limits.h2.initial_stream_window));
    transport.receive_window(quinn::VarInt::from_u32(
        limits
            .h2
            .initial_connection_window
            .max(limits.h2.initial_stream_window),
    ));
    // QUIC's own idle timeout is about packets, not calls: keepalive pings (when on) keep a
    // connection with long calls alive, and a dead peer is found after interval + timeout.
    let idle = match limits.quic_keepalive {
        Some((interval, timeout)) => {
            transport.keep_alive_interval(Some(interval));
            interval + timeout
        }
        None => limits.idle_timeout,
    };
    if let Ok(idle) = quinn::IdleTimeout::try_from(idle) {
        transport.max_idle_timeout(Some(idle));
    }
    transport
}

/// Accepts QUIC connections until the server stops.
async fn accept_loop(
    endpoint: quinn::Endpoint,
    dispatch: Dispatch,
    tracker: Arc<Tracker>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    limits: Limits,
) {
    let body_limits = BodyLimits {
        progress: limits.body_progress_timeout,
        min_rate: limits.min_body_rate,
    };
    let local_port = endpoint.local_addr().ok().map(|a| a.port());
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => return,
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
                continue;
            }
        };
        if tracker.len() >= limits.max_connections {
            tracker.shed_idle();
            incoming.refuse();
            continue;
        }
        let registration = tracker.register();
        let dispatch = dispatch.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(
                limits.header_read_timeout.min(Duration::from_secs(10)),
                incoming,
            );
            let conn = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(conn)) => conn,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "QUIC handshake failed");
                        return;
                    }
                    Err(_) => return,
                },
                _ = registration.shared.closing() => return,
            };
            let served = served_for(
                &conn,
                dispatch,
                &registration,
                body_limits,
                &limits,
                local_port,
            );
            let connection = H3Connection::new(conn, served, limits);
            drive(connection, &registration, stop, &limits).await;
        });
    }
}

/// The [`Served`] of one QUIC connection: its peer, addresses and TLS session.
fn served_for(
    conn: &quinn::Connection,
    dispatch: Dispatch,
    registration: &Registration,
    body_limits: BodyLimits,
    limits: &Limits,
    local_port: Option<u16>,
) -> Served {
    let peer = conn.remote_address();
    let mut connection = crate::ConnectionInfo::new(Some(peer));
    if let (Some(ip), Some(port)) = (conn.local_ip(), local_port) {
        connection.local_addr = Some(SocketAddr::new(ip, port));
    }
    let certs = conn
        .peer_identity()
        .and_then(|identity| {
            identity
                .downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .map(|certs| PeerCertificates(certs.iter().map(|c| c.as_ref().to_vec()).collect()));
    let handshake = conn
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok());
    let info = crate::TlsInfo::new(
        handshake.as_ref().and_then(|h| h.server_name.clone()),
        handshake
            .as_ref()
            .and_then(|h| h.protocol.clone())
            .or_else(|| Some(ALPN_H3.to_vec())),
        certs.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
    );
    Served {
        dispatch,
        peer: Some(peer),
        certs,
        connection: Arc::new(connection.with_tls(info)),
        conn: registration.shared.clone(),
        body_limits,
        send_timeout: limits.send_timeout,
    }
}

/// One HTTP/3 connection as `drive` sees it: a future serving its request streams, asked to
/// finish by `begin_graceful_shutdown` (a GOAWAY, then done once no call is in flight).
struct H3Connection {
    shutdown: tokio::sync::watch::Sender<bool>,
    serving: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl H3Connection {
    fn new(conn: quinn::Connection, served: Served, limits: Limits) -> Self {
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        Self {
            shutdown,
            serving: Box::pin(serve_connection(conn, served, limits, rx)),
        }
    }
}

impl Future for H3Connection {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.serving.as_mut().poll(cx)
    }
}

impl GracefulConnection for H3Connection {
    fn begin_graceful_shutdown(self: Pin<&mut Self>) {
        self.shutdown.send_replace(true);
    }
}

/// Serves a QUIC connection's request streams. The streams' tasks live in a `JoinSet`, so
/// they end with the connection (as hyper's do).
async fn serve_connection(
    conn: quinn::Connection,
    served: Served,
    limits: Limits,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut builder = h3::server::builder();
    builder.max_field_section_size(u64::from(limits.h2.max_header_list_size));
    let mut h3 = match builder.build(h3_quinn::Connection::new(conn)).await {
        Ok(h3) => h3,
        Err(e) => {
            tracing::debug!(error = %e, "HTTP/3 connection setup failed");
            return;
        }
    };
    let mut calls = tokio::task::JoinSet::new();
    let mut closing = false;
    loop {
        tokio::select! {
            accepted = h3.accept(), if !closing => match accepted {
                Ok(Some(resolver)) => {
                    let served = served.clone();
                    calls.spawn(serve_stream(resolver, served, limits.header_read_timeout));
                }
                Ok(None) => break,
                Err(e) => {
                    if !e.is_h3_no_error() {
                        tracing::debug!(error = %e, "HTTP/3 connection failed");
                    }
                    break;
                }
            },
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
            changed = shutdown.changed(), if !closing => {
                if changed.is_err() || *shutdown.borrow() {
                    closing = true;
                    // GOAWAY: no request beyond those accepted.
                    let _ = h3.shutdown(0).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if closing => {
                if served.conn.active() == 0 && calls.is_empty() {
                    break;
                }
            }
        }
    }
    // Calls still in flight (a peer's GOAWAY, or the connection failing) finish first.
    while calls.join_next().await.is_some() {}
}

/// Reads one request's head, serves it, and sends the response.
async fn serve_stream(
    resolver: h3::server::RequestResolver<h3_quinn::Connection, Bytes>,
    served: Served,
    header_timeout: Duration,
) {
    let (head, stream) =
        match tokio::time::timeout(header_timeout, resolver.resolve_request()).await {
            Ok(Ok(resolved)) => resolved,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "bad HTTP/3 request");
                return;
            }
            Err(_) => return,
        };
    let (mut send, recv) = stream.split();
    let limits = served.body_limits;
    let framing = if limits.min_rate.is_some() {
        Framing::of(head.headers().get(http::header::CONTENT_TYPE))
    } else {
        Framing::Whole
    };
    let (mut parts, ()) = head.into_parts();
    parts.version = http::Version::HTTP_3;
    let body = boxed_body(GuardedBody::new(
        RecvBody::new(recv, |e| Box::new(e), ()),
        limits,
        framing,
    ));
    let request = http::Request::from_parts(parts, body);
    let response = served.serve(request).await;
    send_response(&mut send, response).await;
}

/// Sends a response on an HTTP/3 stream: the head, its data, its trailers; a body that fails
/// resets the stream.
async fn send_response<B>(
    send: &mut h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>,
    response: http::Response<B>,
) where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let (mut parts, mut body) = response.into_parts();
    parts.version = http::Version::HTTP_3;
    strip_connection_headers(&mut parts.headers);
    if let Err(e) = send
        .send_response(http::Response::from_parts(parts, ()))
        .await
    {
        tracing::debug!(error = %e, "sending an HTTP/3 response head failed");
        return;
    }
    loop {
        match body.frame().await {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if !data.is_empty()
                        && let Err(e) = send.send_data(data).await
                    {
                        tracing::debug!(error = %e, "sending HTTP/3 data failed");
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers()
                        && let Err(e) = send.send_trailers(trailers).await
                    {
                        tracing::debug!(error = %e, "sending HTTP/3 trailers failed");
                        return;
                    }
                }
            },
            Some(Err(e)) => {
                tracing::debug!(error = %e, "an HTTP/3 response body failed");
                send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
                return;
            }
            None => break,
        }
    }
    let _ = send.finish().await;
}

/// Removes the headers HTTP/3 forbids (connection-specific ones, RFC 9114 section 4.2).
fn strip_connection_headers(headers: &mut http::HeaderMap) {
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        http::HeaderName::from_static("keep-alive"),
        http::HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}
