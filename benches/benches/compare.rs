//! Volley against tonic and connectrpc in one run: unary small (echo 64 B), unary 50 logs
//! (ingest, 16 KB), client stream of 10, server stream of 10. Each client calls its own server
//! over loopback TCP, gRPC over h2c, all in one process on one tokio runtime; request
//! messages are cloned outside the timed part. Every answer is checked once before measuring.
//! Run: `cargo bench -p volley-benches --bench compare`.
#![allow(missing_docs)] // reason: criterion_group! generates undocumented public items

use std::net::SocketAddr;
use std::time::Duration;

use buffa::Message as _;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use volley::{Client, ClientConfig, Protocol};
use volley_benches::fixtures::{self, SHORT_STREAM};
use volley_benches::proto::connect::bench::v1 as cpb;
use volley_benches::proto::owned::bench::v1 as vpb;
use volley_benches::proto::tonic as tpb;

type VolleyClient = vpb::BenchServiceClient<volley::client::HttpTransport>;
type TonicClient = tpb::bench_service_client::BenchServiceClient<tonic::transport::Channel>;
type ConnectClient = cpb::BenchServiceClient<connectrpc::client::SharedHttp2Connection>;

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    (listener, addr)
}

async fn volley_client(router: volley::Router) -> VolleyClient {
    let (listener, addr) = listener().await;
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    let config = ClientConfig::new(format!("http://{addr}"))
        .expect("config")
        .protocol(Protocol::Grpc);
    vpb::BenchServiceClient::new(Client::new(config).expect("client"))
}

async fn tonic_client() -> TonicClient {
    let (listener, addr) = listener().await;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(volley_benches::tonic_impl::service())
            .serve_with_incoming(incoming),
    );
    TonicClient::connect(format!("http://{addr}"))
        .await
        .expect("tonic connect")
}

async fn connect_client() -> ConnectClient {
    let (listener, addr) = listener().await;
    tokio::spawn(
        connectrpc::Server::from_listener(listener).serve(volley_benches::connect_impl::router()),
    );
    let uri: http::Uri = format!("http://{addr}").parse().expect("uri");
    let conn = connectrpc::client::Http2Connection::connect_plaintext(uri.clone())
        .await
        .expect("connectrpc connect")
        .shared(1024);
    let config =
        connectrpc::client::ClientConfig::new(uri).with_protocol(connectrpc::Protocol::Grpc);
    cpb::BenchServiceClient::new(conn, config)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // The same requests for every client, as each framework's own message types.
    let echo = fixtures::echo_request();
    let ingest = fixtures::ingest_request();
    let ticks = fixtures::ticks_request(SHORT_STREAM);
    let want = fixtures::ingest_answer(&ingest);
    let t_echo =
        <tpb::EchoRequest as prost::Message>::decode(&echo.encode_to_vec()[..]).expect("prost");
    let t_ingest =
        <tpb::IngestRequest as prost::Message>::decode(&ingest.encode_to_vec()[..]).expect("prost");
    let t_ticks =
        <tpb::TicksRequest as prost::Message>::decode(&ticks.encode_to_vec()[..]).expect("prost");
    let c_echo = cpb::EchoRequest::decode_from_slice(&echo.encode_to_vec()).expect("buffa");
    let c_ingest = cpb::IngestRequest::decode_from_slice(&ingest.encode_to_vec()).expect("buffa");
    let c_ticks = cpb::TicksRequest::decode_from_slice(&ticks.encode_to_vec()).expect("buffa");

    let (volley, volley_view, tonic, connect) = rt.block_on(async {
        let volley = volley_client(volley_benches::volley_impl::owned_router()).await;
        let view = volley_client(volley_benches::volley_impl::view_router()).await;
        let tonic = tonic_client().await;
        let connect = connect_client().await;

        // Every contender answers right before anything is measured.
        for client in [&volley, &view] {
            let reply = client.echo(echo.clone()).await.expect("volley echo");
            assert_eq!(reply.message().payload, echo.payload);
            let reply = client.ingest(ingest.clone()).await.expect("volley ingest");
            assert_eq!(reply.message().checksum, want.checksum);
        }
        let reply = tonic
            .clone()
            .ingest(t_ingest.clone())
            .await
            .expect("tonic ingest");
        assert_eq!(reply.get_ref().checksum, want.checksum);
        let reply = tonic
            .clone()
            .echo(t_echo.clone())
            .await
            .expect("tonic echo");
        assert_eq!(reply.get_ref().payload, echo.payload);
        let reply = connect
            .ingest(c_ingest.clone())
            .await
            .expect("connectrpc ingest");
        assert_eq!(reply.view().checksum, want.checksum);
        let reply = connect.echo(c_echo.clone()).await.expect("connectrpc echo");
        assert_eq!(reply.view().payload, &echo.payload[..]);
        (volley, view, tonic, connect)
    });

    let mut group = c.benchmark_group("unary_small");
    group.bench_function("volley", |b| {
        b.to_async(&rt).iter_batched(
            || echo.clone(),
            |req| async { volley.echo(req).await.expect("echo") },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("tonic", |b| {
        b.to_async(&rt).iter_batched(
            || (tonic.clone(), t_echo.clone()),
            |(mut client, req)| async move { client.echo(req).await.expect("echo") },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("connectrpc", |b| {
        b.to_async(&rt).iter_batched(
            || c_echo.clone(),
            |req| async { connect.echo(req).await.expect("echo") },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("unary_50_logs");
    for (name, client) in [("volley", &volley), ("volley_view", &volley_view)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || ingest.clone(),
                |req| async { client.ingest(req).await.expect("ingest") },
                BatchSize::SmallInput,
            )
        });
    }
    group.bench_function("tonic", |b| {
        b.to_async(&rt).iter_batched(
            || (tonic.clone(), t_ingest.clone()),
            |(mut client, req)| async move { client.ingest(req).await.expect("ingest") },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("connectrpc", |b| {
        b.to_async(&rt).iter_batched(
            || c_ingest.clone(),
            |req| async { connect.ingest(req).await.expect("ingest") },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let n = SHORT_STREAM as usize;
    let mut group = c.benchmark_group("client_stream_10");
    group.bench_function("volley", |b| {
        b.to_async(&rt).iter_batched(
            || vec![echo.clone(); n],
            |reqs| async {
                let reply = volley
                    .collect(futures_util::stream::iter(reqs))
                    .await
                    .expect("collect");
                assert_eq!(reply.message().count, SHORT_STREAM);
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("tonic", |b| {
        b.to_async(&rt).iter_batched(
            || (tonic.clone(), vec![t_echo.clone(); n]),
            |(mut client, reqs)| async move {
                let reply = client
                    .collect(futures_util::stream::iter(reqs))
                    .await
                    .expect("collect");
                assert_eq!(reply.get_ref().count, SHORT_STREAM);
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("connectrpc", |b| {
        b.to_async(&rt).iter_batched(
            || vec![c_echo.clone(); n],
            |reqs| async {
                let reply = connect
                    .collect(connectrpc::stream_iter(reqs))
                    .await
                    .expect("collect");
                assert_eq!(reply.view().count, SHORT_STREAM);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    let mut group = c.benchmark_group("server_stream_10");
    group.bench_function("volley", |b| {
        b.to_async(&rt).iter_batched(
            || ticks.clone(),
            |req| async {
                let mut stream = volley.ticks(req).await.expect("ticks").into_message();
                let mut count = 0;
                while stream.message().await.expect("tick").is_some() {
                    count += 1;
                }
                assert_eq!(count, SHORT_STREAM);
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("tonic", |b| {
        b.to_async(&rt).iter_batched(
            || (tonic.clone(), t_ticks.clone()),
            |(mut client, req)| async move {
                let mut stream = client.ticks(req).await.expect("ticks").into_inner();
                let mut count = 0;
                while stream.message().await.expect("tick").is_some() {
                    count += 1;
                }
                assert_eq!(count, SHORT_STREAM);
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("connectrpc", |b| {
        b.to_async(&rt).iter_batched(
            || c_ticks.clone(),
            |req| async {
                let mut stream = connect.ticks(req).await.expect("ticks");
                let mut count = 0;
                while stream.message::<cpb::Tick>().await.expect("tick").is_some() {
                    count += 1;
                }
                assert_eq!(count, SHORT_STREAM);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
