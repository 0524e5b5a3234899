//! The Connect protocol: unary as plain HTTP (POST, or GET for side-effect-free methods),
//! streams as envelopes closed by one JSON end-of-stream message.

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::envelope;
use crate::{Code, Error};

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
