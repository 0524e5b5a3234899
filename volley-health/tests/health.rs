//! The health service over real sockets: Volley's client in every protocol, and grpcio's
//! health client when the interop venv is installed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use volley::client::{HttpTransport, HttpVersion};
use volley::{Client, ClientConfig, Code, Codec, JsonCodec, ProtoCodec, Protocol, Router};
use volley_health::{
    HealthCheckRequest, HealthClient, HealthListRequest, HealthReporter, ServingStatus,
};

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

async fn start() -> (HealthReporter, SocketAddr) {
    let (reporter, health) = volley_health::health_service();
    let addr = serve(health.register(Router::new())).await;
    (reporter, addr)
}

fn client(
    addr: SocketAddr,
    protocol: Protocol,
    codec: &'static dyn Codec,
) -> HealthClient<HttpTransport> {
    let config = ClientConfig::new(format!("http://{addr}"))
        .unwrap()
        .protocol(protocol)
        .codec(codec)
        .http_version(HttpVersion::Http2)
        .timeout(Duration::from_secs(10));
    HealthClient::new(Client::new(config).unwrap())
}

fn request(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.to_string(),
        ..Default::default()
    }
}

const PROTOCOLS: [(Protocol, &'static dyn Codec); 4] = [
    (Protocol::Grpc, &ProtoCodec),
    (Protocol::Connect, &ProtoCodec),
    (Protocol::Connect, &JsonCodec),
    (Protocol::GrpcWeb, &ProtoCodec),
];

#[tokio::test]
async fn check_answers_known_services_and_not_found_otherwise() {
    let (reporter, addr) = start().await;
    reporter.set_serving("pkg.Up");
    reporter.set_not_serving("pkg.Down");
    for (protocol, codec) in PROTOCOLS {
        let label = format!("{protocol:?}/{codec:?}");
        let c = client(addr, protocol, codec);
        for (service, want) in [
            ("", ServingStatus::SERVING),
            ("pkg.Up", ServingStatus::SERVING),
            ("pkg.Down", ServingStatus::NOT_SERVING),
        ] {
            let res = c.check(request(service)).await.unwrap();
            assert_eq!(res.message().status, want, "{label} {service:?}");
        }
        let err = c.check(request("pkg.Nope")).await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{label}");
        assert!(err.message().contains("pkg.Nope"), "{label}: {err}");
    }
    reporter.clear_status("pkg.Up");
    let err = client(addr, Protocol::Grpc, &ProtoCodec)
        .check(request("pkg.Up"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn list_answers_every_known_service() {
    let (reporter, addr) = start().await;
    reporter.set_serving("pkg.A");
    reporter.set_not_serving("pkg.B");
    for (protocol, codec) in PROTOCOLS {
        let res = client(addr, protocol, codec)
            .list(HealthListRequest::default())
            .await
            .unwrap();
        let mut got: Vec<_> = res
            .message()
            .statuses
            .iter()
            .map(|(name, r)| (name.clone(), r.status.as_known().unwrap()))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            [
                (String::new(), ServingStatus::SERVING),
                ("pkg.A".to_string(), ServingStatus::SERVING),
                ("pkg.B".to_string(), ServingStatus::NOT_SERVING),
            ],
            "{protocol:?}/{codec:?}"
        );
    }
}

async fn next_status(
    stream: &mut volley::Streaming<volley_health::HealthCheckResponse>,
) -> ServingStatus {
    let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("a status within 5 s")
        .unwrap()
        .expect("the stream is still open");
    message.status.as_known().unwrap()
}

#[tokio::test]
async fn watch_streams_the_current_status_then_every_change() {
    let (reporter, addr) = start().await;
    for (protocol, codec) in PROTOCOLS {
        let label = format!("{protocol:?}/{codec:?}");
        let service = format!("pkg.Watched.{protocol:?}{codec:?}");
        let c = client(addr, protocol, codec);
        let mut stream = c.watch(request(&service)).await.unwrap().into_message();
        assert_eq!(
            next_status(&mut stream).await,
            ServingStatus::SERVICE_UNKNOWN,
            "{label}"
        );
        reporter.set_serving(&service);
        assert_eq!(
            next_status(&mut stream).await,
            ServingStatus::SERVING,
            "{label}"
        );
        // Setting the same status again is not a change.
        reporter.set_serving(&service);
        reporter.set_not_serving(&service);
        assert_eq!(
            next_status(&mut stream).await,
            ServingStatus::NOT_SERVING,
            "{label}"
        );
        reporter.clear_status(&service);
        assert_eq!(
            next_status(&mut stream).await,
            ServingStatus::SERVICE_UNKNOWN,
            "{label}"
        );
        reporter.set_serving(&service);
        assert_eq!(
            next_status(&mut stream).await,
            ServingStatus::SERVING,
            "{label}"
        );
    }
}

#[tokio::test]
async fn shutdown_turns_every_watcher_not_serving() {
    let (reporter, addr) = start().await;
    reporter.set_serving("pkg.A");
    let c = client(addr, Protocol::Grpc, &ProtoCodec);
    let mut whole = c.watch(request("")).await.unwrap().into_message();
    let mut a = c.watch(request("pkg.A")).await.unwrap().into_message();
    assert_eq!(next_status(&mut whole).await, ServingStatus::SERVING);
    assert_eq!(next_status(&mut a).await, ServingStatus::SERVING);
    reporter.shutdown();
    assert_eq!(next_status(&mut whole).await, ServingStatus::NOT_SERVING);
    assert_eq!(next_status(&mut a).await, ServingStatus::NOT_SERVING);
    reporter.set_serving("pkg.A");
    let res = c.check(request("pkg.A")).await.unwrap();
    assert_eq!(res.message().status, ServingStatus::NOT_SERVING);
}

#[tokio::test]
async fn watching_an_unknown_service_does_not_make_it_known() {
    let (reporter, addr) = start().await;
    let c = client(addr, Protocol::Grpc, &ProtoCodec);
    let mut stream = c.watch(request("pkg.Gone")).await.unwrap().into_message();
    assert_eq!(
        next_status(&mut stream).await,
        ServingStatus::SERVICE_UNKNOWN
    );
    let err = c.check(request("pkg.Gone")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let listed = c.list(HealthListRequest::default()).await.unwrap();
    assert!(!listed.message().statuses.contains_key("pkg.Gone"));
    drop(stream);
    // The server drops the watch when it sees the stream reset; still unknown afterwards.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(reporter.status("pkg.Gone"), None);
    assert_eq!(reporter.statuses().len(), 1);
}

fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join("interop/.venv/bin/python");
    python.exists().then_some(python)
}

#[tokio::test]
async fn grpcio_health_client_agrees() {
    let Some(python) = python() else {
        println!("skipped: interop/.venv is missing (run scripts/install-peers.sh)");
        return;
    };
    let (reporter, addr) = start().await;
    reporter.set_serving("interop.Up");
    reporter.set_not_serving("interop.Down");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/grpcio_health.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .arg(addr.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "WATCHING" {
                tokio::time::sleep(Duration::from_millis(500)).await;
                reporter.set_serving("interop.Later");
            }
            seen.push(line);
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the grpcio script finished within 60 s");
    assert!(
        status.success(),
        "grpcio script failed: {status}; printed {seen:?}"
    );
    assert_eq!(seen.last().map(String::as_str), Some("OK"), "{seen:?}");
}
