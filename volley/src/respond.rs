//! Writing responses, per protocol: heads, bodies and the end of stream, for success and error.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, StatusCode};
use http_body::Frame;

use crate::compression::Compression;
use crate::handler::{CallOutput, Output};
use crate::headers;
use crate::protocol::{ContentType, Protocol, connect, grpc, grpc_web, response_content_type};
use crate::stream::{Body, FrameWriter, RawStream, empty_body, full_body};
use crate::{Code, Error};

/// Everything the writer needs to know about the call.
pub(crate) struct Call {
    pub(crate) content_type: ContentType,
    pub(crate) writer: FrameWriter,
    pub(crate) deadline: Option<Instant>,
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

fn encoding_header(protocol: Protocol, unary_connect: bool) -> &'static str {
    match protocol {
        Protocol::Connect if unary_connect => headers::CONTENT_ENCODING,
        Protocol::Connect => headers::CONNECT_CONTENT_ENCODING,
        Protocol::Grpc | Protocol::GrpcWeb => headers::GRPC_ENCODING,
    }
}

/// Writes a handler's result in the call's protocol.
pub(crate) fn respond(call: Call, result: Result<CallOutput, Error>) -> http::Response<Body> {
    let ct = call.content_type;
    match (ct.protocol, ct.variant) {
        (Protocol::Connect, true) => connect_unary(call, result),
        _ => match result {
            Ok(out) => streaming(call, out),
            Err(err) => immediate_error(ct, &err),
        },
    }
}

fn connect_unary(call: Call, result: Result<CallOutput, Error>) -> http::Response<Body> {
    let out = match result {
        Ok(out) => out,
        Err(err) => return error_response(ct_protocol(&call), &err),
    };
    let encoded = match out.output {
        Output::Single(b) => b,
        Output::Stream(_) => {
            return error_response(
                Protocol::Connect,
                &Error::internal("unary handler produced a stream"),
            );
        }
    };
    let (body, compressed) = match call.writer.compress(encoded) {
        Ok(x) => x,
        Err(err) => return error_response(Protocol::Connect, &err),
    };
    let mut res = http::Response::new(full_body(body));
    let h = res.headers_mut();
    h.insert(
        CONTENT_TYPE,
        header_value(&response_content_type(call.content_type)),
    );
    if compressed && let Some(algo) = &call.writer.compression {
        h.insert(
            headers::CONTENT_ENCODING,
            HeaderValue::from_static(algo.name()),
        );
    }
    headers::copy_user_headers(&out.headers, h);
    connect::put_unary_trailers(h, &out.trailers);
    res
}

fn ct_protocol(call: &Call) -> Protocol {
    call.content_type.protocol
}

/// An error before any message, in the protocol's shape: a Connect unary error body, a Connect
/// stream holding only its end-of-stream message, or a gRPC / gRPC-Web trailers-only response.
pub(crate) fn immediate_error(ct: ContentType, err: &Error) -> http::Response<Body> {
    match (ct.protocol, ct.variant) {
        (Protocol::Connect, true) => error_response(Protocol::Connect, err),
        (Protocol::Connect, false) => {
            let mut res = http::Response::new(full_body(connect::end_stream_frame(
                Some(err),
                &HeaderMap::new(),
            )));
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, header_value(&response_content_type(ct)));
            headers::copy_user_headers(err.headers(), h);
            res
        }
        (Protocol::Grpc | Protocol::GrpcWeb, _) if !err.headers().is_empty() => {
            // Headers first, then the status: not trailers-only, so peers see both.
            let status = grpc::status_trailers(Some(err), &HeaderMap::new());
            let body = match ct.protocol {
                Protocol::Grpc => {
                    let frame = http_body::Frame::trailers(status);
                    let once = futures_util::stream::iter([Ok::<_, crate::BoxError>(frame)]);
                    http_body_util::BodyExt::boxed_unsync(http_body_util::StreamBody::new(once))
                }
                _ => {
                    let frame = grpc_web::trailers_frame(&status);
                    if ct.variant {
                        full_body(base64::engine::general_purpose::STANDARD.encode(&frame))
                    } else {
                        full_body(frame)
                    }
                }
            };
            let mut res = http::Response::new(body);
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, header_value(&response_content_type(ct)));
            headers::copy_user_headers(err.headers(), h);
            res
        }
        (Protocol::Grpc | Protocol::GrpcWeb, _) => {
            let mut res = http::Response::new(empty_body());
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, header_value(&response_content_type(ct)));
            h.extend(grpc::status_trailers(Some(err), &HeaderMap::new()));
            res
        }
    }
}

/// An error response when the content type is not known or not trusted: Connect unary shape
/// for Connect, trailers-only for gRPC flavours.
pub(crate) fn error_response(protocol: Protocol, err: &Error) -> http::Response<Body> {
    match protocol {
        Protocol::Connect => {
            let body = serde_json::to_vec(&err.to_connect_json()).unwrap_or_default();
            let mut res = http::Response::new(full_body(body));
            *res.status_mut() = StatusCode::from_u16(err.code().http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let h = res.headers_mut();
            h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers::copy_user_headers(err.headers(), h);
            headers::copy_user_headers(err.metadata(), h);
            res
        }
        Protocol::Grpc | Protocol::GrpcWeb => {
            let ct = ContentType {
                protocol,
                codec: crate::Codec::Proto,
                variant: false,
            };
            immediate_error(ct, err)
        }
    }
}

fn streaming(call: Call, out: CallOutput) -> http::Response<Body> {
    let ct = call.content_type;
    let mut res_headers = HeaderMap::with_capacity(out.headers.len() + 2);
    res_headers.insert(CONTENT_TYPE, header_value(&response_content_type(ct)));
    if let Some(algo) = &call.writer.compression {
        res_headers.insert(
            encoding_header(ct.protocol, false),
            HeaderValue::from_static(algo.name()),
        );
    }
    headers::copy_user_headers(&out.headers, &mut res_headers);
    let messages: RawStream = match out.output {
        Output::Single(b) => Box::pin(futures_util::stream::once(async move { Ok(b) })),
        Output::Stream(s) => s,
    };
    let guard = crate::interceptor::EndGuard(out.observers.clone());
    let body = ResponseBody {
        observers: guard,
        messages: Some(Box::pin(futures_util::StreamExt::catch_unwind(
            std::panic::AssertUnwindSafe(messages),
        ))),
        writer: call.writer,
        content_type: ct,
        trailers: out.trailers,
        deadline: call
            .deadline
            .map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
        done: false,
    };
    let mut res = http::Response::new(http_body_util::BodyExt::boxed_unsync(body));
    *res.headers_mut() = res_headers;
    res
}

type CaughtStream =
    Pin<Box<dyn Stream<Item = Result<Result<Bytes, Error>, Box<dyn std::any::Any + Send>>> + Send>>;

/// The body of every enveloped response: frames each message as it comes, enforces the
/// deadline, and closes with the protocol's end of stream.
struct ResponseBody {
    /// Told how the stream ended; dropped unfinished (the peer went away), it reports `canceled`.
    observers: crate::interceptor::EndGuard,
    messages: Option<CaughtStream>,
    writer: FrameWriter,
    content_type: ContentType,
    trailers: HeaderMap,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl ResponseBody {
    fn finish(&mut self, error: Option<Error>) -> Frame<Bytes> {
        self.done = true;
        self.messages = None;
        if let Some(o) = self.observers.0.take() {
            o.end(error.as_ref().map_or(Ok(()), Err));
        }
        let trailers = std::mem::take(&mut self.trailers);
        match self.content_type.protocol {
            Protocol::Connect => Frame::data(connect::end_stream_frame(error.as_ref(), &trailers)),
            Protocol::Grpc => Frame::trailers(grpc::status_trailers(error.as_ref(), &trailers)),
            Protocol::GrpcWeb => {
                let frame =
                    grpc_web::trailers_frame(&grpc::status_trailers(error.as_ref(), &trailers));
                Frame::data(self.text(frame))
            }
        }
    }

    fn text(&self, frame: Bytes) -> Bytes {
        if self.content_type.protocol == Protocol::GrpcWeb && self.content_type.variant {
            Bytes::from(base64::engine::general_purpose::STANDARD.encode(&frame))
        } else {
            frame
        }
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = crate::error::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(sleep) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let err = Error::deadline_exceeded("the deadline expired while streaming the response");
            return Poll::Ready(Some(Ok(self.finish(Some(err)))));
        }
        let Some(messages) = self.messages.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match messages.as_mut().poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => self.finish(None),
            Poll::Ready(Some(Err(_panic))) => {
                self.finish(Some(Error::internal("handler panicked")))
            }
            Poll::Ready(Some(Ok(Err(err)))) => self.finish(Some(err)),
            Poll::Ready(Some(Ok(Ok(encoded)))) => {
                let mut out = BytesMut::new();
                match self.writer.write_frame(encoded, &mut out) {
                    Ok(()) => Frame::data(self.text(out.freeze())),
                    Err(err) => self.finish(Some(err)),
                }
            }
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

/// Picks the response compression: the request's own encoding, else the first of ours the
/// peer accepts.
pub(crate) fn negotiate(
    registry: &crate::compression::Registry,
    request: Option<&Arc<dyn Compression>>,
    accept: Option<&HeaderValue>,
) -> Option<Arc<dyn Compression>> {
    registry.negotiate(request, accept.and_then(|v| v.to_str().ok()))
}

/// The error for an unsupported `*-encoding`, naming the supported ones.
pub(crate) fn unsupported_encoding(name: &str, registry: &crate::compression::Registry) -> Error {
    let mut supported: Vec<&str> = registry.names().collect();
    supported.push("identity");
    Error::new(
        Code::Unimplemented,
        format!(
            "unknown compression {name:?}: supported encodings are {}",
            supported.join(", ")
        ),
    )
}

/// Writes `err` in the protocol the request speaks (read from its `content-type`), for tower
/// middleware that rejects calls before they reach a [`Router`](crate::Router): a Connect
/// error body, a Connect end-of-stream, or a gRPC / gRPC-Web trailers-only response.
pub fn error_response_for(request_headers: &HeaderMap, err: &Error) -> http::Response<Body> {
    let content_type = request_headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match crate::protocol::classify(content_type) {
        crate::protocol::Classified::Known(ct) => immediate_error(ct, err),
        crate::protocol::Classified::UnknownCodec(p) => error_response(p, err),
        crate::protocol::Classified::Unknown => error_response(Protocol::Connect, err),
    }
}
