//! The ceiling: echo on raw hyper 1.x with no framework, framed by hand. gRPC (the request's
//! envelope is answered as is, with `grpc-status: 0` trailers) and Connect unary with binary
//! Protobuf (the body is answered as is). `EchoRequest` and `EchoResponse` encode the same, so
//! after checking the request's shape the echo is the request's bytes.

use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};

/// The echo method's path.
pub const ECHO_PATH: &str = "/bench.v1.BenchService/Echo";

/// Whether `message` is one length-delimited field 1 (an `EchoRequest` with a payload) or empty.
fn echo_shape(message: &[u8]) -> bool {
    if message.is_empty() {
        return true;
    }
    if message[0] != 0x0a {
        return false;
    }
    let (mut len, mut shift, mut i) = (0usize, 0u32, 1usize);
    loop {
        let Some(&b) = message.get(i) else {
            return false;
        };
        if shift > 28 {
            return false;
        }
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    message.len() - i == len
}

type Trailed = StreamBody<
    futures_util::stream::Iter<std::array::IntoIter<Result<Frame<Bytes>, Infallible>, 2>>,
>;

/// The response body of every branch.
pub type RawBody = Either<Full<Bytes>, Trailed>;

fn plain(status: StatusCode) -> Response<RawBody> {
    let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
    *response.status_mut() = status;
    response
}

/// Serves one request.
pub async fn handle(request: Request<Incoming>) -> Result<Response<RawBody>, Infallible> {
    if request.uri().path() != ECHO_PATH {
        return Ok(plain(StatusCode::NOT_FOUND));
    }
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let Ok(body) = http_body_util::Limited::new(request.into_body(), 4 << 20)
        .collect()
        .await
    else {
        return Ok(plain(StatusCode::BAD_REQUEST));
    };
    let body = body.to_bytes();
    if content_type.starts_with("application/grpc") {
        let framed = body.len() >= 5
            && body[0] == 0
            && u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize == body.len() - 5
            && echo_shape(&body[5..]);
        let mut trailers = HeaderMap::new();
        trailers.insert(
            "grpc-status",
            HeaderValue::from_static(if framed { "0" } else { "3" }),
        );
        let data = if framed { body } else { Bytes::new() };
        let frames = [Ok(Frame::data(data)), Ok(Frame::trailers(trailers))];
        let mut response = Response::new(Either::Right(StreamBody::new(
            futures_util::stream::iter(frames),
        )));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        Ok(response)
    } else if content_type == "application/proto" {
        if !echo_shape(&body) {
            return Ok(plain(StatusCode::BAD_REQUEST));
        }
        let mut response = Response::new(Either::Left(Full::new(body)));
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/proto"),
        );
        Ok(response)
    } else {
        Ok(plain(StatusCode::UNSUPPORTED_MEDIA_TYPE))
    }
}

/// Accepts connections on `listener` forever, HTTP/1.1 and h2c.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let _ = builder
                .serve_connection(
                    hyper_util::rt::TokioIo::new(stream),
                    hyper::service::service_fn(handle),
                )
                .await;
        });
    }
}
