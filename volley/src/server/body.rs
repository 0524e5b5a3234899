//! Request body wrappers: a progress timeout and a minimum rate for messages being received,
//! and draining of unread HTTP/1.1 bodies.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// What a request body must keep up while its handler reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    /// The longest a read may wait for anything.
    pub(super) progress: Option<Duration>,
    /// The minimum average rate of a message being received, in bytes per second, after a
    /// grace period.
    pub(super) min_rate: Option<(u64, Duration)>,
}

/// How a body's bytes divide into messages, for the minimum rate.
#[derive(Debug, Clone, Copy)]
pub(super) enum Framing {
    /// The whole body is one message (Connect unary, gRPC-Web text).
    Whole,
    /// 5-byte envelopes: `prefix` bytes of the current prefix seen (its length so far in
    /// `len`), then `remaining` payload bytes to come.
    Enveloped {
        prefix: u8,
        len: u32,
        remaining: u32,
    },
}

impl Framing {
    /// The framing of a request with this content type.
    pub(super) fn of(content_type: Option<&http::HeaderValue>) -> Self {
        let ct = content_type.map_or(&b""[..], |v| v.as_bytes());
        let starts = |p: &[u8]| ct.len() >= p.len() && ct[..p.len()].eq_ignore_ascii_case(p);
        if starts(b"application/grpc-web-text") {
            Framing::Whole
        } else if starts(b"application/grpc") || starts(b"application/connect+") {
            Framing::Enveloped {
                prefix: 0,
                len: 0,
                remaining: 0,
            }
        } else {
            Framing::Whole
        }
    }

    /// Whether a message is partly received.
    fn partial(&self) -> bool {
        match *self {
            Framing::Whole => true,
            Framing::Enveloped {
                prefix, remaining, ..
            } => prefix > 0 || remaining > 0,
        }
    }

    /// Takes in `data`; returns how many of its bytes belong to the message still partly
    /// received at its end, and whether an earlier message ended inside it.
    fn advance(&mut self, data: &[u8]) -> (usize, bool) {
        let Framing::Enveloped {
            prefix,
            len,
            remaining,
        } = self
        else {
            return (data.len(), false);
        };
        let mut i = 0;
        let mut message_start = 0;
        let mut ended = false;
        while i < data.len() {
            if *remaining > 0 {
                let take = (*remaining as usize).min(data.len() - i);
                *remaining -= take as u32;
                i += take;
                if *remaining == 0 {
                    ended = true;
                    message_start = i;
                }
                continue;
            }
            if *prefix > 0 {
                *len = (*len << 8) | u32::from(data[i]);
            }
            *prefix += 1;
            i += 1;
            if *prefix == 5 {
                *prefix = 0;
                *remaining = std::mem::take(len);
                if *remaining == 0 {
                    ended = true;
                    message_start = i;
                }
            }
        }
        if self.partial() {
            (data.len() - message_start, ended)
        } else {
            (0, ended)
        }
    }
}

/// A request body that fails when, while read, it delivers nothing for the progress timeout,
/// or a message being received arrives slower than the minimum rate. Generic over the body
/// read (hyper's, or an HTTP/3 request stream's).
pub(super) struct GuardedBody<B = hyper::body::Incoming> {
    body: B,
    limits: BodyLimits,
    framing: Framing,
    /// Bytes of the message partly received.
    message_bytes: u64,
    /// Time spent waiting for the message partly received.
    waited: Duration,
    /// Since when the current read has been waiting.
    waiting_since: Option<Instant>,
    /// Why the current wait ends at the sleep's deadline: the minimum rate (else the progress
    /// timeout).
    rate_deadline: bool,
    /// Allocated at the first wait, reset for each.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> GuardedBody<B> {
    pub(super) fn new(body: B, limits: BodyLimits, framing: Framing) -> Self {
        Self {
            body,
            limits,
            framing,
            message_bytes: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            rate_deadline: false,
            sleep: None,
        }
    }

    /// How long the message partly received may take, waiting, at the minimum rate.
    fn allowed(&self, rate: u64, grace: Duration) -> Duration {
        let nanos = u128::from(self.message_bytes) * 1_000_000_000 / u128::from(rate.max(1));
        grace.saturating_add(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// Takes in a data chunk.
    fn received(&mut self, data: &[u8]) {
        if self.limits.min_rate.is_none() {
            return;
        }
        let (bytes, ended) = self.framing.advance(data);
        if ended {
            self.message_bytes = 0;
            self.waited = Duration::ZERO;
        }
        self.message_bytes = self.message_bytes.saturating_add(bytes as u64);
        if !self.framing.partial() {
            self.message_bytes = 0;
            self.waited = Duration::ZERO;
        }
    }

    /// Starts a wait: arms the sleep for whichever limit ends it first. `None` when no limit
    /// applies.
    fn begin_wait(&mut self, now: Instant) -> Option<&mut Pin<Box<tokio::time::Sleep>>> {
        let progress = self.limits.progress.map(|t| now + t);
        let rate = match self.limits.min_rate {
            Some((rate, grace)) if self.framing.partial() => {
                Some(now + self.allowed(rate, grace).saturating_sub(self.waited))
            }
            _ => None,
        };
        let (deadline, by_rate) = match (progress, rate) {
            (Some(p), Some(r)) if r < p => (r, true),
            (Some(p), _) => (p, false),
            (None, Some(r)) => (r, true),
            (None, None) => return None,
        };
        self.rate_deadline = by_rate;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.sleep.as_mut()
    }

    fn error(&mut self) -> crate::BoxError {
        let since = self.waiting_since.take();
        if self.rate_deadline
            && let Some((rate, _)) = self.limits.min_rate
        {
            let waited = self.waited + since.map_or(Duration::ZERO, |s| s.elapsed());
            let bytes = self.message_bytes;
            self.message_bytes = 0;
            self.waited = Duration::ZERO;
            return Box::new(BodyTooSlow {
                rate,
                bytes,
                waited,
            });
        }
        Box::new(BodyTimedOut(self.limits.progress.unwrap_or_default()))
    }
}

/// A request body that stopped making progress.
#[derive(Debug)]
struct BodyTimedOut(Duration);

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body sent nothing for {:?}", self.0)
    }
}

impl std::error::Error for BodyTimedOut {}

/// A message received slower than the minimum rate.
#[derive(Debug)]
struct BodyTooSlow {
    rate: u64,
    bytes: u64,
    waited: Duration,
}

impl std::fmt::Display for BodyTooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body is too slow: {} bytes of a message in {:?}, under the minimum of {} bytes/s",
            self.bytes, self.waited, self.rate
        )
    }
}

impl std::error::Error for BodyTooSlow {}

impl<B> http_body::Body for GuardedBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<crate::BoxError>,
{
    type Data = bytes::Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take()
                    && this.framing.partial()
                {
                    this.waited += since.elapsed();
                }
                if let Some(Ok(frame)) = &frame
                    && let Some(data) = frame.data_ref()
                {
                    this.received(data);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let sleep = if this.waiting_since.is_none() {
                    let now = Instant::now();
                    this.waiting_since = Some(now);
                    this.begin_wait(now)
                } else {
                    this.sleep.as_mut()
                };
                let Some(sleep) = sleep else {
                    return Poll::Pending;
                };
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(this.error()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// The most of an unread HTTP/1.1 request body drained after its handler is done with it.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;
/// How long draining an unread HTTP/1.1 request body may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// An HTTP/1.1 request body that, dropped before its end (an error answered before the whole
/// request was read), drains the rest in the background. Otherwise hyper closes the connection
/// with unread bytes in the socket, the peer's TCP stack gets a reset, and the client sees a
/// broken pipe or an unexpected EOF instead of the response it was sent.
pub(super) struct DrainOnDrop(pub(super) Option<GuardedBody>);

impl http_body::Body for DrainOnDrop {
    type Data = bytes::Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, crate::BoxError>>> {
        match self.0.as_mut() {
            Some(body) => std::pin::Pin::new(body).poll_frame(cx),
            None => std::task::Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.as_ref().is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .as_ref()
            .map(http_body::Body::size_hint)
            .unwrap_or_default()
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.0.take() else {
            return;
        };
        if http_body::Body::is_end_stream(&body) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            use http_body_util::BodyExt as _;
            let drain = async {
                let mut read = 0;
                while let Some(Ok(frame)) = body.frame().await {
                    read += frame.data_ref().map_or(0, bytes::Bytes::len);
                    if read > DRAIN_LIMIT {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    fn enveloped() -> Framing {
        Framing::Enveloped {
            prefix: 0,
            len: 0,
            remaining: 0,
        }
    }

    #[test]
    fn envelope_boundaries_are_followed_across_chunks() {
        let mut f = enveloped();
        assert!(!f.partial());
        // A prefix declaring 3 bytes, split inside the prefix (each call counts the bytes
        // of the partial message in its chunk).
        assert_eq!(f.advance(&[0, 0, 0]), (3, false));
        assert!(f.partial());
        assert_eq!(f.advance(&[0, 3, b'a']), (3, false));
        // The rest of the message and a whole empty one: nothing partial.
        assert_eq!(f.advance(&[b'b', b'c', 0, 0, 0, 0, 0]), (0, true));
        assert!(!f.partial());
        // A prefix declaring 1 byte; then that byte and the start of the next message: only
        // the new one's bytes count.
        assert_eq!(f.advance(&[0, 0, 0, 0, 1]), (5, false));
        assert_eq!(f.advance(&[b'x', 1, 0]), (2, true));
        assert!(f.partial());
    }

    #[test]
    fn declared_lengths_of_any_size_are_counted_down() {
        let mut f = enveloped();
        assert_eq!(f.advance(&[0, 0xff, 0xff, 0xff, 0xff]), (5, false));
        assert!(f.partial());
        assert_eq!(f.advance(&[0; 1000]), (1000, false));
        let whole = Framing::of(Some(&http::HeaderValue::from_static("application/json")));
        assert!(matches!(whole, Framing::Whole));
        let text = Framing::of(Some(&http::HeaderValue::from_static(
            "application/grpc-web-text+proto",
        )));
        assert!(matches!(text, Framing::Whole));
        let grpc = Framing::of(Some(&http::HeaderValue::from_static("Application/GRPC")));
        assert!(matches!(grpc, Framing::Enveloped { .. }));
    }
}
