//! What each end knows about the other: the connection a call travelled on (addresses, TLS
//! server name, ALPN protocol, certificates) and, on the server, the HTTP request line.
//!
//! - On the **server**, handlers read [`Request::connection`](crate::Request::connection),
//!   [`Request::method`](crate::Request::method), [`Request::uri`](crate::Request::uri) and
//!   [`Request::http_version`](crate::Request::http_version). The built-in server fills them
//!   in for every request; under axum, see [`ConnectionInfo`] for what to provide.
//! - On the **client**, [`Response::connection`](crate::Response::connection) (and
//!   [`BidiStream::connection`](crate::BidiStream::connection)) report the connection the
//!   call used, when the transport says: the built-in HTTP transport always does.

use std::net::SocketAddr;
use std::sync::Arc;

/// The connection a call travelled on, as seen from this end.
///
/// On the server, handlers read it with [`Request::connection`](crate::Request::connection):
/// the built-in server hands it to the router directly (one value per connection, shared by
/// its calls; no per-call request extension), and sets it as a request extension only when
/// it serves a tower service ([`Server::serve_service`](crate::server::Server::serve_service)).
/// On the client it is a response extension set by the built-in transport (any
/// [`Transport`](crate::Transport) may set one the same way).
///
/// Under **axum**, nothing knows the connection unless the app is served with
/// `into_make_service_with_connect_info::<SocketAddr>()`: then, with volley's `axum`
/// feature, handlers see the peer address from axum's `ConnectInfo<SocketAddr>` through
/// [`Request::peer_addr`](crate::Request::peer_addr) and [`Request::connection`]
/// (`remote_addr` only). An axum app terminating TLS itself (axum-server, a custom accept
/// loop) inserts a `ConnectionInfo` with its [`TlsInfo`] as a request extension, e.g. from a
/// `tower::Layer` around the per-connection service; the router then shows it to handlers.
///
/// [`Request::connection`]: crate::Request::connection
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// The other end's address.
    pub remote_addr: Option<SocketAddr>,
    /// This end's address.
    pub local_addr: Option<SocketAddr>,
    /// The TLS session, when the connection is TLS (shared by every call on the connection).
    pub tls: Option<Arc<TlsInfo>>,
}

impl ConnectionInfo {
    /// A connection with the peer at `remote_addr`, no local address, no TLS.
    pub fn new(remote_addr: Option<SocketAddr>) -> Self {
        Self {
            remote_addr,
            local_addr: None,
            tls: None,
        }
    }

    /// The same, with this end's address.
    pub fn with_local_addr(mut self, local_addr: SocketAddr) -> Self {
        self.local_addr = Some(local_addr);
        self
    }

    /// The same, over TLS.
    pub fn with_tls(mut self, tls: TlsInfo) -> Self {
        self.tls = Some(Arc::new(tls));
        self
    }
}

/// A TLS session's negotiated parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// The server name (SNI) the client asked for: on the server, what the client sent; on
    /// the client, what it sent. `None` when none was sent (an IP address).
    pub server_name: Option<String>,
    /// The ALPN protocol negotiated (`h2`, `http/1.1`), if any.
    pub alpn: Option<Vec<u8>>,
    /// The peer's DER-encoded certificate chain, leaf first; empty when the peer presented
    /// none (a server that does not ask for client certificates).
    pub peer_certificates: Vec<Vec<u8>>,
}

impl TlsInfo {
    /// A session with these parameters.
    pub fn new(
        server_name: Option<String>,
        alpn: Option<Vec<u8>>,
        peer_certificates: Vec<Vec<u8>>,
    ) -> Self {
        Self {
            server_name,
            alpn,
            peer_certificates,
        }
    }

    /// The ALPN protocol as text, when it is UTF-8.
    pub fn alpn_str(&self) -> Option<&str> {
        self.alpn
            .as_deref()
            .and_then(|a| std::str::from_utf8(a).ok())
    }
}

/// The request line of the HTTP request a call arrived in (server side; a request extension
/// the router sets).
#[derive(Debug, Clone)]
pub(crate) struct RequestLine {
    pub(crate) method: http::Method,
    pub(crate) uri: http::Uri,
    pub(crate) version: http::Version,
}

/// What the server knew of a call's HTTP request before the router took it: the request line
/// and the connection. Carried beside the request, not in its extensions: an extension insert
/// costs an allocation (and the map its own), on every call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Arrival {
    pub(crate) line: Option<RequestLine>,
    /// The connection, when known: handed over by the built-in server (one shared value per
    /// connection), or made from a peer address found in the extensions. `None` leaves
    /// [`Request::connection`](crate::Request::connection) to the extensions (a
    /// `ConnectionInfo` a tower layer inserted).
    pub(crate) connection: Option<Arc<ConnectionInfo>>,
}

impl Arrival {
    /// The arrival of the request `parts` describe. `connection` is the built-in server's;
    /// without it, the extensions are asked: a [`ConnectionInfo`] there is left for handlers
    /// to find, else a peer address there ([`PeerAddr`](crate::PeerAddr), or axum's
    /// `ConnectInfo<SocketAddr>` with the `axum` feature) makes one.
    pub(crate) fn of(
        parts: &http::request::Parts,
        connection: Option<Arc<ConnectionInfo>>,
    ) -> Self {
        let line = Some(RequestLine {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
        });
        let connection = connection.or_else(|| {
            if parts.extensions.get::<ConnectionInfo>().is_some() {
                return None;
            }
            peer_addr(&parts.extensions).map(|addr| Arc::new(ConnectionInfo::new(Some(addr))))
        });
        Self { line, connection }
    }

    /// The connection: this arrival's, else a [`ConnectionInfo`] in `extensions`.
    pub(crate) fn connection<'a>(
        &'a self,
        extensions: &'a http::Extensions,
    ) -> Option<&'a ConnectionInfo> {
        self.connection.as_deref().or_else(|| extensions.get())
    }

    /// The peer's address: the connection's, else one in `extensions`.
    pub(crate) fn peer_addr(&self, extensions: &http::Extensions) -> Option<SocketAddr> {
        self.connection
            .as_ref()
            .and_then(|c| c.remote_addr)
            .or_else(|| peer_addr(extensions))
    }
}

/// The peer address from the extensions: a [`ConnectionInfo`]'s, the built-in server's
/// [`PeerAddr`](crate::PeerAddr), or (with the `axum` feature) axum's
/// `ConnectInfo<SocketAddr>`.
pub(crate) fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    if let Some(addr) = extensions
        .get::<ConnectionInfo>()
        .and_then(|c| c.remote_addr)
    {
        return Some(addr);
    }
    if let Some(p) = extensions.get::<crate::PeerAddr>() {
        return Some(p.0);
    }
    axum_peer(extensions)
}

#[cfg(feature = "axum")]
fn axum_peer(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

#[cfg(not(feature = "axum"))]
fn axum_peer(_: &http::Extensions) -> Option<SocketAddr> {
    None
}
