//! The HTTP/3 transport (feature `http3`): calls over QUIC with quinn and h3, one pooled
//! connection per host and port, multiplexing every call on it (as HTTP/2 does).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;

use crate::h3_body::RecvBody;
use crate::stream::{Body, boxed_body};
use crate::{Code, ConnectionInfo, Error};

/// How long a host whose QUIC connection failed is called over TCP before HTTP/3 is tried
/// again (in the "preferred" mode).
const BROKEN_FOR: Duration = Duration::from_secs(300);

/// A request sender on a pooled connection.
type Sender = h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>;

/// What [`H3Client::send`] resolves to: the response, or (with fallback) the request handed
/// back for TCP, or the call's error.
type Sent = Pin<
    Box<
        dyn Future<Output = Result<http::Response<Body>, Result<http::Request<Body>, Error>>>
            + Send,
    >,
>;

/// One HTTP/3 connection in the pool.
struct Pooled {
    send: Sender,
    alive: Arc<AtomicBool>,
    info: ConnectionInfo,
}

/// What every clone of the transport shares.
struct Inner {
    config: quinn::ClientConfig,
    connect_timeout: Duration,
    max_field_section_size: u64,
    /// The client's UDP endpoints, IPv4 and IPv6, opened at first use (inside a runtime).
    endpoints: Mutex<[Option<quinn::Endpoint>; 2]>,
    /// One slot per `host:port`; its lock is held while connecting, so concurrent calls to a
    /// new host share one handshake.
    pool: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Pooled>>>>>,
    /// Hosts whose QUIC connection failed, and when (the "preferred" mode).
    broken: Mutex<HashMap<String, Instant>>,
}

/// The HTTP/3 side of [`HttpTransport`](super::HttpTransport).
#[derive(Clone)]
pub(crate) struct H3Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for H3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H3Client")
            .field("connect_timeout", &self.inner.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// The HTTP/3 settings [`HttpTransport`](super::HttpTransport) hands over.
pub(crate) struct H3Settings {
    pub(crate) tls: rustls::ClientConfig,
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) max_header_list_size: u32,
    pub(crate) stream_window: u32,
    pub(crate) connection_window: u32,
}

impl H3Client {
    pub(crate) fn new(settings: H3Settings) -> Result<Self, Error> {
        let mut tls = settings.tls;
        tls.alpn_protocols = vec![b"h3".to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| Error::internal(format!("HTTP/3 needs TLS 1.3: {e}")))?;
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        transport.stream_receive_window(quinn::VarInt::from_u32(settings.stream_window));
        transport.receive_window(quinn::VarInt::from_u32(
            settings.connection_window.max(settings.stream_window),
        ));
        transport.max_concurrent_uni_streams(quinn::VarInt::from_u32(8));
        transport.keep_alive_interval(settings.keepalive);
        transport.max_idle_timeout(
            settings
                .idle_timeout
                .and_then(|t| quinn::IdleTimeout::try_from(t).ok()),
        );
        config.transport_config(Arc::new(transport));
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                connect_timeout: settings.connect_timeout,
                max_field_section_size: u64::from(settings.max_header_list_size),
                endpoints: Mutex::new([None, None]),
                pool: Mutex::new(HashMap::new()),
                broken: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether HTTP/3 to this request's host failed recently.
    pub(crate) fn is_broken(&self, uri: &http::Uri) -> bool {
        let Ok((host, port)) = host_port(uri) else {
            return false;
        };
        let key = format!("{host}:{port}");
        let mut broken = self.inner.broken.lock().unwrap_or_else(|p| p.into_inner());
        match broken.get(&key) {
            Some(since) if since.elapsed() < BROKEN_FOR => true,
            Some(_) => {
                broken.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Sends one request over HTTP/3. With `fallback`, a connection that cannot be opened
    /// gives the request back (`Err(Ok(request))`) instead of failing it.
    pub(crate) fn send(&self, request: http::Request<Body>, fallback: bool) -> Sent {
        let this = self.clone();
        Box::pin(async move {
            let (host, port) = match host_port(request.uri()) {
                Ok(hp) => hp,
                Err(e) => return Err(Err(e)),
            };
            let key = format!("{host}:{port}");
            let (send, info) = match this.connection(&key, &host, port).await {
                Ok(c) => c,
                Err(e) if fallback => {
                    tracing::debug!(error = %e, host = %key, "HTTP/3 failed: falling back to TCP");
                    this.inner
                        .broken
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, Instant::now());
                    return Err(Ok(request));
                }
                Err(e) => return Err(Err(e)),
            };
            call(send, info, request).await.map_err(Err)
        })
    }

    /// A live pooled connection to `host:port`, opened if needed.
    async fn connection(
        &self,
        key: &str,
        host: &str,
        port: u16,
    ) -> Result<(Sender, ConnectionInfo), Error> {
        let slot = self
            .inner
            .pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_string())
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some(pooled) = slot.as_ref()
            && pooled.alive.load(Ordering::Acquire)
        {
            return Ok((pooled.send.clone(), pooled.info.clone()));
        }
        *slot = None;
        let pooled = tokio::time::timeout(self.inner.connect_timeout, self.connect(host, port))
            .await
            .map_err(|_| {
                Error::new(
                    Code::Unavailable,
                    format!("connecting failed: no QUIC connection to {host}:{port} in time"),
                )
            })??;
        let out = (pooled.send.clone(), pooled.info.clone());
        *slot = Some(pooled);
        Ok(out)
    }

    async fn connect(&self, host: &str, port: u16) -> Result<Pooled, Error> {
        let unavailable =
            |m: String| Error::new(Code::Unavailable, format!("connecting failed: {m}"));
        let addr = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .next()
            .ok_or_else(|| unavailable(format!("no address for {host}")))?;
        let endpoint = self.endpoint(addr)?;
        let connecting = endpoint
            .connect_with(self.inner.config.clone(), addr, host)
            .map_err(|e| unavailable(e.to_string()))?;
        let conn = connecting.await.map_err(|e| unavailable(e.to_string()))?;
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        let certs = conn
            .peer_identity()
            .and_then(|identity| {
                identity
                    .downcast::<Vec<rustls_pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .map(|certs| certs.iter().map(|c| c.as_ref().to_vec()).collect())
            .unwrap_or_default();
        let alpn = conn
            .handshake_data()
            .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
            .and_then(|h| h.protocol.clone());
        let mut info = ConnectionInfo::new(Some(conn.remote_address()));
        info.local_addr = endpoint.local_addr().ok().map(|local| {
            conn.local_ip()
                .map_or(local, |ip| SocketAddr::new(ip, local.port()))
        });
        let info = info.with_tls(crate::TlsInfo::new(
            (!is_ip).then(|| host.to_string()),
            alpn,
            certs,
        ));
        let mut builder = h3::client::builder();
        builder.max_field_section_size(self.inner.max_field_section_size);
        let (mut driver, send) = builder
            .build::<_, _, Bytes>(h3_quinn::Connection::new(conn))
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let alive = Arc::new(AtomicBool::new(true));
        let flag = alive.clone();
        tokio::spawn(async move {
            let closed = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
            flag.store(false, Ordering::Release);
            if !closed.is_h3_no_error() {
                tracing::debug!(error = %closed, "HTTP/3 connection closed");
            }
        });
        Ok(Pooled { send, alive, info })
    }

    /// The UDP endpoint for the family of `addr`.
    fn endpoint(&self, addr: SocketAddr) -> Result<quinn::Endpoint, Error> {
        let mut endpoints = self
            .inner
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let index = usize::from(addr.is_ipv6());
        if let Some(endpoint) = &endpoints[index] {
            return Ok(endpoint.clone());
        }
        let local: SocketAddr = if addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = quinn::Endpoint::client(local).map_err(|e| {
            Error::new(
                Code::Unavailable,
                format!("connecting failed: opening a UDP socket: {e}"),
            )
        })?;
        endpoints[index] = Some(endpoint.clone());
        Ok(endpoint)
    }
}

/// The host (brackets off an IPv6 address) and port (443 by default) of an `https` URI.
fn host_port(uri: &http::Uri) -> Result<(String, u16), Error> {
    if uri.scheme_str() != Some("https") {
        return Err(Error::new(
            Code::Unavailable,
            "HTTP/3 needs an https URI (QUIC is always TLS)",
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| Error::new(Code::Unavailable, "the URI has no host"))?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_string(), authority.port_u16().unwrap_or(443)))
}

/// Sends the request on a new stream of `send`: the head now, the body from a task of its
/// own (so a full-duplex call can read while it writes), and resolves with the response head.
async fn call(
    mut send: Sender,
    info: ConnectionInfo,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, Error> {
    let (mut parts, body) = request.into_parts();
    parts.version = http::Version::HTTP_3;
    let stream = send
        .send_request(http::Request::from_parts(parts, ()))
        .await
        .map_err(stream_error)?;
    let (sender, mut recv) = stream.split();
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(send_body(sender, body, cancelled));
    let response = recv.recv_response().await.map_err(stream_error)?;
    let (mut parts, ()) = response.into_parts();
    parts.extensions.insert(info);
    Ok(http::Response::from_parts(
        parts,
        // Dropped before its end, the body stops the request body (a reset, through
        // `cancel`), and quinn tells the server to stop sending when the stream is dropped.
        // (`stop_sending` is not called: h3-quinn 0.0.10 panics on it while a read is in
        // flight inside the stream.)
        boxed_body(RecvBody::new(recv, |e| Box::new(stream_error(e)), cancel)),
    ))
}

/// Sends a request body; stops (resetting the stream) when the response is dropped first.
async fn send_body(
    mut sender: h3::client::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>,
    mut body: Body,
    mut cancelled: tokio::sync::oneshot::Receiver<()>,
) {
    enum Outcome {
        Done,
        Failed,
        Cancelled,
    }
    let outcome = {
        let work = async {
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return Outcome::Failed;
                };
                match frame.into_data() {
                    Ok(data) => {
                        if !data.is_empty() && sender.send_data(data).await.is_err() {
                            return Outcome::Done;
                        }
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers()
                            && sender.send_trailers(trailers).await.is_err()
                        {
                            return Outcome::Done;
                        }
                    }
                }
            }
            let _ = sender.finish().await;
            Outcome::Done
        };
        tokio::select! {
            outcome = work => outcome,
            _ = &mut cancelled => Outcome::Cancelled,
        }
    };
    match outcome {
        Outcome::Done => {}
        Outcome::Failed | Outcome::Cancelled => {
            sender.stop_stream(h3::error::Code::H3_REQUEST_CANCELLED);
        }
    }
}

/// Maps an HTTP/3 stream failure to a call error: a stream the server refused or reset is
/// `unavailable` or `canceled`, as for HTTP/2 resets; anything else `unavailable`.
fn stream_error(e: h3::error::StreamError) -> Error {
    let code = match &e {
        h3::error::StreamError::RemoteTerminate { code, .. }
            if *code == h3::error::Code::H3_REQUEST_CANCELLED =>
        {
            Code::Canceled
        }
        h3::error::StreamError::RemoteTerminate { code, .. }
            if *code == h3::error::Code::H3_REQUEST_REJECTED =>
        {
            Code::Unavailable
        }
        h3::error::StreamError::RemoteTerminate { .. } => Code::Internal,
        h3::error::StreamError::HeaderTooBig { .. } => Code::ResourceExhausted,
        _ => Code::Unavailable,
    };
    Error::new(code, format!("HTTP/3: {e}")).with_source(Box::new(e))
}
