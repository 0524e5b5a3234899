//! Serves the layered router on an address (the first argument, `127.0.0.1:8080` by default),
//! calls it once per protocol through the layered client, then goes on serving.

use std::sync::Arc;

use buffa_types::google::protobuf::StringValue;
use tower_layers::{GREET, Settings, Stats, client, router, server};
use volley::server::Server;
use volley::{CallOptions, ClientConfig, Protocol};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    println!("serving on http://{addr}");

    let stats = Arc::new(Stats::default());
    let service = server(router(stats.clone()), stats.clone(), Settings::default());
    let serving = tokio::spawn(Server::from_listener(listener).serve_service(service));

    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let config = ClientConfig::new(format!("http://{addr}"))?.protocol(protocol);
        let reply = client(config, 8)?
            .unary::<_, StringValue>(GREET, StringValue::from("layers"), CallOptions::new())
            .await?;
        println!("{protocol:?}: {}", reply.message().value);
    }
    println!(
        "trace layer: {} requests, {} responses",
        stats.requests.load(std::sync::atomic::Ordering::SeqCst),
        stats.responses.load(std::sync::atomic::Ordering::SeqCst)
    );
    serving.await??;
    Ok(())
}
