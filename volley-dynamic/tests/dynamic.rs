//! Dynamic messages over real sockets: a dynamic client against the typed health service, a
//! dynamic server (runtime procedure names) answering the typed health client, both codecs and
//! several protocols, and the router's catch-all route.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt as _;
use volley::client::{HttpTransport, HttpVersion};
use volley::{
    CallOptions, Client, ClientConfig, Code, Codec, Error, Idempotency, JsonCodec, ProtoCodec,
    Protocol, Request, Response, ResponseStream, Router, Spec, StreamType, Streaming,
};
use volley_dynamic::prost_reflect::{DynamicMessage, Value};
use volley_dynamic::{Dynamic, Encoding, Schema};
use volley_health::{HealthCheckRequest, HealthClient, ServingStatus};

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";

const PROTOCOLS: [(Protocol, Encoding); 5] = [
    (Protocol::Grpc, Encoding::Proto),
    (Protocol::Grpc, Encoding::Json),
    (Protocol::Connect, Encoding::Proto),
    (Protocol::Connect, Encoding::Json),
    (Protocol::GrpcWeb, Encoding::Json),
];

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

/// The built-in codec that speaks `encoding`.
fn codec_of(encoding: Encoding) -> &'static dyn Codec {
    match encoding {
        Encoding::Proto => &ProtoCodec,
        Encoding::Json => &JsonCodec,
    }
}

fn client(addr: SocketAddr, protocol: Protocol, codec: Encoding) -> Client<HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .codec(codec_of(codec))
        .http_version(HttpVersion::Http2)
        .timeout(Duration::from_secs(10));
    Client::new(config).unwrap()
}

fn schema() -> Schema {
    Schema::from_file_descriptor_set(volley_health::FILE_DESCRIPTOR_SET).unwrap()
}

#[test]
fn methods_get_runtime_specs() {
    let schema = schema();
    assert!(
        schema
            .services()
            .contains(&"grpc.health.v1.Health".to_string())
    );
    let check = schema.method(CHECK).expect("Check is in the schema");
    assert_eq!(check.spec().procedure, CHECK);
    assert_eq!(check.spec().stream_type, StreamType::Unary);
    assert_eq!(
        check.input().full_name(),
        "grpc.health.v1.HealthCheckRequest"
    );
    let watch = schema.method(WATCH).unwrap();
    assert_eq!(watch.spec().stream_type, StreamType::ServerStream);
    assert!(schema.method("/grpc.health.v1.Health/Nope").is_none());
    assert!(schema.method("no slash").is_none());
    assert!(Schema::from_file_descriptor_set(b"\x0a\x05junk!").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_client_calls_a_typed_server() {
    let (reporter, health) = volley_health::health_service();
    reporter.set_serving("pkg.Up");
    let addr = serve(health.register(Router::new())).await;
    let schema = schema();
    let check = schema.method(CHECK).unwrap();
    let watch = schema.method(WATCH).unwrap();
    for (protocol, codec) in PROTOCOLS {
        let what = format!("{protocol:?}/{codec:?}");
        let c = client(addr, protocol, codec);
        let mut request = DynamicMessage::new(check.input());
        request.set_field_by_name("service", Value::String("pkg.Up".into()));
        let reply = c
            .unary::<Dynamic, Dynamic>(check.spec(), Dynamic::new(request), CallOptions::new())
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let reply = reply.into_message();
        assert_eq!(reply.as_encoded().map(|(c, _)| c), Some(codec), "{what}");
        let reply = reply.decode(&check.output()).unwrap();
        assert_eq!(
            reply.get_field_by_name("status").unwrap().as_enum_number(),
            Some(ServingStatus::SERVING as i32),
            "{what}"
        );

        // An unknown service is the server's not_found, whatever the codec.
        let mut request = DynamicMessage::new(check.input());
        request.set_field_by_name("service", Value::String("pkg.Unknown".into()));
        let err = c
            .unary::<Dynamic, Dynamic>(check.spec(), Dynamic::new(request), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{what}");

        // A server stream: the first status of Watch.
        let mut request = DynamicMessage::new(watch.input());
        request.set_field_by_name("service", Value::String("pkg.Up".into()));
        let mut updates = c
            .server_stream::<Dynamic, Dynamic>(
                watch.spec(),
                Dynamic::new(request),
                CallOptions::new(),
            )
            .await
            .unwrap()
            .into_message();
        let first = updates.next().await.unwrap().unwrap();
        let first = first.decode(&watch.output()).unwrap();
        assert_eq!(
            first.get_field_by_name("status").unwrap().as_enum_number(),
            Some(ServingStatus::SERVING as i32),
            "{what}"
        );
    }
}

/// A health `Check` written against descriptors only: `pkg.Up` is serving, anything else is
/// not found.
fn dynamic_health(schema: &Schema) -> Router {
    let check = schema.method(CHECK).unwrap();
    let (input, output) = (check.input(), check.output());
    Router::new().unary(check.spec(), move |request: Request<Dynamic>| {
        let (input, output) = (input.clone(), output.clone());
        async move {
            let request = request.message().decode(&input)?;
            let service = request.get_field_by_name("service").unwrap();
            if service.as_str() != Some("pkg.Up") {
                return Err(Error::new(Code::NotFound, "unknown service"));
            }
            let mut reply = DynamicMessage::new(output);
            reply.set_field_by_name("status", Value::EnumNumber(ServingStatus::SERVING as i32));
            Ok(Response::new(Dynamic::new(reply)))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_server_answers_a_typed_client() {
    let router = dynamic_health(&schema());
    assert_eq!(router.specs()[0].procedure, CHECK);
    let addr = serve(router).await;
    for (protocol, codec) in PROTOCOLS {
        let what = format!("{protocol:?}/{codec:?}");
        let c = HealthClient::new(client(addr, protocol, codec));
        let reply = c
            .check(HealthCheckRequest {
                service: "pkg.Up".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(reply.message().status, ServingStatus::SERVING, "{what}");
        let err = c
            .check(HealthCheckRequest {
                service: "pkg.Other".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_invalid_argument_not_a_panic() {
    let addr = serve(dynamic_health(&schema())).await;
    let http = reqwest_free_post(addr, CHECK, br#"{"service": 7}"#).await;
    assert_eq!(http.0, 400, "{:?}", http.1);
    assert!(http.1.contains("invalid_argument"), "{}", http.1);
    let http = reqwest_free_post(addr, CHECK, br#"{"nope": "x"}"#).await;
    assert_eq!(http.0, 400, "{:?}", http.1);
    let http = reqwest_free_post(addr, CHECK, br#"{"service": "pkg.Up"} trailing"#).await;
    assert_eq!(http.0, 400, "{:?}", http.1);
    let http = reqwest_free_post(addr, CHECK, br#"{"service": "pkg.Up"}"#).await;
    assert_eq!(http.0, 200, "{:?}", http.1);
    assert_eq!(http.1, r#"{"status":"SERVING"}"#);
}

/// A Connect unary JSON POST over plain HTTP/1.1 on a TCP socket: (status, body).
async fn reqwest_free_post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text[9..12].parse().unwrap();
    let (headers, body) = text.split_once("\r\n\r\n").unwrap();
    // The body is either sized or chunked; a one-chunk body is all the router writes here.
    let body = if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n").nth(1).unwrap_or("").to_string()
    } else {
        body.to_string()
    };
    (status, body)
}

/// A catch-all serving any health method by looking its path up in the schema: every request
/// message is answered with `SERVING` for `pkg.Up` and `SERVICE_UNKNOWN` otherwise.
fn fallback_health(router: Router, schema: Schema) -> Router {
    router.fallback(move |request: Request<Streaming<Dynamic>>| {
        let schema = schema.clone();
        async move {
            let path = request
                .extensions()
                .get::<http::Uri>()
                .map(|u| u.path().to_string())
                .unwrap_or_default();
            let method = schema
                .method(&path)
                .ok_or_else(|| Error::unimplemented(format!("the fallback has no {path}")))?;
            let (input, output) = (method.input(), method.output());
            let replies = request.into_message().map(move |message| {
                let message = message?.decode(&input)?;
                let up = message.get_field_by_name("service").unwrap().as_str() == Some("pkg.Up");
                let status = if up {
                    ServingStatus::SERVING
                } else {
                    ServingStatus::SERVICE_UNKNOWN
                };
                let mut reply = DynamicMessage::new(output.clone());
                reply.set_field_by_name("status", Value::EnumNumber(status as i32));
                Ok(Dynamic::new(reply))
            });
            let replies: ResponseStream<Dynamic> = Box::pin(replies);
            Ok(Response::new(replies))
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_serves_paths_no_route_matches() {
    let schema = schema();
    // Check is a route (not_found for unknown services); everything else falls back.
    let addr = serve(fallback_health(dynamic_health(&schema), schema)).await;
    for (protocol, codec) in PROTOCOLS {
        let what = format!("{protocol:?}/{codec:?}");
        let c = HealthClient::new(client(addr, protocol, codec));
        let err = c
            .check(HealthCheckRequest {
                service: "pkg.Other".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "the route wins: {what}");
        let mut updates = c
            .watch(HealthCheckRequest {
                service: "pkg.Other".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}"))
            .into_message();
        let first = updates.next().await.unwrap().unwrap();
        assert_eq!(first.status, ServingStatus::SERVICE_UNKNOWN, "{what}");
        assert!(updates.next().await.is_none(), "{what}");

        // A unary method the router has no route for: the fallback answers it, as a unary
        // call for Connect (one bare message) and as a stream of one for gRPC.
        let raw = client(addr, protocol, codec);
        let list = Spec::interned(
            "/grpc.health.v1.Health/Check2",
            StreamType::Unary,
            Idempotency::Unknown,
        );
        let err = raw
            .unary::<Dynamic, Dynamic>(list, empty_request(codec), CallOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented, "{what}: {err:?}");
        assert!(
            err.message().contains("the fallback has no"),
            "{what}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fallback_answers_connect_unary_with_one_message() {
    let schema = schema();
    let addr = serve(fallback_health(Router::new(), schema)).await;
    let http = reqwest_free_post(addr, CHECK, br#"{"service": "pkg.Up"}"#).await;
    assert_eq!(http, (200, r#"{"status":"SERVING"}"#.to_string()));
    // A Connect unary answer needs exactly one message: an empty stream is an error.
    let empty = Router::new().fallback(|_request: Request<Streaming<Dynamic>>| async move {
        let none: ResponseStream<Dynamic> = Box::pin(futures_util::stream::empty());
        Ok(Response::new(none))
    });
    let addr = serve(empty).await;
    let http = reqwest_free_post(addr, "/any.Service/Method", b"{}").await;
    assert_eq!(http.0, 500, "{http:?}");
    // Without a fallback an unknown path is Connect's 404.
    let addr = serve(Router::new()).await;
    let http = reqwest_free_post(addr, "/any.Service/Method", b"{}").await;
    assert_eq!(http.0, 404, "{http:?}");
}

/// A procedure, stream type and requested path, as an interceptor saw them.
type Sighting = (&'static str, StreamType, String);

/// Records the spec and requested path of every stream the server starts.
#[derive(Clone, Default)]
struct Seen(std::sync::Arc<std::sync::Mutex<Vec<Sighting>>>);

impl volley::Interceptor for Seen {
    fn stream(
        &self,
        info: &volley::interceptor::CallInfo,
        _headers: &mut http::HeaderMap,
        extensions: &mut http::Extensions,
    ) -> Result<Option<Box<dyn volley::StreamObserver>>, Error> {
        let path = extensions
            .get::<http::Uri>()
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        let entry = (info.spec.procedure, info.spec.stream_type, path);
        self.0.lock().unwrap().push(entry);
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_see_fallback_calls_with_the_inferred_stream_type() {
    let seen = Seen::default();
    let router = fallback_health(Router::new(), schema()).interceptor(seen.clone());
    let addr = serve(router).await;
    let http = reqwest_free_post(addr, CHECK, br#"{"service": "pkg.Up"}"#).await;
    assert_eq!(http.0, 200, "{http:?}");
    let c = HealthClient::new(client(addr, Protocol::Grpc, Encoding::Proto));
    let reply = c
        .check(HealthCheckRequest {
            service: "pkg.Up".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reply.message().status, ServingStatus::SERVING);
    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (
                volley::FALLBACK_PROCEDURE,
                StreamType::Unary,
                CHECK.to_string()
            ),
            (
                volley::FALLBACK_PROCEDURE,
                StreamType::BidiStream,
                CHECK.to_string()
            ),
        ]
    );
}

/// An empty request message, already encoded in `codec`.
fn empty_request(codec: Encoding) -> Dynamic {
    let bytes = match codec {
        Encoding::Proto => bytes::Bytes::new(),
        Encoding::Json => bytes::Bytes::from_static(b"{}"),
    };
    Dynamic::encoded(codec, bytes)
}
