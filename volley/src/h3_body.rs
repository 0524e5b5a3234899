//! The receiving half of an HTTP/3 request stream, on either side, as an HTTP body: its DATA
//! frames, then its trailers. The server reads requests through it, the client responses.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use h3::error::StreamError;

/// What [`RecvBody`] needs of an h3 receive stream; h3 has one type per side.
pub(crate) trait RecvStream: Send + Unpin + 'static {
    /// The next DATA frame's bytes, `None` at the end of the data.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>>;
    /// The trailers after the data, `None` when the peer sent none.
    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, StreamError>>;
}

fn into_bytes(
    polled: Poll<Result<Option<impl Buf>, StreamError>>,
) -> Poll<Result<Option<Bytes>, StreamError>> {
    polled.map_ok(|data| data.map(|mut data| data.copy_to_bytes(data.remaining())))
}

#[cfg(feature = "server")]
impl RecvStream for h3::server::RequestStream<h3_quinn::RecvStream, Bytes> {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        into_bytes(self.poll_recv_data(cx))
    }

    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, StreamError>> {
        self.poll_recv_trailers(cx)
    }
}

#[cfg(feature = "client")]
impl RecvStream for h3::client::RequestStream<h3_quinn::RecvStream, Bytes> {
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, StreamError>> {
        into_bytes(self.poll_recv_data(cx))
    }

    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<http::HeaderMap>, StreamError>> {
        self.poll_recv_trailers(cx)
    }
}

/// A receive stream as an `http_body::Body`. `G` is whatever must live as long as the body
/// (the client keeps the request body's cancel handle there).
pub(crate) struct RecvBody<S, G = ()> {
    stream: S,
    state: RecvState,
    on_error: fn(StreamError) -> crate::BoxError,
    _guard: G,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Data,
    Trailers,
    Done,
}

impl<S: RecvStream, G> RecvBody<S, G> {
    /// Reads `stream`, turning its errors into body errors with `on_error`.
    pub(crate) fn new(stream: S, on_error: fn(StreamError) -> crate::BoxError, guard: G) -> Self {
        Self {
            stream,
            state: RecvState::Data,
            on_error,
            _guard: guard,
        }
    }
}

impl<S: RecvStream, G: Unpin> http_body::Body for RecvBody<S, G> {
    type Data = Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            let frame = match this.state {
                RecvState::Data => match this.stream.poll_data(cx) {
                    Poll::Pending => return Poll::Pending,
                    // Empty DATA frames carry nothing a reader needs to see.
                    Poll::Ready(Ok(Some(data))) if data.is_empty() => continue,
                    Poll::Ready(Ok(Some(data))) => Ok(http_body::Frame::data(data)),
                    Poll::Ready(Ok(None)) => {
                        this.state = RecvState::Trailers;
                        continue;
                    }
                    Poll::Ready(Err(e)) => Err(e),
                },
                RecvState::Trailers => match this.stream.poll_trailers(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(Some(trailers))) => Ok(http_body::Frame::trailers(trailers)),
                    Poll::Ready(Ok(None)) => {
                        this.state = RecvState::Done;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Err(e)) => Err(e),
                },
                RecvState::Done => return Poll::Ready(None),
            };
            return Poll::Ready(Some(match frame {
                Ok(frame) => {
                    if frame.is_trailers() {
                        this.state = RecvState::Done;
                    }
                    Ok(frame)
                }
                Err(e) => {
                    this.state = RecvState::Done;
                    Err((this.on_error)(e))
                }
            }));
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == RecvState::Done
    }
}
