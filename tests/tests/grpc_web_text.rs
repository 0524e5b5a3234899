//! Volley's client speaking gRPC-Web text (`application/grpc-web-text`, the framed body in
//! base64 both ways) to volley's server over real sockets, on HTTP/1.1 and HTTP/2: every
//! stream kind the HTTP version allows (bidi full duplex on HTTP/2, half duplex on
//! HTTP/1.1), both codecs, with and without compression, errors (trailers-only and with
//! headers), headers and trailers. A recording transport checks that what went over the
//! socket really was text: base64 request and response bodies whose decoded envelopes end in
//! a trailers frame.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, ensure};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http::HeaderMap;
use http_body_util::BodyExt as _;
use volley::client::{HttpTransport, HttpVersion};
use volley::{
    Body, CallOptions, Client, ClientConfig, Code, Codec, Error, JsonCodec, ProtoCodec, Protocol,
    Transport,
};
use volley_tests::raw::{decode_web_text, parse_envelopes, parse_trailer_block};
use volley_tests::{
    BIDI, CLIENT_STREAM, ECHO, EchoRequest, EchoResponse, ErrorSpec, SERVER_STREAM, interop_router,
    spawn_server,
};

/// What one call put on the wire and got back, as the transport saw it.
#[derive(Default)]
struct Exchange {
    request_headers: HeaderMap,
    request_body: Vec<u8>,
    response_headers: HeaderMap,
    response_body: Vec<u8>,
}

/// The built-in transport, recording each exchange's headers and raw body bytes.
#[derive(Clone)]
struct Recorder {
    inner: HttpTransport,
    log: Arc<Mutex<Vec<Arc<Mutex<Exchange>>>>>,
}

fn recording(body: Body, exchange: Arc<Mutex<Exchange>>, request: bool) -> Body {
    body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            let mut e = exchange.lock().expect("exchange lock");
            if request {
                e.request_body.extend_from_slice(data);
            } else {
                e.response_body.extend_from_slice(data);
            }
        }
        frame
    })
    .boxed_unsync()
}

impl Transport for Recorder {
    fn send(
        &self,
        request: http::Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>> {
        let exchange = Arc::new(Mutex::new(Exchange {
            request_headers: request.headers().clone(),
            ..Default::default()
        }));
        self.log.lock().expect("log lock").push(exchange.clone());
        let request = request.map(|b| recording(b, exchange.clone(), true));
        let sent = self.inner.send(request);
        Box::pin(async move {
            let response = sent.await?;
            exchange.lock().expect("exchange lock").response_headers = response.headers().clone();
            Ok(response.map(|b| recording(b, exchange, false)))
        })
    }
}

impl Recorder {
    fn last(&self) -> anyhow::Result<Arc<Mutex<Exchange>>> {
        self.log
            .lock()
            .expect("log lock")
            .last()
            .cloned()
            .context("no exchange recorded")
    }
}

struct Setup {
    client: Client<Recorder>,
    recorder: Recorder,
    codec: &'static dyn Codec,
}

fn setup(
    addr: std::net::SocketAddr,
    http: HttpVersion,
    codec: &'static dyn Codec,
    compression: Option<&'static str>,
) -> anyhow::Result<Setup> {
    let mut config = ClientConfig::new(format!("http://{addr}"))?
        .protocol(Protocol::GrpcWeb)
        .grpc_web_text(true)
        .codec(codec)
        .http_version(http);
    if let Some(name) = compression {
        config = config.send_compression(name);
    }
    let inner = Client::new(config.clone())?.transport().clone();
    let recorder = Recorder {
        inner,
        log: Arc::default(),
    };
    Ok(Setup {
        client: Client::with_transport(config, recorder.clone()),
        recorder,
        codec,
    })
}

fn base64_only(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
}

/// Checks the last exchange was gRPC-Web text both ways: the content types, base64 bodies,
/// `requests` request envelopes and, when `messages` is given, that many response messages
/// closed by a trailers frame whose `grpc-status` is `status`. Trailers-only responses
/// (`messages: None`) carry the status in the headers and no body.
fn check_wire(
    s: &Setup,
    requests: usize,
    messages: Option<usize>,
    status: &str,
) -> anyhow::Result<()> {
    let exchange = s.recorder.last()?;
    let e = exchange.lock().expect("exchange lock");
    let text_type = format!("application/grpc-web-text+{}", s.codec.name());
    ensure!(
        e.request_headers.get("content-type").map(|v| v.as_bytes()) == Some(text_type.as_bytes()),
        "request content-type {:?}",
        e.request_headers.get("content-type")
    );
    ensure!(
        e.request_headers.get("x-grpc-web").is_some(),
        "no x-grpc-web"
    );
    ensure!(
        e.response_headers.get("content-type").map(|v| v.as_bytes()) == Some(text_type.as_bytes()),
        "response content-type {:?}",
        e.response_headers.get("content-type")
    );
    ensure!(
        base64_only(&e.request_body),
        "the request body is not base64"
    );
    let sent = parse_envelopes(&decode_web_text(&e.request_body)?)?;
    ensure!(sent.len() == requests, "{} request envelopes", sent.len());
    ensure!(
        sent.iter().all(|env| env.flags & 0x80 == 0),
        "request trailers"
    );
    match messages {
        None => {
            ensure!(
                e.response_body.is_empty(),
                "a trailers-only response has a body"
            );
            ensure!(
                e.response_headers.get("grpc-status").map(|v| v.as_bytes())
                    == Some(status.as_bytes()),
                "grpc-status header {:?}",
                e.response_headers.get("grpc-status")
            );
        }
        Some(n) => {
            ensure!(
                base64_only(&e.response_body),
                "the response body is not base64"
            );
            let got = parse_envelopes(&decode_web_text(&e.response_body)?)?;
            ensure!(
                got.len() == n + 1,
                "{} response envelopes, expected {n} + trailers",
                got.len()
            );
            let last = got.last().context("no trailers frame")?;
            ensure!(last.flags & 0x80 != 0, "the last frame is not the trailers");
            let trailers = parse_trailer_block(&last.data)?;
            ensure!(
                trailers.get("grpc-status").map(|v| v.as_bytes()) == Some(status.as_bytes()),
                "grpc-status {:?}",
                trailers.get("grpc-status")
            );
            ensure!(
                !e.response_headers.contains_key("grpc-status"),
                "status in the headers"
            );
        }
    }
    Ok(())
}

fn request(text: &str) -> EchoRequest {
    EchoRequest {
        text: text.to_string(),
        ..Default::default()
    }
}

fn failing(text: &str, code: Code) -> EchoRequest {
    EchoRequest {
        error: buffa::MessageField::some(ErrorSpec {
            code: code.as_u32() as i32,
            message: format!("{text} failed"),
            ..Default::default()
        }),
        ..request(text)
    }
}

fn echo_options() -> CallOptions {
    CallOptions::new().with_header("x-test-echo", "echo-value")
}

fn check_echo_metadata(headers: &HeaderMap, trailers: &HeaderMap) -> anyhow::Result<()> {
    ensure!(
        headers.get("x-test-echo-header").map(|v| v.as_bytes()) == Some(b"echo-value"),
        "headers {headers:?}"
    );
    ensure!(
        trailers.get("x-test-echo-trailer").map(|v| v.as_bytes()) == Some(b"echo-value"),
        "trailers {trailers:?}"
    );
    Ok(())
}

async fn unary(s: &Setup, payload: usize) -> anyhow::Result<()> {
    let mut req = request("hello");
    req.payload = vec![7; payload];
    let res = s
        .client
        .unary::<_, EchoResponse>(ECHO, req, echo_options())
        .await?;
    let (m, headers, trailers) = res.into_parts();
    ensure!(
        m.text == "hello" && m.payload.len() == payload,
        "unary: {m:?}"
    );
    check_echo_metadata(&headers, &trailers)?;
    check_wire(s, 1, Some(1), "0")?;

    // An error with headers of its own: headers, then the status in the trailers frame.
    let err = s
        .client
        .unary::<_, EchoResponse>(ECHO, failing("unary", Code::NotFound), echo_options())
        .await
        .expect_err("the call fails");
    ensure!(err.code() == Code::NotFound, "code {:?}", err.code());
    ensure!(
        err.message() == "unary failed",
        "message {:?}",
        err.message()
    );
    ensure!(
        err.metadata()
            .get("x-test-echo-trailer")
            .map(|v| v.as_bytes())
            == Some(b"echo-value"),
        "error metadata {:?}",
        err.metadata()
    );
    check_wire(s, 1, Some(0), "5")?;

    // Without headers: a trailers-only response.
    let err = s
        .client
        .unary::<_, EchoResponse>(
            ECHO,
            failing("bare", Code::PermissionDenied),
            CallOptions::new(),
        )
        .await
        .expect_err("the call fails");
    ensure!(
        err.code() == Code::PermissionDenied,
        "code {:?}",
        err.code()
    );
    check_wire(s, 1, None, "7")
}

async fn server_stream(s: &Setup) -> anyhow::Result<()> {
    let mut req = request("stream");
    req.count = 3;
    let res = s
        .client
        .server_stream::<_, EchoResponse>(SERVER_STREAM, req.clone(), echo_options())
        .await?;
    let (mut stream, headers, _) = res.into_parts();
    let mut indexes = Vec::new();
    while let Some(m) = stream.message().await? {
        indexes.push(m.index);
    }
    ensure!(indexes == [0, 1, 2], "indexes {indexes:?}");
    check_echo_metadata(&headers, &stream.trailers())?;
    check_wire(s, 1, Some(3), "0")?;

    // Failing after two messages: the error arrives in the trailers frame.
    let mut req = failing("stream", Code::ResourceExhausted);
    req.count = 3;
    req.fail_after = 2;
    let res = s
        .client
        .server_stream::<_, EchoResponse>(SERVER_STREAM, req, echo_options())
        .await?;
    let mut stream = res.into_message();
    ensure!(stream.message().await?.is_some(), "first message");
    ensure!(stream.message().await?.is_some(), "second message");
    let err = stream.message().await.expect_err("the stream fails");
    ensure!(
        err.code() == Code::ResourceExhausted,
        "code {:?}",
        err.code()
    );
    ensure!(
        err.metadata().get("x-test-echo-trailer").is_some(),
        "error metadata {:?}",
        err.metadata()
    );
    check_wire(s, 1, Some(2), "8")
}

async fn client_stream(s: &Setup) -> anyhow::Result<()> {
    let requests = futures_util::stream::iter(["a", "b", "c"].map(request));
    let res = s
        .client
        .client_stream::<_, EchoResponse, _>(CLIENT_STREAM, requests, echo_options())
        .await?;
    let (m, headers, trailers) = res.into_parts();
    ensure!(m.text == "a b c" && m.received == 3, "client stream: {m:?}");
    check_echo_metadata(&headers, &trailers)?;
    check_wire(s, 3, Some(1), "0")?;

    let requests =
        futures_util::stream::iter([request("a"), failing("b", Code::FailedPrecondition)]);
    let err = s
        .client
        .client_stream::<_, EchoResponse, _>(CLIENT_STREAM, requests, echo_options())
        .await
        .expect_err("the call fails");
    ensure!(
        err.code() == Code::FailedPrecondition,
        "code {:?}",
        err.code()
    );
    check_wire(s, 2, Some(0), "9")
}

/// Half duplex: every request first, then every response (the only bidi HTTP/1.1 allows).
async fn bidi_half_duplex(s: &Setup) -> anyhow::Result<()> {
    let mut call = s
        .client
        .bidi_stream::<EchoRequest, EchoResponse>(BIDI, echo_options())
        .await?;
    for text in ["x", "y"] {
        call.send(request(text)).await?;
    }
    call.close_send();
    let mut texts = Vec::new();
    while let Some(m) = call.message().await? {
        texts.push(m.text);
    }
    ensure!(texts == ["x", "y"], "texts {texts:?}");
    check_echo_metadata(&call.headers().await?, &call.trailers())?;
    check_wire(s, 2, Some(2), "0")
}

/// Full duplex (HTTP/2): each response arrives before the next request goes out; then an
/// error mid-stream.
async fn bidi_full_duplex(s: &Setup) -> anyhow::Result<()> {
    let mut call = s
        .client
        .bidi_stream::<EchoRequest, EchoResponse>(BIDI, echo_options())
        .await?;
    for (i, text) in ["p", "q", "r"].into_iter().enumerate() {
        call.send(request(text)).await?;
        let m = call.message().await?.context("a response per request")?;
        ensure!(m.text == text && m.index == i as i32, "bidi: {m:?}");
    }
    call.send(failing("s", Code::Aborted)).await?;
    let err = call.message().await.expect_err("the stream fails");
    ensure!(err.code() == Code::Aborted, "code {:?}", err.code());
    call.close_send();
    check_wire(s, 4, Some(3), "10")
}

#[tokio::test]
async fn grpc_web_text_client_against_our_server() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router()).await?;
    for http in [HttpVersion::Http1, HttpVersion::Http2] {
        for codec in [&ProtoCodec as &dyn Codec, &JsonCodec] {
            for compression in [None, Some("gzip")] {
                let what = format!("{http:?} {codec:?} {compression:?}");
                let s = setup(addr, http, codec, compression)?;
                // Over the server's 1 KiB threshold, so compressed calls really compress.
                unary(&s, 0)
                    .await
                    .with_context(|| format!("unary {what}"))?;
                unary(&s, 4000)
                    .await
                    .with_context(|| format!("large unary {what}"))?;
                server_stream(&s)
                    .await
                    .with_context(|| format!("server stream {what}"))?;
                client_stream(&s)
                    .await
                    .with_context(|| format!("client stream {what}"))?;
                bidi_half_duplex(&s)
                    .await
                    .with_context(|| format!("bidi {what}"))?;
                if http == HttpVersion::Http2 {
                    bidi_full_duplex(&s)
                        .await
                        .with_context(|| format!("full-duplex bidi {what}"))?;
                }
            }
        }
    }
    Ok(())
}

/// A text client reads text responses only: a server answering binary gRPC-Web to a text
/// request is a protocol error, not garbage messages. (In process: a transport that decodes
/// the request and hands the router binary gRPC-Web, so the router answers binary.)
#[tokio::test]
async fn text_client_rejects_a_binary_answer() -> anyhow::Result<()> {
    let config = ClientConfig::new("http://127.0.0.1:1")?
        .protocol(Protocol::GrpcWeb)
        .grpc_web_text(true);
    let client = Client::with_transport(
        config,
        Rewrite {
            router: interop_router(),
        },
    );
    let err = client
        .unary::<_, EchoResponse>(ECHO, request("x"), CallOptions::new())
        .await
        .expect_err("a binary answer to a text request");
    ensure!(err.code() == Code::Internal, "code {:?}: {err}", err.code());
    ensure!(
        err.message().contains("content-type"),
        "message {:?}",
        err.message()
    );
    Ok(())
}

#[derive(Clone)]
struct Rewrite {
    router: volley::Router,
}

impl Transport for Rewrite {
    fn send(
        &self,
        request: http::Request<Body>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<Body>, Error>> + Send + 'static>> {
        let router = self.router.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let text = body
                .collect()
                .await
                .map_err(|e| Error::internal(e.to_string()))?
                .to_bytes();
            let binary = decode_web_text(&text).map_err(|e| Error::internal(e.to_string()))?;
            parts.headers.insert(
                "content-type",
                http::HeaderValue::from_static("application/grpc-web+proto"),
            );
            let request = http::Request::from_parts(
                parts,
                volley::boxed_body(http_body_util::Full::new(Bytes::from(binary))),
            );
            Ok(router.handle(request).await)
        })
    }
}

/// Concurrent calls on the pooled connections each get their own text answer.
#[tokio::test]
async fn many_calls_share_connections() -> anyhow::Result<()> {
    let (addr, _server) = spawn_server(interop_router()).await?;
    for http in [HttpVersion::Http1, HttpVersion::Http2] {
        let s = setup(addr, http, &ProtoCodec, None)?;
        let calls = (0..20).map(|i| {
            let client = s.client.clone();
            async move {
                client
                    .unary::<_, EchoResponse>(ECHO, request(&format!("n{i}")), CallOptions::new())
                    .await
                    .map(|r| r.into_message().text)
            }
        });
        let texts: Vec<_> = futures_util::stream::iter(calls)
            .buffer_unordered(8)
            .collect()
            .await;
        ensure!(texts.len() == 20, "{http:?}: {} answers", texts.len());
        for t in texts {
            ensure!(t?.starts_with('n'), "{http:?}: a wrong answer");
        }
    }
    Ok(())
}
