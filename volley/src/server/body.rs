//! Request body wrappers: a progress timeout, and draining of unread HTTP/1.1 bodies.

use std::future::Future;
use std::time::Duration;

/// A request body that fails when, while read, it delivers nothing for `timeout`.
pub(super) struct ProgressTimeout {
    body: hyper::body::Incoming,
    timeout: Option<Duration>,
    /// The timer, made at the first read that waits and re-armed (not re-allocated) at each
    /// later one.
    sleep: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// Whether `sleep` counts down the read waiting now.
    armed: bool,
}

impl ProgressTimeout {
    pub(super) fn new(body: hyper::body::Incoming, timeout: Option<Duration>) -> Self {
        Self {
            body,
            timeout,
            sleep: None,
            armed: false,
        }
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

impl http_body::Body for ProgressTimeout {
    type Data = bytes::Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        match std::pin::Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                if frame.is_none() {
                    this.sleep = None;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let Some(timeout) = this.timeout else {
                    return Poll::Pending;
                };
                let sleep = match &mut this.sleep {
                    Some(sleep) => {
                        if !this.armed {
                            sleep.as_mut().reset(tokio::time::Instant::now() + timeout);
                        }
                        sleep
                    }
                    None => this.sleep.insert(Box::pin(tokio::time::sleep(timeout))),
                };
                this.armed = true;
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.sleep = None;
                        this.armed = false;
                        Poll::Ready(Some(Err(Box::new(BodyTimedOut(timeout)))))
                    }
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
pub(super) struct DrainOnDrop(pub(super) Option<ProgressTimeout>);

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
