//! The bodies of the fuzz targets in `fuzz/`, one plain function per parser of untrusted
//! bytes, so a stable `cargo test` can replay the committed corpus and every crash input
//! found. Enabled by the `fuzzing` feature; not part of the public API.
//!
//! Each function must never panic, hang or allocate without bound, whatever `data` is.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderValue;

use crate::compression::Registry;
use crate::{Router, Spec, StreamType};

/// The envelope decoder, fed `data` in chunks whose sizes come from the data itself; the same
/// bytes read in place as one chunk (`Decoder::decode_shared`) give the same envelopes.
pub fn envelope(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(split).max(1);
    let decoder = crate::envelope::Decoder::new(4096);
    let mut buf = BytesMut::new();
    let mut chunked = Vec::new();
    let mut chunked_failed = false;
    'feed: for chunk in rest.chunks(step) {
        buf.extend_from_slice(chunk);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(env)) => {
                    assert!(env.data.len() <= 4096);
                    chunked.push(env);
                }
                Ok(None) => break,
                Err(_) => {
                    chunked_failed = true;
                    break 'feed;
                }
            }
        }
        assert!(buf.capacity() <= buf.len() + crate::envelope::RESERVE_CHUNK + step + 64);
    }
    let mut whole = bytes::Bytes::copy_from_slice(rest);
    let mut shared = Vec::new();
    let mut shared_failed = false;
    loop {
        match decoder.decode_shared(&mut whole) {
            Ok(Some(env)) => shared.push(env),
            Ok(None) => break,
            Err(_) => {
                shared_failed = true;
                break;
            }
        }
    }
    assert_eq!(chunked, shared);
    assert_eq!(chunked_failed, shared_failed);
}

fn decompress_with(name: &str, data: &[u8]) {
    let algo = Registry::default()
        .get(name)
        .unwrap_or_else(|| panic!("{name} is built in"));
    const LIMIT: usize = 1 << 20;
    if let Ok(out) = crate::compression::decompress(algo.as_ref(), data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
}

/// The gzip decompressor, bounded at 1 MiB.
pub fn gzip(data: &[u8]) {
    decompress_with("gzip", data);
}

/// The deflate (zlib) decompressor, bounded at 1 MiB.
pub fn deflate(data: &[u8]) {
    decompress_with("deflate", data);
}

/// The brotli decompressor, bounded at 1 MiB.
pub fn br(data: &[u8]) {
    decompress_with("br", data);
}

/// The zstd decompressor, bounded at 1 MiB.
pub fn zstd(data: &[u8]) {
    decompress_with("zstd", data);
}

/// The Connect GET query parser.
pub fn connect_get_query(data: &[u8]) {
    let _ = crate::protocol::connect::parse_get_query(&String::from_utf8_lossy(data));
}

/// gRPC-Web text decoding: base64 groups, whitespace and padding anywhere.
pub fn grpc_web_text(data: &[u8]) {
    let mut out = BytesMut::new();
    let clean: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if crate::stream::decode_base64_groups(&clean, &mut out).is_ok() {
        assert!(out.len() <= clean.len());
    }
}

/// The gRPC-Web trailers block a client reads.
pub fn grpc_web_trailers(data: &[u8]) {
    if let Ok(map) = crate::protocol::grpc_web::parse_trailers_block(data) {
        let _ = crate::protocol::grpc::parse_status(&map);
    }
}

/// Both timeout headers, and formatting back what parses.
pub fn timeouts(data: &[u8]) {
    if let Some(t) = crate::timeout::parse_grpc_timeout(data) {
        let back = crate::timeout::format_grpc_timeout(t);
        assert!(crate::timeout::parse_grpc_timeout(back.as_bytes()).is_some_and(|b| b >= t));
    }
    if let Some(t) = crate::timeout::parse_connect_timeout(data) {
        let _ = crate::timeout::format_connect_timeout(t);
    }
}

/// A Connect error body and a Connect end-of-stream message, as a client reads them.
pub fn connect_error_json(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = crate::Error::from_connect_json(&value);
    }
    let _ = crate::protocol::connect::parse_end_stream(data);
}

/// `-bin` metadata values.
pub fn bin_header(data: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(data)
        && let Some(bytes) = crate::headers::decode_binary_header(&value)
    {
        let again = crate::headers::encode_binary_header(&bytes);
        assert_eq!(
            crate::headers::decode_binary_header(&again).as_deref(),
            Some(&bytes[..])
        );
    }
    let _ = crate::headers::decode_grpc_message(data);
}

type Value = buffa_types::google::protobuf::Value;

const UNARY: Spec = Spec::new(
    "/fuzz.v1.Fuzz/Unary",
    StreamType::Unary,
    crate::Idempotency::NoSideEffects,
);
const CLIENT: Spec = Spec::new(
    "/fuzz.v1.Fuzz/Client",
    StreamType::ClientStream,
    crate::Idempotency::Unknown,
);
const BIDI: Spec = Spec::new(
    "/fuzz.v1.Fuzz/Bidi",
    StreamType::BidiStream,
    crate::Idempotency::Unknown,
);

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        Router::new()
            .receive_limit(64 * 1024)
            .unary(UNARY, |r: crate::Request<Value>| async move {
                Ok(crate::Response::new(r.into_message()))
            })
            .client_stream(
                CLIENT,
                |r: crate::Request<crate::Streaming<Value>>| async move {
                    let mut stream = r.into_message();
                    let mut last = Value::default();
                    while let Some(m) = stream.message().await? {
                        last = m;
                    }
                    Ok(crate::Response::new(last))
                },
            )
            .bidi_stream(
                BIDI,
                |r: crate::Request<crate::Streaming<Value>>| async move {
                    let stream: crate::ResponseStream<Value> = Box::pin(r.into_message());
                    Ok(crate::Response::new(stream))
                },
            )
    })
}

const CONTENT_TYPES: [&str; 12] = [
    "application/proto",
    "application/json",
    "application/connect+proto",
    "application/connect+json",
    "application/grpc",
    "application/grpc+json",
    "application/grpc-web",
    "application/grpc-web+json",
    "application/grpc-web-text",
    "application/grpc-web-text+json",
    "application/xml",
    "",
];
const ENCODINGS: [&str; 7] = ["", "identity", "gzip", "deflate", "br", "zstd", "snappy"];
const PATHS: [&str; 4] = [
    "/fuzz.v1.Fuzz/Unary",
    "/fuzz.v1.Fuzz/Client",
    "/fuzz.v1.Fuzz/Bidi",
    "/fuzz.v1.Fuzz/Missing",
];

/// The router end to end: content type, encoding, path, method and a chunked body all come
/// from `data` (4 selector bytes, then body chunks separated by `0xFF 0xFE`). The whole
/// response must be produced, and promptly.
pub fn router_call(data: &[u8]) {
    let [method, ct, enc, path, rest @ ..] = data else {
        return;
    };
    let method = match method % 4 {
        0 | 1 => http::Method::POST,
        2 => http::Method::GET,
        _ => http::Method::PUT,
    };
    let ct = CONTENT_TYPES[usize::from(*ct) % CONTENT_TYPES.len()];
    let enc = ENCODINGS[usize::from(*enc) % ENCODINGS.len()];
    let path = PATHS[usize::from(*path) % PATHS.len()];
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < rest.len() {
        if rest[i] == 0xFF && rest[i + 1] == 0xFE {
            chunks.push(Bytes::copy_from_slice(&rest[start..i]));
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    chunks.push(Bytes::copy_from_slice(&rest[start..]));
    let uri = if method == http::Method::GET {
        let query = String::from_utf8_lossy(chunks.first().map_or(&[][..], |c| &c[..]));
        format!("http://fuzz{path}?{query}")
    } else {
        format!("http://fuzz{path}")
    };
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return;
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    if !ct.is_empty() {
        builder = builder.header("content-type", ct);
    }
    if !enc.is_empty() {
        for name in [
            "content-encoding",
            "connect-content-encoding",
            "grpc-encoding",
        ] {
            builder = builder.header(name, enc);
        }
    }
    let body = futures_util::stream::iter(
        chunks
            .into_iter()
            .map(|c| Ok::<_, crate::BoxError>(http_body::Frame::data(c))),
    );
    let Ok(request) = builder.body(crate::boxed_body(http_body_util::StreamBody::new(body))) else {
        return;
    };
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime");
    }
    RUNTIME.with(|rt| {
        rt.block_on(async {
            use http_body_util::BodyExt as _;
            let call = async {
                let response = router().handle(request).await;
                let _ = response.into_body().collect().await;
            };
            tokio::time::timeout(Duration::from_secs(5), call)
                .await
                .expect("the router answers within 5 s");
        });
    });
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// Every target, by its name in `fuzz/`: what the replay test iterates over.
pub const TARGETS: &[(&str, Target)] = &[
    ("envelope", envelope),
    ("gzip", gzip),
    ("deflate", deflate),
    ("br", br),
    ("zstd", zstd),
    ("connect_get_query", connect_get_query),
    ("grpc_web_text", grpc_web_text),
    ("grpc_web_trailers", grpc_web_trailers),
    ("timeouts", timeouts),
    ("connect_error_json", connect_error_json),
    ("bin_header", bin_header),
    ("router", router_call),
];
