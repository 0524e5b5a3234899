//! Serves Eliza over Connect, gRPC and gRPC-Web on one port, and prints
//! commands to try it with curl and buf curl.
//!
//! ```text
//! cargo run -p eliza -- [--addr 127.0.0.1:8080] [--grace-ms 10000]
//! ```

use std::net::SocketAddr;

use anyhow::Context as _;
use clap::Parser;

/// Serve the Eliza demo over Connect, gRPC and gRPC-Web.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// How long calls in flight may run after SIGTERM or SIGINT, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    grace_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    print_try_it(addr);
    let (router, health) = eliza::app();
    volley::server::Server::from_listener(listener)
        .grace_period(std::time::Duration::from_millis(args.grace_ms))
        .serve_with_shutdown(router, async move {
            // SIGTERM (a process manager) or SIGINT (Ctrl-C): health turns NOT_SERVING, the
            // server sends GOAWAY and lets calls in flight finish for the grace period.
            volley::server::shutdown_signal().await;
            health.shutdown();
        })
        .await
        .context("serving")?;
    Ok(())
}

/// Prints ready-to-paste commands exercising every protocol.
fn print_try_it(addr: SocketAddr) {
    let base = format!("http://{addr}/connectrpc.eliza.v1.ElizaService");
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
    let json = r#"{"sentence": "I feel happy."}"#;
    // The same JSON, percent-encoded for a Connect GET query string.
    let query = "%7B%22sentence%22%3A%22I%20feel%20happy.%22%7D";
    println!(
        "Eliza is listening on http://{addr} (Connect, gRPC and gRPC-Web; Ctrl-C or SIGTERM stops)."
    );
    println!();
    println!("Connect, unary POST with JSON:");
    println!("  curl --header 'Content-Type: application/json' --data '{json}' {base}/Say");
    println!("Connect GET (Say has no side effects):");
    println!("  curl '{base}/Say?connect=v1&encoding=json&message={query}'");
    println!();
    println!("buf curl (npm @bufbuild/buf), one per protocol:");
    println!("  buf curl --schema {schema} --data '{json}' {base}/Say");
    println!(
        "  buf curl --schema {schema} --protocol grpc --http2-prior-knowledge --data '{json}' {base}/Say"
    );
    println!("  buf curl --schema {schema} --protocol grpcweb --data '{json}' {base}/Say");
    println!("Reflection and health (no --schema needed):");
    println!("  buf curl --protocol grpc --http2-prior-knowledge --list-services http://{addr}");
    println!(
        "  buf curl --protocol grpc --http2-prior-knowledge --data '{{}}' http://{addr}/grpc.health.v1.Health/Check"
    );
    println!("Server streaming:");
    println!("  buf curl --schema {schema} --data '{{\"name\": \"Ada\"}}' {base}/Introduce");
    println!();
    println!("The Rust client:");
    println!("  cargo run -p eliza --bin eliza-client -- --url http://{addr} \"I feel happy\"");
    println!(
        "  cargo run -p eliza --bin eliza-client -- --url http://{addr} --protocol grpc --introduce Ada"
    );
    println!(
        "  cargo run -p eliza --bin eliza-client -- --url http://{addr} --converse \"Hello\" \"I need a break\""
    );
}
