//! gRPC-Web: gRPC's messages and status, with the trailers carried in a final body frame
//! (flag 0x80) as HTTP/1-style header lines, so it works over any HTTP version.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::envelope;

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
}
