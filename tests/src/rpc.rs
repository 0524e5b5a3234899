//! RPCs spoken by hand over [`RawClient`]: builds the request bytes of each protocol
//! (Connect, gRPC, gRPC-Web binary and text) and checks the response's wire shape strictly
//! while parsing it, so a test gets either a protocol violation or a clean [`Outcome`].

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine as _;
use http::{HeaderMap, HeaderName, Method, StatusCode};
use volley::{Spec, StreamType};

use crate::compress::{compress, decompress};
use crate::proto::volley::interop::v1::{EchoRequest, EchoResponse};
use crate::raw::{
    FLAG_COMPRESSED, FLAG_END_STREAM, FLAG_TRAILERS, Http, RawClient, Reply, decode_bin,
    decode_grpc_message, decode_status_details, decode_web_text, encode_web_text, envelope, full,
    parse_envelopes, parse_trailer_block,
};

/// The wire protocols, with gRPC-Web's text variant on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Connect.
    Connect,
    /// gRPC (HTTP/2 only).
    Grpc,
    /// gRPC-Web, binary.
    GrpcWeb,
    /// gRPC-Web, base64 text.
    GrpcWebText,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 4] = [
        Protocol::Connect,
        Protocol::Grpc,
        Protocol::GrpcWeb,
        Protocol::GrpcWebText,
    ];

    /// Whether the protocol runs over `http` (gRPC needs HTTP/2).
    pub fn works_over(self, http: Http) -> bool {
        self != Protocol::Grpc || http == Http::H2
    }
}

/// The message codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Binary protobuf.
    Proto,
    /// Canonical proto3 JSON.
    Json,
}

impl Codec {
    /// Both codecs.
    pub const ALL: [Codec; 2] = [Codec::Proto, Codec::Json];

    /// The name in content types.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Proto => "proto",
            Codec::Json => "json",
        }
    }
}

/// Encodes a message with `codec`.
pub fn encode_message<M>(codec: Codec, message: &M) -> Vec<u8>
where
    M: buffa::Message + serde::Serialize,
{
    match codec {
        Codec::Proto => message.encode_to_vec(),
        Codec::Json => serde_json::to_vec(message).unwrap_or_default(),
    }
}

/// Decodes a message with `codec`.
pub fn decode_message<M>(codec: Codec, bytes: &[u8]) -> anyhow::Result<M>
where
    M: buffa::Message + serde::de::DeserializeOwned,
{
    Ok(match codec {
        Codec::Proto => M::decode_from_slice(bytes)?,
        Codec::Json => serde_json::from_slice(bytes)
            .with_context(|| format!("bad JSON message {:?}", String::from_utf8_lossy(bytes)))?,
    })
}

/// The sixteen codes: Connect name, gRPC number, Connect HTTP status.
pub const CODES: [(&str, u32, u16); 16] = [
    ("canceled", 1, 499),
    ("unknown", 2, 500),
    ("invalid_argument", 3, 400),
    ("deadline_exceeded", 4, 504),
    ("not_found", 5, 404),
    ("already_exists", 6, 409),
    ("permission_denied", 7, 403),
    ("resource_exhausted", 8, 429),
    ("failed_precondition", 9, 400),
    ("aborted", 10, 409),
    ("out_of_range", 11, 400),
    ("unimplemented", 12, 501),
    ("internal", 13, 500),
    ("unavailable", 14, 503),
    ("data_loss", 15, 500),
    ("unauthenticated", 16, 401),
];

/// The Connect name of a gRPC code number.
pub fn code_name(number: u32) -> Option<&'static str> {
    CODES.iter().find(|c| c.1 == number).map(|c| c.0)
}

/// The HTTP status a Connect unary error with this code name answers with.
pub fn code_http_status(name: &str) -> Option<u16> {
    CODES.iter().find(|c| c.0 == name).map(|c| c.2)
}

/// An RPC error as it came over the wire, protocol differences removed.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The Connect code name (`resource_exhausted`).
    pub code: String,
    /// The message.
    pub message: String,
    /// Details as `(type name without URL prefix, value)`.
    pub details: Vec<(String, Vec<u8>)>,
}

/// How a call goes over the wire.
#[derive(Debug, Clone)]
pub struct Call {
    /// The protocol.
    pub protocol: Protocol,
    /// The codec.
    pub codec: Codec,
    /// The request encoding, also the only one accepted back (`identity` for none).
    pub encoding: &'static str,
    /// The HTTP version.
    pub http: Http,
    /// Extra request headers.
    pub headers: HeaderList,
}

impl Call {
    /// A call with no extra headers.
    pub fn new(protocol: Protocol, codec: Codec, encoding: &'static str, http: Http) -> Self {
        Self {
            protocol,
            codec,
            encoding,
            http,
            headers: Vec::new(),
        }
    }

    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A finished RPC.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The HTTP status.
    pub http_status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response messages.
    pub messages: Vec<EchoResponse>,
    /// The error, if the RPC failed.
    pub error: Option<RpcError>,
    /// The RPC's trailers: Connect unary `trailer-` headers (prefix removed), Connect
    /// end-of-stream metadata, gRPC HTTP trailers or the gRPC-Web trailer frame. Protocol
    /// fields such as `grpc-status` included.
    pub trailers: HeaderMap,
    /// How many response messages (or Connect unary bodies) came compressed.
    pub compressed: usize,
    /// Whether a gRPC / gRPC-Web error came as a trailers-only response.
    pub trailers_only: bool,
}

impl Outcome {
    /// The one message of a successful unary-response call.
    pub fn single(&self) -> anyhow::Result<&EchoResponse> {
        if let Some(err) = &self.error {
            bail!("expected a response, got error {err:?}");
        }
        ensure!(
            self.messages.len() == 1,
            "expected one message, got {}",
            self.messages.len()
        );
        Ok(&self.messages[0])
    }

    /// The error of a failed call.
    pub fn err(&self) -> anyhow::Result<&RpcError> {
        self.error
            .as_ref()
            .ok_or_else(|| anyhow!("expected an error, got {} messages", self.messages.len()))
    }

    /// A response header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A trailer.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn connect_unary(protocol: Protocol, spec: &Spec) -> bool {
    protocol == Protocol::Connect && spec.stream_type == StreamType::Unary
}

/// The request content type for a call.
pub fn request_content_type(protocol: Protocol, codec: Codec, unary_connect: bool) -> String {
    match (protocol, codec) {
        (Protocol::Connect, c) if unary_connect => format!("application/{}", c.name()),
        (Protocol::Connect, c) => format!("application/connect+{}", c.name()),
        (Protocol::Grpc, Codec::Proto) => "application/grpc".into(),
        (Protocol::Grpc, c) => format!("application/grpc+{}", c.name()),
        (Protocol::GrpcWeb, c) => format!("application/grpc-web+{}", c.name()),
        (Protocol::GrpcWebText, Codec::Proto) => "application/grpc-web-text".into(),
        (Protocol::GrpcWebText, c) => format!("application/grpc-web-text+{}", c.name()),
    }
}

fn response_content_type(protocol: Protocol, codec: Codec, unary_connect: bool) -> String {
    match protocol {
        Protocol::Connect if unary_connect => format!("application/{}", codec.name()),
        Protocol::Connect => format!("application/connect+{}", codec.name()),
        Protocol::Grpc => format!("application/grpc+{}", codec.name()),
        Protocol::GrpcWeb => format!("application/grpc-web+{}", codec.name()),
        Protocol::GrpcWebText => format!("application/grpc-web-text+{}", codec.name()),
    }
}

/// Request headers as name-value pairs, in order.
pub type HeaderList = Vec<(String, String)>;

/// The request headers and body for `requests` (a Connect unary call takes the first).
pub fn build_request(
    call: &Call,
    spec: &Spec,
    requests: &[EchoRequest],
) -> anyhow::Result<(HeaderList, Vec<u8>)> {
    let unary = connect_unary(call.protocol, spec);
    let mut headers = vec![(
        "content-type".to_string(),
        request_content_type(call.protocol, call.codec, unary),
    )];
    let identity = call.encoding == "identity";
    let (encoding, accept) = match call.protocol {
        Protocol::Connect if unary => ("content-encoding", "accept-encoding"),
        Protocol::Connect => ("connect-content-encoding", "connect-accept-encoding"),
        _ => ("grpc-encoding", "grpc-accept-encoding"),
    };
    if !identity {
        headers.push((encoding.into(), call.encoding.into()));
        headers.push((accept.into(), call.encoding.into()));
    }
    match call.protocol {
        Protocol::Connect => headers.push(("connect-protocol-version".into(), "1".into())),
        Protocol::Grpc => headers.push(("te".into(), "trailers".into())),
        Protocol::GrpcWeb | Protocol::GrpcWebText => {
            headers.push(("x-grpc-web".into(), "1".into()))
        }
    }
    headers.extend(call.headers.iter().cloned());
    let body = if unary {
        let first = requests.first().cloned().unwrap_or_default();
        compress(call.encoding, &encode_message(call.codec, &first))?
    } else {
        let mut body = Vec::new();
        for request in requests {
            let encoded = encode_message(call.codec, request);
            if identity {
                body.extend(envelope(0, &encoded));
            } else {
                body.extend(envelope(
                    FLAG_COMPRESSED,
                    &compress(call.encoding, &encoded)?,
                ));
            }
        }
        if call.protocol == Protocol::GrpcWebText {
            encode_web_text(&body)
        } else {
            body
        }
    };
    Ok((headers, body))
}

/// Runs one RPC: sends `requests` at once and parses the whole response strictly.
pub async fn call(
    client: &RawClient,
    call: &Call,
    spec: &Spec,
    requests: &[EchoRequest],
) -> anyhow::Result<Outcome> {
    let (headers, body) = build_request(call, spec, requests)?;
    let mut builder = client.request(call.http, Method::POST, spec.procedure);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    let reply = client.call(call.http, builder.body(full(body))?).await?;
    parse_reply(call, spec, reply)
}

/// Parses a response in the call's protocol, failing on any deviation from the wire format.
pub fn parse_reply(call: &Call, spec: &Spec, reply: Reply) -> anyhow::Result<Outcome> {
    if connect_unary(call.protocol, spec) {
        parse_connect_unary(call, reply)
    } else if call.protocol == Protocol::Connect {
        parse_connect_stream(call, reply)
    } else {
        parse_grpc(call, reply)
    }
}

fn content_type(reply: &Reply) -> &str {
    reply.header("content-type").unwrap_or("")
}

/// The response encoding header, checked against what the call accepts.
fn response_encoding(call: &Call, reply: &Reply, header: &str) -> anyhow::Result<Option<String>> {
    match reply.header(header) {
        None | Some("identity") => Ok(None),
        Some(enc) => {
            ensure!(
                enc == call.encoding,
                "{header} is {enc:?} but the call accepts only {:?}",
                call.encoding
            );
            Ok(Some(enc.to_string()))
        }
    }
}

/// Parses a Connect JSON error (unary body or end-stream `error`).
pub fn parse_connect_error(value: &serde_json::Value) -> anyhow::Result<RpcError> {
    let obj = value
        .as_object()
        .ok_or_else(|| anyhow!("error is not an object: {value}"))?;
    let code = obj
        .get("code")
        .and_then(|c| c.as_str())
        .ok_or_else(|| anyhow!("error without a string code: {value}"))?;
    ensure!(code_http_status(code).is_some(), "unknown code {code:?}");
    let message = match obj.get("message") {
        None => String::new(),
        Some(m) => m
            .as_str()
            .ok_or_else(|| anyhow!("message is not a string"))?
            .to_string(),
    };
    let mut details = Vec::new();
    if let Some(list) = obj.get("details") {
        for d in list
            .as_array()
            .ok_or_else(|| anyhow!("details not a list"))?
        {
            let type_name = d
                .get("type")
                .and_then(|t| t.as_str())
                .ok_or_else(|| anyhow!("detail without type: {d}"))?;
            ensure!(
                !type_name.contains('/'),
                "detail type has a URL prefix: {type_name}"
            );
            let value = d
                .get("value")
                .and_then(|t| t.as_str())
                .ok_or_else(|| anyhow!("detail without value: {d}"))?;
            ensure!(!value.ends_with('='), "detail value is padded: {value}");
            let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(value)
                .context("detail value is not unpadded standard base64")?;
            details.push((type_name.to_string(), bytes));
        }
    }
    Ok(RpcError {
        code: code.to_string(),
        message,
        details,
    })
}

fn parse_connect_unary(call: &Call, reply: Reply) -> anyhow::Result<Outcome> {
    let mut headers = reply.headers.clone();
    let mut trailers = HeaderMap::new();
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("trailer-"))
        .cloned()
        .collect();
    for name in names {
        let short = HeaderName::from_bytes(&name.as_str().as_bytes()["trailer-".len()..])?;
        for v in headers.get_all(&name) {
            trailers.append(short.clone(), v.clone());
        }
        headers.remove(&name);
    }
    if reply.status != StatusCode::OK {
        ensure!(
            content_type(&reply) == "application/json",
            "error content-type {:?}",
            content_type(&reply)
        );
        let error = parse_connect_error(&reply.json()?)?;
        let expected = code_http_status(&error.code).unwrap_or(0);
        ensure!(
            reply.status.as_u16() == expected,
            "code {} came with HTTP {}, expected {expected}",
            error.code,
            reply.status
        );
        return Ok(Outcome {
            http_status: reply.status,
            headers,
            messages: Vec::new(),
            error: Some(error),
            trailers,
            compressed: 0,
            trailers_only: false,
        });
    }
    let expected_ct = response_content_type(call.protocol, call.codec, true);
    ensure!(
        content_type(&reply) == expected_ct,
        "content-type {:?}, expected {expected_ct:?}",
        content_type(&reply)
    );
    let encoding = response_encoding(call, &reply, "content-encoding")?;
    let body = match &encoding {
        Some(enc) => decompress(enc, &reply.body)?,
        None => reply.body.to_vec(),
    };
    let message = decode_message(call.codec, &body)?;
    Ok(Outcome {
        http_status: reply.status,
        headers,
        messages: vec![message],
        error: None,
        trailers,
        compressed: usize::from(encoding.is_some()),
        trailers_only: false,
    })
}

fn parse_connect_stream(call: &Call, reply: Reply) -> anyhow::Result<Outcome> {
    ensure!(
        reply.status == StatusCode::OK,
        "Connect stream answered HTTP {}",
        reply.status
    );
    let expected_ct = response_content_type(call.protocol, call.codec, false);
    ensure!(
        content_type(&reply) == expected_ct,
        "content-type {:?}, expected {expected_ct:?}",
        content_type(&reply)
    );
    let encoding = response_encoding(call, &reply, "connect-content-encoding")?;
    let envelopes = parse_envelopes(&reply.body)?;
    let (end, messages) = envelopes
        .split_last()
        .ok_or_else(|| anyhow!("Connect stream without an end-of-stream message"))?;
    ensure!(
        end.flags & FLAG_END_STREAM != 0,
        "last envelope has flags {:#04x}, not end-of-stream",
        end.flags
    );
    ensure!(
        end.flags & !(FLAG_END_STREAM | FLAG_COMPRESSED) == 0,
        "bad end flags {:#04x}",
        end.flags
    );
    let mut out = Vec::new();
    let mut compressed = 0;
    for env in messages {
        ensure!(
            env.flags & !FLAG_COMPRESSED == 0,
            "message envelope with flags {:#04x}",
            env.flags
        );
        out.push(decode_message(
            call.codec,
            &unpack(env.flags, &env.data, encoding.as_deref())?,
        )?);
        compressed += usize::from(env.flags & FLAG_COMPRESSED != 0);
    }
    let end_json: serde_json::Value =
        serde_json::from_slice(&unpack(end.flags, &end.data, encoding.as_deref())?)
            .context("end-of-stream message is not JSON")?;
    let obj = end_json
        .as_object()
        .ok_or_else(|| anyhow!("end-of-stream message is not an object"))?;
    let error = match obj.get("error") {
        None | Some(serde_json::Value::Null) => None,
        Some(e) => Some(parse_connect_error(e)?),
    };
    let mut trailers = HeaderMap::new();
    if let Some(meta) = obj.get("metadata") {
        for (key, values) in meta
            .as_object()
            .ok_or_else(|| anyhow!("metadata not an object"))?
        {
            let name = HeaderName::from_bytes(key.as_bytes())?;
            for v in values
                .as_array()
                .ok_or_else(|| anyhow!("metadata values not a list"))?
            {
                let v = v
                    .as_str()
                    .ok_or_else(|| anyhow!("metadata value not a string"))?;
                trailers.append(name.clone(), v.parse()?);
            }
        }
    }
    Ok(Outcome {
        http_status: reply.status,
        headers: reply.headers,
        messages: out,
        error,
        trailers,
        compressed,
        trailers_only: false,
    })
}

fn unpack(flags: u8, data: &[u8], encoding: Option<&str>) -> anyhow::Result<Vec<u8>> {
    if flags & FLAG_COMPRESSED == 0 {
        return Ok(data.to_vec());
    }
    let enc = encoding.ok_or_else(|| anyhow!("compressed envelope without a response encoding"))?;
    decompress(enc, data)
}

/// Reads `grpc-status`, `grpc-message` and `grpc-status-details-bin` from a status block,
/// checking the details agree with the status.
pub fn grpc_status(map: &HeaderMap) -> anyhow::Result<Option<RpcError>> {
    let status = map
        .get("grpc-status")
        .ok_or_else(|| anyhow!("no grpc-status in {map:?}"))?
        .to_str()?;
    let number: u32 = status
        .parse()
        .with_context(|| format!("grpc-status {status:?}"))?;
    if number == 0 {
        ensure!(
            !map.contains_key("grpc-status-details-bin"),
            "details on success"
        );
        return Ok(None);
    }
    let code = code_name(number).ok_or_else(|| anyhow!("grpc-status {number} out of range"))?;
    let message = match map.get("grpc-message") {
        Some(v) => decode_grpc_message(v.to_str().context("grpc-message is not ASCII")?)?,
        None => String::new(),
    };
    let mut details = Vec::new();
    if let Some(bin) = map.get("grpc-status-details-bin") {
        let status = decode_status_details(bin.to_str()?)?;
        ensure!(
            u32::try_from(status.code).ok() == Some(number),
            "details code {} != grpc-status {number}",
            status.code
        );
        ensure!(
            status.message == message,
            "details message {:?} != {message:?}",
            status.message
        );
        for any in &status.details {
            let name = any
                .type_url
                .strip_prefix("type.googleapis.com/")
                .ok_or_else(|| anyhow!("detail type URL {:?}", any.type_url))?;
            details.push((name.to_string(), any.value.to_vec()));
        }
    }
    Ok(Some(RpcError {
        code: code.to_string(),
        message,
        details,
    }))
}

fn parse_grpc(call: &Call, reply: Reply) -> anyhow::Result<Outcome> {
    ensure!(
        reply.status == StatusCode::OK,
        "{:?} answered HTTP {}",
        call.protocol,
        reply.status
    );
    let expected_ct = response_content_type(call.protocol, call.codec, false);
    ensure!(
        content_type(&reply) == expected_ct,
        "content-type {:?}, expected {expected_ct:?}",
        content_type(&reply)
    );
    let encoding = response_encoding(call, &reply, "grpc-encoding")?;
    // Trailers-only: the status in the headers, nothing else.
    if reply.headers.contains_key("grpc-status") {
        ensure!(reply.body.is_empty(), "trailers-only response with a body");
        ensure!(
            reply.trailers.as_ref().is_none_or(|t| t.is_empty()),
            "trailers-only response with trailers too"
        );
        let error = grpc_status(&reply.headers)?;
        return Ok(Outcome {
            http_status: reply.status,
            headers: reply.headers.clone(),
            messages: Vec::new(),
            error,
            trailers: reply.headers,
            compressed: 0,
            trailers_only: true,
        });
    }
    let body = if call.protocol == Protocol::GrpcWebText {
        decode_web_text(&reply.body)?
    } else {
        reply.body.to_vec()
    };
    let mut envelopes = parse_envelopes(&body)?;
    let trailers = if call.protocol == Protocol::Grpc {
        ensure!(
            envelopes.iter().all(|e| e.flags & !FLAG_COMPRESSED == 0),
            "gRPC envelope with unknown flags"
        );
        reply
            .trailers
            .clone()
            .ok_or_else(|| anyhow!("gRPC response without trailers"))?
    } else {
        ensure!(
            reply.trailers.as_ref().is_none_or(|t| t.is_empty()),
            "gRPC-Web response with HTTP trailers"
        );
        let last = envelopes
            .pop()
            .ok_or_else(|| anyhow!("gRPC-Web response without a trailer frame"))?;
        ensure!(
            last.flags & FLAG_TRAILERS != 0,
            "last gRPC-Web frame has flags {:#04x}",
            last.flags
        );
        ensure!(
            envelopes.iter().all(|e| e.flags & !FLAG_COMPRESSED == 0),
            "trailer frame before the end"
        );
        parse_trailer_block(&unpack(last.flags, &last.data, encoding.as_deref())?)?
    };
    let mut messages = Vec::new();
    let mut compressed = 0;
    for env in &envelopes {
        messages.push(decode_message(
            call.codec,
            &unpack(env.flags, &env.data, encoding.as_deref())?,
        )?);
        compressed += usize::from(env.flags & FLAG_COMPRESSED != 0);
    }
    let error = grpc_status(&trailers)?;
    Ok(Outcome {
        http_status: reply.status,
        headers: reply.headers,
        messages,
        error,
        trailers,
        compressed,
        trailers_only: false,
    })
}

/// Whether a header value is the binary header for `bytes` (either base64 padding).
pub fn bin_header_is(value: &str, bytes: &[u8]) -> bool {
    decode_bin(value).is_ok_and(|v| v == bytes)
}
