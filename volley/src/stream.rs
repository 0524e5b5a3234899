//! The protocol-agnostic message pipeline used by server and client alike:
//! deframe -> decompress -> decode on the way in, encode -> compress -> frame on the way out,
//! with size limits on both sides.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures_core::Stream;
use http::HeaderMap;
use http_body::Body as _;

use crate::budget::{Budget, Charge};
use crate::codec::{CodecHandle, Message};
use crate::compression::{Compression, decompress_off_worker};
use crate::envelope::{self, Decoder, Envelope};
use crate::error::BoxError;
use crate::interceptor::{EndGuard, Observers};
use crate::{Code, Error};

/// The HTTP body type Volley produces and accepts: any boxed body of [`Bytes`].
pub type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// A boxed stream of messages a handler returns for streaming responses.
pub type ResponseStream<M> = Pin<Box<dyn Stream<Item = Result<M, Error>> + Send + 'static>>;

pub(crate) type RawStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send + 'static>>;

/// An empty body.
pub(crate) fn empty_body() -> Body {
    use http_body_util::BodyExt as _;
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body of one chunk.
pub(crate) fn full_body(bytes: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt as _;
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Boxes any body of bytes into [`Body`].
pub fn boxed_body<B>(body: B) -> Body
where
    B: http_body::Body + Send + 'static,
    B::Data: Into<Bytes> + bytes::Buf,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt as _;
    // Already a `Body` (a router called as a tower service by a server that boxes its
    // bodies): pass it through rather than boxing the box.
    let mut slot = Some(body);
    if let Some(body) = (&mut slot as &mut dyn std::any::Any)
        .downcast_mut::<Option<Body>>()
        .and_then(Option::take)
    {
        return body;
    }
    let Some(body) = slot else {
        return empty_body();
    };
    fn to_box<E: Into<BoxError>>(e: E) -> BoxError {
        e.into()
    }
    body.map_frame(|f| f.map_data(Into::into))
        .map_err(to_box::<B::Error>)
        .boxed_unsync()
}

/// Reads envelopes from an HTTP body, base64-decoding first for gRPC-Web text.
pub(crate) struct FrameSource {
    body: Body,
    /// The rest of the last data chunk, read in place while `buf` is empty: a message that
    /// arrives whole in one chunk (the common case) is never copied.
    chunk: Bytes,
    /// Bytes of an envelope that spans chunks, gathered.
    buf: BytesMut,
    decoder: Decoder,
    done: bool,
    http_trailers: Option<HeaderMap>,
    text: Option<Vec<u8>>,
    body_error: fn(BoxError) -> Error,
    truncated: Code,
    charge: Option<Charge>,
}

impl FrameSource {
    pub(crate) fn new(
        body: Body,
        limit: usize,
        text: bool,
        body_error: fn(BoxError) -> Error,
    ) -> Self {
        Self {
            body,
            chunk: Bytes::new(),
            buf: BytesMut::new(),
            decoder: Decoder::new(limit),
            done: false,
            http_trailers: None,
            text: text.then(Vec::new),
            body_error,
            truncated: Code::InvalidArgument,
            charge: None,
        }
    }

    /// Draws what this source buffers from `budget` (beyond a small allowance per call),
    /// failing with `resource_exhausted` when the budget is used up.
    pub(crate) fn with_budget(mut self, budget: Option<&Arc<Budget>>) -> Self {
        self.charge = budget.map(|b| Charge::new(b.clone()));
        self
    }

    /// Accounts for what is buffered now.
    fn account(&mut self) -> Result<(), Error> {
        let Some(charge) = &mut self.charge else {
            return Ok(());
        };
        let held =
            self.buf.capacity() + self.chunk.len() + self.text.as_ref().map_or(0, Vec::capacity);
        if let Err(e) = charge.hold(held) {
            self.done = true;
            self.buf = BytesMut::new();
            self.chunk = Bytes::new();
            self.text = self.text.take().map(|_| Vec::new());
            let _ = charge.hold(0);
            return Err(e);
        }
        Ok(())
    }

    /// The code for a body that ends inside an envelope (default `invalid_argument`, right for
    /// servers; clients report a peer's truncated response as `internal`).
    pub(crate) fn truncated_code(mut self, code: Code) -> Self {
        self.truncated = code;
        self
    }

    /// HTTP trailers seen at the end of the body, if any.
    pub(crate) fn take_http_trailers(&mut self) -> Option<HeaderMap> {
        self.http_trailers.take()
    }

    fn feed(&mut self, data: Bytes) -> Result<(), Error> {
        match &mut self.text {
            // `chunk` is always empty here: it is consumed or moved to `buf` before a read.
            None if self.buf.is_empty() => self.chunk = data,
            None => self.buf.extend_from_slice(&data),
            Some(pending) => {
                pending.extend(data.iter().copied().filter(|b| !b.is_ascii_whitespace()));
                let whole = pending.len() / 4 * 4;
                decode_base64_groups(&pending[..whole], &mut self.buf)?;
                pending.drain(..whole);
            }
        }
        Ok(())
    }

    pub(crate) fn poll_envelope(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Envelope>, Error>> {
        loop {
            if !self.chunk.is_empty() {
                match self.decoder.decode_shared(&mut self.chunk) {
                    Ok(Some(env)) => return Poll::Ready(Ok(Some(env))),
                    Ok(None) => {
                        // A partial envelope: gather it (and what follows) in `buf`.
                        let rest = std::mem::take(&mut self.chunk);
                        self.buf.extend_from_slice(&rest);
                        self.account()?;
                    }
                    Err(too_large) => {
                        return Poll::Ready(Err(Error::resource_exhausted(too_large.to_string())));
                    }
                }
            }
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(env)) => return Poll::Ready(Ok(Some(env))),
                Ok(None) => {}
                Err(too_large) => {
                    return Poll::Ready(Err(Error::resource_exhausted(too_large.to_string())));
                }
            }
            if self.done {
                if let Some(pending) = &self.text
                    && !pending.is_empty()
                {
                    let rest = std::mem::take(self.text.as_mut().unwrap_or(&mut Vec::new()));
                    decode_base64_groups(&rest, &mut self.buf)?;
                    continue;
                }
                if !self.buf.is_empty() {
                    let n = self.buf.len();
                    self.buf.clear();
                    return Poll::Ready(Err(Error::new(
                        self.truncated,
                        format!(
                            "protocol error: incomplete envelope: {n} bytes left at end of body"
                        ),
                    )));
                }
                return Poll::Ready(Ok(None));
            }
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        self.feed(data)?;
                        self.account()?;
                    }
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            match &mut self.http_trailers {
                                Some(t) => t.extend(trailers),
                                None => self.http_trailers = Some(trailers),
                            }
                        }
                    }
                },
                Some(Err(e)) => {
                    self.done = true;
                    self.buf.clear();
                    return Poll::Ready(Err((self.body_error)(e)));
                }
                None => self.done = true,
            }
        }
    }
}

/// Reads a whole (un-enveloped) body, failing with `resource_exhausted` past `limit` bytes or
/// when `budget` cannot cover what is buffered. `what` names the body in that error
/// ("request", "response").
///
/// A body that arrives as one chunk (the usual case for a unary request up to one HTTP/2
/// frame) is returned as that chunk, without a copy; a body in several chunks is gathered
/// into one buffer, sized up front from the body's length when it announces one.
pub(crate) async fn read_body_limited(
    mut body: Body,
    limit: usize,
    budget: Option<&Arc<Budget>>,
    body_error: fn(BoxError) -> Error,
    what: &str,
) -> Result<Bytes, Error> {
    use http_body_util::BodyExt as _;
    // The length the body announced (Content-Length), if any: it sizes a gathering buffer.
    let announced = body.size_hint().exact();
    let too_large = || {
        Error::resource_exhausted(format!(
            "{what} body is larger than the limit of {limit} bytes"
        ))
    };
    let mut charge = budget.map(|b| Charge::new(b.clone()));
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        let held = match (&mut first, &mut gathered) {
            (None, None) => {
                if data.len() > limit {
                    return Err(too_large());
                }
                let len = data.len();
                first = Some(data);
                len
            }
            (Some(_), None) => {
                let head = first.take().unwrap_or_default();
                if head.len() + data.len() > limit {
                    return Err(too_large());
                }
                // Sized once from the announced length, never past the limit.
                let so_far = head.len() + data.len();
                let capacity = announced
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0)
                    .clamp(so_far, limit);
                let mut buf = BytesMut::with_capacity(capacity);
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
                let held = buf.capacity();
                gathered = Some(buf);
                held
            }
            (_, Some(buf)) => {
                if buf.len() + data.len() > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
                buf.capacity()
            }
        };
        if let Some(charge) = &mut charge {
            charge.hold(held)?;
        }
    }
    Ok(match (first, gathered) {
        (_, Some(buf)) => buf.freeze(),
        (Some(one), None) => one,
        (None, None) => Bytes::new(),
    })
}

pub(crate) fn decode_base64_groups(input: &[u8], out: &mut BytesMut) -> Result<(), Error> {
    // Each 4-character group decodes on its own, so padded chunks concatenated by a sender
    // that base64-encodes every write separately still decode.
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut scratch = [0u8; 3];
    for group in input.chunks(4) {
        let n = engine
            .decode_slice(pad_group(group).as_slice(), &mut scratch)
            .map_err(|e| {
                Error::invalid_argument(format!("invalid base64 in grpc-web-text body: {e}"))
            })?;
        out.extend_from_slice(&scratch[..n]);
    }
    Ok(())
}

fn pad_group(group: &[u8]) -> Vec<u8> {
    let mut g = group.to_vec();
    while g.len() < 4 {
        g.push(b'=');
    }
    g
}

/// What a [`FrameReader`] yields.
pub(crate) enum Frame {
    /// A message payload, decompressed.
    Message(Bytes),
    /// A control frame (Connect end-stream, gRPC-Web trailers), decompressed, with its flags.
    Control(Bytes),
}

/// Turns envelopes into decompressed messages, enforcing the receive limit on the
/// decompressed size.
pub(crate) struct FrameReader {
    pub(crate) source: FrameSource,
    compression: Option<Arc<dyn Compression>>,
    limit: usize,
    control_flag: u8,
    /// A decompression under way off the async workers, and whether it is a control frame.
    pending: Option<(Decompressing, bool)>,
}

type Decompressing = Pin<Box<dyn std::future::Future<Output = Result<Bytes, Error>> + Send>>;

impl FrameReader {
    pub(crate) fn new(
        source: FrameSource,
        compression: Option<Arc<dyn Compression>>,
        limit: usize,
        control_flag: u8,
    ) -> Self {
        Self {
            source,
            compression,
            limit,
            control_flag,
            pending: None,
        }
    }

    /// The next message's bytes, control frames included (servers read no control frames).
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Error>>> {
        self.poll_frame(cx)
            .map(|frame| frame.map(|r| r.map(|(Frame::Message(b) | Frame::Control(b))| b)))
    }

    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame, Error>>> {
        if let Some((job, control)) = &mut self.pending {
            let control = *control;
            let result = ready!(job.as_mut().poll(cx));
            self.pending = None;
            return Poll::Ready(Some(result.map(|data| {
                if control {
                    Frame::Control(data)
                } else {
                    Frame::Message(data)
                }
            })));
        }
        let env = match ready!(self.source.poll_envelope(cx)) {
            Ok(Some(env)) => env,
            Ok(None) => return Poll::Ready(None),
            Err(e) => return Poll::Ready(Some(Err(e))),
        };
        let control = self.control_flag != 0 && env.flags & self.control_flag != 0;
        let data = if env.is_compressed() {
            match &self.compression {
                Some(algo) => {
                    // Decompression can be expensive: it runs off the async workers (see
                    // `decompress_off_worker`), so other calls are not starved.
                    let job = decompress_off_worker(algo.clone(), env.data, self.limit);
                    self.pending = Some((Box::pin(job), control));
                    return self.poll_frame(cx);
                }
                None => {
                    return Poll::Ready(Some(Err(Error::internal(
                        "protocol error: received a compressed message without a message encoding",
                    ))));
                }
            }
        } else {
            env.data
        };
        Poll::Ready(Some(Ok(if control {
            Frame::Control(data)
        } else {
            Frame::Message(data)
        })))
    }
}

/// A stream of incoming messages: request messages on the server, response messages on the
/// client. Read with [`message`](Self::message) or as a [`Stream`].
pub struct Streaming<M> {
    raw: RawStream,
    codec: CodecHandle,
    trailers: Arc<Mutex<HeaderMap>>,
    observers: Option<Observers>,
    /// Client side: the end of this stream is the end of the call, for observers.
    end_guard: EndGuard,
    _message: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for Streaming<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl<M: Message> Streaming<M> {
    pub(crate) fn new(raw: RawStream, codec: CodecHandle, trailers: Arc<Mutex<HeaderMap>>) -> Self {
        Self {
            raw,
            codec,
            trailers,
            observers: None,
            end_guard: EndGuard(None),
            _message: PhantomData,
        }
    }

    /// Reports each decoded message to `observers`; with `ends_call`, also the stream's end.
    pub(crate) fn observed(mut self, observers: Option<Observers>, ends_call: bool) -> Self {
        if ends_call {
            self.end_guard = EndGuard(observers.clone());
        }
        self.observers = observers;
        self
    }

    /// A stream over already-decoded messages (handy in tests and interceptors).
    pub fn from_messages(messages: impl IntoIterator<Item = M>) -> Self
    where
        M: Clone,
    {
        let mut encoded = Vec::new();
        let mut err = None;
        for m in messages {
            let mut buf = BytesMut::new();
            match m.encode_proto(&mut buf) {
                Ok(()) => encoded.push(Ok(buf.freeze())),
                Err(e) => err = Some(e),
            }
        }
        if let Some(e) = err {
            encoded.push(Err(e));
        }
        Self::new(
            Box::pin(futures_util::stream::iter(encoded)),
            CodecHandle::Proto,
            Arc::default(),
        )
    }

    pub(crate) fn map_raw(self, f: impl FnOnce(RawStream) -> RawStream) -> Self {
        let mut this = self;
        let raw = std::mem::replace(&mut this.raw, Box::pin(futures_util::stream::empty()));
        this.raw = f(raw);
        this
    }

    /// Waits for the first item: an error is taken out and returned (the stream ends after
    /// one), a message or the end is left in place for the reader.
    pub(crate) async fn take_first_error(&mut self) -> Option<Error> {
        let item = std::future::poll_fn(|cx| self.raw.as_mut().poll_next(cx)).await;
        match item {
            Some(Err(e)) => Some(e),
            other => {
                let rest =
                    std::mem::replace(&mut self.raw, Box::pin(futures_util::stream::empty()));
                self.raw = Box::pin(futures_util::StreamExt::chain(
                    futures_util::stream::iter(other),
                    rest,
                ));
                None
            }
        }
    }

    /// Puts an error back in front of the stream.
    pub(crate) fn with_first_error(self, err: Error) -> Self {
        self.map_raw(|rest| {
            Box::pin(futures_util::StreamExt::chain(
                futures_util::stream::iter([Err(err)]),
                rest,
            ))
        })
    }

    /// The next message, `Ok(None)` at a clean end of stream.
    pub async fn message(&mut self) -> Result<Option<M>, Error> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }

    /// Trailers received so far: complete once the stream has ended (client side).
    pub fn trailers(&self) -> HeaderMap {
        self.trailers.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl<M: Message> Stream for Streaming<M> {
    type Item = Result<M, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let mut item = match ready!(this.raw.as_mut().poll_next(cx)) {
            Some(Ok(bytes)) => Some(this.codec.decode::<M>(bytes)),
            Some(Err(e)) => Some(Err(e)),
            None => None,
        };
        if let Some(o) = &this.observers {
            if let Some(Ok(m)) = &mut item
                && let Err(e) = o.received(m)
            {
                // A hook rejected the message: the stream ends with its error.
                item = Some(Err(e));
                this.raw = Box::pin(futures_util::stream::empty());
            }
            // Client side: the end of this stream is the end of the call.
            if this.end_guard.0.is_some() {
                match &mut item {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        if let Some(failure) = o.failure() {
                            *e = failure;
                        }
                        o.end_error(e);
                    }
                    None => match o.failure() {
                        Some(mut failure) => {
                            o.end_error(&mut failure);
                            item = Some(Err(failure));
                        }
                        None => match this.trailers.lock() {
                            Ok(mut trailers) => o.end(Ok(()), &mut trailers),
                            Err(_) => o.end(Ok(()), &mut HeaderMap::new()),
                        },
                    },
                }
                if !matches!(item, Some(Ok(_))) {
                    this.end_guard.0 = None;
                }
            }
        }
        Poll::Ready(item)
    }
}

/// An encoded outgoing message with room for its envelope prefix in front: framing fills the
/// prefix in place, and a Connect unary body drops it, so the message is written once.
#[derive(Clone)]
pub(crate) struct Encoded(BytesMut);

/// A handler's outgoing messages, each encoded when the response body asks for it, straight
/// into the body's buffer: a stream of small messages costs no allocation per message.
pub(crate) trait Outgoing: Send {
    /// Waits for the next message and appends it to `buf` after [`envelope::PREFIX_LEN`]
    /// bytes of room for its frame prefix (which [`FrameWriter::seal`] fills). `Ready(None)`
    /// at the end of the stream. On an error, `buf` may hold part of the message: the caller
    /// cuts it off.
    fn poll_encode(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut BytesMut,
    ) -> Poll<Option<Result<(), Error>>>;
}

/// The most bytes of ready messages gathered into one body chunk (either half: a stream's
/// response, a client stream's request).
pub(crate) const BATCH_LIMIT: usize = 32 * 1024;

/// The messages of a stream that are ready together, each encoded and framed in place into
/// one buffer, then taken as one body chunk; the buffer's unused tail is kept for the next
/// chunk, so a stream of small messages costs one allocation per batch, not one per message.
#[derive(Default)]
pub(crate) struct Batch {
    buf: BytesMut,
}

impl Batch {
    /// Whether the batch has reached [`BATCH_LIMIT`] and should go out before more is added.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= BATCH_LIMIT
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Adds the next message: `encode` appends it in the [`Outgoing`] layout (room for the
    /// prefix, then the message) and says whether it did; the message is then framed in place
    /// by `writer` (compressed when worthwhile, the send limit checked). On an error, or when
    /// there is no message (`Pending`, `Ready(None)`), the batch is left as it was.
    pub(crate) fn push(
        &mut self,
        writer: &FrameWriter,
        encode: impl FnOnce(&mut BytesMut) -> Poll<Option<Result<(), Error>>>,
    ) -> Poll<Option<Result<(), Error>>> {
        // Grow by 8 KiB when less than 512 bytes are left; a larger message reserves its own
        // size as it is encoded.
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(8 * 1024);
        }
        let start = self.buf.len();
        let pushed = match encode(&mut self.buf) {
            Poll::Ready(Some(Ok(()))) => writer.seal(&mut self.buf, start),
            Poll::Ready(Some(Err(err))) => Err(err),
            other => {
                self.buf.truncate(start);
                return other;
            }
        };
        if pushed.is_err() {
            self.buf.truncate(start);
        }
        Poll::Ready(Some(pushed))
    }

    /// Appends bytes already framed (a body's end of stream).
    pub(crate) fn extend(&mut self, framed: &[u8]) {
        self.buf.extend_from_slice(framed);
    }

    /// The batch as one chunk, `None` when empty; the batch starts again, empty, in what is
    /// left of the buffer.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| self.buf.split().freeze())
    }

    /// The stream's last chunk: as [`take`](Self::take), but copied out at its exact size,
    /// and the buffer freed, when it fills less than half the buffer. A short stream's answer
    /// then holds only its own bytes while it waits to be written, not a mostly empty buffer
    /// (a stream of 100 small messages: 2 KiB, not 8).
    pub(crate) fn take_last(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() || self.buf.len() * 2 > self.buf.capacity() {
            return self.take();
        }
        let chunk = Bytes::copy_from_slice(&self.buf);
        self.buf = BytesMut::new();
        Some(chunk)
    }
}

/// A handler's outgoing messages, boxed.
pub(crate) type OutgoingStream = Box<dyn Outgoing>;

impl Encoded {
    /// Appends `message`, encoded with `codec`, to `buf` after room for its frame prefix (the
    /// [`Outgoing`] layout).
    pub(crate) fn append<M: Message>(
        codec: &CodecHandle,
        message: &M,
        buf: &mut BytesMut,
    ) -> Result<(), Error> {
        bytes::BufMut::put_bytes(buf, 0, envelope::PREFIX_LEN);
        codec.encode_into(message, buf)
    }

    /// Encodes `message` with `codec`.
    pub(crate) fn new<M: Message>(codec: &CodecHandle, message: &M) -> Result<Self, Error> {
        codec
            .encode_after(message, envelope::PREFIX_LEN)
            .map(Encoded)
    }

    /// The encoded message.
    fn message(&self) -> &[u8] {
        &self.0[envelope::PREFIX_LEN..]
    }

    /// The encoded message alone, without copying.
    fn into_message(self) -> Bytes {
        let mut buf = self.0;
        bytes::Buf::advance(&mut buf, envelope::PREFIX_LEN);
        buf.freeze()
    }

    /// The message in an uncompressed envelope, without copying.
    fn into_frame(self) -> Bytes {
        let mut buf = self.0;
        let len = u32::try_from(buf.len() - envelope::PREFIX_LEN).unwrap_or(u32::MAX);
        buf[0] = 0;
        buf[1..envelope::PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
        buf.freeze()
    }
}

/// Encodes, compresses (above the size threshold) and frames outgoing messages.
#[derive(Clone)]
pub(crate) struct FrameWriter {
    pub(crate) codec: CodecHandle,
    pub(crate) compression: Option<Arc<dyn Compression>>,
    pub(crate) min_size: usize,
    pub(crate) send_limit: usize,
}

impl FrameWriter {
    /// Checks the send limit, then compresses the message if worthwhile (`None` when not).
    fn compressed(&self, message: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        if message.len() > self.send_limit {
            return Err(Error::resource_exhausted(format!(
                "message size {} exceeds the send limit of {} bytes",
                message.len(),
                self.send_limit
            )));
        }
        match &self.compression {
            Some(algo) if message.len() >= self.min_size => {
                let mut out = Vec::with_capacity(message.len() / 2);
                algo.compress(message, &mut out)
                    .map_err(|e| Error::from_source(Code::Internal, e))?;
                Ok(Some(out))
            }
            _ => Ok(None),
        }
    }

    /// Frames the message that [`Outgoing::poll_encode`] appended to `buf` at `start` (its
    /// prefix's room, then the message) in place: fills in the prefix, or replaces the message
    /// with its compressed envelope when compression is worthwhile.
    fn seal(&self, buf: &mut BytesMut, start: usize) -> Result<(), Error> {
        let message = &buf[start + envelope::PREFIX_LEN..];
        match self.compressed(message)? {
            Some(compressed) => {
                buf.truncate(start);
                envelope::encode(envelope::FLAG_COMPRESSED, &compressed, buf);
            }
            None => {
                let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
                buf[start] = 0;
                buf[start + 1..start + envelope::PREFIX_LEN].copy_from_slice(&len.to_be_bytes());
            }
        }
        Ok(())
    }

    /// An un-enveloped message (a Connect unary body), compressed if worthwhile; returns the
    /// bytes and whether they are compressed.
    pub(crate) fn compress(&self, encoded: Encoded) -> Result<(Bytes, bool), Error> {
        Ok(match self.compressed(encoded.message())? {
            Some(compressed) => (Bytes::from(compressed), true),
            None => (encoded.into_message(), false),
        })
    }

    /// A message in its envelope, compressed if worthwhile.
    pub(crate) fn frame(&self, encoded: Encoded) -> Result<Bytes, Error> {
        Ok(match self.compressed(encoded.message())? {
            Some(compressed) => {
                let mut out = BytesMut::with_capacity(envelope::PREFIX_LEN + compressed.len());
                envelope::encode(envelope::FLAG_COMPRESSED, &compressed, &mut out);
                out.freeze()
            }
            None => encoded.into_frame(),
        })
    }

    /// Encodes a message with the codec.
    pub(crate) fn encode<M: Message>(&self, message: &M) -> Result<Encoded, Error> {
        Encoded::new(&self.codec, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_groups_accept_concatenated_padded_chunks() {
        let mut out = BytesMut::new();
        decode_base64_groups(b"AA==AQI=", &mut out).unwrap();
        assert_eq!(&out[..], &[0, 1, 2]);
        assert!(decode_base64_groups(b"!!!!", &mut BytesMut::new()).is_err());
    }
}
