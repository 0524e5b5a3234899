//! Serves the clock over Connect, gRPC and gRPC-Web.

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;

/// Serve the clock service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    println!("clock listening on http://{}", listener.local_addr()?);
    println!(
        "  curl --header 'Content-Type: application/json' --data '{{}}' http://{}/clock.v1.ClockService/Now",
        listener.local_addr()?
    );
    volley::server::Server::from_listener(listener)
        .serve_with_shutdown(no_protoc::router(), volley::server::shutdown_signal())
        .await
        .context("serving")
}
