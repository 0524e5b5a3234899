//! gRPC over HTTP/2 (<https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md>).
//!
//! - Requests: `POST`, `content-type: application/grpc[+proto|+json]`, `te: trailers`,
//!   `grpc-timeout` (`<digits><H|M|S|m|u|n>`), `grpc-encoding` / `grpc-accept-encoding`.
//! - Every message, both ways, in a 5-byte envelope (flag, big-endian length); flag bit 0 set
//!   means compressed with the `grpc-encoding`.
//! - Responses: HTTP 200 always; the status in HTTP trailers: `grpc-status`, percent-encoded
//!   `grpc-message`, `grpc-status-details-bin` (a `google.rpc.Status`), then metadata.
//! - An error before any message is "trailers-only": the status in the response headers and
//!   an empty body. When the error carries headers of its own they go first and the status
//!   follows in the trailers, so peers see both.
//!
//! The status helpers here are shared with [`super::grpc_web`], which only moves the trailers
//! into the body.

use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};

use super::{ClientHead, ClientRules, ContentType, RequestHead, ServerRules, Wire};
use crate::codec::CodecHandle;
use crate::headers::{
    self, GRPC_ACCEPT_ENCODING, GRPC_ENCODING, GRPC_MESSAGE, GRPC_STATUS, GRPC_STATUS_DETAILS,
    GRPC_TIMEOUT, decode_binary_header, decode_grpc_message, encode_binary_header,
    encode_grpc_message,
};
use crate::stream::{Body, empty_body};
use crate::timeout::{format_grpc_timeout, parse_grpc_timeout};
use crate::{Code, Error, StreamType};

/// gRPC's rules.
pub(crate) struct Grpc;

impl Wire for Grpc {
    fn content_type(ct: &ContentType) -> HeaderValue {
        match &ct.codec {
            CodecHandle::Proto => HeaderValue::from_static("application/grpc+proto"),
            CodecHandle::Json => HeaderValue::from_static("application/grpc+json"),
            CodecHandle::Custom(c) => super::named_content_type("grpc+", c.name()),
        }
    }

    fn encoding_headers(_ct: &ContentType) -> (http::HeaderName, http::HeaderName) {
        ENCODING_HEADERS
    }
}

impl ServerRules for Grpc {
    fn read_head<'a>(
        _ct: &ContentType,
        headers: &'a HeaderMap,
        _require_version: bool,
    ) -> Result<RequestHead<'a>, Error> {
        Ok(read_head(headers))
    }

    fn immediate_error(ct: &ContentType, err: &Error) -> http::Response<Body> {
        immediate_error(ct, err, |status| {
            let frame = http_body::Frame::trailers(status);
            let once = futures_util::stream::iter([Ok::<_, crate::BoxError>(frame)]);
            http_body_util::BodyExt::boxed_unsync(http_body_util::StreamBody::new(once))
        })
    }

    fn end_of_stream(
        _ct: &ContentType,
        error: Option<&Error>,
        trailers: HeaderMap,
    ) -> http_body::Frame<Bytes> {
        http_body::Frame::trailers(status_trailers(error, &trailers))
    }
}

impl ClientRules for Grpc {
    const REQUIRES_HTTP2: bool = true;
    const CONTROL_FLAG: u8 = 0;

    fn client_content_type(
        codec: CodecHandle,
        _stream_type: StreamType,
        _text: bool,
    ) -> ContentType {
        ContentType {
            protocol: super::Protocol::Grpc,
            codec,
            variant: false,
        }
    }

    fn request_headers(_ct: &ContentType, h: &mut HeaderMap, head: &ClientHead) {
        h.insert(http::header::TE, HeaderValue::from_static("trailers"));
        request_headers(h, head);
    }

    fn response_content_type_ok(ct: &ContentType, base: &str) -> bool {
        super::content_type_matches(base, "grpc", &ct.codec, true)
    }

    fn header_status(headers: &HeaderMap) -> Option<Result<HeaderMap, Error>> {
        parse_status(headers)
    }

    fn parse_control(_block: &[u8]) -> Result<HeaderMap, Error> {
        // CONTROL_FLAG is 0: the reader never yields a control frame for gRPC.
        Err(Error::internal("protocol error: unexpected control frame"))
    }

    fn end_without_control(
        http_trailers: Option<HeaderMap>,
        header_status: Option<Result<HeaderMap, Error>>,
        seen_message: bool,
    ) -> Result<HeaderMap, Error> {
        end_of_body(http_trailers, header_status, seen_message)
    }
}

/// The encoding headers of the gRPC family.
pub(crate) const ENCODING_HEADERS: (http::HeaderName, http::HeaderName) =
    (GRPC_ENCODING, GRPC_ACCEPT_ENCODING);

/// Server: reads `grpc-encoding`, `grpc-accept-encoding` and `grpc-timeout`.
pub(crate) fn read_head(headers: &HeaderMap) -> RequestHead<'_> {
    let [encoding, accept_encoding, timeout] = headers::first_of(
        headers,
        [&GRPC_ENCODING, &GRPC_ACCEPT_ENCODING, &GRPC_TIMEOUT],
    );
    RequestHead {
        encoding,
        accept_encoding,
        timeout: timeout.map(parse_timeout).transpose(),
    }
}

fn parse_timeout(value: &HeaderValue) -> Result<Duration, Error> {
    parse_grpc_timeout(value.as_bytes())
        .ok_or_else(|| Error::invalid_argument(format!("invalid grpc-timeout {value:?}")))
}

/// Client: adds `grpc-timeout`, `grpc-encoding` and `grpc-accept-encoding`.
pub(crate) fn request_headers(h: &mut HeaderMap, head: &ClientHead) {
    if let Some(t) = head.timeout
        && let Ok(v) = HeaderValue::from_str(&format_grpc_timeout(t))
    {
        h.insert(GRPC_TIMEOUT, v);
    }
    if let Some(name) = head.compression {
        h.insert(GRPC_ENCODING, HeaderValue::from_static(name));
    }
    if let Some(a) = &head.accept {
        h.insert(GRPC_ACCEPT_ENCODING, a.clone());
    }
}

/// Server: an error before any message. Trailers-only (the status in the headers, an empty
/// body) unless the error carries headers: then those, and the status in `status_body`.
pub(crate) fn immediate_error(
    ct: &ContentType,
    err: &Error,
    status_body: impl FnOnce(HeaderMap) -> Body,
) -> http::Response<Body> {
    let status = status_trailers(Some(err), &HeaderMap::new());
    let with_headers = !err.headers().is_empty();
    let mut res = http::Response::new(if with_headers {
        status_body(status.clone())
    } else {
        empty_body()
    });
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, ct.header_value());
    if with_headers {
        headers::copy_user_headers(err.headers(), h);
    } else {
        h.extend(status);
    }
    res
}

/// Reads a status that must be there: trailers without `grpc-status` are a protocol error.
pub(crate) fn required_status(map: &HeaderMap) -> Result<HeaderMap, Error> {
    parse_status(map).unwrap_or_else(|| {
        Err(Error::internal(
            "protocol error: trailers carry no grpc-status",
        ))
    })
}

/// Client: the end of a response body: the status in the HTTP trailers, else a status seen
/// in the headers when no message came (a trailers-only response sent with an open body).
pub(crate) fn end_of_body(
    http_trailers: Option<HeaderMap>,
    header_status: Option<Result<HeaderMap, Error>>,
    seen_message: bool,
) -> Result<HeaderMap, Error> {
    match (http_trailers, header_status) {
        (Some(t), _) => required_status(&t),
        (None, Some(status)) if !seen_message => status,
        _ => Err(Error::internal(
            "protocol error: stream ended without trailers",
        )),
    }
}

/// The status trailers for a finished call: `grpc-status`, `grpc-message`,
/// `grpc-status-details-bin`, then the application's trailers and the error's metadata.
pub(crate) fn status_trailers(error: Option<&Error>, trailers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(trailers.len() + 3);
    crate::headers::copy_user_headers(trailers, &mut out);
    match error {
        None => {
            out.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        }
        Some(err) => {
            out.insert(GRPC_STATUS, HeaderValue::from(err.code().as_u32()));
            if !err.message().is_empty()
                && let Ok(v) = HeaderValue::try_from(encode_grpc_message(err.message()))
            {
                out.insert(GRPC_MESSAGE, v);
            }
            if !err.details().is_empty() {
                out.insert(
                    GRPC_STATUS_DETAILS,
                    encode_binary_header(&err.to_status_proto()),
                );
            }
            crate::headers::copy_user_headers(err.metadata(), &mut out);
        }
    }
    out
}

/// Reads a status out of trailers (or the headers of a trailers-only response).
/// `Ok` carries the remaining metadata; `None` when there is no `grpc-status` at all.
pub(crate) fn parse_status(map: &HeaderMap) -> Option<Result<HeaderMap, Error>> {
    let status = map.get(GRPC_STATUS)?;
    let mut metadata = HeaderMap::new();
    crate::headers::copy_user_headers(map, &mut metadata);
    let code = match status
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
    {
        Some(0) => return Some(Ok(metadata)),
        Some(n) => Code::from_u32(n).unwrap_or(Code::Unknown),
        None => {
            return Some(Err(Error::internal(format!(
                "protocol error: invalid grpc-status {status:?}"
            ))));
        }
    };
    let message = map
        .get(GRPC_MESSAGE)
        .map(|v| decode_grpc_message(v.as_bytes()))
        .unwrap_or_default();
    let mut err = match map
        .get(GRPC_STATUS_DETAILS)
        .and_then(decode_binary_header)
        .and_then(|b| Error::from_status_proto(&b))
    {
        // The details carry the authoritative status; the headers win on a mismatch, as
        // other implementations do, but the details list is kept.
        Some(from_details) => {
            let mut e = Error::new(code, message);
            for d in from_details.details() {
                e.push_detail(d.clone());
            }
            e
        }
        None => Error::new(code, message),
    };
    err.metadata_mut().extend(metadata);
    Some(Err(err.into_wire()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorDetail;

    #[test]
    fn status_round_trip() {
        let err = Error::new(Code::NotFound, "no such thing: 100%")
            .with_detail(ErrorDetail::new("x.Y", vec![1]));
        let mut user = HeaderMap::new();
        user.insert("x-user", HeaderValue::from_static("v"));
        let t = status_trailers(Some(&err), &user);
        assert_eq!(t[GRPC_STATUS], "5");
        assert_eq!(t[GRPC_MESSAGE], "no such thing: 100%25");
        let back = parse_status(&t).unwrap().unwrap_err();
        assert_eq!(back.code(), Code::NotFound);
        assert_eq!(back.message(), "no such thing: 100%");
        assert_eq!(back.details().len(), 1);
        assert_eq!(back.metadata()["x-user"], "v");
        let ok = parse_status(&status_trailers(None, &user))
            .unwrap()
            .unwrap();
        assert_eq!(ok["x-user"], "v");
        assert!(parse_status(&HeaderMap::new()).is_none());
        assert!(required_status(&HeaderMap::new()).is_err());
    }

    #[test]
    fn head_round_trip() {
        let mut h = HeaderMap::new();
        let head = ClientHead {
            compression: Some("gzip"),
            accept: Some(HeaderValue::from_static("gzip, br")),
            timeout: Some(Duration::from_millis(1500)),
        };
        request_headers(&mut h, &head);
        let read = read_head(&h);
        assert_eq!(read.encoding.unwrap(), "gzip");
        assert_eq!(read.accept_encoding.unwrap(), "gzip, br");
        assert_eq!(read.timeout.unwrap(), Some(Duration::from_millis(1500)));
        h.insert(GRPC_TIMEOUT, HeaderValue::from_static("soon"));
        assert_eq!(
            read_head(&h).timeout.unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn end_of_body_rules() {
        let mut ok = HeaderMap::new();
        ok.insert(GRPC_STATUS, HeaderValue::from_static("0"));
        assert!(end_of_body(Some(ok.clone()), None, true).is_ok());
        // A status in the headers stands only when no message came.
        let header = || Some(Err(Error::new(Code::Aborted, "x")));
        assert_eq!(
            end_of_body(None, header(), false).unwrap_err().code(),
            Code::Aborted
        );
        assert_eq!(
            end_of_body(None, header(), true).unwrap_err().code(),
            Code::Internal
        );
        assert!(end_of_body(None, None, false).is_err());
        assert!(end_of_body(Some(HeaderMap::new()), None, false).is_err());
    }

    #[test]
    fn trailers_only_unless_the_error_has_headers() {
        let ct = ContentType {
            protocol: super::super::Protocol::Grpc,
            codec: CodecHandle::Proto,
            variant: false,
        };
        let err = Error::new(Code::NotFound, "gone");
        let res = Grpc::immediate_error(&ct, &err);
        assert_eq!(res.headers()[GRPC_STATUS], "5");
        assert!(http_body::Body::is_end_stream(res.body()));
        let mut err = err;
        err.headers_mut()
            .insert("x-h", HeaderValue::from_static("1"));
        let res = Grpc::immediate_error(&ct, &err);
        assert!(!res.headers().contains_key(GRPC_STATUS));
        assert_eq!(res.headers()["x-h"], "1");
    }
}
