//! The three wire protocols. Inside the crate, one module per protocol (`connect`, `grpc`,
//! and `grpc_web`, built on gRPC's helpers) holds its server and client halves side by side,
//! implementing the crate-private traits `Wire` (what both sides share), `ServerRules` and
//! `ClientRules` on a zero-sized type. A `ContentType` carries the protocol, and its methods
//! are the only place that picks the implementation (a `match` on a `Copy` enum: static
//! dispatch, no boxes); router, respond and the client call those methods and never branch
//! on the protocol. The message pipeline itself (framing, compression, limits) is shared in
//! the crate's `stream` module.

pub(crate) mod connect;
pub(crate) mod grpc;
pub(crate) mod grpc_web;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

use crate::codec::{CodecHandle, Codecs};
use crate::handler::CallOutput;
use crate::respond::Call;
use crate::stream::Body;
use crate::{Error, StreamType};

/// The three wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// Connect: unary as plain HTTP, streams enveloped.
    #[default]
    Connect,
    /// gRPC over HTTP/2 with trailers.
    Grpc,
    /// gRPC-Web: trailers in the body; any HTTP version.
    GrpcWeb,
}

impl Protocol {
    /// The protocol's name (`connect`, `grpc`, `grpc_web`), as tracing records it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Connect => "connect",
            Protocol::Grpc => "grpc",
            Protocol::GrpcWeb => "grpc_web",
        }
    }
}

/// What a request's content type says: protocol, codec, and the variant within the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContentType {
    pub(crate) protocol: Protocol,
    pub(crate) codec: CodecHandle,
    /// Connect: an un-enveloped unary body. gRPC-Web: the base64 text variant.
    pub(crate) variant: bool,
}

/// Outcome of reading a content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Classified {
    Known(ContentType),
    /// A recognised protocol with a codec we do not have.
    UnknownCodec(Protocol),
    /// Not an RPC content type at all.
    Unknown,
}

/// Classifies a request content type (parameters such as `charset` are ignored) against the
/// accepted `codecs`. Works on the header's bytes: every name it matches is ASCII, so a value
/// with other bytes is simply not one of them.
pub(crate) fn classify(content_type: &(impl AsRef<[u8]> + ?Sized), codecs: &Codecs) -> Classified {
    let content_type = content_type.as_ref();
    // Nearly every peer sends the bare lowercase type: matched as it is, before any copy or
    // scan for parameters, whitespace and case.
    if let Some(rest) = content_type.strip_prefix(b"application/")
        && let known @ Classified::Known(_) = classify_subtype(rest, codecs)
    {
        return known;
    }
    let end = content_type
        .iter()
        .position(|&b| b == b';')
        .unwrap_or(content_type.len());
    let base = content_type[..end].trim_ascii();
    let lowered;
    let base = if base.iter().any(u8::is_ascii_uppercase) {
        lowered = base.to_ascii_lowercase();
        &lowered[..]
    } else {
        base
    };
    match base.strip_prefix(b"application/") {
        Some(rest) => classify_subtype(rest, codecs),
        None => Classified::Unknown,
    }
}

/// Classifies what follows `application/` in a content type.
fn classify_subtype(rest: &[u8], codecs: &Codecs) -> Classified {
    let codec = |name: &[u8]| std::str::from_utf8(name).ok().and_then(|n| codecs.get(n));
    let (protocol, variant, sub) = if let Some(sub) = rest.strip_prefix(b"grpc-web-text") {
        (Protocol::GrpcWeb, true, sub)
    } else if let Some(sub) = rest.strip_prefix(b"grpc-web") {
        (Protocol::GrpcWeb, false, sub)
    } else if let Some(sub) = rest.strip_prefix(b"grpc") {
        (Protocol::Grpc, false, sub)
    } else if let Some(sub) = rest.strip_prefix(b"connect+") {
        return match codec(sub) {
            Some(codec) => Classified::Known(ContentType {
                protocol: Protocol::Connect,
                codec,
                variant: false,
            }),
            None => Classified::UnknownCodec(Protocol::Connect),
        };
    } else {
        return match codec(rest) {
            Some(codec) => Classified::Known(ContentType {
                protocol: Protocol::Connect,
                codec,
                variant: true,
            }),
            None => Classified::Unknown,
        };
    };
    let codec = match sub {
        b"" => Some(CodecHandle::Proto),
        s => s.strip_prefix(b"+").and_then(codec),
    };
    match codec {
        Some(codec) => Classified::Known(ContentType {
            protocol,
            codec,
            variant,
        }),
        None if sub.starts_with(b"+") => Classified::UnknownCodec(protocol),
        None => Classified::Unknown,
    }
}

impl Classified {
    /// The content type to answer in when the request cannot be served as it is: its own
    /// when known, else its protocol's fallback (Connect when not an RPC content type).
    pub(crate) fn or_fallback(self) -> ContentType {
        match self {
            Classified::Known(ct) => ct,
            Classified::UnknownCodec(p) => p.fallback(),
            Classified::Unknown => Protocol::Connect.fallback(),
        }
    }
}

/// The `accept-post` value of a 415 response: every content type a procedure of this stream
/// type accepts.
pub(crate) fn accept_post(stream_type: StreamType, codecs: &Codecs) -> HeaderValue {
    if codecs.is_default() {
        return HeaderValue::from_static(default_accept_post(stream_type));
    }
    let unary = stream_type == StreamType::Unary;
    let mut out = String::new();
    for name in codecs.names() {
        if unary {
            out.push_str(&format!("application/{name}, "));
        } else {
            out.push_str(&format!("application/connect+{name}, "));
        }
        out.push_str(&format!(
            "application/grpc+{name}, application/grpc-web+{name}, "
        ));
    }
    out.push_str("application/grpc, application/grpc-web, application/grpc-web-text");
    HeaderValue::from_str(&out)
        .unwrap_or_else(|_| HeaderValue::from_static(default_accept_post(stream_type)))
}

/// [`accept_post`] for the built-in codecs alone.
fn default_accept_post(stream_type: StreamType) -> &'static str {
    if stream_type == StreamType::Unary {
        "application/proto, application/json, application/grpc, application/grpc+proto, application/grpc+json, application/grpc-web, application/grpc-web+proto, application/grpc-web+json, application/grpc-web-text"
    } else {
        "application/connect+proto, application/connect+json, application/grpc, application/grpc+proto, application/grpc+json, application/grpc-web, application/grpc-web+proto, application/grpc-web+json, application/grpc-web-text"
    }
}

/// What a request head says, once a protocol has read it: the header values naming the
/// message encoding and the accepted ones, and the timeout (kept as a result so the router
/// reports an unknown encoding before a bad timeout, whatever the protocol).
pub(crate) struct RequestHead<'a> {
    pub(crate) encoding: Option<&'a HeaderValue>,
    pub(crate) accept_encoding: Option<&'a HeaderValue>,
    pub(crate) timeout: Result<Option<Duration>, Error>,
}

/// What the client puts in a request head besides the content type and user headers.
pub(crate) struct ClientHead {
    /// The request compression, if any.
    pub(crate) compression: Option<&'static str>,
    /// The `*-accept-encoding` value, if any.
    pub(crate) accept: Option<HeaderValue>,
    pub(crate) timeout: Option<Duration>,
}

/// The rules both halves of a protocol share.
pub(crate) trait Wire {
    /// The content type a request carries, and its response.
    fn content_type(ct: &ContentType) -> HeaderValue;
    /// The headers naming the message encoding and the accepted encodings, in that order.
    fn encoding_headers(ct: &ContentType) -> (http::HeaderName, http::HeaderName);
    /// Whether the body is one un-enveloped message (Connect unary).
    fn is_unenveloped(_ct: &ContentType) -> bool {
        false
    }
    /// Whether the body is base64 text (gRPC-Web text).
    fn is_text(_ct: &ContentType) -> bool {
        false
    }
    /// A chunk of enveloped body as it goes on the wire.
    fn body_chunk(_ct: &ContentType, framed: Bytes) -> Bytes {
        framed
    }
}

/// The server half: reading a request head, writing responses, errors and the end of stream.
pub(crate) trait ServerRules: Wire {
    /// Whether a procedure of `stream_type` takes this content type.
    fn accepts(_ct: &ContentType, _stream_type: StreamType) -> bool {
        true
    }
    /// Reads the protocol's request headers: version, encodings, timeout.
    fn read_head<'a>(
        ct: &ContentType,
        headers: &'a HeaderMap,
        require_version: bool,
    ) -> Result<RequestHead<'a>, Error>;
    /// Writes a handler's result (by default as an enveloped response).
    fn respond(call: Call, result: Result<CallOutput, Error>) -> http::Response<Body> {
        crate::respond::enveloped(call, result)
    }
    /// An error before any message.
    fn immediate_error(ct: &ContentType, err: &Error) -> http::Response<Body>;
    /// The answer for an unknown procedure.
    fn not_found(ct: &ContentType, err: &Error) -> http::Response<Body> {
        Self::immediate_error(ct, err)
    }
    /// The last body frame (or HTTP trailers) of an enveloped response.
    fn end_of_stream(
        ct: &ContentType,
        error: Option<&Error>,
        trailers: HeaderMap,
    ) -> http_body::Frame<Bytes>;
}

/// The client half: the request head and the reading of the response's head and end.
pub(crate) trait ClientRules: Wire {
    /// Whether the protocol needs HTTP/2 (cleartext clients then speak h2c from the start).
    // Read only by the built-in transport (feature `client`).
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    const REQUIRES_HTTP2: bool = false;
    /// The envelope flag of the final control frame, 0 when the protocol has none.
    const CONTROL_FLAG: u8;
    /// The content type of a call.
    fn client_content_type(codec: CodecHandle, stream_type: StreamType, text: bool) -> ContentType;
    /// Adds the protocol's request headers.
    fn request_headers(ct: &ContentType, h: &mut HeaderMap, head: &ClientHead);
    /// Whether a response's content type (without parameters, lowercase) answers `ct`.
    fn response_content_type_ok(ct: &ContentType, base: &str) -> bool;
    /// A status carried in the response headers (a gRPC trailers-only response).
    fn header_status(_headers: &HeaderMap) -> Option<Result<HeaderMap, Error>> {
        None
    }
    /// Reads the final control frame: the trailers, or the error it carries.
    fn parse_control(block: &[u8]) -> Result<HeaderMap, Error>;
    /// The end of a response body that had no control frame: the HTTP trailers, the status
    /// seen in the headers, and whether any message came.
    fn end_without_control(
        http_trailers: Option<HeaderMap>,
        header_status: Option<Result<HeaderMap, Error>>,
        seen_message: bool,
    ) -> Result<HeaderMap, Error>;
}

/// Runs `$body` with `$P` naming the rules of `$protocol`: the one dispatch point.
macro_rules! rules {
    ($protocol:expr, $P:ident => $body:expr) => {
        match $protocol {
            Protocol::Connect => {
                type $P = connect::Connect;
                $body
            }
            Protocol::Grpc => {
                type $P = grpc::Grpc;
                $body
            }
            Protocol::GrpcWeb => {
                type $P = grpc_web::GrpcWeb;
                $body
            }
        }
    };
}

impl Protocol {
    /// The OpenTelemetry `rpc.system` value.
    pub(crate) fn rpc_system(self) -> &'static str {
        match self {
            Protocol::Connect => "connect_rpc",
            Protocol::Grpc | Protocol::GrpcWeb => "grpc",
        }
    }

    /// The content type errors are written in when the request's codec is not known: Connect
    /// unary (a JSON error body), or the protocol's binary one.
    pub(crate) fn fallback(self) -> ContentType {
        ContentType {
            protocol: self,
            codec: CodecHandle::Proto,
            variant: self == Protocol::Connect,
        }
    }

    /// Whether the protocol needs HTTP/2.
    // Read only by the built-in transport (feature `client`).
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn requires_http2(self) -> bool {
        rules!(self, P => P::REQUIRES_HTTP2)
    }
}

impl ContentType {
    /// The content type of a client call; `text` asks for gRPC-Web text (ignored otherwise).
    pub(crate) fn for_client(
        protocol: Protocol,
        codec: CodecHandle,
        stream_type: StreamType,
        text: bool,
    ) -> Self {
        rules!(protocol, P => P::client_content_type(codec, stream_type, text))
    }

    /// The `content-type` value of a request and of its response.
    pub(crate) fn header_value(&self) -> HeaderValue {
        rules!(self.protocol, P => P::content_type(self))
    }

    /// The headers naming the message encoding and the accepted encodings.
    pub(crate) fn encoding_headers(&self) -> (http::HeaderName, http::HeaderName) {
        rules!(self.protocol, P => P::encoding_headers(self))
    }

    /// Whether the body is one un-enveloped message (Connect unary).
    pub(crate) fn is_unenveloped(&self) -> bool {
        rules!(self.protocol, P => P::is_unenveloped(self))
    }

    /// Whether the body is base64 text.
    pub(crate) fn is_text(&self) -> bool {
        rules!(self.protocol, P => P::is_text(self))
    }

    /// A chunk of enveloped body as it goes on the wire.
    pub(crate) fn body_chunk(&self, framed: Bytes) -> Bytes {
        rules!(self.protocol, P => P::body_chunk(self, framed))
    }

    /// See [`ServerRules::accepts`].
    pub(crate) fn accepts(&self, stream_type: StreamType) -> bool {
        rules!(self.protocol, P => P::accepts(self, stream_type))
    }

    /// See [`ServerRules::read_head`].
    pub(crate) fn read_head<'a>(
        &self,
        headers: &'a HeaderMap,
        require_version: bool,
    ) -> Result<RequestHead<'a>, Error> {
        rules!(self.protocol, P => P::read_head(self, headers, require_version))
    }

    /// See [`ServerRules::respond`].
    pub(crate) fn respond(call: Call, result: Result<CallOutput, Error>) -> http::Response<Body> {
        rules!(call.content_type.protocol, P => P::respond(call, result))
    }

    /// See [`ServerRules::immediate_error`].
    pub(crate) fn immediate_error(&self, err: &Error) -> http::Response<Body> {
        rules!(self.protocol, P => P::immediate_error(self, err))
    }

    /// See [`ServerRules::not_found`].
    pub(crate) fn not_found(&self, err: &Error) -> http::Response<Body> {
        rules!(self.protocol, P => P::not_found(self, err))
    }

    /// See [`ServerRules::end_of_stream`].
    pub(crate) fn end_of_stream(
        &self,
        error: Option<&Error>,
        trailers: HeaderMap,
    ) -> http_body::Frame<Bytes> {
        rules!(self.protocol, P => P::end_of_stream(self, error, trailers))
    }

    /// See [`ClientRules::request_headers`].
    pub(crate) fn request_headers(&self, h: &mut HeaderMap, head: &ClientHead) {
        rules!(self.protocol, P => P::request_headers(self, h, head))
    }

    /// See [`ClientRules::response_content_type_ok`].
    pub(crate) fn response_content_type_ok(&self, base: &str) -> bool {
        rules!(self.protocol, P => P::response_content_type_ok(self, base))
    }

    /// See [`ClientRules::header_status`].
    pub(crate) fn header_status(&self, headers: &HeaderMap) -> Option<Result<HeaderMap, Error>> {
        rules!(self.protocol, P => P::header_status(headers))
    }

    /// See [`ClientRules::CONTROL_FLAG`].
    pub(crate) fn control_flag(&self) -> u8 {
        rules!(self.protocol, P => P::CONTROL_FLAG)
    }

    /// See [`ClientRules::parse_control`].
    pub(crate) fn parse_control(&self, block: &[u8]) -> Result<HeaderMap, Error> {
        rules!(self.protocol, P => P::parse_control(block))
    }

    /// See [`ClientRules::end_without_control`].
    pub(crate) fn end_without_control(
        &self,
        http_trailers: Option<HeaderMap>,
        header_status: Option<Result<HeaderMap, Error>>,
        seen_message: bool,
    ) -> Result<HeaderMap, Error> {
        rules!(self.protocol, P => P::end_without_control(http_trailers, header_status, seen_message))
    }
}

/// `application/{prefix}{name}` for a registered codec's name (a checked token, so the value
/// is always valid).
pub(crate) fn named_content_type(prefix: &str, name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("application/{prefix}{name}"))
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// Whether `base` is `application/{prefix}+{codec}`, or the bare `application/{prefix}` that
/// stands for proto in the gRPC family.
pub(crate) fn content_type_matches(
    base: &str,
    prefix: &str,
    codec: &CodecHandle,
    bare_is_proto: bool,
) -> bool {
    let Some(rest) = base
        .strip_prefix("application/")
        .and_then(|r| r.strip_prefix(prefix))
    else {
        return false;
    };
    match rest.strip_prefix('+') {
        Some(name) => name == codec.name(),
        None => rest.is_empty() && bare_is_proto && codec.is_proto(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{DEFAULT_CODECS, JsonCodec};

    /// JSON under another name.
    struct Other;

    impl crate::Codec for Other {
        fn name(&self) -> &str {
            "x-other"
        }
        fn encode(
            &self,
            message: crate::codec::MessageRef<'_>,
            buf: &mut bytes::BytesMut,
        ) -> Result<(), Error> {
            JsonCodec.encode(message, buf)
        }
        fn decode(&self, bytes: Bytes, slot: crate::codec::MessageSlot<'_>) -> Result<(), Error> {
            JsonCodec.decode(bytes, slot)
        }
    }

    #[test]
    fn registered_codecs_are_classified_in_every_protocol() {
        let mut codecs = Codecs::default();
        codecs.register(Other);
        for (s, protocol, variant) in [
            ("application/x-other", Protocol::Connect, true),
            ("application/connect+x-other", Protocol::Connect, false),
            ("application/grpc+x-other", Protocol::Grpc, false),
            ("application/grpc-web+x-other", Protocol::GrpcWeb, false),
            ("application/grpc-web-text+x-other", Protocol::GrpcWeb, true),
        ] {
            let Classified::Known(ct) = classify(s, &codecs) else {
                panic!("{s}");
            };
            assert_eq!(
                (ct.protocol, ct.variant, ct.codec.name()),
                (protocol, variant, "x-other")
            );
            assert_eq!(ct.header_value(), s);
            assert!(ct.response_content_type_ok(s));
        }
        assert_eq!(
            classify("application/grpc+x-other", &DEFAULT_CODECS),
            Classified::UnknownCodec(Protocol::Grpc)
        );
        let post = accept_post(StreamType::Unary, &codecs);
        assert!(post.to_str().unwrap().contains("application/grpc+x-other"));
        assert_eq!(
            accept_post(StreamType::Unary, &DEFAULT_CODECS),
            default_accept_post(StreamType::Unary)
        );
    }

    fn known(s: &str) -> ContentType {
        match classify(s, &DEFAULT_CODECS) {
            Classified::Known(ct) => ct,
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn content_types_match_with_and_without_codec() {
        assert!(content_type_matches(
            "application/grpc",
            "grpc",
            &CodecHandle::Proto,
            true
        ));
        assert!(!content_type_matches(
            "application/grpc",
            "grpc",
            &CodecHandle::Json,
            true
        ));
        assert!(content_type_matches(
            "application/grpc+json",
            "grpc",
            &CodecHandle::Json,
            true
        ));
        assert!(!content_type_matches(
            "application/grpc-web+proto",
            "grpc",
            &CodecHandle::Proto,
            true
        ));
        assert!(!content_type_matches(
            "application/connect",
            "connect",
            &CodecHandle::Proto,
            false
        ));
        assert!(content_type_matches(
            "application/connect+proto",
            "connect",
            &CodecHandle::Proto,
            false
        ));
    }

    #[test]
    fn fallbacks_and_header_values() {
        assert_eq!(
            Classified::Unknown.or_fallback(),
            Protocol::Connect.fallback()
        );
        assert!(Protocol::Connect.fallback().is_unenveloped());
        let web = Classified::UnknownCodec(Protocol::GrpcWeb).or_fallback();
        assert_eq!(web.header_value(), "application/grpc-web+proto");
        assert!(Protocol::Grpc.requires_http2());
        assert!(!Protocol::GrpcWeb.requires_http2());
        for s in [
            "application/json",
            "application/connect+proto",
            "application/grpc+json",
            "application/grpc-web+proto",
            "application/grpc-web-text+json",
        ] {
            assert_eq!(known(s).header_value(), s);
        }
    }

    #[test]
    fn classifies_every_protocol() {
        assert_eq!(known("application/grpc").protocol, Protocol::Grpc);
        assert_eq!(known("application/grpc+json").codec, CodecHandle::Json);
        assert!(known("application/grpc-web-text+proto").variant);
        assert_eq!(known("application/grpc-web").protocol, Protocol::GrpcWeb);
        assert!(!known("application/connect+json").variant);
        assert!(known("application/json; charset=utf-8").variant);
        assert_eq!(known("Application/Proto").codec, CodecHandle::Proto);
        assert_eq!(
            classify("application/grpc+cbor", &DEFAULT_CODECS),
            Classified::UnknownCodec(Protocol::Grpc)
        );
        assert_eq!(
            classify("application/connect+xml", &DEFAULT_CODECS),
            Classified::UnknownCodec(Protocol::Connect)
        );
        assert_eq!(classify("text/html", &DEFAULT_CODECS), Classified::Unknown);
        assert_eq!(
            classify("application/xml", &DEFAULT_CODECS),
            Classified::Unknown
        );
        assert_eq!(
            classify("application/grpcfoo", &DEFAULT_CODECS),
            Classified::Unknown
        );
    }
}
