//! Error constructors and wire/local errors over real sockets, every protocol: each of the
//! sixteen codes built by its constructor reaches the client as a wire error; a status carried
//! inside a bidi response message becomes a wire error with `Error::from_wire_status`; errors
//! the client raises itself stay local.

use buffa_types::google::protobuf::{BytesValue, StringValue};
use futures_util::StreamExt as _;
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, ErrorDetail, Idempotency, Protocol, Request,
    Response, ResponseStream, Router, Spec, StreamType, Streaming,
};

const FAIL: Spec = Spec::new("/test.Errors/Fail", StreamType::Unary, Idempotency::Unknown);
const BIG: Spec = Spec::new("/test.Errors/Big", StreamType::Unary, Idempotency::Unknown);
const STATUSES: Spec = Spec::new(
    "/test.Errors/Statuses",
    StreamType::BidiStream,
    Idempotency::Unknown,
);

/// The constructor for each code, by the code's name.
fn construct(name: &str, message: String) -> Error {
    match name {
        "canceled" => Error::canceled(message),
        "unknown" => Error::unknown(message),
        "invalid_argument" => Error::invalid_argument(message),
        "deadline_exceeded" => Error::deadline_exceeded(message),
        "not_found" => Error::not_found(message),
        "already_exists" => Error::already_exists(message),
        "permission_denied" => Error::permission_denied(message),
        "resource_exhausted" => Error::resource_exhausted(message),
        "failed_precondition" => Error::failed_precondition(message),
        "aborted" => Error::aborted(message),
        "out_of_range" => Error::out_of_range(message),
        "unimplemented" => Error::unimplemented(message),
        "internal" => Error::internal(message),
        "unavailable" => Error::unavailable(message),
        "data_loss" => Error::data_loss(message),
        "unauthenticated" => Error::unauthenticated(message),
        other => panic!("no constructor for {other}"),
    }
}

fn router() -> Router {
    Router::new()
        .unary(FAIL, |req: Request<StringValue>| async move {
            let name = req.message().value.clone();
            let err = construct(&name, format!("built by {name}()"));
            assert!(!err.is_wire(), "constructors build local errors");
            Err::<Response<StringValue>, _>(err)
        })
        .unary(BIG, |_req: Request<StringValue>| async move {
            Ok(Response::new(StringValue::from("x".repeat(1000))))
        })
        // Answers every request with a message carrying a google.rpc.Status: the request's
        // text names the code.
        .bidi_stream(
            STATUSES,
            |req: Request<Streaming<StringValue>>| async move {
                let out = req.into_message().map(|m| {
                    let name = m?.value;
                    let status = construct(&name, format!("{name} in a message"))
                        .with_detail(ErrorDetail::from_message(&StringValue::from(name.clone())));
                    Ok(BytesValue::from(status.to_status_proto()))
                });
                Ok(Response::new(Box::pin(out) as ResponseStream<BytesValue>))
            },
        )
}

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router()));
    addr
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

#[tokio::test]
async fn every_constructor_reaches_the_client_as_a_wire_error() {
    let addr = serve().await;
    assert_eq!(Code::all().len(), 16);
    for protocol in PROTOCOLS {
        let config = ClientConfig::new(format!("http://{addr}"))
            .unwrap()
            .protocol(protocol);
        let client = Client::new(config).unwrap();
        for &code in Code::all() {
            let err = client
                .unary::<_, StringValue>(FAIL, StringValue::from(code.as_str()), CallOptions::new())
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{protocol:?}");
            assert_eq!(err.message(), format!("built by {}()", code.as_str()));
            assert!(err.is_wire(), "{protocol:?} {code:?}: the server sent it");
        }
    }
}

#[tokio::test]
async fn statuses_inside_bidi_messages_become_wire_errors() {
    let addr = serve().await;
    for protocol in PROTOCOLS {
        let config = ClientConfig::new(format!("http://{addr}"))
            .unwrap()
            .protocol(protocol);
        let client = Client::new(config).unwrap();
        let mut stream = client
            .bidi_stream::<StringValue, BytesValue>(STATUSES, CallOptions::new())
            .await
            .unwrap();
        for &code in Code::all() {
            stream.send(StringValue::from(code.as_str())).await.unwrap();
            let message = stream
                .message()
                .await
                .unwrap()
                .expect("one reply per request");
            let local = Error::from_status_proto(&message.value).unwrap();
            assert!(!local.is_wire());
            let err = Error::from_wire_status(&message.value).expect("a non-OK status");
            assert!(err.is_wire(), "{protocol:?}");
            assert_eq!(err.code(), code);
            assert_eq!(err.message(), format!("{} in a message", code.as_str()));
            let detail: StringValue = err.details()[0].to_message().unwrap();
            assert_eq!(detail.value, code.as_str());
        }
        stream.close_send();
        assert!(stream.message().await.unwrap().is_none());
    }
    // Malformed or OK statuses are no error at all.
    assert!(Error::from_wire_status(&[0xff]).is_none());
    assert!(Error::from_wire_status(&Error::internal("x").to_status_proto()[2..]).is_none());
}

#[tokio::test]
async fn errors_the_client_raises_are_local() {
    let addr = serve().await;
    // A port nobody listens on: bind one, then free it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for protocol in PROTOCOLS {
        let config = ClientConfig::new(format!("http://{closed}"))
            .unwrap()
            .protocol(protocol);
        let err = Client::new(config)
            .unwrap()
            .unary::<_, StringValue>(FAIL, StringValue::from("internal"), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{protocol:?}: {err}");
        assert!(
            !err.is_wire(),
            "{protocol:?}: a refused connection is local"
        );

        let config = ClientConfig::new(format!("http://{addr}"))
            .unwrap()
            .protocol(protocol);
        let err = Client::new(config)
            .unwrap()
            .unary::<_, StringValue>(
                BIG,
                StringValue::from("x"),
                CallOptions::new().with_receive_limit(100),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{protocol:?}: {err}");
        assert!(
            !err.is_wire(),
            "{protocol:?}: the client's own limit is local"
        );
    }
}
