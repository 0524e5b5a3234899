//! Requests and responses as handlers and callers see them: a message (or a stream of them)
//! with headers, trailers and extensions.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Extensions, HeaderMap};

use crate::Spec;

/// The remote address of the connection a request came in on: an extension the built-in
/// server sets on requests it hands to a tower service
/// ([`Server::serve_service`](crate::server::Server::serve_service)), and that an app under
/// axum or another server may set for the [`Router`](crate::Router) to find. Handlers read the
/// address with [`Request::peer_addr`] whatever the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The DER-encoded certificate chain a TLS client presented (an extension set by the built-in
/// server when client certificates are requested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificates(pub Vec<Vec<u8>>);

/// A request: a message (or [`Streaming`](crate::Streaming) messages), headers and extensions.
#[derive(Debug)]
pub struct Request<T> {
    message: T,
    headers: HeaderMap,
    extensions: Extensions,
    deadline: Option<Instant>,
    spec: Option<Spec>,
    arrival: crate::peer::Arrival,
}

impl<T> Request<T> {
    /// A request carrying `message`, with no headers.
    pub fn new(message: T) -> Self {
        Self {
            message,
            headers: HeaderMap::new(),
            extensions: Extensions::new(),
            deadline: None,
            spec: None,
            arrival: crate::peer::Arrival::default(),
        }
    }

    pub(crate) fn from_parts(
        message: T,
        headers: HeaderMap,
        extensions: Extensions,
        deadline: Option<Instant>,
        spec: Spec,
        arrival: crate::peer::Arrival,
    ) -> Self {
        Self {
            message,
            headers,
            extensions,
            deadline,
            spec: Some(spec),
            arrival,
        }
    }

    /// The message (or message stream).
    pub fn message(&self) -> &T {
        &self.message
    }

    /// The message, mutable (streams need `&mut` to read).
    pub fn message_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message.
    pub fn into_message(self) -> T {
        self.message
    }

    /// The request headers, protocol headers included.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The request headers, mutable.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Extensions: values set by tower layers and interceptors (and, for a client that
    /// presented certificates, [`PeerCertificates`]). What the server knows of the connection
    /// and the HTTP request is read with [`connection`](Self::connection),
    /// [`peer_addr`](Self::peer_addr), [`method`](Self::method) and [`uri`](Self::uri).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Extensions, mutable.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The peer's address: set by the built-in server, and under axum from its
    /// `ConnectInfo<SocketAddr>` (with volley's `axum` feature; see
    /// [`ConnectionInfo`](crate::ConnectionInfo)).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.arrival.peer_addr(&self.extensions)
    }

    /// The connection the request arrived on (server side): addresses, and for TLS the server
    /// name the client asked for (SNI), the ALPN protocol and the client's certificates.
    /// Always set by the built-in server; see [`ConnectionInfo`](crate::ConnectionInfo) for
    /// axum.
    pub fn connection(&self) -> Option<&crate::ConnectionInfo> {
        self.arrival.connection(&self.extensions)
    }

    /// The TLS session the request arrived on, if any (server side).
    pub fn tls(&self) -> Option<&crate::TlsInfo> {
        self.connection().and_then(|c| c.tls.as_deref())
    }

    /// The HTTP method of the request the call arrived in (`POST`, or `GET` for Connect GET);
    /// set on the server side.
    pub fn method(&self) -> Option<&http::Method> {
        self.request_line().map(|l| &l.method)
    }

    /// The request URI as the server received it (path, and for Connect GET the query);
    /// set on the server side.
    pub fn uri(&self) -> Option<&http::Uri> {
        self.request_line().map(|l| &l.uri)
    }

    /// The HTTP version the call arrived over; set on the server side.
    pub fn http_version(&self) -> Option<http::Version> {
        self.request_line().map(|l| l.version)
    }

    fn request_line(&self) -> Option<&crate::peer::RequestLine> {
        self.arrival.line.as_ref()
    }

    /// When the caller's deadline expires, if it sent one.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time left before the caller's deadline, if it sent one.
    pub fn timeout(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The method being called (set on the server side).
    pub fn spec(&self) -> Option<&Spec> {
        self.spec.as_ref()
    }

    /// Maps the message, keeping everything else.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Request<U> {
        Request {
            message: f(self.message),
            headers: self.headers,
            extensions: self.extensions,
            deadline: self.deadline,
            spec: self.spec,
            arrival: self.arrival,
        }
    }
}

/// A response: a message (or a message stream), headers, trailers and extensions.
#[derive(Debug)]
pub struct Response<T> {
    message: T,
    headers: HeaderMap,
    trailers: HeaderMap,
    extensions: Extensions,
}

impl<T> Response<T> {
    /// A response carrying `message`, with no metadata.
    pub fn new(message: T) -> Self {
        Self::from_parts(message, HeaderMap::new(), HeaderMap::new())
    }

    pub(crate) fn from_parts(message: T, headers: HeaderMap, trailers: HeaderMap) -> Self {
        Self {
            message,
            headers,
            trailers,
            extensions: Extensions::new(),
        }
    }

    /// Extensions: on a client's response, the [`ConnectionInfo`](crate::ConnectionInfo) of
    /// the connection the call used (when the transport reports it). Not sent anywhere.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Extensions, mutable.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The connection the call used (client side): the server's address, and for TLS the
    /// server name sent (SNI), the ALPN protocol and the server's certificates. The built-in
    /// HTTP transport always reports it; another [`Transport`](crate::Transport) may, by
    /// setting a `ConnectionInfo` response extension.
    pub fn connection(&self) -> Option<&crate::ConnectionInfo> {
        self.extensions.get()
    }

    /// The message (or stream).
    pub fn message(&self) -> &T {
        &self.message
    }

    /// The message, mutable.
    pub fn message_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// Takes the message.
    pub fn into_message(self) -> T {
        self.message
    }

    /// Splits into message, headers and trailers.
    pub fn into_parts(self) -> (T, HeaderMap, HeaderMap) {
        (self.message, self.headers, self.trailers)
    }

    pub(crate) fn into_all(self) -> (T, HeaderMap, HeaderMap, Extensions) {
        (self.message, self.headers, self.trailers, self.extensions)
    }

    /// Response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Response headers, mutable.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.headers
    }

    /// Response trailers. For a client's streaming response they fill in once the stream ends;
    /// read them from [`Streaming::trailers`](crate::Streaming::trailers) then.
    pub fn trailers(&self) -> &HeaderMap {
        &self.trailers
    }

    /// Response trailers, mutable.
    pub fn trailers_mut(&mut self) -> &mut HeaderMap {
        &mut self.trailers
    }

    /// Builder: adds a header.
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not valid in a header: meant for literals. Values from
    /// elsewhere go through [`try_with_header`](Self::try_with_header).
    #[track_caller]
    pub fn with_header(self, name: &str, value: &str) -> Self {
        crate::headers::expect_valid(self.try_with_header(name, value))
    }

    /// Builder: adds a header; an `invalid_argument` error when `name` or `value` is not
    /// valid in a header.
    pub fn try_with_header(mut self, name: &str, value: &str) -> Result<Self, crate::Error> {
        let (n, v) = crate::headers::parse_header(name, value)?;
        self.headers.append(n, v);
        Ok(self)
    }

    /// Builder: adds a trailer.
    ///
    /// # Panics
    ///
    /// When `name` or `value` is not valid in a header; see
    /// [`try_with_trailer`](Self::try_with_trailer).
    #[track_caller]
    pub fn with_trailer(self, name: &str, value: &str) -> Self {
        crate::headers::expect_valid(self.try_with_trailer(name, value))
    }

    /// Builder: adds a trailer; an `invalid_argument` error when `name` or `value` is not
    /// valid in a header.
    ///
    /// ```
    /// use volley::{Code, Response};
    ///
    /// let ok = Response::new(()).try_with_trailer("x-cost", "3").unwrap();
    /// assert_eq!(ok.trailers()["x-cost"], "3");
    /// let err = Response::new(()).try_with_trailer("x cost", "3").unwrap_err();
    /// assert_eq!(err.code(), Code::InvalidArgument);
    /// ```
    pub fn try_with_trailer(mut self, name: &str, value: &str) -> Result<Self, crate::Error> {
        let (n, v) = crate::headers::parse_header(name, value)?;
        self.trailers.append(n, v);
        Ok(self)
    }

    /// Maps the message, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            message: f(self.message),
            headers: self.headers,
            trailers: self.trailers,
            extensions: self.extensions,
        }
    }
}
