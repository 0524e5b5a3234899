//! Serves a gateway in front of a gRPC backend whose schema it loads at startup, and prints
//! curl commands to try it.
//!
//! ```text
//! cargo run -p gateway -- --backend http://127.0.0.1:8080 [--descriptors set.binpb] [--addr 127.0.0.1:8081]
//! ```
//!
//! Without `--descriptors`, the schema comes from the backend's `grpc.reflection.v1` service.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use volley::{Client, ClientConfig, ProtoCodec, Protocol};
use volley_dynamic::Schema;

/// Forward every method of a gRPC backend, from any protocol and codec.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
    /// The backend's base URL (it is called over gRPC, binary codec).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    backend: String,
    /// An encoded FileDescriptorSet with the backend's services (default: ask the backend's
    /// reflection service).
    #[arg(long)]
    descriptors: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ClientConfig::new(&args.backend)?
        .protocol(Protocol::Grpc)
        .codec(ProtoCodec);
    let backend = Client::new(config)?;
    let schema = match &args.descriptors {
        Some(path) => Schema::from_file(path)?,
        None => Schema::from_reflection(&backend)
            .await
            .with_context(|| format!("asking {} for its schema by reflection", args.backend))?,
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    println!(
        "Gateway on http://{addr}, forwarding to {} over gRPC:",
        args.backend
    );
    for method in schema.methods() {
        println!(
            "  {} ({:?})",
            method.spec().procedure,
            method.spec().stream_type
        );
    }
    println!();
    println!("Try it (with the Eliza backend):");
    println!(
        "  curl -H 'Content-Type: application/json' --data '{{\"sentence\": \"I feel happy.\"}}' http://{addr}/connectrpc.eliza.v1.ElizaService/Say"
    );
    let router = gateway::gateway(&schema, backend);
    volley::server::Server::from_listener(listener)
        .serve_with_shutdown(router, volley::server::shutdown_signal())
        .await
        .context("serving")?;
    Ok(())
}
