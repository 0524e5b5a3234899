//! Header names, `-bin` metadata encoding, percent-encoding of `grpc-message`, and the
//! filtering of protocol-reserved headers.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode, utf8_percent_encode};

/// `content-type`.
pub const CONTENT_TYPE: HeaderName = HeaderName::from_static("content-type");
/// `connect-protocol-version`.
pub const CONNECT_PROTOCOL_VERSION: HeaderName =
    HeaderName::from_static("connect-protocol-version");
/// `connect-timeout-ms`.
pub const CONNECT_TIMEOUT_MS: HeaderName = HeaderName::from_static("connect-timeout-ms");
/// `content-encoding` (Connect unary).
pub const CONTENT_ENCODING: HeaderName = HeaderName::from_static("content-encoding");
/// `accept-encoding` (Connect unary).
pub const ACCEPT_ENCODING: HeaderName = HeaderName::from_static("accept-encoding");
/// `connect-content-encoding` (Connect streaming).
pub const CONNECT_CONTENT_ENCODING: HeaderName =
    HeaderName::from_static("connect-content-encoding");
/// `connect-accept-encoding` (Connect streaming).
pub const CONNECT_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("connect-accept-encoding");
/// `grpc-timeout`.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// `grpc-encoding`.
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
/// `grpc-accept-encoding`.
pub const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
/// `grpc-status`.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// `grpc-message`.
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
/// `grpc-status-details-bin`.
pub const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");

/// The first value of each of `names`, found in one pass over a small map (a request head
/// has a handful of headers; hashing each name for a lookup costs more than comparing), by
/// lookup in a large one.
pub(crate) fn first_of<'h, const N: usize>(
    headers: &'h HeaderMap,
    names: [&HeaderName; N],
) -> [Option<&'h HeaderValue>; N] {
    let mut found = [None; N];
    if headers.len() > 16 {
        for (slot, name) in found.iter_mut().zip(names) {
            *slot = headers.get(name);
        }
        return found;
    }
    for (name, value) in headers {
        if let Some(i) = names.iter().position(|n| *n == name)
            && found[i].is_none()
        {
            found[i] = Some(value);
        }
    }
    found
}

/// Characters escaped in `grpc-message`: everything outside printable ASCII, plus `%`.
const GRPC_MESSAGE_ESCAPE: &AsciiSet = &CONTROLS.add(b'%');

/// Percent-encodes a `grpc-message` value.
pub fn encode_grpc_message(message: &str) -> String {
    utf8_percent_encode(message, GRPC_MESSAGE_ESCAPE).to_string()
}

/// Decodes a `grpc-message` value; invalid UTF-8 is replaced, never rejected.
pub fn decode_grpc_message(value: &[u8]) -> String {
    percent_decode(value).decode_utf8_lossy().into_owned()
}

/// Encodes binary metadata as unpadded standard base64, as the specs ask senders to.
pub fn encode_binary_header(value: &[u8]) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(value);
    HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Decodes binary metadata: standard or URL-safe alphabet, padded or not.
pub fn decode_binary_header(value: &HeaderValue) -> Option<Vec<u8>> {
    decode_base64_lenient(value.as_bytes())
}

/// Decodes base64 in either alphabet, with or without padding.
pub(crate) fn decode_base64_lenient(input: &[u8]) -> Option<Vec<u8>> {
    let trimmed = trim_padding(input);
    if trimmed.iter().any(|b| matches!(b, b'-' | b'_')) {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .ok()
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .ok()
    }
}

fn trim_padding(input: &[u8]) -> &[u8] {
    let mut end = input.len();
    while end > 0 && input[end - 1] == b'=' {
        end -= 1;
    }
    &input[..end]
}

/// Whether a header belongs to the protocol rather than the application: such headers are
/// never copied from user metadata onto the wire, nor shown to handlers as metadata.
pub fn is_reserved(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("connect-")
        || n.starts_with("grpc-")
        || matches!(
            n,
            "content-type"
                | "content-length"
                | "content-encoding"
                | "accept-encoding"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "connection"
                | "host"
                | "keep-alive"
                | "upgrade"
                | "proxy-connection"
        )
}

/// Parses a header name and a text value, as the header builders take them; an
/// `invalid_argument` error names what is wrong.
pub fn parse_header(name: &str, value: &str) -> Result<(HeaderName, HeaderValue), crate::Error> {
    let name = parse_name(name)?;
    let value = HeaderValue::from_str(value).map_err(|_| {
        crate::Error::invalid_argument(format!(
            "invalid value for header {name}: control characters other than tab are not allowed"
        ))
    })?;
    Ok((name, value))
}

/// Parses a binary (`-bin`) header name and encodes `value` as its base64 value.
pub fn parse_binary_header(
    name: &str,
    value: &[u8],
) -> Result<(HeaderName, HeaderValue), crate::Error> {
    let name = parse_name(name)?;
    if !name.as_str().ends_with("-bin") {
        return Err(crate::Error::invalid_argument(format!(
            "binary header {name} must end in -bin"
        )));
    }
    Ok((name, encode_binary_header(value)))
}

fn parse_name(name: &str) -> Result<HeaderName, crate::Error> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| crate::Error::invalid_argument(format!("invalid header name {name:?}")))
}

/// The panicking form the infallible builders use: a literal name or value that is not a
/// valid header is a bug at the call site, like `HeaderValue::from_static`.
#[track_caller]
pub(crate) fn expect_valid<T>(result: Result<T, crate::Error>) -> T {
    match result {
        Ok(x) => x,
        Err(e) => panic!("{}", e.message()),
    }
}

/// Copies every non-reserved header of `from` into `to`.
pub(crate) fn copy_user_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !is_reserved(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Splits a comma-separated header list (`gzip, br`) into trimmed, non-empty items.
pub(crate) fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grpc_message_examples() {
        assert_eq!(encode_grpc_message("hi 100% ✓\n"), "hi 100%25 %E2%9C%93%0A");
        assert_eq!(
            decode_grpc_message(b"hi 100%25 %E2%9C%93%0A"),
            "hi 100% ✓\n"
        );
        assert_eq!(decode_grpc_message(b"bad %ZZ"), "bad %ZZ");
    }

    #[test]
    fn binary_headers_accept_both_paddings_and_alphabets() {
        assert_eq!(encode_binary_header(&[0xfb, 0xff]).to_str().unwrap(), "+/8");
        let padded = HeaderValue::from_static("+/8=");
        let urlsafe = HeaderValue::from_static("-_8");
        assert_eq!(decode_binary_header(&padded).unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_binary_header(&urlsafe).unwrap(), vec![0xfb, 0xff]);
        assert!(decode_binary_header(&HeaderValue::from_static("!!")).is_none());
    }

    #[test]
    fn header_parsing_reports_what_is_wrong() {
        assert!(parse_header("x-ok", "fine value").is_ok());
        let err = parse_header("bad name", "v").unwrap_err();
        assert_eq!(err.code(), crate::Code::InvalidArgument);
        assert_eq!(err.message(), r#"invalid header name "bad name""#);
        let err = parse_header("x-a", "line\nbreak").unwrap_err();
        assert!(
            err.message().contains("invalid value for header x-a"),
            "{err}"
        );
        let err = parse_binary_header("x-a", &[1]).unwrap_err();
        assert_eq!(err.message(), "binary header x-a must end in -bin");
        let (n, v) = parse_binary_header("x-a-bin", &[0xfb, 0xff]).unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("x-a-bin", "+/8"));
    }

    #[test]
    fn reserved_headers() {
        assert!(is_reserved(&HeaderName::from_static("grpc-status")));
        assert!(is_reserved(&HeaderName::from_static("connect-timeout-ms")));
        assert!(!is_reserved(&HeaderName::from_static("x-user")));
    }

    proptest! {
        #[test]
        fn grpc_message_round_trip(s in ".*") {
            prop_assert_eq!(decode_grpc_message(encode_grpc_message(&s).as_bytes()), s);
        }

        #[test]
        fn binary_header_round_trip(v in proptest::collection::vec(any::<u8>(), 0..64)) {
            let h = encode_binary_header(&v);
            prop_assert_eq!(decode_binary_header(&h).unwrap(), v);
        }
    }
}
