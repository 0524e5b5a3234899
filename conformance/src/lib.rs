//! Shared pieces of Volley's conformance programs: the generated conformance protos, the
//! size-delimited stdin/stdout framing the runner speaks, and conversions between the
//! conformance messages and Volley's types.
//!
//! The programs themselves are `volley-conformance-server` and `volley-conformance-client`;
//! see `conformance/README.md` for running them under the upstream runner.

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The conformance protos, kept in `proto/` (written from the suite's published definitions), compiled by `build.rs`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

/// The `connectrpc.conformance.v1` package.
pub use proto::connectrpc::conformance::v1 as pb;

/// The conformance service's protos as prost messages (`volley-build` with
/// `MessageLibrary::Prost`), for the prost build of the programs.
#[cfg(feature = "prost")]
pub mod prost_proto {
    include!(concat!(env!("OUT_DIR"), "/prost/_volley.rs"));
}

/// The `connectrpc.conformance.v1` package as prost messages.
#[cfg(feature = "prost")]
pub use prost_proto::connectrpc::conformance::v1 as prost_pb;

#[cfg(feature = "prost")]
pub mod prost_any;

/// The largest message accepted on stdin (the runner's own limit is 16 MiB).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Installs the JSON `Any` registry (the conformance messages and the well-known types), so
/// messages holding `Any` fields can be written and read as JSON.
pub fn install_type_registry() {
    let mut registry = buffa::type_registry::TypeRegistry::new();
    buffa_types::register_wkt_types(&mut registry);
    pb::register_types(&mut registry);
    buffa::type_registry::set_type_registry(registry);
}

/// Reads one size-delimited message (4-byte big-endian length, then the binary message).
/// `Ok(None)` at a clean end of input.
pub async fn read_delimited<M: buffa::Message>(
    reader: &mut (impl AsyncRead + Unpin),
) -> anyhow::Result<Option<M>> {
    let mut prefix = [0u8; 4];
    match reader.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_be_bytes(prefix) as usize;
    anyhow::ensure!(len <= MAX_FRAME, "message of {len} bytes is too large");
    let mut buf = vec![0u8; len];
    reader.read_exact(&mut buf).await?;
    Ok(Some(M::decode_from_slice(&buf)?))
}

/// Encodes one message with its 4-byte big-endian length prefix.
pub fn encode_delimited(message: &impl buffa::Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Writes one size-delimited message and flushes.
pub async fn write_delimited(
    writer: &mut (impl AsyncWrite + Unpin),
    message: &impl buffa::Message,
) -> std::io::Result<()> {
    writer.write_all(&encode_delimited(message)).await?;
    writer.flush().await
}

/// HTTP headers as `(name, values)` pairs: one entry per name, values in order.
pub fn header_pairs(map: &HeaderMap) -> Vec<(String, Vec<String>)> {
    map.keys()
        .map(|name| {
            let values = map
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (name.as_str().to_string(), values)
        })
        .collect()
}

/// Appends `(name, values)` pairs to an HTTP header map; invalid names or values are skipped.
pub fn append_header_pairs<'a>(
    headers: impl IntoIterator<Item = (&'a String, &'a Vec<String>)>,
    map: &mut HeaderMap,
) {
    for (name, values) in headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        for value in values {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(name.clone(), value);
            }
        }
    }
}

/// HTTP headers as conformance `Header`s: one entry per name, values in order.
pub fn headers_to_proto(map: &HeaderMap) -> Vec<pb::Header> {
    header_pairs(map)
        .into_iter()
        .map(|(name, value)| pb::Header {
            name,
            value,
            ..Default::default()
        })
        .collect()
}

/// Appends conformance `Header`s to an HTTP header map; invalid names or values are skipped.
pub fn append_proto_headers(headers: &[pb::Header], map: &mut HeaderMap) {
    append_header_pairs(headers.iter().map(|h| (&h.name, &h.value)), map);
}

/// Parses a query string like Go's `url.ParseQuery`: one entry per name, values in order.
pub fn parse_query_pairs(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (name, value) = (unescape(name), unescape(value));
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => out.push((name, vec![value])),
        }
    }
    out
}

/// Percent-decodes a query component (`+` is a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A self-signed certificate and key (PEM) for localhost, for when the runner provides none.
pub fn self_signed() -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])?;
    Ok((
        key.cert.pem().into_bytes(),
        key.signing_key.serialize_pem().into_bytes(),
    ))
}

/// A conformance `Code` as Volley's (the numbers are gRPC's); unknown values map to `unknown`.
pub fn code_from_proto(code: &buffa::EnumValue<pb::Code>) -> volley::Code {
    u32::try_from(code.to_i32())
        .ok()
        .and_then(volley::Code::from_u32)
        .unwrap_or(volley::Code::Unknown)
}

/// Volley's `Code` as the conformance enum.
pub fn code_to_proto(code: volley::Code) -> buffa::EnumValue<pb::Code> {
    buffa::EnumValue::from(code.as_u32() as i32)
}

/// A Volley error as the conformance `Error` message.
pub fn error_to_proto(err: &volley::Error) -> pb::Error {
    pb::Error {
        code: code_to_proto(err.code()),
        message: Some(err.message().to_string()).filter(|m| !m.is_empty()),
        details: err
            .details()
            .iter()
            .map(volley::ErrorDetail::to_any)
            .collect(),
        ..Default::default()
    }
}

/// A conformance `Error` definition as a Volley error (details copied as they are).
pub fn error_from_proto(err: &pb::Error) -> volley::Error {
    let mut out = volley::Error::new(
        code_from_proto(&err.code),
        err.message.clone().unwrap_or_default(),
    );
    for detail in &err.details {
        out.push_detail(volley::ErrorDetail::from_any(detail));
    }
    out
}

/// Packs a message into an `Any` with its `type.googleapis.com/` URL.
pub fn to_any<M: buffa::Message + buffa::MessageName>(
    message: &M,
) -> buffa_types::google::protobuf::Any {
    buffa_types::google::protobuf::Any::pack(message, M::TYPE_URL)
}

/// Unpacks an `Any`, checking that the type name after the last `/` is `M`'s.
pub fn from_any<M: buffa::Message + buffa::MessageName>(
    any: &buffa_types::google::protobuf::Any,
) -> anyhow::Result<M> {
    let name = any.type_url.rsplit('/').next().unwrap_or_default();
    anyhow::ensure!(
        name == M::FULL_NAME,
        "expected a {} message, got {:?}",
        M::FULL_NAME,
        any.type_url
    );
    Ok(M::decode_from_slice(&any.value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let mut map = HeaderMap::new();
        map.append("x-a", HeaderValue::from_static("1"));
        map.append("x-a", HeaderValue::from_static("2"));
        map.append("x-b", HeaderValue::from_static("3"));
        let proto = headers_to_proto(&map);
        assert_eq!(proto.len(), 2);
        let mut back = HeaderMap::new();
        append_proto_headers(&proto, &mut back);
        assert_eq!(back, map);
    }

    #[test]
    fn any_checks_the_type_name() {
        let req = pb::UnaryRequest {
            request_data: vec![1, 2, 3],
            ..Default::default()
        };
        let any = to_any(&req);
        assert_eq!(from_any::<pb::UnaryRequest>(&any).unwrap(), req);
        assert!(from_any::<pb::ServerStreamRequest>(&any).is_err());
    }

    #[tokio::test]
    async fn delimited_round_trip() {
        let msg = pb::ServerCompatResponse {
            host: "127.0.0.1".into(),
            port: 8080,
            ..Default::default()
        };
        let bytes = encode_delimited(&msg);
        let mut reader = &bytes[..];
        let back: pb::ServerCompatResponse = read_delimited(&mut reader).await.unwrap().unwrap();
        assert_eq!(back, msg);
        assert!(
            read_delimited::<pb::ServerCompatResponse>(&mut reader)
                .await
                .unwrap()
                .is_none()
        );
    }
}
