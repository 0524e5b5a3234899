//! Every benchmark server answers every workload it is measured on correctly, over real
//! loopback TCP (the same check the load runner makes before measuring), and the checker
//! rejects a server that does not speak a workload's protocol: so the benchmark cannot
//! silently measure errors.

use std::net::SocketAddr;

use volley_benches::check::{check, workload, workloads};

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    (listener, addr)
}

async fn volley(router: volley::Router) -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
    addr
}

async fn tonic() -> SocketAddr {
    let (listener, addr) = listener().await;
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(volley_benches::tonic_impl::service())
            .serve_with_incoming(incoming),
    );
    addr
}

async fn connectrpc() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(
        connectrpc::Server::from_listener(listener).serve(volley_benches::connect_impl::router()),
    );
    addr
}

async fn raw() -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(volley_benches::raw::serve(listener));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_contender_answers_its_workloads() {
    let all: Vec<&str> = workloads().iter().map(|w| w.name).collect();
    let grpc = ["echo-grpc", "ingest-grpc", "stream-grpc"];
    let contenders = [
        (
            "volley",
            volley(volley_benches::volley_impl::owned_router()).await,
            &all[..],
        ),
        (
            "volley-view",
            volley(volley_benches::volley_impl::view_router()).await,
            &all[..],
        ),
        ("tonic", tonic().await, &grpc[..]),
        ("connectrpc", connectrpc().await, &all[..]),
        ("hyper", raw().await, &["echo-grpc", "echo-connect"][..]),
    ];
    for (name, addr, served) in contenders {
        for w in served {
            let w = workload(w).expect("a workload");
            if let Err(err) = check(addr, &w).await {
                panic!("{name} answered {} wrong: {err}", w.name);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_rejects_wrong_answers() {
    // tonic speaks no Connect; raw hyper serves no ingest.
    let tonic = tonic().await;
    let err = check(tonic, &workload("echo-connect").expect("workload"))
        .await
        .expect_err("tonic cannot answer Connect");
    assert!(err.contains("content-type"), "{err}");
    let raw = raw().await;
    let err = check(raw, &workload("ingest-grpc").expect("workload"))
        .await
        .expect_err("raw hyper serves no ingest");
    assert!(err.contains("404"), "{err}");
    // A gRPC error (the raw server answers a malformed echo with grpc-status 3 and HTTP 200,
    // which h2load would count as a success) fails the check.
    let mut bad = workload("echo-grpc").expect("workload");
    bad.body[5] = 0x12; // field 2 instead of field 1
    let err = check(raw, &bad)
        .await
        .expect_err("a gRPC error is not an answer");
    assert!(err.contains("grpc-status 3"), "{err}");
}
