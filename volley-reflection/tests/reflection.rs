//! Reflection over real sockets: Volley's client on v1 and v1alpha, in gRPC and Connect, and,
//! when the interop peers are installed, `buf curl` and grpcio's reflection client.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use buffa::Message as _;
use buffa_descriptor::generated::descriptor::FileDescriptorProto;
use v1::server_reflection_request::MessageRequest;
use v1::server_reflection_response::MessageResponse;
use volley::client::{HttpTransport, HttpVersion};
use volley::{BidiStream, Client, ClientConfig, ProtoCodec, Protocol, Router};
use volley_reflection::Reflection;
use volley_reflection::proto::grpc::reflection::{v1, v1alpha};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The encoded descriptor set of the test protos and their imports.
fn test_descriptor_set() -> Vec<u8> {
    let root = manifest_dir().join("tests/protos");
    let mut compiler = protox::Compiler::new([&root]).unwrap();
    compiler.include_imports(true);
    compiler
        .open_files(["sample.proto", "ext.proto"].map(|f| root.join("reflect/test/v1").join(f)))
        .unwrap();
    compiler.encode_file_descriptor_set()
}

fn reflection() -> Reflection {
    Reflection::from_file_descriptor_set(test_descriptor_set())
        .unwrap()
        .add_file_descriptor_set(volley_health::FILE_DESCRIPTOR_SET)
        .unwrap()
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

/// A server with health (`pkg.Up` serving) and reflection listing every described service.
async fn start() -> SocketAddr {
    let (reporter, health) = volley_health::health_service();
    // The service keeps its own handle on the statuses.
    reporter.set_serving("pkg.Up");
    serve(reflection().register(health.register(Router::new()))).await
}

fn client(addr: SocketAddr, protocol: Protocol) -> Client<HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .codec(ProtoCodec)
        .http_version(HttpVersion::Http2)
        .timeout(Duration::from_secs(10));
    Client::new(config).unwrap()
}

struct Session(BidiStream<v1::ServerReflectionRequest, v1::ServerReflectionResponse>);

impl Session {
    async fn open(addr: SocketAddr, protocol: Protocol) -> Self {
        let c = v1::ServerReflectionClient::new(client(addr, protocol));
        Self(c.server_reflection_info().await.unwrap())
    }

    async fn ask(&mut self, request: MessageRequest) -> v1::ServerReflectionResponse {
        let request = v1::ServerReflectionRequest {
            host: "example.test".into(),
            message_request: Some(request),
            ..Default::default()
        };
        self.0.send(request.clone()).await.unwrap();
        let response = self.0.message().await.unwrap().expect("an answer");
        assert_eq!(response.valid_host, "example.test");
        assert_eq!(response.original_request.as_option(), Some(&request));
        response
    }

    async fn files(&mut self, request: MessageRequest) -> Vec<FileDescriptorProto> {
        match self.ask(request.clone()).await.message_response {
            Some(MessageResponse::FileDescriptorResponse(files)) => files
                .file_descriptor_proto
                .iter()
                .map(|b| FileDescriptorProto::decode_from_slice(b).unwrap())
                .collect(),
            other => panic!("{request:?}: expected files, got {other:?}"),
        }
    }

    async fn file_names(&mut self, request: MessageRequest) -> Vec<String> {
        self.files(request)
            .await
            .into_iter()
            .map(|f| f.name.unwrap())
            .collect()
    }

    async fn error_code(&mut self, request: MessageRequest) -> i32 {
        match self.ask(request.clone()).await.message_response {
            Some(MessageResponse::ErrorResponse(e)) => {
                assert!(!e.error_message.is_empty());
                e.error_code
            }
            other => panic!("{request:?}: expected an error, got {other:?}"),
        }
    }
}

const SAMPLE: &str = "reflect/test/v1/sample.proto";
const BASE: &str = "reflect/test/v1/base.proto";
const EXT: &str = "reflect/test/v1/ext.proto";
const EMPTY: &str = "google/protobuf/empty.proto";

const ALL_SERVICES: [&str; 4] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "reflect.test.v1.Sample",
];

fn list(response: v1::ServerReflectionResponse) -> Vec<String> {
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("expected services, got {other:?}"),
    }
}

#[tokio::test]
async fn lists_services() {
    let addr = start().await;
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        let mut s = Session::open(addr, protocol).await;
        let services = list(s.ask(MessageRequest::ListServices(String::new())).await);
        assert_eq!(services, ALL_SERVICES, "{protocol:?}");
    }

    // Listing only what a router serves.
    let (_reporter, health) = volley_health::health_service();
    let router = health.register(Router::new());
    let reflection = reflection().with_services_of(&router);
    let addr = serve(reflection.register(router)).await;
    let mut s = Session::open(addr, Protocol::Grpc).await;
    let services = list(s.ask(MessageRequest::ListServices("*".into())).await);
    assert_eq!(
        services,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
}

#[tokio::test]
async fn answers_files_by_name_with_their_dependencies() {
    let addr = start().await;
    let mut s = Session::open(addr, Protocol::Grpc).await;
    let files = s.files(MessageRequest::FileByFilename(SAMPLE.into())).await;
    let names: Vec<_> = files.iter().map(|f| f.name.clone().unwrap()).collect();
    assert_eq!(names, [SAMPLE, EMPTY, BASE]);
    let sample = &files[0];
    assert_eq!(sample.package.as_deref(), Some("reflect.test.v1"));
    assert_eq!(sample.service[0].method.len(), 2);
    assert_eq!(
        s.file_names(MessageRequest::FileByFilename(EXT.into()))
            .await,
        [EXT, BASE]
    );
    assert_eq!(
        s.file_names(MessageRequest::FileByFilename(EMPTY.into()))
            .await,
        [EMPTY]
    );
    assert_eq!(
        s.file_names(MessageRequest::FileByFilename(
            "grpc/reflection/v1/reflection.proto".into()
        ))
        .await,
        ["grpc/reflection/v1/reflection.proto"]
    );
}

#[tokio::test]
async fn answers_files_containing_symbols() {
    let addr = start().await;
    for protocol in [Protocol::Grpc, Protocol::Connect] {
        let mut s = Session::open(addr, protocol).await;
        for (symbol, file) in [
            ("reflect.test.v1.GetRequest", SAMPLE),
            (".reflect.test.v1.GetRequest", SAMPLE),
            ("reflect.test.v1.GetRequest.how", SAMPLE),
            ("reflect.test.v1.Sample", SAMPLE),
            ("reflect.test.v1.Sample.Get", SAMPLE),
            ("reflect.test.v1.Base", BASE),
            ("reflect.test.v1.Base.id", BASE),
            ("reflect.test.v1.Base.Nested", BASE),
            ("reflect.test.v1.Base.Nested.Shade", BASE),
            ("reflect.test.v1.Base.Nested.SHADE_DARK", BASE),
            ("reflect.test.v1.priority", EXT),
            ("reflect.test.v1.Holder.holder", EXT),
            ("grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"),
            (
                "grpc.health.v1.HealthListResponse.StatusesEntry",
                "grpc/health/v1/health.proto",
            ),
            ("google.protobuf.Empty", EMPTY),
        ] {
            let names = s
                .file_names(MessageRequest::FileContainingSymbol(symbol.into()))
                .await;
            assert_eq!(names[0], file, "{protocol:?} {symbol}");
        }
    }
}

#[tokio::test]
async fn answers_extensions() {
    let addr = start().await;
    let mut s = Session::open(addr, Protocol::Grpc).await;
    for number in [100, 101] {
        let request = v1::ExtensionRequest {
            containing_type: "reflect.test.v1.Base".into(),
            extension_number: number,
            ..Default::default()
        };
        let names = s.file_names(request.into()).await;
        assert_eq!(names, [EXT, BASE], "{number}");
    }
    let response = s
        .ask(MessageRequest::AllExtensionNumbersOfType(
            "reflect.test.v1.Base".into(),
        ))
        .await;
    match response.message_response {
        Some(MessageResponse::AllExtensionNumbersResponse(n)) => {
            assert_eq!(n.base_type_name, "reflect.test.v1.Base");
            assert_eq!(n.extension_number, [100, 101]);
        }
        other => panic!("expected extension numbers, got {other:?}"),
    }
    let response = s
        .ask(MessageRequest::AllExtensionNumbersOfType(
            "reflect.test.v1.Holder".into(),
        ))
        .await;
    match response.message_response {
        Some(MessageResponse::AllExtensionNumbersResponse(n)) => {
            assert!(n.extension_number.is_empty())
        }
        other => panic!("expected extension numbers, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_names_answer_not_found_and_the_stream_goes_on() {
    let addr = start().await;
    let mut s = Session::open(addr, Protocol::Grpc).await;
    let unknown = [
        MessageRequest::FileContainingSymbol("reflect.test.v1.Nope".into()),
        MessageRequest::FileContainingSymbol("reflect.test.v1.Sample.Nope".into()),
        MessageRequest::FileByFilename("nope.proto".into()),
        MessageRequest::AllExtensionNumbersOfType("reflect.test.v1.Nope".into()),
        MessageRequest::AllExtensionNumbersOfType("reflect.test.v1.Sample".into()),
        v1::ExtensionRequest {
            containing_type: "reflect.test.v1.Base".into(),
            extension_number: 150,
            ..Default::default()
        }
        .into(),
    ];
    for request in unknown {
        assert_eq!(s.error_code(request.clone()).await, 5, "{request:?}");
    }
    // Still answering after the errors.
    let names = s
        .file_names(MessageRequest::FileContainingSymbol(
            "reflect.test.v1.Sample.Ping".into(),
        ))
        .await;
    assert_eq!(names[0], SAMPLE);

    // A request without a question is invalid, and the stream still goes on.
    s.0.send(v1::ServerReflectionRequest::default())
        .await
        .unwrap();
    match s.0.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ErrorResponse(e)) => assert_eq!(e.error_code, 3),
        other => panic!("expected an error, got {other:?}"),
    }
    s.0.close_send();
    assert!(s.0.message().await.unwrap().is_none());
}

#[tokio::test]
async fn v1alpha_answers_the_same() {
    use v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
    use v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
    let addr = start().await;
    let c = v1alpha::ServerReflectionClient::new(client(addr, Protocol::Grpc));
    let mut stream = c.server_reflection_info().await.unwrap();
    let mut ask = async |request: AlphaRequest| {
        stream
            .send(v1alpha::ServerReflectionRequest {
                message_request: Some(request),
                ..Default::default()
            })
            .await
            .unwrap();
        stream.message().await.unwrap().unwrap().message_response
    };
    match ask(AlphaRequest::ListServices(String::new())).await {
        Some(AlphaResponse::ListServicesResponse(l)) => {
            let names: Vec<_> = l.service.into_iter().map(|s| s.name).collect();
            assert_eq!(names, ALL_SERVICES);
        }
        other => panic!("expected services, got {other:?}"),
    }
    match ask(AlphaRequest::FileContainingSymbol(
        "reflect.test.v1.Sample.Get".into(),
    ))
    .await
    {
        Some(AlphaResponse::FileDescriptorResponse(f)) => {
            let first =
                FileDescriptorProto::decode_from_slice(&f.file_descriptor_proto[0]).unwrap();
            assert_eq!(first.name.as_deref(), Some(SAMPLE));
            assert_eq!(f.file_descriptor_proto.len(), 3);
        }
        other => panic!("expected files, got {other:?}"),
    }
    match ask(AlphaRequest::FileContainingSymbol("nope.Nope".into())).await {
        Some(AlphaResponse::ErrorResponse(e)) => assert_eq!(e.error_code, 5),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn answer_works_without_a_server() {
    let reflection = reflection().with_service("reflect.test.v1.Sample");
    assert_eq!(
        reflection.services(),
        [
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "reflect.test.v1.Sample",
        ]
    );
    let response = reflection.answer(&v1::ServerReflectionRequest {
        message_request: Some(MessageRequest::FileContainingSymbol(
            "grpc.health.v1.Health".into(),
        )),
        ..Default::default()
    });
    assert!(matches!(
        response.message_response,
        Some(MessageResponse::FileDescriptorResponse(_))
    ));
    let err = Reflection::from_file_descriptor_set(b"\x0a\x05garbage").unwrap_err();
    assert!(err.to_string().contains("FileDescriptorSet"), "{err}");
}

// ---- foreign clients ----

fn tool(relative: &str) -> Option<PathBuf> {
    let path = manifest_dir().join("..").join(relative);
    path.exists().then_some(path)
}

async fn run(program: &Path, args: &[String]) -> String {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("finished within 60 s")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        program.display(),
        output.status
    );
    stdout
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn buf_curl_lists_services_and_calls_through_reflection() {
    let Some(buf) = tool("interop/node_modules/.bin/buf") else {
        println!(
            "skipped: interop/node_modules/.bin/buf is missing (run scripts/install-peers.sh)"
        );
        return;
    };
    let addr = start().await;
    let base = format!("http://{addr}");
    for reflect_protocol in ["grpc-v1", "grpc-v1alpha"] {
        let out = run(
            &buf,
            &args(&[
                "curl",
                "--protocol",
                "grpc",
                "--http2-prior-knowledge",
                "--reflect-protocol",
                reflect_protocol,
                "--list-services",
                &base,
            ]),
        )
        .await;
        let mut services: Vec<&str> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        services.sort();
        assert_eq!(services, ALL_SERVICES, "{reflect_protocol}");
    }

    // The default (v1 first), as in the brief's command line.
    let out = run(
        &buf,
        &args(&[
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--list-services",
            &base,
        ]),
    )
    .await;
    assert!(out.contains("reflect.test.v1.Sample"), "{out}");

    let out = run(
        &buf,
        &args(&[
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--list-methods",
            &base,
        ]),
    )
    .await;
    let methods: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    for method in [
        "grpc.health.v1.Health/Check",
        "grpc.health.v1.Health/Watch",
        "reflect.test.v1.Sample/Get",
        "reflect.test.v1.Sample/Ping",
    ] {
        assert!(
            methods.contains(&method),
            "{method} missing from {methods:?}"
        );
    }

    // A call whose schema comes from reflection alone, in two protocols.
    for protocol in ["grpc", "connect"] {
        let out = run(
            &buf,
            &args(&[
                "curl",
                "--protocol",
                protocol,
                "--http2-prior-knowledge",
                "-d",
                r#"{"service": "pkg.Up"}"#,
                &format!("{base}/grpc.health.v1.Health/Check"),
            ]),
        )
        .await;
        let compact: String = out.split_whitespace().collect();
        assert_eq!(compact, r#"{"status":"SERVING"}"#, "{protocol}");
    }
}

#[tokio::test]
async fn grpcio_reflection_client_resolves_the_schema() {
    let Some(python) = tool("interop/.venv/bin/python") else {
        println!("skipped: interop/.venv is missing (run scripts/install-peers.sh)");
        return;
    };
    let addr = start().await;
    let script = manifest_dir().join("tests/grpcio_reflection.py");
    let out = run(&python, &[script.display().to_string(), addr.to_string()]).await;
    assert_eq!(out.trim(), "OK");
}
