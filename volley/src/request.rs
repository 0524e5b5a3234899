//! Requests and responses as handlers and callers see them: a message (or a stream of them)
//! with headers, trailers and extensions.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Extensions, HeaderMap};

use crate::Spec;

/// The remote address of the connection a request came in on (an extension set by the
/// built-in server).
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
        }
    }

    pub(crate) fn from_parts(
        message: T,
        headers: HeaderMap,
        extensions: Extensions,
        deadline: Option<Instant>,
        spec: Spec,
    ) -> Self {
        Self {
            message,
            headers,
            extensions,
            deadline,
            spec: Some(spec),
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

    /// Extensions: values set by tower layers and interceptors, and by the server
    /// ([`PeerAddr`], [`PeerCertificates`]).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Extensions, mutable.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The peer's address, when served by the built-in server.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.extensions.get::<PeerAddr>().map(|p| p.0)
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
        }
    }
}

/// A response: a message (or a message stream), headers and trailers.
#[derive(Debug)]
pub struct Response<T> {
    message: T,
    headers: HeaderMap,
    trailers: HeaderMap,
}

impl<T> Response<T> {
    /// A response carrying `message`, with no metadata.
    pub fn new(message: T) -> Self {
        Self {
            message,
            headers: HeaderMap::new(),
            trailers: HeaderMap::new(),
        }
    }

    pub(crate) fn from_parts(message: T, headers: HeaderMap, trailers: HeaderMap) -> Self {
        Self {
            message,
            headers,
            trailers,
        }
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

    /// Builder: adds a header. Invalid names or values are ignored.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            self.headers.append(n, v);
        }
        self
    }

    /// Builder: adds a trailer. Invalid names or values are ignored.
    pub fn with_trailer(mut self, name: &str, value: &str) -> Self {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            self.trailers.append(n, v);
        }
        self
    }

    /// Maps the message, keeping the metadata.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Response<U> {
        Response {
            message: f(self.message),
            headers: self.headers,
            trailers: self.trailers,
        }
    }
}
