//! Writing enveloped responses, whatever the protocol: the head, each message framed as it
//! comes, the deadline, and the protocol's end of stream (asked of [`crate::protocol`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http::header::{CONTENT_TYPE, HeaderValue};
use http_body::Frame;

use crate::compression::Compression;
use crate::handler::{CallOutput, Output};
use crate::headers;
use crate::protocol::ContentType;
use crate::stream::{Batch, Body, Encoded, FrameWriter, OutgoingStream};
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
            Messages::Many(s),
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
        batch: Batch::default(),
    };
    let mut res = http::Response::new(http_body_util::BodyExt::boxed_unsync(body));
    *res.headers_mut() = res_headers;
    res
}

/// The messages of a response: one already encoded (unary), or a handler's stream.
enum Messages {
    One(Option<Encoded>),
    Many(OutgoingStream),
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
    /// The stream's messages ready together, gathered into one chunk.
    batch: Batch,
}

impl ResponseBody {
    /// The whole of a unary response body: its one message (framed without a copy) and the
    /// protocol's end of stream, in one chunk when the end of stream is body data.
    fn single(&mut self, message: Option<Encoded>) -> Frame<Bytes> {
        let framed = match message.map(|m| self.writer.frame(m)) {
            Some(Ok(framed)) => framed,
            Some(Err(err)) => return self.finish(Some(err)),
            None => return self.finish(None),
        };
        let chunk = match self.finish(None).into_data() {
            Ok(data) if !self.content_type.is_text() => {
                let mut gather = BytesMut::with_capacity(framed.len() + data.len());
                gather.extend_from_slice(&framed);
                gather.extend_from_slice(&data);
                gather.freeze()
            }
            Ok(data) => {
                self.end = Some(Frame::data(data));
                framed
            }
            Err(end) => {
                self.end = Some(end);
                framed
            }
        };
        Frame::data(self.content_type.body_chunk(chunk))
    }

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
        let this = &mut *self;
        if let Some(Messages::One(message)) = &mut this.messages {
            let message = message.take();
            return Poll::Ready(Some(Ok(this.single(message))));
        }
        // Every message ready now goes out in one chunk (up to `BATCH_LIMIT`), encoded in
        // place: a stream of small messages costs a few HTTP/2 DATA frames, not one (and one
        // write) each, and no allocation per message.
        while !this.batch.is_full() {
            let Some(Messages::Many(messages)) = this.messages.as_mut() else {
                break;
            };
            let polled = this.batch.push(&this.writer, |buf| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    messages.poll_encode(cx, buf)
                }))
                .unwrap_or_else(|_panic| {
                    Poll::Ready(Some(Err(Error::internal("handler panicked"))))
                })
            });
            let end = match polled {
                Poll::Pending if this.batch.is_empty() => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(Some(Ok(()))) => continue,
                Poll::Ready(None) => this.finish(None),
                Poll::Ready(Some(Err(err))) => this.finish(Some(err)),
            };
            // The stream has ended: an end of stream in the body (Connect, gRPC-Web binary)
            // joins the batch; trailers (gRPC), or base64 text, follow it.
            if this.batch.is_empty() {
                return Poll::Ready(Some(Ok(end)));
            }
            match end.into_data() {
                Ok(data) if !this.content_type.is_text() => this.batch.extend(&data),
                Ok(data) => this.end = Some(Frame::data(data)),
                Err(end) => this.end = Some(end),
            }
            break;
        }
        let chunk = if this.done {
            this.batch.take_last()
        } else {
            this.batch.take()
        };
        Poll::Ready(chunk.map(|chunk| Ok(Frame::data(this.content_type.body_chunk(chunk)))))
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
