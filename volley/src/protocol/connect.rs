//! The Connect protocol (<https://connectrpc.com/docs/protocol/>).
//!
//! - Unary: plain HTTP. `POST` with `content-type: application/{proto,json}` and the bare
//!   message as the body (`content-encoding` / `accept-encoding` compress it), or `GET` for
//!   side-effect-free methods with the message in the query (`connect`, `base64`,
//!   `compression`, `encoding`, `message`). Success is HTTP 200 with the message; response
//!   trailers travel as `trailer-`-prefixed headers. An error is a JSON body
//!   `{"code", "message", "details"}` with an HTTP status derived from the code.
//! - Streams: `application/connect+{proto,json}`, every message in a 5-byte envelope,
//!   compressed per `connect-content-encoding` / `connect-accept-encoding`; the response
//!   ends with one envelope flagged `0x02` holding JSON `{"error"?, "metadata"?}`. HTTP
//!   status is 200 even for errors.
//! - Requests may carry `connect-protocol-version: 1` (servers may require it) and
//!   `connect-timeout-ms`.

use std::time::Duration;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use super::{ClientHead, ClientRules, ContentType, Protocol, RequestHead, ServerRules, Wire};
use crate::client::Prepared;
use crate::client::read::{
    content_type, mismatch_code, read_body, response_encoding, with_metadata,
};
use crate::codec::{CodecHandle, Codecs, Message};
use crate::compression::decompress;
use crate::handler::{CallOutput, Output};
use crate::headers::{
    self, ACCEPT_ENCODING, CONNECT_ACCEPT_ENCODING, CONNECT_CONTENT_ENCODING,
    CONNECT_PROTOCOL_VERSION, CONNECT_TIMEOUT_MS, CONTENT_ENCODING,
};
use crate::respond::Call;
use crate::stream::{Body, empty_body, full_body};
use crate::timeout::{format_connect_timeout, parse_connect_timeout};
use crate::{Code, Error, Response, StreamType, envelope};

/// Connect's rules; [`ContentType::variant`] marks unary (un-enveloped) content types.
pub(crate) struct Connect;

impl Wire for Connect {
    fn content_type(ct: &ContentType) -> HeaderValue {
        match (ct.variant, &ct.codec) {
            (true, CodecHandle::Proto) => HeaderValue::from_static("application/proto"),
            (true, CodecHandle::Json) => HeaderValue::from_static("application/json"),
            (false, CodecHandle::Proto) => HeaderValue::from_static("application/connect+proto"),
            (false, CodecHandle::Json) => HeaderValue::from_static("application/connect+json"),
            (true, CodecHandle::Custom(c)) => super::named_content_type("", c.name()),
            (false, CodecHandle::Custom(c)) => super::named_content_type("connect+", c.name()),
        }
    }

    fn encoding_headers(ct: &ContentType) -> (http::HeaderName, http::HeaderName) {
        if ct.variant {
            (CONTENT_ENCODING, ACCEPT_ENCODING)
        } else {
            (CONNECT_CONTENT_ENCODING, CONNECT_ACCEPT_ENCODING)
        }
    }

    fn is_unenveloped(ct: &ContentType) -> bool {
        ct.variant
    }
}

impl ServerRules for Connect {
    /// Unary procedures take un-enveloped bodies; streaming ones take envelopes.
    fn accepts(ct: &ContentType, stream_type: StreamType) -> bool {
        ct.variant == (stream_type == StreamType::Unary)
    }

    fn read_head<'a>(
        ct: &ContentType,
        headers: &'a HeaderMap,
        require_version: bool,
    ) -> Result<RequestHead<'a>, Error> {
        let (encoding, accept) = Self::encoding_headers(ct);
        let [version, encoding, accept_encoding, timeout_ms] = headers::first_of(
            headers,
            [
                &CONNECT_PROTOCOL_VERSION,
                &encoding,
                &accept,
                &CONNECT_TIMEOUT_MS,
            ],
        );
        match version {
            Some(v) if v != "1" => {
                return Err(Error::invalid_argument(format!(
                    "connect-protocol-version must be \"1\": got {v:?}"
                )));
            }
            None if require_version => {
                return Err(Error::invalid_argument(
                    "missing required header: connect-protocol-version",
                ));
            }
            _ => {}
        }
        Ok(RequestHead {
            encoding,
            accept_encoding,
            timeout: timeout(timeout_ms),
        })
    }

    fn respond(call: Call, result: Result<CallOutput, Error>) -> http::Response<Body> {
        if call.content_type.variant {
            write_unary(call, result)
        } else {
            crate::respond::enveloped(call, result)
        }
    }

    /// Unary: the JSON error body. Streams: a body holding only the end-of-stream message.
    fn immediate_error(ct: &ContentType, err: &Error) -> http::Response<Body> {
        if ct.variant {
            return unary_error(err);
        }
        let mut res =
            http::Response::new(full_body(end_stream_frame(Some(err), &HeaderMap::new())));
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, ct.header_value());
        headers::copy_user_headers(err.headers(), h);
        res
    }

    /// A unary-shaped error with HTTP 404, whatever the content type.
    fn not_found(_ct: &ContentType, err: &Error) -> http::Response<Body> {
        let mut res = unary_error(err);
        *res.status_mut() = StatusCode::NOT_FOUND;
        res
    }

    fn end_of_stream(
        _ct: &ContentType,
        error: Option<&Error>,
        trailers: HeaderMap,
    ) -> http_body::Frame<Bytes> {
        http_body::Frame::data(end_stream_frame(error, &trailers))
    }
}

impl ClientRules for Connect {
    const CONTROL_FLAG: u8 = envelope::FLAG_END_STREAM;

    fn client_content_type(
        codec: CodecHandle,
        stream_type: StreamType,
        _text: bool,
    ) -> ContentType {
        ContentType {
            protocol: Protocol::Connect,
            codec,
            variant: stream_type == StreamType::Unary,
        }
    }

    /// `connect-protocol-version`, `connect-timeout-ms` and the encodings. A unary request's
    /// `content-encoding` is set by [`unary_request`], only when the body is compressed.
    fn request_headers(ct: &ContentType, h: &mut HeaderMap, head: &ClientHead) {
        h.insert(CONNECT_PROTOCOL_VERSION, HeaderValue::from_static("1"));
        if let Some(t) = head.timeout
            && let Ok(v) = HeaderValue::from_str(&format_connect_timeout(t))
        {
            h.insert(CONNECT_TIMEOUT_MS, v);
        }
        let (encoding, accept) = Self::encoding_headers(ct);
        if let Some(name) = head.compression
            && !ct.variant
        {
            h.insert(encoding, HeaderValue::from_static(name));
        }
        if let Some(a) = &head.accept {
            h.insert(accept, a.clone());
        }
    }

    fn response_content_type_ok(ct: &ContentType, base: &str) -> bool {
        if ct.variant {
            base.strip_prefix("application/") == Some(ct.codec.name())
        } else {
            super::content_type_matches(base, "connect", &ct.codec, false)
        }
    }

    fn parse_control(block: &[u8]) -> Result<HeaderMap, Error> {
        parse_end_stream(block)
    }

    fn end_without_control(
        _http_trailers: Option<HeaderMap>,
        _header_status: Option<Result<HeaderMap, Error>>,
        _seen_message: bool,
    ) -> Result<HeaderMap, Error> {
        Err(Error::internal(
            "protocol error: stream ended without an end-of-stream message",
        ))
    }
}

fn timeout(value: Option<&HeaderValue>) -> Result<Option<Duration>, Error> {
    value
        .map(|v| {
            parse_connect_timeout(v.as_bytes())
                .ok_or_else(|| Error::invalid_argument(format!("invalid connect-timeout-ms {v:?}")))
        })
        .transpose()
}

/// Server: the unary error response: the JSON error body, its HTTP status, the error's
/// headers and metadata as headers.
pub(crate) fn unary_error(err: &Error) -> http::Response<Body> {
    let body = serde_json::to_vec(&err.to_connect_json()).unwrap_or_default();
    let mut res = http::Response::new(full_body(body));
    *res.status_mut() =
        StatusCode::from_u16(err.code().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers::copy_user_headers(err.headers(), h);
    headers::copy_user_headers(err.metadata(), h);
    res
}

/// Server: a unary result: the bare message (compressed when worthwhile), headers, and the
/// trailers as `trailer-` headers.
fn write_unary(call: Call, result: Result<CallOutput, Error>) -> http::Response<Body> {
    let out = match result {
        Ok(out) => out,
        Err(err) => return unary_error(&err),
    };
    let encoded = match out.output {
        Output::Single(b) => b,
        Output::Stream(_) => {
            return unary_error(&Error::internal("unary handler produced a stream"));
        }
    };
    let (body, compressed) = match call.writer.compress(encoded) {
        Ok(x) => x,
        Err(err) => return unary_error(&err),
    };
    let mut res = http::Response::new(full_body(body));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, call.content_type.header_value());
    if compressed && let Some(algo) = &call.writer.compression {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static(algo.name()));
    }
    headers::copy_user_headers(&out.headers, h);
    put_unary_trailers(h, &out.trailers);
    res
}

/// Server: what a GET request asks for, read from its query and headers.
pub(crate) struct GetRequest<'a> {
    pub(crate) content_type: ContentType,
    pub(crate) message: Vec<u8>,
    /// The `compression` parameter, as a header value for the router's encoding lookup.
    pub(crate) compression: Option<HeaderValue>,
    pub(crate) accept_encoding: Option<&'a HeaderValue>,
    pub(crate) timeout: Result<Option<Duration>, Error>,
}

/// Why a GET request is refused before its handler runs.
pub(crate) enum GetRefusal {
    /// The `encoding` names no codec we have (answered 415).
    UnknownCodec,
    /// An error to write in this content type.
    Error(ContentType, Error),
}

/// Server: reads a GET request's query (and its timeout and accepted encodings).
pub(crate) fn read_get<'a>(
    query: &str,
    codecs: &Codecs,
    headers: &'a HeaderMap,
    require_version: bool,
) -> Result<GetRequest<'a>, GetRefusal> {
    let q =
        parse_get_query(query).map_err(|e| GetRefusal::Error(Protocol::Connect.fallback(), e))?;
    let codec = codecs.get(&q.encoding).ok_or(GetRefusal::UnknownCodec)?;
    let ct = ContentType {
        protocol: Protocol::Connect,
        codec,
        variant: true,
    };
    if require_version && q.connect_version.as_deref() != Some("v1") {
        let err = Error::invalid_argument("missing required query parameter connect=v1");
        return Err(GetRefusal::Error(ct, err));
    }
    if let Some(v) = q.connect_version.as_deref().filter(|v| *v != "v1") {
        let err = Error::invalid_argument(format!("unsupported connect version {v:?}"));
        return Err(GetRefusal::Error(ct, err));
    }
    Ok(GetRequest {
        content_type: ct,
        message: q.message,
        compression: q
            .compression
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok()),
        accept_encoding: headers.get(ACCEPT_ENCODING),
        timeout: timeout(headers.get(CONNECT_TIMEOUT_MS)),
    })
}

/// Client: a unary request: GET with the message in the query when `get_url_limit` is given
/// (the method is side-effect free and GET enabled) and the URL fits, else POST with the
/// message as the body. `uri` builds the URL for a query; `head` the request head.
pub(crate) fn unary_request(
    p: &Prepared,
    encoded: crate::stream::Encoded,
    get_url_limit: Option<usize>,
    uri: impl Fn(Option<&str>) -> Result<Uri, Error>,
    head: impl Fn(Method, Uri) -> http::request::Builder,
) -> Result<http::Request<Body>, Error> {
    let (body, compressed) = p.writer.compress(encoded)?;
    let algo = compressed
        .then(|| p.writer.compression.as_ref().map(|a| a.name()))
        .flatten();
    let mut request = None;
    if let Some(limit) = get_url_limit {
        let query = build_get_query(
            &body,
            p.writer.codec.name(),
            algo,
            // A codec of ours may be binary: only JSON goes unencoded.
            !matches!(p.writer.codec, CodecHandle::Json),
        );
        let get_uri = uri(Some(&query))?;
        if get_uri.to_string().len() <= limit {
            request = Some(head(Method::GET, get_uri).body(empty_body()));
        }
    }
    let request = match request {
        Some(r) => r,
        None => {
            let mut builder = head(Method::POST, uri(None)?);
            if let Some(name) = algo {
                builder = builder.header(CONTENT_ENCODING, name);
            }
            builder.body(full_body(body))
        }
    };
    request.map_err(|e| Error::internal(format!("building request: {e}")))
}

/// Client: reads a unary response: the message (HTTP 200, `application/{codec}`, maybe
/// compressed) or the JSON error, with `trailer-` headers as trailers.
pub(crate) async fn read_unary_response<Res: Message>(
    response: http::Response<Body>,
    p: &Prepared,
) -> Result<Response<Res>, Error> {
    let (parts, body) = response.into_parts();
    let mut headers = parts.headers;
    let trailers = take_unary_trailers(&mut headers);
    let encoding = response_encoding(&headers, CONTENT_ENCODING, &p.accepted);
    if parts.status != StatusCode::OK {
        let raw = read_body(body, p.receive_limit).await.unwrap_or_default();
        let raw = match (&encoding, raw.is_empty()) {
            (Ok(Some(algo)), false) => decompress(algo.as_ref(), &raw, p.receive_limit)
                .map(Bytes::from)
                .unwrap_or_default(),
            _ => raw,
        };
        let from_body = content_type(&headers)
            .starts_with("application/json")
            .then(|| serde_json::from_slice::<serde_json::Value>(&raw).ok())
            .flatten()
            .and_then(|v| {
                Error::from_connect_json_or(&v, Code::from_http_status(parts.status.as_u16()))
            });
        let err = from_body.unwrap_or_else(|| {
            let code = Code::from_http_status(parts.status.as_u16());
            Error::new(code, format!("HTTP status {}", parts.status))
        });
        let mut err = with_metadata(err, &headers);
        err.metadata_mut().extend(trailers);
        return Err(err.into_wire());
    }
    let ct = content_type(&headers);
    if !Connect::response_content_type_ok(
        &p.content_type,
        ct.split(';').next().unwrap_or("").trim(),
    ) {
        let expected = format!("application/{}", p.content_type.codec.name());
        return Err(Error::new(
            mismatch_code(&ct, Protocol::Connect),
            format!("protocol error: response content-type {ct:?}, expected {expected:?}"),
        ));
    }
    let encoding = encoding?;
    let raw = read_body(body, p.receive_limit).await?;
    let raw = match encoding {
        Some(algo) if !raw.is_empty() => {
            Bytes::from(decompress(algo.as_ref(), &raw, p.receive_limit)?)
        }
        _ => raw,
    };
    let message = p.content_type.codec.decode::<Res>(raw)?;
    Ok(Response::from_parts(message, headers, trailers))
}

/// Prefix of unary trailers sent as headers.
pub(crate) const TRAILER_PREFIX: &str = "trailer-";

/// The parsed query of a Connect GET request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct GetQuery {
    pub(crate) message: Vec<u8>,
    pub(crate) encoding: String,
    pub(crate) compression: Option<String>,
    pub(crate) connect_version: Option<String>,
}

/// Parses a Connect GET query string. Parameters come in any order; unknown ones are ignored.
pub(crate) fn parse_get_query(query: &str) -> Result<GetQuery, Error> {
    let mut out = GetQuery::default();
    let mut base64 = false;
    let mut raw_message: Option<String> = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
            .decode_utf8()
            .map_err(|_| Error::invalid_argument(format!("query parameter {key} is not UTF-8")))?
            .into_owned();
        match key {
            "message" => raw_message = Some(value),
            "encoding" => out.encoding = value,
            "base64" => base64 = value == "1",
            "compression" => out.compression = Some(value).filter(|v| !v.is_empty()),
            "connect" => out.connect_version = Some(value),
            _ => {}
        }
    }
    if out.encoding.is_empty() {
        return Err(Error::invalid_argument("missing encoding query parameter"));
    }
    let raw = raw_message.unwrap_or_default();
    out.message = if base64 {
        let trimmed = raw.trim_end_matches('=');
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|e| {
                Error::invalid_argument(format!("invalid base64 in message query parameter: {e}"))
            })?
    } else {
        raw.into_bytes()
    };
    Ok(out)
}

/// Builds the GET query for a request, in the order the Connect spec recommends for cache
/// hits: `connect`, `base64`, `compression`, `encoding`, `message`.
pub(crate) fn build_get_query(
    message: &[u8],
    encoding: &str,
    compression: Option<&str>,
    binary: bool,
) -> String {
    let base64 = binary || compression.is_some();
    let mut q = String::from("connect=v1");
    if base64 {
        q.push_str("&base64=1");
    }
    if let Some(c) = compression {
        q.push_str("&compression=");
        q.push_str(c);
    }
    q.push_str("&encoding=");
    q.push_str(encoding);
    q.push_str("&message=");
    if base64 {
        q.push_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message));
    } else {
        q.extend(percent_encoding::utf8_percent_encode(
            &String::from_utf8_lossy(message),
            percent_encoding::NON_ALPHANUMERIC,
        ));
    }
    q
}

/// Metadata as the end-of-stream JSON carries it: `{"name": ["v1", "v2"]}`.
pub(crate) fn metadata_to_json(map: &HeaderMap) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    for name in map.keys() {
        let values: Vec<serde_json::Value> = map
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned().into())
            .collect();
        obj.insert(name.as_str().to_string(), values.into());
    }
    serde_json::Value::Object(obj)
}

pub(crate) fn metadata_from_json(value: Option<&serde_json::Value>) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    let Some(value) = value else { return Ok(map) };
    let obj = value.as_object().ok_or_else(|| {
        Error::internal("protocol error: end-of-stream metadata is not an object")
    })?;
    for (key, values) in obj {
        let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| {
            Error::internal(format!("protocol error: invalid metadata key {key:?}"))
        })?;
        let values = values
            .as_array()
            .ok_or_else(|| Error::internal("protocol error: metadata values are not a list"))?;
        for v in values {
            let s = v
                .as_str()
                .ok_or_else(|| Error::internal("protocol error: metadata value is not a string"))?;
            let hv = HeaderValue::from_str(s)
                .map_err(|_| Error::internal("protocol error: invalid metadata value"))?;
            map.append(name.clone(), hv);
        }
    }
    Ok(map)
}

/// The enveloped end-of-stream message.
pub(crate) fn end_stream_frame(error: Option<&Error>, trailers: &HeaderMap) -> Bytes {
    let mut obj = serde_json::Map::new();
    let mut metadata = trailers.clone();
    if let Some(err) = error {
        obj.insert("error".into(), err.to_connect_json());
        crate::headers::copy_user_headers(err.metadata(), &mut metadata);
    }
    if !metadata.is_empty() {
        obj.insert("metadata".into(), metadata_to_json(&metadata));
    }
    let json =
        serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap_or_else(|_| b"{}".to_vec());
    let mut out = BytesMut::with_capacity(json.len() + envelope::PREFIX_LEN);
    envelope::encode(envelope::FLAG_END_STREAM, &json, &mut out);
    out.freeze()
}

/// Parses an end-of-stream message into trailers, or the error it carries.
pub(crate) fn parse_end_stream(data: &[u8]) -> Result<HeaderMap, Error> {
    let value: serde_json::Value = serde_json::from_slice(data).map_err(|e| {
        Error::internal(format!(
            "protocol error: invalid end-of-stream message: {e}"
        ))
    })?;
    let trailers = metadata_from_json(value.get("metadata"))?;
    match value.get("error") {
        Some(err) if !err.is_null() => {
            let mut error = Error::from_connect_json_or(err, Code::Unknown).unwrap_or_else(|| {
                Error::new(Code::Unknown, "end-of-stream error has no valid code")
            });
            error.metadata_mut().extend(trailers);
            Err(error.into_wire())
        }
        _ => Ok(trailers),
    }
}

/// Adds unary trailers to response headers with the `trailer-` prefix.
pub(crate) fn put_unary_trailers(headers: &mut HeaderMap, trailers: &HeaderMap) {
    for (name, value) in trailers {
        if let Ok(n) =
            HeaderName::from_bytes(format!("{TRAILER_PREFIX}{}", name.as_str()).as_bytes())
        {
            headers.append(n, value.clone());
        }
    }
}

/// Splits `trailer-` prefixed headers back out of unary response headers.
pub(crate) fn take_unary_trailers(headers: &mut HeaderMap) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with(TRAILER_PREFIX))
        .cloned()
        .collect();
    for name in names {
        let Ok(short) = HeaderName::from_bytes(&name.as_str().as_bytes()[TRAILER_PREFIX.len()..])
        else {
            continue;
        };
        for v in headers.get_all(&name) {
            trailers.append(short.clone(), v.clone());
        }
        headers.remove(&name);
    }
    trailers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::DEFAULT_CODECS;

    #[test]
    fn get_query_any_order_padding_and_unknowns() {
        let q =
            parse_get_query("encoding=proto&foo=bar&message=AQI%3D&base64=1&connect=v1").unwrap();
        assert_eq!(q.message, vec![1, 2]);
        assert_eq!(q.encoding, "proto");
        assert_eq!(q.connect_version.as_deref(), Some("v1"));
        let q = parse_get_query("message=%7B%7D&encoding=json").unwrap();
        assert_eq!(q.message, b"{}");
        assert!(parse_get_query("encoding=proto&base64=1&message=!!").is_err());
        assert!(parse_get_query("message=x").is_err());
    }

    #[test]
    fn get_query_round_trip() {
        let q = build_get_query(&[0xfb, 0xff, 0], "proto", Some("gzip"), true);
        assert!(q.starts_with("connect=v1&base64=1&compression=gzip&encoding=proto&message="));
        let parsed = parse_get_query(&q).unwrap();
        assert_eq!(parsed.message, vec![0xfb, 0xff, 0]);
        assert_eq!(parsed.compression.as_deref(), Some("gzip"));
        let q = build_get_query(br#"{"a":"b c"}"#, "json", None, false);
        assert_eq!(parse_get_query(&q).unwrap().message, br#"{"a":"b c"}"#);
    }

    #[test]
    fn end_stream_round_trip() {
        let mut trailers = HeaderMap::new();
        trailers.append("x-t", HeaderValue::from_static("1"));
        trailers.append("x-t", HeaderValue::from_static("2"));
        let frame = end_stream_frame(None, &trailers);
        assert_eq!(frame[0], envelope::FLAG_END_STREAM);
        let parsed = parse_end_stream(&frame[5..]).unwrap();
        assert_eq!(parsed.get_all("x-t").iter().count(), 2);
        let err = Error::new(Code::Aborted, "x");
        let frame = end_stream_frame(Some(&err), &HeaderMap::new());
        let back = parse_end_stream(&frame[5..]).unwrap_err();
        assert_eq!(back.code(), Code::Aborted);
        assert!(back.is_wire());
        assert!(parse_end_stream(b"nope").is_err());
    }

    #[test]
    fn head_round_trip() {
        let unary = &Connect::client_content_type(CodecHandle::Json, StreamType::Unary, false);
        let stream =
            &Connect::client_content_type(CodecHandle::Proto, StreamType::ClientStream, false);
        assert_eq!(Connect::content_type(unary), "application/json");
        assert_eq!(Connect::content_type(stream), "application/connect+proto");
        assert!(Connect::accepts(unary, StreamType::Unary));
        assert!(!Connect::accepts(unary, StreamType::BidiStream));
        assert!(!Connect::accepts(stream, StreamType::Unary));
        let head = ClientHead {
            compression: Some("gzip"),
            accept: Some(HeaderValue::from_static("gzip")),
            timeout: Some(Duration::from_millis(250)),
        };
        for ct in [unary, stream] {
            let mut h = HeaderMap::new();
            Connect::request_headers(ct, &mut h, &head);
            let read = Connect::read_head(ct, &h, true).unwrap();
            assert_eq!(read.timeout.unwrap(), Some(Duration::from_millis(250)));
            assert_eq!(read.accept_encoding.unwrap(), "gzip");
            // Unary bodies name their encoding only when actually compressed.
            assert_eq!(read.encoding.is_some(), ct == stream);
        }
        let mut h = HeaderMap::new();
        assert!(Connect::read_head(unary, &h, true).is_err());
        assert!(Connect::read_head(unary, &h, false).is_ok());
        h.insert(CONNECT_PROTOCOL_VERSION, HeaderValue::from_static("2"));
        assert!(Connect::read_head(unary, &h, false).is_err());
        let mut h = HeaderMap::new();
        h.insert(CONNECT_TIMEOUT_MS, HeaderValue::from_static("-1"));
        assert!(
            Connect::read_head(stream, &h, false)
                .unwrap()
                .timeout
                .is_err()
        );
    }

    #[test]
    fn get_requests() {
        let h = HeaderMap::new();
        let get = read_get(
            "encoding=json&message=%7B%7D&connect=v1",
            &DEFAULT_CODECS,
            &h,
            true,
        )
        .ok()
        .unwrap();
        assert_eq!(get.content_type.codec, CodecHandle::Json);
        assert_eq!(get.message, b"{}");
        assert!(matches!(
            read_get("encoding=xml&message=", &DEFAULT_CODECS, &h, false),
            Err(GetRefusal::UnknownCodec)
        ));
        assert!(matches!(
            read_get("encoding=json&message=", &DEFAULT_CODECS, &h, true),
            Err(GetRefusal::Error(_, _))
        ));
        assert!(matches!(
            read_get("encoding=json&connect=v2", &DEFAULT_CODECS, &h, false),
            Err(GetRefusal::Error(_, _))
        ));
    }

    #[test]
    fn errors_and_ends() {
        let err = Error::new(Code::NotFound, "gone");
        let res = unary_error(&err);
        assert_eq!(res.status(), 404);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/json");
        let stream =
            &Connect::client_content_type(CodecHandle::Proto, StreamType::BidiStream, false);
        let res = Connect::immediate_error(stream, &Error::new(Code::Aborted, "x"));
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()[CONTENT_TYPE], "application/connect+proto");
        assert_eq!(Connect::not_found(stream, &err).status(), 404);
        assert!(Connect::end_without_control(None, None, false).is_err());
        assert!(Connect::response_content_type_ok(
            stream,
            "application/connect+proto"
        ));
        assert!(!Connect::response_content_type_ok(
            stream,
            "application/proto"
        ));
    }

    #[test]
    fn unary_trailers_round_trip() {
        let mut t = HeaderMap::new();
        t.insert("x-a", HeaderValue::from_static("1"));
        let mut h = HeaderMap::new();
        put_unary_trailers(&mut h, &t);
        assert!(h.contains_key("trailer-x-a"));
        assert_eq!(take_unary_trailers(&mut h), t);
        assert!(h.is_empty());
    }
}
