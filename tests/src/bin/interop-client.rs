//! Volley's interop client for the foreign servers in `interop/` (connect-node, grpcio): runs the
//! same cases as `interop/node/client.mjs` through `volley::Client`, with no generated code (the
//! method specs are spelled out below, the messages come from `volley_tests::proto`).
//!
//! ```text
//! interop-client --url http://127.0.0.1:PORT [--protocol connect|grpc|grpcweb|grpcwebtext]
//!     [--codec proto|json] [--http 1.1|2|3] [--compression identity|gzip|br|zstd|deflate]
//!     [--cases a,b] [--skip a,b] [--case-timeout-ms N] [--ca CERT_PEM]
//!     [--any-response-encoding] [--list]
//! ```
//!
//! Prints `PASS name`, `FAIL name: reason` or `SKIP name: reason` per case, then
//! `N passed, N failed, N skipped`; exits 1 if a case failed, 2 on bad arguments.
//! `--any-response-encoding` drops the check that the server answers in the request's
//! compression (grpcio never does).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use base64::Engine as _;
use buffa_types::google::protobuf::{Any, Timestamp};
use http::{HeaderMap, Method};
use volley::client::{HttpTransport, HttpVersion};
use volley::compression::{Brotli, Deflate, Gzip, Registry, Zstd};
use volley::{
    Body, CallOptions, Client, ClientConfig, Code, Codec, Error, ErrorDetail, Idempotency,
    JsonCodec, ProtoCodec, Protocol, Spec, StreamType, Transport,
};
use volley_tests::proto::volley::interop::v1::{EchoRequest, EchoResponse, ErrorInfo, ErrorSpec};

const ECHO: Spec = Spec::new(
    "/volley.interop.v1.InteropService/Echo",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);
const SERVER_STREAM: Spec = Spec::new(
    "/volley.interop.v1.InteropService/ServerStream",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
const CLIENT_STREAM: Spec = Spec::new(
    "/volley.interop.v1.InteropService/ClientStream",
    StreamType::ClientStream,
    Idempotency::Unknown,
);
const BIDI: Spec = Spec::new(
    "/volley.interop.v1.InteropService/Bidi",
    StreamType::BidiStream,
    Idempotency::Unknown,
);

const USAGE: &str = "usage: interop-client --url http://127.0.0.1:PORT \
[--protocol connect|grpc|grpcweb|grpcwebtext] [--codec proto|json] [--http 1.1|2|3] \
[--compression identity|gzip|br|zstd|deflate] [--cases a,b] [--skip a,b] \
[--case-timeout-ms N] [--ca CERT_PEM] [--any-response-encoding] [--list]";

// --- arguments ------------------------------------------------------------------------

struct Args {
    url: String,
    protocol: Protocol,
    /// gRPC-Web text (`--protocol grpcwebtext`).
    text: bool,
    codec: &'static dyn Codec,
    http1: bool,
    /// `--http 3`: HTTP/3 over QUIC (needs an https URL).
    http3: bool,
    compression: Option<&'static str>,
    only: Vec<String>,
    skip: Vec<String>,
    case_timeout: Duration,
    ca: Option<std::path::PathBuf>,
    any_response_encoding: bool,
    list: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        url: String::new(),
        protocol: Protocol::Connect,
        text: false,
        codec: &ProtoCodec,
        http1: false,
        http3: false,
        compression: None,
        only: Vec::new(),
        skip: Vec::new(),
        case_timeout: Duration::from_secs(20),
        ca: None,
        any_response_encoding: false,
        list: false,
    };
    let names = |v: String| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => args.url = value("--url")?,
            "--protocol" => {
                args.protocol = match value("--protocol")?.as_str() {
                    "connect" => Protocol::Connect,
                    "grpc" => Protocol::Grpc,
                    "grpcweb" => Protocol::GrpcWeb,
                    "grpcwebtext" => {
                        args.text = true;
                        Protocol::GrpcWeb
                    }
                    other => bail!(
                        "--protocol must be connect, grpc, grpcweb or grpcwebtext, not {other:?}"
                    ),
                }
            }
            "--codec" => {
                args.codec = match value("--codec")?.as_str() {
                    "proto" => &ProtoCodec,
                    "json" => &JsonCodec,
                    other => bail!("--codec must be proto or json, not {other:?}"),
                }
            }
            "--http" => {
                (args.http1, args.http3) = match value("--http")?.as_str() {
                    "1.1" => (true, false),
                    "2" => (false, false),
                    "3" => (false, true),
                    other => bail!("--http must be 1.1, 2 or 3, not {other:?}"),
                }
            }
            "--compression" => {
                args.compression = match value("--compression")?.as_str() {
                    "identity" => None,
                    "gzip" => Some("gzip"),
                    "br" => Some("br"),
                    "zstd" => Some("zstd"),
                    "deflate" => Some("deflate"),
                    other => bail!(
                        "--compression must be identity, gzip, br, zstd or deflate, not {other:?}"
                    ),
                }
            }
            "--cases" => args.only = names(value("--cases")?),
            "--skip" => args.skip = names(value("--skip")?),
            "--case-timeout-ms" => {
                let v = value("--case-timeout-ms")?;
                args.case_timeout = Duration::from_millis(
                    v.parse()
                        .with_context(|| format!("bad --case-timeout-ms {v:?}"))?,
                );
            }
            "--ca" => args.ca = Some(value("--ca")?.into()),
            "--any-response-encoding" => args.any_response_encoding = true,
            "--list" => args.list = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    for name in args.only.iter().chain(&args.skip) {
        ensure!(
            CASES.iter().any(|c| c.name == name),
            "unknown case {name:?} (see --list)"
        );
    }
    ensure!(args.list || !args.url.is_empty(), "--url is required");
    Ok(args)
}

// --- a transport that remembers what went over the wire -------------------------------

/// One exchange as the transport saw it.
#[derive(Clone, Debug)]
struct Exchange {
    method: Method,
    request_headers: HeaderMap,
    response_headers: Option<HeaderMap>,
}

/// Volley's own HTTP transport, recording each request's method and headers and the
/// response's headers, so cases can check what was actually sent and received.
#[derive(Clone, Debug)]
struct Recorder {
    inner: HttpTransport,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl Transport for Recorder {
    fn send(
        &self,
        request: http::Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>> {
        let index = {
            let mut log = self.log.lock().expect("log lock");
            log.push(Exchange {
                method: request.method().clone(),
                request_headers: request.headers().clone(),
                response_headers: None,
            });
            log.len() - 1
        };
        let log = self.log.clone();
        let sent = self.inner.send(request);
        Box::pin(async move {
            let response = sent.await?;
            if let Some(e) = log.lock().expect("log lock").get_mut(index) {
                e.response_headers = Some(response.headers().clone());
            }
            Ok(response)
        })
    }
}

impl Recorder {
    fn mark(&self) -> usize {
        self.log.lock().expect("log lock").len()
    }

    fn exchange(&self, index: usize) -> anyhow::Result<Exchange> {
        self.log
            .lock()
            .expect("log lock")
            .get(index)
            .cloned()
            .ok_or_else(|| anyhow!("no HTTP request was recorded"))
    }
}

// --- the context every case gets ------------------------------------------------------

struct Ctx {
    args: Args,
    client: Client<Recorder>,
    get_client: Client<Recorder>,
    recorder: Recorder,
}

impl Ctx {
    fn new(args: Args) -> anyhow::Result<Self> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let make = |use_get: bool| -> anyhow::Result<(Client<Recorder>, Recorder)> {
            let mut config = ClientConfig::new(&args.url)?
                .protocol(args.protocol)
                .grpc_web_text(args.text)
                .codec(args.codec)
                .http_version(if args.http1 {
                    HttpVersion::Http1
                } else if args.http3 {
                    HttpVersion::Http3
                } else {
                    HttpVersion::Http2
                })
                // Accept only the chosen compression, as the node client does, so a server that
                // mirrors it is observable.
                .compression(accepted(args.compression))
                .connect_get(use_get, 8 * 1024);
            if let Some(name) = args.compression {
                config = config.send_compression(name);
            }
            if let Some(ca) = &args.ca {
                let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                config = config.tls_from_pem(Some(&pem), None)?;
            }
            // The built-in transport, as `Client::new` sets it up for this configuration.
            let inner: HttpTransport = Client::new(config.clone())?.transport().clone();
            let recorder = Recorder {
                inner,
                log: log.clone(),
            };
            Ok((Client::with_transport(config, recorder.clone()), recorder))
        };
        let (client, recorder) = make(false)?;
        let (get_client, _) = make(true)?;
        Ok(Self {
            args,
            client,
            get_client,
            recorder,
        })
    }

    fn http1(&self) -> bool {
        self.args.http1
    }

    /// The header naming the message compression of a request or response.
    fn encoding_header(&self, streaming: bool) -> &'static str {
        match (self.args.protocol, streaming) {
            (Protocol::Connect, false) => "content-encoding",
            (Protocol::Connect, true) => "connect-content-encoding",
            _ => "grpc-encoding",
        }
    }
}

fn accepted(compression: Option<&str>) -> Registry {
    let registry = Registry::empty();
    match compression {
        Some("gzip") => registry.with(Gzip),
        Some("br") => registry.with(Brotli),
        Some("zstd") => registry.with(Zstd),
        Some("deflate") => registry.with(Deflate),
        _ => registry,
    }
}

// --- helpers --------------------------------------------------------------------------

fn eq<T: PartialEq + std::fmt::Debug>(actual: T, expected: T, what: &str) -> anyhow::Result<()> {
    ensure!(
        actual == expected,
        "{what}: got {actual:?}, want {expected:?}"
    );
    Ok(())
}

fn bytes_eq(actual: &[u8], expected: &[u8], what: &str) -> anyhow::Result<()> {
    ensure!(
        actual.len() == expected.len(),
        "{what}: {} bytes, want {}",
        actual.len(),
        expected.len()
    );
    if let Some(i) = actual.iter().zip(expected).position(|(a, b)| a != b) {
        bail!("{what}: differs at byte {i}");
    }
    Ok(())
}

fn header<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    map.get(name).and_then(|v| v.to_str().ok())
}

/// Decodes base64 with or without padding, standard or URL-safe alphabet.
fn decode_base64(value: &str) -> anyhow::Result<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = value.trim().trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .with_context(|| format!("{value:?} is not base64"))
}

fn expect_error<T>(result: Result<T, Error>, code: Code, what: &str) -> anyhow::Result<Error> {
    match result {
        Ok(_) => bail!("{what}: succeeded, want {}", code.as_str()),
        Err(e) => {
            ensure!(
                e.code() == code,
                "{what}: got {} ({}), want {}",
                e.code().as_str(),
                e.message(),
                code.as_str()
            );
            Ok(e)
        }
    }
}

/// Deterministic, poorly compressible bytes (the node client's xorshift).
fn noise(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 0xff) as u8
        })
        .collect()
}

fn text(s: &str) -> EchoRequest {
    EchoRequest {
        text: s.to_string(),
        ..Default::default()
    }
}

fn error_spec(code: Code, message: &str, details: Vec<Any>) -> ErrorSpec {
    ErrorSpec {
        code: code.as_u32() as i32,
        message: message.to_string(),
        details,
        ..Default::default()
    }
}

fn error_info() -> ErrorInfo {
    ErrorInfo {
        reason: "TEST_REASON".to_string(),
        domain: "volley.test".to_string(),
        ..Default::default()
    }
}

fn error_info_any() -> Any {
    ErrorDetail::from_message(&error_info()).to_any()
}

fn check_error_info(err: &Error) -> anyhow::Result<()> {
    eq(err.details().len(), 1, "error details")?;
    let info: ErrorInfo = err.details()[0]
        .to_message()
        .with_context(|| format!("detail is {}, want ErrorInfo", err.details()[0].type_name()))?;
    ensure!(
        info == error_info(),
        "ErrorInfo: got reason {:?} domain {:?}",
        info.reason,
        info.domain
    );
    Ok(())
}

const ECHO_VALUE: &str = "echo-value; with=punctuation";
const BIN: [u8; 7] = [0, 1, 2, 0x7f, 0x80, 0xfe, 0xff];
/// Non-ASCII and characters gRPC must percent-encode in `grpc-message`.
const ERROR_MESSAGE: &str = "failed: 100% ünïcödé\r\n{\"quoted\"}";

// --- cases ----------------------------------------------------------------------------

type CaseFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

struct Case {
    name: &'static str,
    /// A reason to skip under this configuration.
    skip: fn(&Ctx) -> Option<&'static str>,
    run: for<'a> fn(&'a Ctx) -> CaseFuture<'a>,
}

fn never(_: &Ctx) -> Option<&'static str> {
    None
}

fn needs_http2(ctx: &Ctx) -> Option<&'static str> {
    ctx.http1().then_some("full-duplex bidi needs HTTP/2")
}

fn needs_text(ctx: &Ctx) -> Option<&'static str> {
    (!ctx.args.text).then_some("checks the gRPC-Web text wire format")
}

fn needs_connect(ctx: &Ctx) -> Option<&'static str> {
    (ctx.args.protocol != Protocol::Connect).then_some("Connect GET is a Connect-protocol feature")
}

macro_rules! case {
    ($name:ident) => {
        case!($name, never)
    };
    ($name:ident, $skip:expr) => {
        Case {
            name: stringify!($name),
            skip: $skip,
            run: |ctx| Box::pin($name(ctx)),
        }
    };
}

const CASES: &[Case] = &[
    case!(unary_echo),
    case!(unary_response_size),
    case!(unary_repeated_header),
    case!(unary_deadline_propagated),
    case!(unary_get, needs_connect),
    case!(unary_web_text, needs_text),
    case!(unary_error),
    case!(unary_error_codes),
    case!(unary_deadline_exceeded),
    case!(server_stream),
    case!(server_stream_error),
    case!(client_stream),
    case!(client_stream_error),
    case!(bidi, needs_http2),
    case!(bidi_half_duplex),
    case!(bidi_error, needs_http2),
    case!(large_payload),
    case!(large_stream_compressed),
];

async fn unary_echo(ctx: &Ctx) -> anyhow::Result<()> {
    let payload = noise(100);
    let request = EchoRequest {
        text: "hello".into(),
        payload: payload.clone(),
        sent_at: Timestamp {
            seconds: 1_700_000_000,
            nanos: 5,
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let options = CallOptions::new()
        .with_header("x-test-echo", ECHO_VALUE)
        .with_binary_header("x-test-bin-bin", &BIN)
        .with_header("x-test-plain", "plain-value");
    let res = ctx
        .client
        .unary::<_, EchoResponse>(ECHO, request, options)
        .await?;
    let (m, headers, trailers) = res.into_parts();
    eq(m.text.as_str(), "hello", "text")?;
    bytes_eq(&m.payload, &payload, "payload")?;
    eq(m.index, 0, "index")?;
    eq(m.received, 1, "received")?;
    eq(m.deadline_ms, -1, "deadline_ms without a timeout")?;
    eq(
        m.headers.get("x-test-echo").map(String::as_str),
        Some(ECHO_VALUE),
        "headers[x-test-echo]",
    )?;
    eq(
        m.headers.get("x-test-plain").map(String::as_str),
        Some("plain-value"),
        "headers[x-test-plain]",
    )?;
    let seen = m
        .headers
        .get("x-test-bin-bin")
        .context("headers[x-test-bin-bin] missing")?;
    bytes_eq(&decode_base64(seen)?, &BIN, "headers[x-test-bin-bin]")?;
    eq(
        header(&headers, "x-test-echo-header"),
        Some(ECHO_VALUE),
        "response header x-test-echo-header",
    )?;
    eq(
        header(&trailers, "x-test-echo-trailer"),
        Some(ECHO_VALUE),
        "response trailer x-test-echo-trailer",
    )?;
    let bin =
        header(&headers, "x-test-bin-bin").context("response header x-test-bin-bin missing")?;
    bytes_eq(&decode_base64(bin)?, &BIN, "x-test-bin-bin round trip")
}

async fn unary_response_size(ctx: &Ctx) -> anyhow::Result<()> {
    let request = EchoRequest {
        text: "sized".into(),
        response_size: 5000,
        ..Default::default()
    };
    let res = ctx
        .client
        .unary::<_, EchoResponse>(ECHO, request, CallOptions::new())
        .await?;
    bytes_eq(
        &res.message().payload,
        &[b'x'; 5000],
        "payload of response_size 5000",
    )
}

async fn unary_repeated_header(ctx: &Ctx) -> anyhow::Result<()> {
    let options = CallOptions::new()
        .with_header("x-test-multi", "a")
        .with_header("x-test-multi", "b");
    let res = ctx
        .client
        .unary::<_, EchoResponse>(ECHO, text("multi"), options)
        .await?;
    eq(
        res.message()
            .headers
            .get("x-test-multi")
            .map(String::as_str),
        Some("a,b"),
        "headers[x-test-multi]",
    )
}

async fn unary_deadline_propagated(ctx: &Ctx) -> anyhow::Result<()> {
    let options = CallOptions::new().with_timeout(Duration::from_secs(5));
    let res = ctx
        .client
        .unary::<_, EchoResponse>(ECHO, text("deadline"), options)
        .await?;
    let ms = res.message().deadline_ms;
    ensure!(ms > 0 && ms <= 5100, "deadline_ms {ms} not in (0, 5100]");
    Ok(())
}

/// gRPC-Web text: the request and the response both say `application/grpc-web-text`.
async fn unary_web_text(ctx: &Ctx) -> anyhow::Result<()> {
    let mark = ctx.recorder.mark();
    let res = ctx
        .client
        .unary::<_, EchoResponse>(ECHO, text("in text"), CallOptions::new())
        .await?;
    eq(res.message().text.as_str(), "in text", "text")?;
    let exchange = ctx.recorder.exchange(mark)?;
    let expected = format!("application/grpc-web-text+{}", ctx.args.codec.name());
    eq(
        header(&exchange.request_headers, "content-type"),
        Some(expected.as_str()),
        "request content-type",
    )?;
    let response_type = exchange
        .response_headers
        .as_ref()
        .and_then(|h| header(h, "content-type"))
        .unwrap_or("");
    ensure!(
        response_type.starts_with("application/grpc-web-text"),
        "response content-type {response_type:?}"
    );
    Ok(())
}

async fn unary_get(ctx: &Ctx) -> anyhow::Result<()> {
    let mark = ctx.recorder.mark();
    let res = ctx
        .get_client
        .unary::<_, EchoResponse>(
            ECHO,
            text("via get"),
            CallOptions::new().with_header("x-test-echo", "g"),
        )
        .await?;
    eq(res.message().text.as_str(), "via get", "text")?;
    eq(
        ctx.recorder.exchange(mark)?.method,
        Method::GET,
        "HTTP method",
    )?;
    eq(
        header(res.headers(), "x-test-echo-header"),
        Some("g"),
        "response header x-test-echo-header",
    )
}

async fn unary_error(ctx: &Ctx) -> anyhow::Result<()> {
    let request = EchoRequest {
        text: "err".into(),
        error: error_spec(
            Code::FailedPrecondition,
            ERROR_MESSAGE,
            vec![error_info_any()],
        )
        .into(),
        ..Default::default()
    };
    let result = ctx
        .client
        .unary::<_, EchoResponse>(
            ECHO,
            request,
            CallOptions::new().with_header("x-test-echo", "on-error"),
        )
        .await;
    let err = expect_error(result, Code::FailedPrecondition, "error")?;
    eq(err.message(), ERROR_MESSAGE, "error message")?;
    check_error_info(&err)?;
    eq(
        header(err.metadata(), "x-test-echo-header"),
        Some("on-error"),
        "error metadata x-test-echo-header",
    )?;
    eq(
        header(err.metadata(), "x-test-echo-trailer"),
        Some("on-error"),
        "error metadata x-test-echo-trailer",
    )
}

async fn unary_error_codes(ctx: &Ctx) -> anyhow::Result<()> {
    for &code in Code::all() {
        let message = format!("code {}", code.as_u32());
        let request = EchoRequest {
            error: error_spec(code, &message, Vec::new()).into(),
            ..Default::default()
        };
        let result = ctx
            .client
            .unary::<_, EchoResponse>(ECHO, request, CallOptions::new())
            .await;
        let err = expect_error(result, code, &format!("code {}", code.as_str()))?;
        eq(err.message(), message.as_str(), "error message")?;
    }
    Ok(())
}

async fn unary_deadline_exceeded(ctx: &Ctx) -> anyhow::Result<()> {
    let started = Instant::now();
    let request = EchoRequest {
        text: "slow".into(),
        delay_ms: 3000,
        ..Default::default()
    };
    let result = ctx
        .client
        .unary::<_, EchoResponse>(
            ECHO,
            request,
            CallOptions::new().with_timeout(Duration::from_millis(200)),
        )
        .await;
    expect_error(result, Code::DeadlineExceeded, "slow call")?;
    let took = started.elapsed();
    ensure!(
        took < Duration::from_millis(2500),
        "took {took:?}, deadline 200 ms"
    );
    Ok(())
}

async fn server_stream(ctx: &Ctx) -> anyhow::Result<()> {
    let request = EchoRequest {
        text: "stream".into(),
        count: 3,
        ..Default::default()
    };
    let res = ctx
        .client
        .server_stream::<_, EchoResponse>(
            SERVER_STREAM,
            request,
            CallOptions::new().with_header("x-test-echo", "s"),
        )
        .await?;
    let (mut stream, headers, _) = res.into_parts();
    let mut got = Vec::new();
    while let Some(m) = stream.message().await? {
        got.push(m);
    }
    eq(got.len(), 3, "messages")?;
    eq(
        got.iter().map(|m| m.index).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "indices",
    )?;
    ensure!(
        got.iter().all(|m| m.text == "stream"),
        "texts: {:?}",
        got.iter().map(|m| &m.text).collect::<Vec<_>>()
    );
    eq(
        header(&headers, "x-test-echo-header"),
        Some("s"),
        "response header x-test-echo-header",
    )?;
    eq(
        header(&stream.trailers(), "x-test-echo-trailer"),
        Some("s"),
        "response trailer x-test-echo-trailer",
    )
}

async fn server_stream_error(ctx: &Ctx) -> anyhow::Result<()> {
    let request = EchoRequest {
        text: "partial".into(),
        count: 5,
        fail_after: 2,
        error: error_spec(Code::ResourceExhausted, "stop here", vec![error_info_any()]).into(),
        ..Default::default()
    };
    let result = async {
        let mut stream = ctx
            .client
            .server_stream::<_, EchoResponse>(SERVER_STREAM, request, CallOptions::new())
            .await
            .map_err(|e| (0, e))?
            .into_message();
        let mut got = 0;
        loop {
            match stream.message().await {
                Ok(Some(_)) => got += 1,
                Ok(None) => return Ok(got),
                Err(e) => return Err((got, e)),
            }
        }
    }
    .await;
    let (got, err) = match result {
        Ok(n) => bail!("stream error: {n} messages and success, want resource_exhausted"),
        Err(x) => x,
    };
    let err = expect_error::<()>(Err(err), Code::ResourceExhausted, "stream error")?;
    eq(got, 2, "messages before the error")?;
    eq(err.message(), "stop here", "error message")?;
    check_error_info(&err)
}

async fn client_stream(ctx: &Ctx) -> anyhow::Result<()> {
    let requests =
        [("a", vec![1u8, 2]), ("b", vec![3]), ("c", vec![4, 5, 6])].map(|(t, p)| EchoRequest {
            text: t.into(),
            payload: p,
            ..Default::default()
        });
    let res = ctx
        .client
        .client_stream::<_, EchoResponse, _>(
            CLIENT_STREAM,
            futures_util::stream::iter(requests),
            CallOptions::new().with_header("x-test-echo", "c"),
        )
        .await?;
    let (m, headers, trailers) = res.into_parts();
    eq(m.text.as_str(), "a b c", "text")?;
    eq(m.received, 3, "received")?;
    bytes_eq(&m.payload, &[1, 2, 3, 4, 5, 6], "payload")?;
    eq(
        header(&headers, "x-test-echo-header"),
        Some("c"),
        "response header x-test-echo-header",
    )?;
    eq(
        header(&trailers, "x-test-echo-trailer"),
        Some("c"),
        "response trailer x-test-echo-trailer",
    )
}

async fn client_stream_error(ctx: &Ctx) -> anyhow::Result<()> {
    let requests = vec![
        text("a"),
        EchoRequest {
            text: "b".into(),
            error: error_spec(Code::InvalidArgument, "bad b", Vec::new()).into(),
            ..Default::default()
        },
        text("c"),
    ];
    let result = ctx
        .client
        .client_stream::<_, EchoResponse, _>(
            CLIENT_STREAM,
            futures_util::stream::iter(requests),
            CallOptions::new(),
        )
        .await;
    let err = expect_error(result, Code::InvalidArgument, "client stream")?;
    eq(err.message(), "bad b", "error message")
}

async fn bidi(ctx: &Ctx) -> anyhow::Result<()> {
    // Ping-pong: each request goes out only after the previous response arrived, which
    // deadlocks unless both directions really stream at once.
    let mut call = ctx
        .client
        .bidi_stream::<EchoRequest, EchoResponse>(
            BIDI,
            CallOptions::new().with_header("x-test-echo", "b"),
        )
        .await?;
    for i in 0..3 {
        let ping = format!("ping {i}");
        call.send(text(&ping)).await?;
        let r = call
            .message()
            .await?
            .with_context(|| format!("stream ended before response {i}"))?;
        eq(r.text.as_str(), ping.as_str(), &format!("text {i}"))?;
        eq(r.index, i, &format!("index {i}"))?;
        eq(r.received, i + 1, &format!("received {i}"))?;
    }
    call.close_send();
    ensure!(
        call.message().await?.is_none(),
        "extra response after close"
    );
    let headers = call.headers().await?;
    eq(
        header(&headers, "x-test-echo-header"),
        Some("b"),
        "response header x-test-echo-header",
    )?;
    eq(
        header(&call.trailers(), "x-test-echo-trailer"),
        Some("b"),
        "response trailer x-test-echo-trailer",
    )
}

async fn bidi_half_duplex(ctx: &Ctx) -> anyhow::Result<()> {
    let mut call = ctx
        .client
        .bidi_stream::<EchoRequest, EchoResponse>(BIDI, CallOptions::new())
        .await?;
    for i in 0..3 {
        call.send(text(&format!("m{i}"))).await?;
    }
    call.close_send();
    let mut got = Vec::new();
    while let Some(r) = call.message().await? {
        got.push(r);
    }
    eq(
        got.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        vec!["m0", "m1", "m2"],
        "texts",
    )?;
    eq(
        got.iter().map(|r| r.received).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "received",
    )
}

async fn bidi_error(ctx: &Ctx) -> anyhow::Result<()> {
    let mut call = ctx
        .client
        .bidi_stream::<EchoRequest, EchoResponse>(BIDI, CallOptions::new())
        .await?;
    call.send(text("ok")).await?;
    call.send(EchoRequest {
        text: "boom".into(),
        error: error_spec(Code::Aborted, "bidi failed", Vec::new()).into(),
        ..Default::default()
    })
    .await?;
    call.close_send();
    let mut got = 0;
    let err = loop {
        match call.message().await {
            Ok(Some(_)) => got += 1,
            Ok(None) => bail!("bidi: {got} responses and success, want aborted"),
            Err(e) => break e,
        }
    };
    let err = expect_error::<()>(Err(err), Code::Aborted, "bidi")?;
    eq(got, 1, "responses before the error")?;
    eq(err.message(), "bidi failed", "error message")
}

/// Checks the compression a response announced: the requested one (a server mirrors the
/// request's), or none for identity.
fn check_response_encoding(ctx: &Ctx, exchange: &Exchange, streaming: bool) -> anyhow::Result<()> {
    if ctx.args.any_response_encoding {
        return Ok(());
    }
    let name = ctx.encoding_header(streaming);
    let headers = exchange
        .response_headers
        .as_ref()
        .context("no response recorded")?;
    let got = header(headers, name).filter(|v| *v != "identity");
    eq(got, ctx.args.compression, &format!("response {name}"))
}

async fn large_payload(ctx: &Ctx) -> anyhow::Result<()> {
    // 1 MiB each way; half noise, half text so compression has something to do.
    let mut payload = noise(1 << 19);
    payload.resize(1 << 20, b'a');
    let mark = ctx.recorder.mark();
    let request = EchoRequest {
        text: "large".into(),
        payload: payload.clone(),
        ..Default::default()
    };
    let res = ctx
        .client
        .unary::<_, EchoResponse>(ECHO, request, CallOptions::new())
        .await?;
    bytes_eq(&res.message().payload, &payload, "1 MiB payload")?;
    let exchange = ctx.recorder.exchange(mark)?;
    let name = ctx.encoding_header(false);
    eq(
        header(&exchange.request_headers, name),
        ctx.args.compression,
        &format!("request {name}"),
    )?;
    check_response_encoding(ctx, &exchange, false)
}

async fn large_stream_compressed(ctx: &Ctx) -> anyhow::Result<()> {
    let mark = ctx.recorder.mark();
    let request = EchoRequest {
        text: "big".into(),
        count: 2,
        response_size: 300_000,
        ..Default::default()
    };
    let mut stream = ctx
        .client
        .server_stream::<_, EchoResponse>(SERVER_STREAM, request, CallOptions::new())
        .await?
        .into_message();
    let mut got = 0;
    let want = vec![b'x'; 300_000];
    while let Some(m) = stream.message().await? {
        bytes_eq(&m.payload, &want, "payload")?;
        got += 1;
    }
    eq(got, 2, "messages")?;
    check_response_encoding(ctx, &ctx.recorder.exchange(mark)?, true)
}

// --- main -----------------------------------------------------------------------------

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Connect => "connect",
        Protocol::Grpc => "grpc",
        Protocol::GrpcWeb => "grpcweb",
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("interop-client: {e:#}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if args.list {
        for c in CASES {
            println!("{}", c.name);
        }
        return;
    }
    // JSON needs the type registry to carry `google.protobuf.Any` error details.
    volley_tests::install_type_registry();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let failed = runtime.block_on(run(args));
    // Do not wait for calls a timed-out case left behind.
    runtime.shutdown_background();
    std::process::exit(i32::from(failed));
}

/// Runs the selected cases; true if any failed.
async fn run(args: Args) -> bool {
    println!(
        "# volley client: {} protocol={} codec={} http={} compression={}",
        args.url,
        if args.text {
            "grpcwebtext"
        } else {
            protocol_name(args.protocol)
        },
        args.codec.name(),
        if args.http1 {
            "1.1"
        } else if args.http3 {
            "3"
        } else {
            "2"
        },
        args.compression.unwrap_or("identity"),
    );
    let ctx = match Ctx::new(args) {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL setup: {e:#}");
            println!("0 passed, 1 failed, 0 skipped");
            return true;
        }
    };
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for case in CASES {
        if !ctx.args.only.is_empty() && !ctx.args.only.iter().any(|n| n == case.name) {
            continue;
        }
        let reason = if ctx.args.skip.iter().any(|n| n == case.name) {
            Some("--skip")
        } else {
            (case.skip)(&ctx)
        };
        if let Some(reason) = reason {
            println!("SKIP {}: {reason}", case.name);
            skipped += 1;
            continue;
        }
        let outcome = tokio::time::timeout(ctx.args.case_timeout, (case.run)(&ctx)).await;
        match outcome {
            Ok(Ok(())) => {
                println!("PASS {}", case.name);
                passed += 1;
            }
            Ok(Err(e)) => {
                let reason = match e.downcast_ref::<Error>() {
                    Some(rpc) => format!(
                        "unexpected error: {} ({}) {:?}",
                        rpc.code().as_str(),
                        rpc.message(),
                        rpc
                    ),
                    None => format!("{e:#}"),
                };
                println!(
                    "FAIL {}: {}",
                    case.name,
                    reason.split_whitespace().collect::<Vec<_>>().join(" ")
                );
                failed += 1;
            }
            Err(_) => {
                println!(
                    "FAIL {}: timed out after {} ms",
                    case.name,
                    ctx.args.case_timeout.as_millis()
                );
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    failed > 0
}
