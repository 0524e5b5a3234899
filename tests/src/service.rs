//! The interop service, implemented by hand on volley's [`Router`]. The node and python peers
//! in `interop/` implement the same semantics, so every test can run against any of them.
//!
//! - `Echo`: answers `text`, `payload` (or `response_size` bytes of `x`), the request's
//!   `x-test-*` headers and the remaining deadline; sleeps `delay_ms` first; fails with
//!   `error` when its code is not 0.
//! - `ServerStream`: `count` responses (index 0..count), each after `delay_ms`; with `error`,
//!   fails after `fail_after` responses.
//! - `ClientStream`: reads everything, answers the texts joined with spaces, the count and the
//!   payloads concatenated; fails with the first `error` seen, after reading everything.
//! - `Bidi`: answers each request at once (`index` = i, `received` = i + 1); fails at the
//!   first request carrying an `error`.
//!
//! Every RPC echoes the request header `x-test-echo` as the response header
//! `x-test-echo-header` and the trailer `x-test-echo-trailer` (in the error's metadata when
//! the RPC fails before responding), and `x-test-bin-bin` as the response header
//! `x-test-bin-bin`.

use std::sync::Once;
use std::time::Duration;

use http::{HeaderMap, HeaderName};
use volley::{
    Code, Error, ErrorDetail, Idempotency, Request, Response, ResponseStream, Router, Spec,
    StreamType, Streaming,
};

use crate::proto::volley::interop::v1::{EchoRequest, EchoResponse, ErrorSpec};

/// `Echo`: unary, side-effect free (so Connect GET works).
pub const ECHO: Spec = Spec::new(
    "/volley.interop.v1.InteropService/Echo",
    StreamType::Unary,
    Idempotency::NoSideEffects,
);
/// `ServerStream`.
pub const SERVER_STREAM: Spec = Spec::new(
    "/volley.interop.v1.InteropService/ServerStream",
    StreamType::ServerStream,
    Idempotency::Unknown,
);
/// `ClientStream`.
pub const CLIENT_STREAM: Spec = Spec::new(
    "/volley.interop.v1.InteropService/ClientStream",
    StreamType::ClientStream,
    Idempotency::Unknown,
);
/// `Bidi`.
pub const BIDI: Spec = Spec::new(
    "/volley.interop.v1.InteropService/Bidi",
    StreamType::BidiStream,
    Idempotency::Unknown,
);

const ECHO_REQUEST_HEADER: &str = "x-test-echo";
const ECHO_RESPONSE_HEADER: HeaderName = HeaderName::from_static("x-test-echo-header");
const ECHO_RESPONSE_TRAILER: HeaderName = HeaderName::from_static("x-test-echo-trailer");
const BIN_HEADER: &str = "x-test-bin-bin";

/// Installs the JSON type registry (well-known types and the interop messages) so
/// `google.protobuf.Any` error details survive the JSON codec. Idempotent.
pub fn install_type_registry() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut registry = buffa::type_registry::TypeRegistry::new();
        buffa_types::register_wkt_types(&mut registry);
        crate::proto::volley::interop::v1::register_types(&mut registry);
        buffa::type_registry::set_type_registry(registry);
    });
}

/// A router serving the interop service with volley's default options. Chain the router's
/// builder methods (`receive_limit`, `cors`, ...) on the result to change them.
pub fn interop_router() -> Router {
    install_type_registry();
    Router::new()
        .unary(ECHO, echo)
        .server_stream(SERVER_STREAM, server_stream)
        .client_stream(CLIENT_STREAM, client_stream)
        .bidi_stream(BIDI, bidi)
}

/// The error an `ErrorSpec` asks for, or `None` when its code is 0.
pub(crate) fn spec_error(spec: &ErrorSpec) -> Option<Error> {
    if spec.code == 0 {
        return None;
    }
    let code = u32::try_from(spec.code)
        .ok()
        .and_then(Code::from_u32)
        .unwrap_or(Code::Unknown);
    let mut err = Error::new(code, spec.message.clone());
    for any in &spec.details {
        err.push_detail(ErrorDetail::from_any(any));
    }
    Some(err)
}

fn requested_error(request: &EchoRequest) -> Option<Error> {
    request.error.as_option().and_then(spec_error)
}

/// The response headers and trailers the request's echo headers ask for.
fn echo_metadata(request_headers: &HeaderMap) -> (HeaderMap, HeaderMap) {
    let mut headers = HeaderMap::new();
    let mut trailers = HeaderMap::new();
    for value in request_headers.get_all(ECHO_REQUEST_HEADER) {
        headers.append(ECHO_RESPONSE_HEADER, value.clone());
        trailers.append(ECHO_RESPONSE_TRAILER, value.clone());
    }
    for value in request_headers.get_all(BIN_HEADER) {
        headers.append(HeaderName::from_static(BIN_HEADER), value.clone());
    }
    (headers, trailers)
}

pub(crate) fn respond<T>(message: T, request_headers: &HeaderMap) -> Response<T> {
    let (headers, trailers) = echo_metadata(request_headers);
    let mut response = Response::new(message);
    response.headers_mut().extend(headers);
    response.trailers_mut().extend(trailers);
    response
}

/// An error that fails the RPC before any response: the echo header goes out as a response
/// header and the echo trailer in the error's metadata (trailers).
pub(crate) fn fail(mut err: Error, request_headers: &HeaderMap) -> Error {
    let (headers, trailers) = echo_metadata(request_headers);
    err.headers_mut().extend(headers);
    err.with_metadata(trailers)
}

/// What every response carries besides its own fields.
#[derive(Clone)]
pub(crate) struct Context {
    headers: std::collections::HashMap<String, String>,
    deadline: Option<std::time::Instant>,
}

impl Context {
    pub(crate) fn of<T>(request: &Request<T>) -> Self {
        Self {
            headers: test_headers(request.headers()),
            deadline: request.deadline(),
        }
    }

    pub(crate) fn response(
        &self,
        text: String,
        index: i32,
        payload: Vec<u8>,
        received: i32,
    ) -> EchoResponse {
        let deadline_ms = self.deadline.map_or(-1, |d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            i64::try_from(left.as_millis()).unwrap_or(i64::MAX)
        });
        EchoResponse {
            text,
            index,
            payload,
            headers: self.headers.clone().into_iter().collect(),
            received,
            deadline_ms,
            ..Default::default()
        }
    }
}

/// The payload a request asks for: `response_size` bytes of `x`, else its own payload.
fn payload_for(message: &EchoRequest) -> Vec<u8> {
    if message.response_size > 0 {
        vec![b'x'; usize::try_from(message.response_size).unwrap_or(0)]
    } else {
        message.payload.clone()
    }
}

fn test_headers(request_headers: &HeaderMap) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    for name in request_headers.keys() {
        if !name.as_str().starts_with("x-test-") {
            continue;
        }
        let values: Vec<String> = request_headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        out.insert(name.as_str().to_string(), values.join(","));
    }
    out
}

pub(crate) fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

async fn echo(request: Request<EchoRequest>) -> Result<Response<EchoResponse>, Error> {
    let ctx = Context::of(&request);
    let message = request.message();
    if message.delay_ms > 0 {
        tokio::time::sleep(millis(message.delay_ms)).await;
    }
    if let Some(err) = requested_error(message) {
        return Err(fail(err, request.headers()));
    }
    let response = ctx.response(message.text.clone(), 0, payload_for(message), 1);
    Ok(respond(response, request.headers()))
}

async fn server_stream(
    request: Request<EchoRequest>,
) -> Result<Response<ResponseStream<EchoResponse>>, Error> {
    let ctx = Context::of(&request);
    let message = request.message().clone();
    let error = requested_error(&message);
    let stream = numbered_responses(
        message.count,
        message.fail_after,
        error,
        millis(message.delay_ms),
        move |index| ctx.response(message.text.clone(), index, payload_for(&message), 1),
    );
    Ok(respond(stream, request.headers()))
}

/// The server stream both echo services send: `count` responses built by `respond(index)`,
/// `delay` apart; with `error`, only the first `fail_after` of them, then the error.
pub(crate) fn numbered_responses(
    count: i32,
    fail_after: i32,
    error: Option<Error>,
    delay: Duration,
    respond: impl Fn(i32) -> EchoResponse + Send + Sync + 'static,
) -> ResponseStream<EchoResponse> {
    let count = count.max(0);
    let sent_before_error = if error.is_some() {
        fail_after.clamp(0, count)
    } else {
        count
    };
    let respond = std::sync::Arc::new(respond);
    let responses = futures_util::stream::unfold((0, error), move |(index, error)| {
        let respond = respond.clone();
        async move {
            if index >= sent_before_error {
                // The error (if any) ends the stream; the next round finds none and stops.
                return error.map(|err| (Err(err), (index, None)));
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok(respond(index)), (index + 1, error)))
        }
    });
    Box::pin(responses)
}

async fn client_stream(
    mut request: Request<Streaming<EchoRequest>>,
) -> Result<Response<EchoResponse>, Error> {
    let ctx = Context::of(&request);
    let headers = request.headers().clone();
    let mut texts = Vec::new();
    let mut payload = Vec::new();
    let mut received = 0;
    let mut error = None;
    while let Some(message) = request.message_mut().message().await? {
        received += 1;
        if message.delay_ms > 0 {
            tokio::time::sleep(millis(message.delay_ms)).await;
        }
        if error.is_none() {
            error = requested_error(&message);
        }
        payload.extend_from_slice(&payload_for(&message));
        texts.push(message.text);
    }
    if let Some(err) = error {
        return Err(fail(err, &headers));
    }
    Ok(respond(
        ctx.response(texts.join(" "), 0, payload, received),
        &headers,
    ))
}

async fn bidi(
    request: Request<Streaming<EchoRequest>>,
) -> Result<Response<ResponseStream<EchoResponse>>, Error> {
    let ctx = Context::of(&request);
    let headers = request.headers().clone();
    let requests = request.into_message();
    let responses = futures_util::stream::unfold(Some((requests, 0)), move |state| {
        let ctx = ctx.clone();
        async move {
            let (mut requests, index) = state?;
            match requests.message().await {
                Ok(Some(message)) => {
                    if message.delay_ms > 0 {
                        tokio::time::sleep(millis(message.delay_ms)).await;
                    }
                    match requested_error(&message) {
                        Some(err) => Some((Err(err), None)),
                        None => {
                            let payload = payload_for(&message);
                            let response = ctx.response(message.text, index, payload, index + 1);
                            Some((Ok(response), Some((requests, index + 1))))
                        }
                    }
                }
                Ok(None) => None,
                Err(err) => Some((Err(err), None)),
            }
        }
    });
    let stream: ResponseStream<EchoResponse> = Box::pin(responses);
    Ok(respond(stream, &headers))
}
