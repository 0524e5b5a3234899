//! The one error type of Volley: a [`Code`], a message, typed details and metadata.

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use http::HeaderMap;

use crate::Code;

/// Boxed error used as a cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An RPC error: a code, a human-readable message, typed details and metadata.
///
/// Errors returned by handlers are written in the shape of the caller's protocol; errors seen by
/// clients come either from the peer ([`Error::is_wire`]) or from this process (a timeout, a
/// connection failure, a malformed response).
///
/// ```
/// use buffa_types::google::protobuf::StringValue;
/// use volley::{Code, Error, ErrorDetail};
///
/// let mut metadata = http::HeaderMap::new();
/// metadata.insert("retry-after-ms", "250".parse().unwrap());
/// let err = Error::new(Code::Unavailable, "shard 3 is restarting")
///     .with_detail(ErrorDetail::from_message(&StringValue::from("shard-3")))
///     .with_metadata(metadata);
///
/// assert_eq!(err.code(), Code::Unavailable);
/// assert_eq!(err.to_string(), "unavailable: shard 3 is restarting");
/// let detail: StringValue = err.details()[0].to_message().unwrap();
/// assert_eq!(detail.value, "shard-3");
/// // The Connect JSON form a Connect client receives:
/// assert_eq!(err.to_connect_json()["code"], "unavailable");
/// ```
///
/// More in the [errors guide](crate::guide::errors).
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    code: Code,
    message: String,
    details: Vec<ErrorDetail>,
    metadata: HeaderMap,
    headers: HeaderMap,
    source: Option<BoxError>,
    wire: bool,
}

/// A typed error detail: a protobuf message's fully-qualified type name and its binary encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorDetail {
    type_name: String,
    value: Bytes,
    debug: Option<serde_json::Value>,
}

const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

impl ErrorDetail {
    /// A detail from a type name (`"google.rpc.RetryInfo"`, a `type.googleapis.com/` prefix is
    /// stripped) and the message's binary encoding.
    pub fn new(type_name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        let type_name: String = type_name.into();
        let type_name = match type_name.rsplit_once('/') {
            Some((_, name)) => name.to_string(),
            None => type_name,
        };
        Self {
            type_name,
            value: value.into(),
            debug: None,
        }
    }

    /// A detail holding `message`.
    pub fn from_message<M: buffa::Message + buffa::MessageName>(message: &M) -> Self {
        Self::new(M::FULL_NAME, message.encode_to_vec())
    }

    /// A detail from a `google.protobuf.Any`.
    pub fn from_any(any: &buffa_types::google::protobuf::Any) -> Self {
        Self::new(any.type_url.clone(), any.value.clone())
    }

    /// This detail as a `google.protobuf.Any` (with the `type.googleapis.com/` prefix).
    pub fn to_any(&self) -> buffa_types::google::protobuf::Any {
        buffa_types::google::protobuf::Any {
            type_url: self.type_url(),
            value: self.value.clone(),
            ..Default::default()
        }
    }

    /// The fully-qualified type name, without a URL prefix.
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// The type URL (`type.googleapis.com/<name>`).
    pub fn type_url(&self) -> String {
        format!("{TYPE_URL_PREFIX}{}", self.type_name)
    }

    /// The message's binary encoding.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// Decodes the detail as `M`, if the type names match.
    pub fn to_message<M: buffa::Message + buffa::MessageName>(&self) -> Option<M> {
        if self.type_name != M::FULL_NAME {
            return None;
        }
        M::decode_from_slice(&self.value).ok()
    }

    /// The optional JSON `debug` form a Connect peer sent along.
    pub fn debug(&self) -> Option<&serde_json::Value> {
        self.debug.as_ref()
    }

    pub(crate) fn to_connect_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), self.type_name.clone().into());
        obj.insert(
            "value".into(),
            base64::engine::general_purpose::STANDARD_NO_PAD
                .encode(&self.value)
                .into(),
        );
        if let Some(debug) = &self.debug {
            obj.insert("debug".into(), debug.clone());
        }
        serde_json::Value::Object(obj)
    }

    pub(crate) fn from_connect_json(value: &serde_json::Value) -> Option<Self> {
        let type_name = value.get("type")?.as_str()?;
        let raw = value.get("value")?.as_str()?;
        let bytes = crate::headers::decode_base64_lenient(raw.as_bytes())?;
        let mut detail = Self::new(type_name, bytes);
        detail.debug = value.get("debug").cloned();
        Some(detail)
    }
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                code,
                message: message.into(),
                details: Vec::new(),
                metadata: HeaderMap::new(),
                headers: HeaderMap::new(),
                source: None,
                wire: false,
            }),
        }
    }

    /// An error with `code` caused by `source`; the message is the source's display form.
    pub fn from_source(code: Code, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        let mut err = Self::new(code, source.to_string());
        err.inner.source = Some(source);
        err
    }

    /// A `canceled` error: the operation was canceled, typically by the caller. Local (see [`is_wire`](Self::is_wire)).
    pub fn canceled(message: impl Into<String>) -> Self {
        Self::new(Code::Canceled, message)
    }

    /// A `unknown` error: an unknown error (also what an unrecognised error from elsewhere maps to). Local (see [`is_wire`](Self::is_wire)).
    pub fn unknown(message: impl Into<String>) -> Self {
        Self::new(Code::Unknown, message)
    }

    /// A `invalid_argument` error: the client specified an invalid argument, whatever the system's state. Local (see [`is_wire`](Self::is_wire)).
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, message)
    }

    /// A `deadline_exceeded` error: the deadline expired before the operation could complete. Local (see [`is_wire`](Self::is_wire)).
    pub fn deadline_exceeded(message: impl Into<String>) -> Self {
        Self::new(Code::DeadlineExceeded, message)
    }

    /// A `not_found` error: a requested entity was not found. Local (see [`is_wire`](Self::is_wire)).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// A `already_exists` error: the entity a client tried to create already exists. Local (see [`is_wire`](Self::is_wire)).
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(Code::AlreadyExists, message)
    }

    /// A `permission_denied` error: the caller is known but may not do this. Local (see [`is_wire`](Self::is_wire)).
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(Code::PermissionDenied, message)
    }

    /// A `resource_exhausted` error: a resource (quota, space, message size) is exhausted. Local (see [`is_wire`](Self::is_wire)).
    pub fn resource_exhausted(message: impl Into<String>) -> Self {
        Self::new(Code::ResourceExhausted, message)
    }

    /// A `failed_precondition` error: the system is not in the state the operation requires. Local (see [`is_wire`](Self::is_wire)).
    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, message)
    }

    /// A `aborted` error: the operation was aborted, typically by a concurrency conflict. Local (see [`is_wire`](Self::is_wire)).
    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(Code::Aborted, message)
    }

    /// A `out_of_range` error: the operation went past the valid range. Local (see [`is_wire`](Self::is_wire)).
    pub fn out_of_range(message: impl Into<String>) -> Self {
        Self::new(Code::OutOfRange, message)
    }

    /// A `unimplemented` error: the operation is not implemented or not supported. Local (see [`is_wire`](Self::is_wire)).
    pub fn unimplemented(message: impl Into<String>) -> Self {
        Self::new(Code::Unimplemented, message)
    }

    /// A `internal` error: an internal invariant was broken. Local (see [`is_wire`](Self::is_wire)).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Code::Internal, message)
    }

    /// A `unavailable` error: the service is unavailable for now; retrying may help. Local (see [`is_wire`](Self::is_wire)).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::Unavailable, message)
    }

    /// A `data_loss` error: unrecoverable data loss or corruption. Local (see [`is_wire`](Self::is_wire)).
    pub fn data_loss(message: impl Into<String>) -> Self {
        Self::new(Code::DataLoss, message)
    }

    /// A `unauthenticated` error: the request lacks valid authentication credentials. Local (see [`is_wire`](Self::is_wire)).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    /// Adds a typed detail.
    pub fn with_detail(mut self, detail: ErrorDetail) -> Self {
        self.inner.details.push(detail);
        self
    }

    /// Adds metadata (sent as headers or trailers, by protocol).
    pub fn with_metadata(mut self, metadata: HeaderMap) -> Self {
        self.inner.metadata.extend(metadata);
        self
    }

    /// Attaches a cause without changing the message.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.inner.code
    }

    /// The message (may be empty).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The typed details.
    pub fn details(&self) -> &[ErrorDetail] {
        &self.inner.details
    }

    /// Adds a detail in place.
    pub fn push_detail(&mut self, detail: ErrorDetail) {
        self.inner.details.push(detail);
    }

    /// Metadata: headers and trailers that travel with the error.
    pub fn metadata(&self) -> &HeaderMap {
        &self.inner.metadata
    }

    /// Metadata, mutable.
    pub fn metadata_mut(&mut self) -> &mut HeaderMap {
        &mut self.inner.metadata
    }

    /// Response headers a server sends before the error. gRPC and gRPC-Web then answer with
    /// a HEADERS block followed by the status trailers instead of a trailers-only response;
    /// Connect sends them as ordinary response headers. [`metadata`](Self::metadata) travels
    /// as trailers (gRPC, gRPC-Web, Connect streams) or headers (Connect unary).
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// Response headers sent before the error, mutable.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        &mut self.inner.headers
    }

    /// Builder form of [`headers_mut`](Self::headers_mut).
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.inner.headers.extend(headers);
        self
    }

    /// Whether the peer sent this error, as opposed to it arising in this process.
    ///
    /// - **Wire** errors are the ones a client decoded from a response: a Connect error body
    ///   or end-of-stream message, a `grpc-status` other than 0 in gRPC or gRPC-Web trailers
    ///   (or a trailers-only response), and errors built with [`into_wire`](Self::into_wire).
    /// - **Local** errors are everything else: every constructor ([`new`](Self::new),
    ///   [`not_found`](Self::not_found), [`from_status_proto`](Self::from_status_proto), ...)
    ///   builds one, and the client raises them itself for a connection failure
    ///   (`unavailable`), an expired deadline (`deadline_exceeded`), a malformed response
    ///   (`internal`, `unknown`), a message over the receive limit (`resource_exhausted`), or
    ///   a call cancelled by dropping it.
    ///
    /// A server writes both kinds the same way. Proxies and retry policies use the difference:
    /// only a wire error says what the peer decided.
    pub fn is_wire(&self) -> bool {
        self.inner.wire
    }

    /// Marks this error as received over the wire, for errors a peer sent by other means than
    /// the protocol's error channel: a `google.rpc.Status` carried in a response message, a
    /// status relayed from another transport. Everything else is kept.
    ///
    /// ```
    /// use volley::{Code, Error};
    ///
    /// let err = Error::new(Code::Aborted, "lost a race").into_wire();
    /// assert!(err.is_wire());
    /// assert_eq!(err.code(), Code::Aborted);
    /// ```
    pub fn into_wire(mut self) -> Self {
        self.inner.wire = true;
        self
    }

    /// A wire error (see [`is_wire`](Self::is_wire)) from a binary-encoded `google.rpc.Status`
    /// (code, message and details); `None` when the bytes are malformed or the code is OK (0)
    /// or unknown. A generated `google.rpc.Status` message becomes one through its encoding:
    /// `Error::from_wire_status(&status.encode_to_vec())`.
    ///
    /// ```
    /// use volley::{Code, Error, ErrorDetail};
    ///
    /// // A status a bidi response message carried, encoded as google.rpc.Status.
    /// let sent = Error::not_found("no row 7").with_detail(ErrorDetail::new("acme.Row", vec![8, 7]));
    /// let bytes = sent.to_status_proto();
    ///
    /// let received = Error::from_wire_status(&bytes).expect("a non-OK status");
    /// assert!(received.is_wire());
    /// assert_eq!(received.code(), Code::NotFound);
    /// assert_eq!(received.message(), "no row 7");
    /// assert_eq!(received.details()[0].type_name(), "acme.Row");
    /// assert!(Error::from_wire_status(&[]).is_none(), "an empty Status is OK, not an error");
    /// ```
    pub fn from_wire_status(status: &[u8]) -> Option<Self> {
        Self::from_status_proto(status).map(Self::into_wire)
    }

    /// Whether the code is `deadline_exceeded`.
    pub fn is_deadline_exceeded(&self) -> bool {
        self.inner.code == Code::DeadlineExceeded
    }

    /// Whether the code is `canceled`.
    pub fn is_canceled(&self) -> bool {
        self.inner.code == Code::Canceled
    }

    /// The Connect JSON error body: `{"code", "message"?, "details"?}`.
    pub fn to_connect_json(&self) -> serde_json::Value {
        let mut obj = serde_json::Map::new();
        obj.insert("code".into(), self.code().as_str().into());
        if !self.message().is_empty() {
            obj.insert("message".into(), self.message().into());
        }
        if !self.details().is_empty() {
            obj.insert(
                "details".into(),
                self.details()
                    .iter()
                    .map(ErrorDetail::to_connect_json)
                    .collect(),
            );
        }
        serde_json::Value::Object(obj)
    }

    /// Parses a Connect JSON error body; `None` when it is not one.
    pub fn from_connect_json(value: &serde_json::Value) -> Option<Self> {
        let code: Code = value.get("code")?.as_str()?.parse().ok()?;
        Self::from_connect_json_or(value, code)
    }

    /// Parses a Connect JSON error body whose code may be missing, null or unknown: such a
    /// code becomes `fallback` (the HTTP status's code, or `unknown`), the rest is kept.
    /// `None` when the body is not a JSON object.
    pub(crate) fn from_connect_json_or(value: &serde_json::Value, fallback: Code) -> Option<Self> {
        let obj = value.as_object()?;
        let code = obj
            .get("code")
            .and_then(|c| c.as_str())
            .and_then(|c| c.parse().ok())
            .unwrap_or(fallback);
        let message = obj.get("message").and_then(|m| m.as_str()).unwrap_or("");
        let mut err = Self::new(code, message);
        if let Some(details) = obj.get("details").and_then(|d| d.as_array()) {
            err.inner.details = details
                .iter()
                .filter_map(ErrorDetail::from_connect_json)
                .collect();
        }
        Some(err)
    }

    /// Encodes a `google.rpc.Status` for `grpc-status-details-bin`.
    pub fn to_status_proto(&self) -> Vec<u8> {
        let mut out = Vec::new();
        crate::wire::put_varint_field(&mut out, 1, self.code().as_u32() as u64);
        crate::wire::put_bytes_field(&mut out, 2, self.message().as_bytes());
        for detail in self.details() {
            let mut any = Vec::new();
            crate::wire::put_bytes_field(&mut any, 1, detail.type_url().as_bytes());
            crate::wire::put_bytes_field(&mut any, 2, detail.value());
            crate::wire::put_bytes_field(&mut out, 3, &any);
        }
        out
    }

    /// Decodes a `google.rpc.Status`; `None` when malformed or its code is OK. The error is
    /// local; [`from_wire_status`](Self::from_wire_status) decodes one received from a peer.
    pub fn from_status_proto(bytes: &[u8]) -> Option<Self> {
        let mut code = 0u64;
        let mut message = String::new();
        let mut details = Vec::new();
        for field in crate::wire::Fields::new(bytes) {
            match field.ok()? {
                (1, crate::wire::Value::Varint(v)) => code = v,
                (2, crate::wire::Value::Bytes(b)) => {
                    message = String::from_utf8(b.to_vec()).ok()?
                }
                (3, crate::wire::Value::Bytes(b)) => {
                    let mut type_url = String::new();
                    let mut value = Bytes::new();
                    for f in crate::wire::Fields::new(b) {
                        match f.ok()? {
                            (1, crate::wire::Value::Bytes(t)) => {
                                type_url = String::from_utf8(t.to_vec()).ok()?
                            }
                            (2, crate::wire::Value::Bytes(v)) => value = Bytes::copy_from_slice(v),
                            _ => {}
                        }
                    }
                    details.push(ErrorDetail::new(type_url, value));
                }
                _ => {}
            }
        }
        let code = Code::from_u32(u32::try_from(code).ok()?)?;
        let mut err = Self::new(code, message);
        err.inner.details = details;
        Some(err)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("code", &self.inner.code)
            .field("message", &self.inner.message);
        if !self.inner.details.is_empty() {
            d.field("details", &self.inner.details);
        }
        if !self.inner.metadata.is_empty() {
            d.field("metadata", &self.inner.metadata);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inner.message.is_empty() {
            f.write_str(self.inner.code.as_str())
        } else {
            write!(f, "{}: {}", self.inner.code, self.inner.message)
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        let code = match err.kind() {
            std::io::ErrorKind::TimedOut => Code::DeadlineExceeded,
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::NotConnected => Code::Unavailable,
            _ => Code::Unknown,
        };
        Self::from_source(code, err)
    }
}

impl From<tokio::time::error::Elapsed> for Error {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        Self::deadline_exceeded("the deadline expired")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_json_round_trip() {
        let err = Error::new(Code::FailedPrecondition, "not yet").with_detail(ErrorDetail::new(
            "type.googleapis.com/my.Detail",
            vec![1, 2, 3],
        ));
        let json = err.to_connect_json();
        assert_eq!(json["code"], "failed_precondition");
        assert_eq!(json["details"][0]["type"], "my.Detail");
        assert_eq!(json["details"][0]["value"], "AQID");
        let back = Error::from_connect_json(&json).unwrap();
        assert_eq!(back.code(), Code::FailedPrecondition);
        assert_eq!(back.message(), "not yet");
        assert_eq!(back.details(), err.details());
    }

    #[test]
    fn status_proto_round_trip() {
        let err = Error::new(Code::Unavailable, "try later ✓")
            .with_detail(ErrorDetail::new("a.B", vec![0xff, 0]));
        let back = Error::from_status_proto(&err.to_status_proto()).unwrap();
        assert_eq!(back.code(), Code::Unavailable);
        assert_eq!(back.message(), "try later ✓");
        assert_eq!(back.details()[0].type_name(), "a.B");
        assert_eq!(back.details()[0].value().as_ref(), &[0xff, 0]);
    }

    #[test]
    fn malformed_json_is_not_an_error() {
        assert!(Error::from_connect_json(&serde_json::json!({"code": "nope"})).is_none());
        assert!(Error::from_connect_json(&serde_json::json!([1])).is_none());
    }
}
