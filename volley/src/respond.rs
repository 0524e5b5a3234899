//! Writing enveloped responses, whatever the protocol: the head, each message framed as it
//! comes, the deadline, and the protocol's end of stream (asked of [`crate::protocol`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body::Frame;

use crate::compression::Compression;
use crate::handler::{CallOutput, Output};
use crate::headers;
use crate::protocol::ContentType;
use crate::stream::{Body, Encoded, FrameWriter};
use crate::{Code, Error};

/// Everything the writer needs to know about the call.
pub(crate) struct Call {
    pub(crate) content_type: ContentType,
    pub(crate) writer: FrameWriter,
    pub(crate) deadline: Option<Instant>,
}

/// Writes a handler's result as an enveloped response: the protocol's head, each message
/// framed as it comes, then its end of stream. An error before any message is the protocol's
/// immediate error.
pub(crate) fn enveloped(call: Call, result: Result<CallOutput, Error>) -> http::Response<Body> {
    match result {
        Ok(out) => streaming(call, out),
        Err(err) => call.content_type.immediate_error(&err),
    }
}

fn streaming(call: Call, out: CallOutput) -> http::Response<Body> {
    let ct = call.content_type;
    let mut res_headers = HeaderMap::with_capacity(out.headers.len() + 2);
    res_headers.insert(CONTENT_TYPE, ct.header_value());
    if let Some(algo) = &call.writer.compression {
        res_headers.insert(
            ct.encoding_headers().0,
            HeaderValue::from_static(algo.name()),
        );
    }
    headers::copy_user_headers(&out.headers, &mut res_headers);
    let (messages, deadline) = match out.output {
        // A unary answer is already made: nothing to catch, and no deadline left to enforce
        // (it applied to the handler that made it).
        Output::Single(b) => (Messages::One(Some(b)), None),
        Output::Stream(s) => (
            Messages::Many(Box::pin(futures_util::StreamExt::catch_unwind(
                std::panic::AssertUnwindSafe(s),
            ))),
            call.deadline
                .map(|d| Box::pin(tokio::time::sleep_until(d.into()))),
        ),
    };
    let guard = crate::interceptor::EndGuard(out.observers.clone());
    let body = ResponseBody {
        observers: guard,
        messages: Some(messages),
        writer: call.writer,
        content_type: ct,
        trailers: out.trailers,
        deadline,
        done: false,
        end: None,
    };
    let mut res = http::Response::new(http_body_util::BodyExt::boxed_unsync(body));
    *res.headers_mut() = res_headers;
    res
}

/// A message from a handler's stream, or the panic that stopped it.
type Caught = Result<Result<Encoded, Error>, Box<dyn std::any::Any + Send>>;

type CaughtStream = Pin<Box<dyn Stream<Item = Caught> + Send>>;

/// The messages of a response: one already encoded (unary), or a handler's stream.
enum Messages {
    One(Option<Encoded>),
    Many(CaughtStream),
}

impl Messages {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Caught>> {
        match self {
            Messages::One(message) => Poll::Ready(message.take().map(|m| Ok(Ok(m)))),
            Messages::Many(stream) => stream.as_mut().poll_next(cx),
        }
    }
}

/// The body of every enveloped response: frames each message as it comes, enforces the
/// deadline, and closes with the protocol's end of stream.
struct ResponseBody {
    /// Told how the stream ended; dropped unfinished (the peer went away), it reports `canceled`.
    observers: crate::interceptor::EndGuard,
    messages: Option<Messages>,
    writer: FrameWriter,
    content_type: ContentType,
    trailers: HeaderMap,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
    /// The end of stream, made while gathering messages, to send after them.
    end: Option<Frame<Bytes>>,
}

/// The most bytes of ready messages gathered into one body chunk.
const BATCH_LIMIT: usize = 32 * 1024;

impl ResponseBody {
    fn finish(&mut self, error: Option<Error>) -> Frame<Bytes> {
        self.done = true;
        self.messages = None;
        let mut error = error;
        if let Some(o) = self.observers.0.take() {
            // A message a hook rejected fails the call, even if the handler went on.
            if error.is_none() {
                error = o.failure();
            }
            o.end(error.as_ref().map_or(Ok(()), Err), &mut self.trailers);
        }
        let trailers = std::mem::take(&mut self.trailers);
        self.content_type.end_of_stream(error.as_ref(), trailers)
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = crate::error::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(end) = self.end.take() {
            return Poll::Ready(Some(Ok(end)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(sleep) = &mut self.deadline
            && sleep.as_mut().poll(cx).is_ready()
        {
            let err = Error::deadline_exceeded("the deadline expired while streaming the response");
            return Poll::Ready(Some(Ok(self.finish(Some(err)))));
        }
        // Every message ready now goes out in one chunk (up to `BATCH_LIMIT`): a stream of
        // small messages costs a few HTTP/2 DATA frames, not one (and one write) each.
        let mut batch: Option<BytesMut> = None;
        let mut first: Option<Bytes> = None;
        loop {
            let gathered =
                first.as_ref().map_or(0, Bytes::len) + batch.as_ref().map_or(0, BytesMut::len);
            if gathered >= BATCH_LIMIT {
                break;
            }
            let Some(messages) = self.messages.as_mut() else {
                break;
            };
            let end = match messages.poll_next(cx) {
                Poll::Pending if gathered == 0 => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(None) => self.finish(None),
                Poll::Ready(Some(Err(_panic))) => {
                    self.finish(Some(Error::internal("handler panicked")))
                }
                Poll::Ready(Some(Ok(Err(err)))) => self.finish(Some(err)),
                Poll::Ready(Some(Ok(Ok(encoded)))) => match self.writer.frame(encoded) {
                    Ok(framed) => {
                        match (&mut first, &mut batch) {
                            (None, _) => first = Some(framed),
                            (Some(head), None) => {
                                let mut gather = BytesMut::with_capacity(head.len() + framed.len());
                                gather.extend_from_slice(head);
                                gather.extend_from_slice(&framed);
                                batch = Some(gather);
                            }
                            (Some(_), Some(gather)) => gather.extend_from_slice(&framed),
                        }
                        continue;
                    }
                    Err(err) => self.finish(Some(err)),
                },
            };
            // The stream has ended: an end of stream in the body (Connect, gRPC-Web binary)
            // joins the batch; trailers (gRPC), or base64 text, follow it.
            if gathered == 0 {
                return Poll::Ready(Some(Ok(end)));
            }
            match end.into_data() {
                Ok(data) if !self.content_type.is_text() => {
                    let gather = batch.get_or_insert_with(|| {
                        let head = first.take().unwrap_or_default();
                        let mut gather = BytesMut::with_capacity(head.len() + data.len());
                        gather.extend_from_slice(&head);
                        gather
                    });
                    gather.extend_from_slice(&data);
                }
                Ok(data) => self.end = Some(Frame::data(data)),
                Err(end) => self.end = Some(end),
            }
            break;
        }
        let chunk = match (batch, first) {
            (Some(gather), _) => gather.freeze(),
            (None, Some(one)) => one,
            (None, None) => return Poll::Ready(None),
        };
        Poll::Ready(Some(Ok(Frame::data(self.content_type.body_chunk(chunk)))))
    }

    fn is_end_stream(&self) -> bool {
        // Done, and no end of stream (gRPC's trailers) still to send after the last chunk.
        self.done && self.end.is_none()
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
    crate::protocol::classify(content_type, &crate::codec::DEFAULT_CODECS)
        .or_fallback()
        .immediate_error(err)
}
