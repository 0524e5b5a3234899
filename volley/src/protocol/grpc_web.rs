//! gRPC-Web (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-WEB.md>): gRPC's
//! messages, headers and status, over any HTTP version.
//!
//! - Content types `application/grpc-web[+proto|+json]`, and the text variant
//!   `application/grpc-web-text[+proto|+json]`, whose bodies (both ways) are the same
//!   envelopes in standard base64. Text senders may encode each chunk on its own, padding
//!   included, so readers decode 4-character groups as they come.
//! - Requests carry `x-grpc-web: 1` instead of `te: trailers`; `grpc-timeout` and the
//!   encoding headers are gRPC's.
//! - The trailers travel in the body: a final envelope with flag `0x80` holding HTTP/1-style
//!   header lines (`name: value\r\n`), the status first. Trailers-only errors are gRPC's.
//!
//! Everything except the content types, the trailers frame and the text encoding is
//! [`super::grpc`]'s.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{ClientHead, ClientRules, ContentType, Protocol, RequestHead, ServerRules, Wire, grpc};
use crate::codec::CodecHandle;
use crate::envelope;
use crate::stream::{Body, full_body};
use crate::{Error, StreamType};

/// gRPC-Web's rules; [`ContentType::variant`] marks the text variant.
pub(crate) struct GrpcWeb;

impl Wire for GrpcWeb {
    fn content_type(ct: &ContentType) -> HeaderValue {
        match (ct.variant, &ct.codec) {
            (true, CodecHandle::Proto) => {
                HeaderValue::from_static("application/grpc-web-text+proto")
            }
            (true, CodecHandle::Json) => HeaderValue::from_static("application/grpc-web-text+json"),
            (false, CodecHandle::Proto) => HeaderValue::from_static("application/grpc-web+proto"),
            (false, CodecHandle::Json) => HeaderValue::from_static("application/grpc-web+json"),
            (true, CodecHandle::Custom(c)) => super::named_content_type("grpc-web-text+", c.name()),
            (false, CodecHandle::Custom(c)) => super::named_content_type("grpc-web+", c.name()),
        }
    }

    fn encoding_headers(_ct: &ContentType) -> (http::HeaderName, http::HeaderName) {
        grpc::ENCODING_HEADERS
    }

    fn is_text(ct: &ContentType) -> bool {
        ct.variant
    }

    fn body_chunk(ct: &ContentType, framed: Bytes) -> Bytes {
        if ct.variant {
            encode_text(&framed)
        } else {
            framed
        }
    }
}

impl ServerRules for GrpcWeb {
    fn read_head<'a>(
        _ct: &ContentType,
        headers: &'a HeaderMap,
        _require_version: bool,
    ) -> Result<RequestHead<'a>, Error> {
        Ok(grpc::read_head(headers))
    }

    fn immediate_error(ct: &ContentType, err: &Error) -> http::Response<Body> {
        grpc::immediate_error(ct, err, |status| {
            full_body(Self::body_chunk(ct, trailers_frame(&status)))
        })
    }

    /// The status and trailers as the body's last frame.
    fn end_of_stream(
        ct: &ContentType,
        error: Option<&Error>,
        trailers: HeaderMap,
    ) -> http_body::Frame<Bytes> {
        let frame = trailers_frame(&grpc::status_trailers(error, &trailers));
        http_body::Frame::data(Self::body_chunk(ct, frame))
    }
}

impl ClientRules for GrpcWeb {
    const CONTROL_FLAG: u8 = envelope::FLAG_TRAILERS;

    fn client_content_type(
        codec: CodecHandle,
        _stream_type: StreamType,
        text: bool,
    ) -> ContentType {
        ContentType {
            protocol: Protocol::GrpcWeb,
            codec,
            variant: text,
        }
    }

    fn request_headers(_ct: &ContentType, h: &mut HeaderMap, head: &ClientHead) {
        h.insert("x-grpc-web", HeaderValue::from_static("1"));
        grpc::request_headers(h, head);
    }

    fn response_content_type_ok(ct: &ContentType, base: &str) -> bool {
        let prefix = if ct.variant {
            "grpc-web-text"
        } else {
            "grpc-web"
        };
        super::content_type_matches(base, prefix, &ct.codec, true)
    }

    fn header_status(headers: &HeaderMap) -> Option<Result<HeaderMap, Error>> {
        grpc::parse_status(headers)
    }

    /// The trailers frame: its status, or the error it carries.
    fn parse_control(block: &[u8]) -> Result<HeaderMap, Error> {
        parse_trailers_block(block).and_then(|t| grpc::required_status(&t))
    }

    fn end_without_control(
        http_trailers: Option<HeaderMap>,
        header_status: Option<Result<HeaderMap, Error>>,
        seen_message: bool,
    ) -> Result<HeaderMap, Error> {
        // Lenient: a server that sends real HTTP trailers (over HTTP/2) is understood too.
        grpc::end_of_body(http_trailers, header_status, seen_message)
    }
}

/// Base64 (standard alphabet, padded) of one chunk of a text body.
pub(crate) fn encode_text(framed: &[u8]) -> Bytes {
    Bytes::from(base64::engine::general_purpose::STANDARD.encode(framed))
}

/// Encodes trailers as the body's final frame.
pub(crate) fn trailers_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = Vec::with_capacity(64);
    for (name, value) in trailers {
        block.extend_from_slice(name.as_str().as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    let mut out = BytesMut::with_capacity(block.len() + envelope::PREFIX_LEN);
    envelope::encode(envelope::FLAG_TRAILERS, &block, &mut out);
    out.freeze()
}

/// Parses a trailers block; malformed lines are an error.
pub(crate) fn parse_trailers_block(block: &[u8]) -> Result<HeaderMap, crate::Error> {
    let mut map = HeaderMap::new();
    let text = std::str::from_utf8(block)
        .map_err(|_| crate::Error::internal("protocol error: trailers are not valid UTF-8"))?;
    for line in text.split("\r\n").flat_map(|l| l.split('\n')) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            crate::Error::internal(format!("protocol error: invalid trailer line {line:?}"))
        })?;
        let name = HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| crate::Error::internal("protocol error: invalid trailer name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| crate::Error::internal("protocol error: invalid trailer value"))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_round_trip() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.append("x-a", HeaderValue::from_static("1"));
        t.append("x-a", HeaderValue::from_static("2"));
        let frame = trailers_frame(&t);
        assert_eq!(frame[0], envelope::FLAG_TRAILERS);
        assert_eq!(parse_trailers_block(&frame[5..]).unwrap(), t);
        assert!(parse_trailers_block(b"no colon here").is_err());
        let mixed = parse_trailers_block(b"Grpc-Status: 3\r\nGrpc-Message: x\r\n").unwrap();
        assert_eq!(mixed["grpc-status"], "3");
    }

    #[test]
    fn text_content_types_and_chunks() {
        let text = &GrpcWeb::client_content_type(CodecHandle::Json, StreamType::Unary, true);
        let binary =
            &GrpcWeb::client_content_type(CodecHandle::Proto, StreamType::BidiStream, false);
        assert_eq!(
            GrpcWeb::content_type(text),
            "application/grpc-web-text+json"
        );
        assert_eq!(GrpcWeb::content_type(binary), "application/grpc-web+proto");
        assert!(GrpcWeb::response_content_type_ok(
            text,
            "application/grpc-web-text+json"
        ));
        assert!(!GrpcWeb::response_content_type_ok(
            text,
            "application/grpc-web+json"
        ));
        assert!(GrpcWeb::response_content_type_ok(
            binary,
            "application/grpc-web"
        ));
        assert!(!GrpcWeb::response_content_type_ok(
            binary,
            "application/grpc-web-text"
        ));
        let framed = Bytes::from_static(&[0, 0, 0, 0, 1, 7]);
        assert_eq!(GrpcWeb::body_chunk(text, framed.clone()), "AAAAAAEH");
        assert_eq!(GrpcWeb::body_chunk(binary, framed.clone()), framed);
    }

    #[test]
    fn trailers_frame_carries_the_status() {
        let err = Error::new(crate::Code::Unavailable, "later");
        let frame = GrpcWeb::end_of_stream(
            &GrpcWeb::client_content_type(CodecHandle::Proto, StreamType::Unary, false),
            Some(&err),
            HeaderMap::new(),
        );
        let data = frame.into_data().unwrap();
        assert_eq!(data[0], envelope::FLAG_TRAILERS);
        let back = GrpcWeb::parse_control(&data[5..]).unwrap_err();
        assert_eq!(back.code(), crate::Code::Unavailable);
        assert!(GrpcWeb::parse_control(b"x-only: 1\r\n").is_err());
    }
}
