//! A raw HTTP client (hyper 1 through hyper-util's pooled client, HTTP/1.1 or h2c with prior
//! knowledge) and the wire formats built and parsed by hand: envelopes, gRPC-Web trailer
//! frames, base64 text bodies, `-bin` headers and `google.rpc.Status`.

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{HttpConnector, HttpInfo};
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

/// Errors a request body may fail with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;
/// The request body type of [`RawClient`]: whole or streamed.
pub type ReqBody = http_body_util::combinators::BoxBody<Bytes, BodyError>;

/// The HTTP version a request goes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Http {
    /// HTTP/1.1.
    H1,
    /// HTTP/2 over cleartext with prior knowledge (h2c).
    H2,
}

impl Http {
    /// Both versions.
    pub const ALL: [Http; 2] = [Http::H1, Http::H2];

    /// The `http::Version` responses come back with.
    pub fn version(self) -> Version {
        match self {
            Http::H1 => Version::HTTP_11,
            Http::H2 => Version::HTTP_2,
        }
    }
}

/// A whole request body.
pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A streamed request body: what is sent on the channel goes out as it is sent; dropping the
/// sender ends the body.
pub fn channel_body() -> (mpsc::Sender<Bytes>, ReqBody) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, BodyError>(Frame::data(chunk)), rx))
    });
    (tx, StreamBody::new(stream).boxed())
}

/// Pooled HTTP/1.1 and h2c clients for one server.
#[derive(Clone, Debug)]
pub struct RawClient {
    addr: SocketAddr,
    h1: Client<HttpConnector, ReqBody>,
    h2: Client<HttpConnector, ReqBody>,
}

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The HTTP version it came over.
    pub version: Version,
    /// The response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// HTTP trailers, if any came.
    pub trailers: Option<HeaderMap>,
    /// The client side's address of the connection.
    pub local_addr: Option<SocketAddr>,
}

impl Reply {
    /// A header as a string (`None` if missing or not visible ASCII).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// An HTTP trailer as a string.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .and_then(|v| v.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "body is not JSON: {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

impl RawClient {
    /// Clients for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let h1 = Client::builder(TokioExecutor::new()).build(connector.clone());
        let h2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Self { addr, h1, h2 }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://addr` + `path_and_query`.
    pub fn uri(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// A request builder for `path_and_query` with the version set for `http`.
    pub fn request(
        &self,
        http: Http,
        method: Method,
        path_and_query: &str,
    ) -> http::request::Builder {
        http::Request::builder()
            .method(method)
            .uri(self.uri(path_and_query))
            .version(http.version())
    }

    /// Sends a request; the response body is left to read.
    pub async fn send(
        &self,
        http: Http,
        request: http::Request<ReqBody>,
    ) -> anyhow::Result<http::Response<Incoming>> {
        let client = match http {
            Http::H1 => &self.h1,
            Http::H2 => &self.h2,
        };
        let response = client.request(request).await?;
        ensure!(
            response.version() == http.version(),
            "asked for {:?}, got {:?}",
            http.version(),
            response.version()
        );
        Ok(response)
    }

    /// Sends a request and reads the whole response, trailers included.
    pub async fn call(&self, http: Http, request: http::Request<ReqBody>) -> anyhow::Result<Reply> {
        read_reply(self.send(http, request).await?).await
    }

    /// POSTs `body` with `headers`.
    pub async fn post(
        &self,
        http: Http,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> anyhow::Result<Reply> {
        let mut builder = self.request(http, Method::POST, path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.call(http, builder.body(full(body))?).await
    }

    /// GETs `path_and_query` with `headers`.
    pub async fn get(
        &self,
        http: Http,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut builder = self.request(http, Method::GET, path_and_query);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        self.call(http, builder.body(full(Bytes::new()))?).await
    }
}

/// Reads a response to its end.
pub async fn read_reply(response: http::Response<Incoming>) -> anyhow::Result<Reply> {
    let local_addr = response
        .extensions()
        .get::<HttpInfo>()
        .map(HttpInfo::local_addr);
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.context("reading the response body")?;
    let trailers = collected.trailers().cloned();
    Ok(Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
        local_addr,
    })
}

/// Envelope flag: compressed.
pub const FLAG_COMPRESSED: u8 = 0x01;
/// Envelope flag (Connect): end of stream.
pub const FLAG_END_STREAM: u8 = 0x02;
/// Envelope flag (gRPC-Web): trailers.
pub const FLAG_TRAILERS: u8 = 0x80;

/// One envelope: flags byte, 4-byte big-endian length, payload.
pub fn envelope(flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(flags);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The flags byte.
    pub flags: u8,
    /// The payload as sent.
    pub data: Bytes,
}

/// Splits a body into envelopes; anything left over that is not a whole envelope is an error.
pub fn parse_envelopes(body: &[u8]) -> anyhow::Result<Vec<Envelope>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        ensure!(
            rest.len() >= 5,
            "{} stray bytes after the last envelope",
            rest.len()
        );
        let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        ensure!(
            rest.len() >= 5 + len,
            "envelope declares {len} bytes, {} present",
            rest.len() - 5
        );
        out.push(Envelope {
            flags: rest[0],
            data: Bytes::copy_from_slice(&rest[5..5 + len]),
        });
        rest = &rest[5 + len..];
    }
    Ok(out)
}

/// Decodes a gRPC-Web text body: base64, possibly several padded chunks concatenated (one per
/// frame written).
pub fn decode_web_text(body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let cleaned: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    ensure!(
        cleaned.len().is_multiple_of(4),
        "text body length {} is not a multiple of 4",
        cleaned.len()
    );
    let mut out = Vec::with_capacity(cleaned.len() / 4 * 3);
    for group in cleaned.chunks(4) {
        out.extend(
            base64::engine::general_purpose::STANDARD
                .decode(group)
                .with_context(|| {
                    format!("bad base64 group {:?}", String::from_utf8_lossy(group))
                })?,
        );
    }
    Ok(out)
}

/// Encodes bytes as a gRPC-Web text body.
pub fn encode_web_text(bytes: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes()
}

/// Parses a gRPC-Web trailers block (`name: value\r\n` lines). Names must be lower case, as
/// the spec asks of senders.
pub fn parse_trailer_block(block: &[u8]) -> anyhow::Result<HeaderMap> {
    let text = std::str::from_utf8(block).context("trailers are not UTF-8")?;
    ensure!(
        text.is_empty() || text.ends_with("\r\n"),
        "trailer block does not end with CRLF: {text:?}"
    );
    let mut map = HeaderMap::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| anyhow!("trailer line without a colon: {line:?}"))?;
        ensure!(
            name == name.to_ascii_lowercase(),
            "trailer name not lower case: {name:?}"
        );
        map.append(
            HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value.trim())?,
        );
    }
    Ok(map)
}

/// Decodes binary metadata (`-bin` headers): standard base64, padded or not.
pub fn decode_bin(value: &str) -> anyhow::Result<Vec<u8>> {
    let trimmed = value.trim_end_matches('=');
    Ok(base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed)?)
}

/// Encodes binary metadata as unpadded standard base64.
pub fn encode_bin(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// Decodes a `grpc-status-details-bin` value into `google.rpc.Status`.
pub fn decode_status_details(value: &str) -> anyhow::Result<crate::proto::google::rpc::Status> {
    use buffa::Message as _;
    let bytes = decode_bin(value)?;
    Ok(crate::proto::google::rpc::Status::decode_from_slice(
        &bytes,
    )?)
}

/// Percent-decodes a `grpc-message` value.
pub fn decode_grpc_message(value: &str) -> anyhow::Result<String> {
    Ok(percent_encoding::percent_decode_str(value)
        .decode_utf8()?
        .into_owned())
}

/// Reads frames off a response body as they arrive, for tests that interleave sends and
/// receives.
pub struct FrameReader {
    body: Incoming,
    buf: Vec<u8>,
    text: bool,
    /// HTTP trailers, once the body has ended.
    pub trailers: Option<HeaderMap>,
}

impl FrameReader {
    /// Reads `body`; `text` for gRPC-Web text bodies.
    pub fn new(body: Incoming, text: bool) -> Self {
        Self {
            body,
            buf: Vec::new(),
            text,
            trailers: None,
        }
    }

    /// The next envelope, `None` at the end of the body.
    pub async fn next(&mut self) -> anyhow::Result<Option<Envelope>> {
        loop {
            let decoded = if self.text {
                let whole = self.buf.len() / 4 * 4;
                decode_web_text(&self.buf[..whole])?
            } else {
                self.buf.clone()
            };
            if decoded.len() >= 5 {
                let len =
                    u32::from_be_bytes([decoded[1], decoded[2], decoded[3], decoded[4]]) as usize;
                if decoded.len() >= 5 + len {
                    let env = Envelope {
                        flags: decoded[0],
                        data: Bytes::copy_from_slice(&decoded[5..5 + len]),
                    };
                    let consumed_raw = if self.text {
                        // Frames are base64-encoded one by one, so a whole frame ends on a
                        // 4-character boundary.
                        (5 + len).div_ceil(3) * 4
                    } else {
                        5 + len
                    };
                    self.buf.drain(..consumed_raw);
                    return Ok(Some(env));
                }
            }
            match self.body.frame().await {
                Some(frame) => {
                    let frame = frame?;
                    match frame.into_data() {
                        Ok(data) => self.buf.extend_from_slice(&data),
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                self.trailers = Some(t);
                            }
                        }
                    }
                }
                None => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    bail!("{} stray bytes at the end of the body", self.buf.len());
                }
            }
        }
    }
}
