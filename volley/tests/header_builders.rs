//! Header builders report invalid names and values instead of dropping them: the `try_` forms
//! return `invalid_argument`, the plain forms panic (they are meant for literals), and valid
//! headers still reach the peer over a real socket on every protocol.

use buffa_types::google::protobuf::StringValue;
use volley::{
    CallOptions, Client, ClientConfig, Code, Error, Idempotency, Protocol, Request, Response,
    Router, Spec, StreamType,
};

const ECHO: Spec = Spec::new(
    "/test.Headers/Echo",
    StreamType::Unary,
    Idempotency::Unknown,
);

/// Echoes `x-config`, `x-call` and `x-call-bin` back as headers and trailers; a request
/// naming a header value the handler cannot send answers with the builder's error.
fn router() -> Router {
    Router::new().unary(ECHO, |req: Request<StringValue>| async move {
        let get = |name: &str| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (config, call, bin) = (get("x-config"), get("x-call"), get("x-call-bin"));
        let value = req.message().value.clone();
        Response::new(StringValue::from("ok"))
            .try_with_header("x-echo-config", &config)?
            .try_with_header("x-echo-call", &call)?
            .try_with_trailer("x-echo-bin", &bin)?
            .try_with_trailer("x-echo-value", &value)
    })
}

#[tokio::test]
async fn valid_headers_travel_and_invalid_ones_are_reported() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router()));

    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let config = ClientConfig::new(format!("http://{addr}"))
            .unwrap()
            .protocol(protocol)
            .try_header("x-config", "from config")
            .unwrap();
        let client = Client::new(config).unwrap();
        let options = CallOptions::new()
            .try_with_header("x-call", "from options")
            .unwrap()
            .try_with_binary_header("x-call-bin", &[0, 0xff])
            .unwrap();
        let reply = client
            .unary::<_, StringValue>(ECHO, StringValue::from("plain"), options)
            .await
            .unwrap();
        assert_eq!(
            reply.headers()["x-echo-config"],
            "from config",
            "{protocol:?}"
        );
        assert_eq!(reply.headers()["x-echo-call"], "from options");
        assert_eq!(reply.trailers()["x-echo-bin"], "AP8");
        assert_eq!(reply.trailers()["x-echo-value"], "plain");

        // The handler's `try_with_trailer` refuses a value with a line break, and the caller
        // sees that error rather than a response silently missing the trailer.
        let err = client
            .unary::<_, StringValue>(ECHO, StringValue::from("a\nb"), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{protocol:?}: {err}");
        assert!(err.message().contains("x-echo-value"), "{err}");
    }
}

fn invalid(result: Result<impl std::fmt::Debug, Error>, needle: &str) {
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains(needle), "{err} lacks {needle}");
}

#[test]
fn try_builders_name_the_problem() {
    let config = || ClientConfig::new("http://127.0.0.1:1").unwrap();
    invalid(config().try_header("bad name", "v"), "invalid header name");
    invalid(
        config().try_header("x-a", "\u{1}"),
        "invalid value for header x-a",
    );
    invalid(
        CallOptions::new().try_with_header("", "v"),
        "invalid header name",
    );
    invalid(CallOptions::new().try_with_header("x-a", "\r\n"), "x-a");
    invalid(
        CallOptions::new().try_with_binary_header("x-a", &[1]),
        "must end in -bin",
    );
    invalid(
        CallOptions::new().try_with_binary_header("x a-bin", &[1]),
        "invalid header name",
    );
    invalid(
        Response::new(()).try_with_header("x:y", "v"),
        "invalid header name",
    );
    invalid(Response::new(()).try_with_trailer("x-t", "\0"), "x-t");
}

#[test]
#[should_panic(expected = "invalid header name \"bad name\"")]
fn client_config_header_panics_on_an_invalid_name() {
    let _ = ClientConfig::new("http://127.0.0.1:1")
        .unwrap()
        .header("bad name", "v");
}

#[test]
#[should_panic(expected = "invalid value for header x-a")]
fn call_options_with_header_panics_on_an_invalid_value() {
    let _ = CallOptions::new().with_header("x-a", "line\nbreak");
}

#[test]
#[should_panic(expected = "must end in -bin")]
fn with_binary_header_panics_without_the_suffix() {
    let _ = CallOptions::new().with_binary_header("x-trace", &[1]);
}

#[test]
#[should_panic(expected = "invalid value for header x-t")]
fn response_with_trailer_panics_on_an_invalid_value() {
    let _ = Response::new(()).with_trailer("x-t", "\u{7f}");
}
