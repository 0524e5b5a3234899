//! Reading responses on the client: the enveloped response reader (its protocol's head,
//! control frame and end rules asked of [`crate::protocol`]), helpers the protocols' unary
//! readers share, and the bidirectional stream handle.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;

use super::Prepared;
use super::transport::transport_error;
use crate::codec::Message;
use crate::compression::Compression;
use crate::headers;
use crate::protocol::{ContentType, Protocol};
use crate::stream::{Body, Frame, FrameReader, FrameSource, RawStream, Streaming};
use crate::{Code, Error, Response};

/// The response content type, lowercase.
pub(crate) fn content_type(h: &HeaderMap) -> String {
    h.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// The compression a response header names, which must be one we accept.
pub(crate) fn response_encoding(
    h: &HeaderMap,
    name: http::HeaderName,
    accepted: &crate::compression::Registry,
) -> Result<Option<Arc<dyn Compression>>, Error> {
    match h.get(name).and_then(|v| v.to_str().ok()).map(str::trim) {
        None | Some("") | Some("identity") => Ok(None),
        Some(n) => accepted.get(n).map(Some).ok_or_else(|| {
            Error::internal(format!(
                "protocol error: response uses unsupported compression {n:?}"
            ))
        }),
    }
}

/// Reads a whole body, up to `limit` bytes.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    crate::stream::read_body_limited(body, limit, None, transport_error, "response").await
}

/// Adds the response headers to an error's metadata, before what it already holds.
pub(crate) fn with_metadata(mut err: Error, headers: &HeaderMap) -> Error {
    let mut meta = HeaderMap::new();
    headers::copy_user_headers(headers, &mut meta);
    // Error metadata holds headers first, then whatever trailers the error already carried.
    let existing = std::mem::take(err.metadata_mut());
    meta.extend(existing);
    *err.metadata_mut() = meta;
    err
}

/// The code for a response whose content type is not the one asked for: `internal` when it is
/// the same protocol with another codec (the peer misbehaves), `unknown` when it is not an RPC
/// response at all (a proxy's error page, say).
pub(crate) fn mismatch_code(content_type: &str, protocol: Protocol) -> Code {
    match crate::protocol::classify(content_type, &crate::codec::DEFAULT_CODECS) {
        crate::protocol::Classified::Known(ct) if ct.protocol == protocol => Code::Internal,
        crate::protocol::Classified::UnknownCodec(p) if p == protocol => Code::Internal,
        _ => Code::Unknown,
    }
}

/// Checks an enveloped response's head and returns its message stream.
pub(crate) fn open_response<Res: Message>(
    response: http::Response<Body>,
    p: &Prepared,
) -> Result<(HeaderMap, Streaming<Res>), Error> {
    let (parts, body) = response.into_parts();
    let headers = parts.headers;
    let codec = p.content_type.codec.clone();
    let trailers_slot: Arc<Mutex<HeaderMap>> = Arc::default();
    if parts.status != http::StatusCode::OK {
        let code = Code::from_http_status(parts.status.as_u16());
        let err = Error::new(code, format!("HTTP status {}", parts.status));
        return Err(with_metadata(err, &headers).into_wire());
    }
    // gRPC and gRPC-Web may answer "trailers-only": the status sits in the headers. It stands
    // only for an empty body: a status in the trailers wins, and a message without trailers is
    // an error, so unless the body has visibly ended it is kept as a fallback.
    let header_status = p.content_type.header_status(&headers);
    match header_status {
        Some(status) if http_body::Body::is_end_stream(&body) => {
            let raw: RawStream = match status {
                Ok(meta) => {
                    if let Ok(mut t) = trailers_slot.lock() {
                        *t = meta;
                    }
                    Box::pin(futures_util::stream::empty())
                }
                Err(err) => Box::pin(futures_util::stream::once(async move { Err(err) })),
            };
            Ok((headers, Streaming::new(raw, codec, trailers_slot)))
        }
        header_status => open_enveloped(headers, body, p, header_status),
    }
}

/// Checks an enveloped response's content type and encoding and returns its message stream;
/// `header_status` is a gRPC status seen in the headers, used if the body ends empty.
fn open_enveloped<Res: Message>(
    headers: HeaderMap,
    body: Body,
    p: &Prepared,
    header_status: Option<Result<HeaderMap, Error>>,
) -> Result<(HeaderMap, Streaming<Res>), Error> {
    let expected = p.content_type.clone();
    let codec = expected.codec.clone();
    let trailers_slot: Arc<Mutex<HeaderMap>> = Arc::default();
    let ct = content_type(&headers);
    if !expected.response_content_type_ok(ct.split(';').next().unwrap_or("").trim()) {
        return Err(Error::new(
            mismatch_code(&ct, expected.protocol),
            format!("protocol error: unexpected response content-type {ct:?}"),
        )
        .into_wire());
    }
    let compression = response_encoding(&headers, expected.encoding_headers().0, &p.accepted)?;
    let source = FrameSource::new(body, p.receive_limit, expected.is_text(), transport_error)
        .truncated_code(Code::Internal);
    let reader = FrameReader::new(
        source,
        compression,
        p.receive_limit,
        expected.control_flag(),
    );
    let mut state = ReaderState {
        reader,
        content_type: expected,
        slot: trailers_slot.clone(),
        ended: false,
        done: false,
        header_status,
        seen_message: false,
    };
    let raw = futures_util::stream::poll_fn(move |cx| state.poll(cx));
    Ok((headers, Streaming::new(Box::pin(raw), codec, trailers_slot)))
}

struct ReaderState {
    reader: FrameReader,
    content_type: ContentType,
    slot: Arc<Mutex<HeaderMap>>,
    ended: bool,
    done: bool,
    header_status: Option<Result<HeaderMap, Error>>,
    seen_message: bool,
}

impl ReaderState {
    fn store(&self, trailers: HeaderMap) {
        if let Ok(mut t) = self.slot.lock() {
            *t = trailers;
        }
    }

    fn fail(&mut self, err: Error) -> Poll<Option<Result<Bytes, Error>>> {
        self.done = true;
        Poll::Ready(Some(Err(err)))
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match self.reader.poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return self.fail(e),
                Poll::Ready(Some(Ok(Frame::Message(bytes)))) => {
                    if self.ended {
                        return self.fail(Error::internal(
                            "protocol error: message after the end of the stream",
                        ));
                    }
                    self.seen_message = true;
                    return Poll::Ready(Some(Ok(bytes)));
                }
                Poll::Ready(Some(Ok(Frame::Control(block)))) => {
                    if self.ended {
                        return self.fail(Error::internal(
                            "protocol error: more than one end-of-stream message",
                        ));
                    }
                    self.ended = true;
                    match self.content_type.parse_control(&block) {
                        Ok(trailers) => self.store(trailers),
                        Err(e) => return self.fail(e),
                    }
                }
                Poll::Ready(None) => {
                    self.done = true;
                    if self.ended {
                        return Poll::Ready(None);
                    }
                    let status = self.content_type.end_without_control(
                        self.reader.source.take_http_trailers(),
                        self.header_status.take(),
                        self.seen_message,
                    );
                    return match status {
                        Ok(trailers) => {
                            self.store(trailers);
                            Poll::Ready(None)
                        }
                        Err(e) => Poll::Ready(Some(Err(e))),
                    };
                }
            }
        }
    }
}

/// Reads exactly one message and the end of stream.
pub(crate) async fn finish_unary<Res: Message>(
    headers: HeaderMap,
    stream: &mut Streaming<Res>,
) -> Result<Response<Res>, Error> {
    let first = match stream.message().await {
        Ok(Some(m)) => m,
        Ok(None) => {
            return Err(with_metadata(
                Error::unimplemented("protocol error: unary response has zero messages"),
                &headers,
            ));
        }
        Err(e) => return Err(with_metadata(e, &headers)),
    };
    match stream.message().await {
        Ok(None) => {}
        Ok(Some(_)) => {
            return Err(with_metadata(
                Error::unimplemented("protocol error: unary response has multiple messages"),
                &headers,
            ));
        }
        Err(e) => return Err(with_metadata(e, &headers)),
    }
    Ok(Response::from_parts(first, headers, stream.trailers()))
}

/// Fails the stream with `deadline_exceeded` once the deadline passes.
pub(crate) fn with_stream_deadline<M: Message>(
    stream: Streaming<M>,
    deadline: Option<Instant>,
) -> Streaming<M> {
    let Some(deadline) = deadline else {
        return stream;
    };
    stream.map_raw(move |mut raw| {
        let mut sleep = Box::pin(tokio::time::sleep_until(deadline.into()));
        let mut done = false;
        Box::pin(futures_util::stream::poll_fn(move |cx| {
            if done {
                return Poll::Ready(None);
            }
            if sleep.as_mut().poll(cx).is_ready() {
                done = true;
                return Poll::Ready(Some(Err(Error::deadline_exceeded("the deadline expired"))));
            }
            raw.as_mut()
                .poll_next(cx)
                .map(|item| item.map(|r| r.map_err(|e| deadline_attributed(e, deadline))))
        }))
    })
}

/// A server that enforces the deadline may reset the stream (`canceled`) a moment before the
/// client's own timer fires: once the deadline has passed, such a local `canceled` is the
/// deadline's doing.
pub(crate) fn deadline_attributed(err: Error, deadline: Instant) -> Error {
    if err.is_canceled() && !err.is_wire() && Instant::now() >= deadline {
        let message = format!("the deadline expired: {}", err.message());
        Error::deadline_exceeded(message).with_source(err)
    } else {
        err
    }
}

/// What opening a bidi stream yields: response headers, messages, the connection used.
type Opened<Res> = (HeaderMap, Streaming<Res>, Option<crate::ConnectionInfo>);

type OpenFuture<Res> =
    Pin<Box<dyn std::future::Future<Output = Result<Opened<Res>, Error>> + Send>>;

enum Receive<Res> {
    Opening(tokio::task::JoinHandle<Result<Opened<Res>, Error>>),
    Open(HeaderMap, Streaming<Res>),
    Failed(Option<Error>),
}

impl<Res> Drop for Receive<Res> {
    fn drop(&mut self) {
        // Dropping the call cancels the HTTP request: no detached task keeps running.
        if let Receive::Opening(handle) = self {
            handle.abort();
        }
    }
}

/// The receiving half of a bidirectional stream.
pub struct BidiReceiver<Res> {
    state: Receive<Res>,
    connection: Option<crate::ConnectionInfo>,
}

/// The sending half of a bidirectional stream.
pub struct BidiSender<Req> {
    sender: Option<tokio::sync::mpsc::Sender<Req>>,
}

/// A bidirectional stream: send requests and receive responses, together or from separate
/// tasks after [`into_split`](Self::into_split).
pub struct BidiStream<Req, Res> {
    sender: BidiSender<Req>,
    receiver: BidiReceiver<Res>,
}

impl<Req, Res> std::fmt::Debug for BidiStream<Req, Res> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BidiStream").finish_non_exhaustive()
    }
}

impl<Req: Message, Res: Message> BidiStream<Req, Res> {
    pub(crate) fn new(
        sender: tokio::sync::mpsc::Sender<Req>,
        open: OpenFuture<Res>,
        deadline: Option<Instant>,
    ) -> Self {
        let handle = tokio::spawn(async move {
            let (headers, stream, connection) = open.await?;
            Ok((headers, with_stream_deadline(stream, deadline), connection))
        });
        Self {
            sender: BidiSender {
                sender: Some(sender),
            },
            receiver: BidiReceiver {
                state: Receive::Opening(handle),
                connection: None,
            },
        }
    }

    /// Sends one request message.
    pub async fn send(&mut self, message: Req) -> Result<(), Error> {
        self.sender.send(message).await
    }

    /// Closes the request side; the server sees the end of its input.
    pub fn close_send(&mut self) {
        self.sender.close();
    }

    /// The next response message; `Ok(None)` at a clean end.
    pub async fn message(&mut self) -> Result<Option<Res>, Error> {
        self.receiver.message().await
    }

    /// The response headers (waits for them).
    pub async fn headers(&mut self) -> Result<HeaderMap, Error> {
        self.receiver.headers().await
    }

    /// The trailers, complete once the stream has ended.
    pub fn trailers(&self) -> HeaderMap {
        self.receiver.trailers()
    }

    /// The connection the stream uses (waits for the response headers); `None` when the
    /// transport does not report it. See [`Response::connection`](crate::Response::connection).
    pub async fn connection(&mut self) -> Result<Option<crate::ConnectionInfo>, Error> {
        self.receiver.connection().await
    }

    /// Splits into halves usable from separate tasks.
    pub fn into_split(self) -> (BidiSender<Req>, BidiReceiver<Res>) {
        (self.sender, self.receiver)
    }
}

impl<Req: Message> BidiSender<Req> {
    /// Sends one request message. Fails once the call has ended; read the receiver for why.
    pub async fn send(&mut self, message: Req) -> Result<(), Error> {
        let sender = self
            .sender
            .as_ref()
            .ok_or_else(|| Error::internal("send after close_send"))?;
        sender
            .send(message)
            .await
            .map_err(|_| Error::canceled("the request stream is closed: the call has ended"))
    }

    /// Closes the request side.
    pub fn close(&mut self) {
        self.sender = None;
    }
}

impl<Res: Message> BidiReceiver<Res> {
    async fn open(&mut self) -> Result<(), Error> {
        if let Receive::Opening(handle) = &mut self.state {
            let result = match handle.await {
                Ok(r) => r,
                Err(e) => Err(Error::canceled(format!("the call task ended: {e}"))),
            };
            self.state = match result {
                Ok((h, s, c)) => {
                    self.connection = c;
                    Receive::Open(h, s)
                }
                Err(e) => Receive::Failed(Some(e)),
            };
        }
        Ok(())
    }

    /// The response headers (waits for them).
    pub async fn headers(&mut self) -> Result<HeaderMap, Error> {
        self.open().await?;
        match &mut self.state {
            Receive::Open(h, _) => Ok(h.clone()),
            Receive::Failed(e) => Err(e
                .take()
                .unwrap_or_else(|| Error::canceled("the call already failed"))),
            Receive::Opening(_) => Err(Error::internal("stream not open")),
        }
    }

    /// The connection the stream uses (waits for the response headers); `None` when the
    /// transport does not report it.
    pub async fn connection(&mut self) -> Result<Option<crate::ConnectionInfo>, Error> {
        self.headers().await?;
        Ok(self.connection.clone())
    }

    /// The next response message; `Ok(None)` at a clean end.
    pub async fn message(&mut self) -> Result<Option<Res>, Error> {
        self.open().await?;
        match &mut self.state {
            Receive::Open(h, s) => s.message().await.map_err(|e| with_metadata(e, h)),
            Receive::Failed(e) => match e.take() {
                Some(e) => Err(e),
                None => Ok(None),
            },
            Receive::Opening(_) => Err(Error::internal("stream not open")),
        }
    }

    /// The trailers, complete once the stream has ended.
    pub fn trailers(&self) -> HeaderMap {
        match &self.state {
            Receive::Open(_, s) => s.trailers(),
            _ => HeaderMap::new(),
        }
    }
}
