//! Serves on a Unix socket (the first argument, `./volley.sock` by default), calls it once per
//! protocol, then stops and removes the socket file.

use std::path::PathBuf;

use buffa_types::google::protobuf::StringValue;
use unix_socket::{WHOAMI, client, router};
use volley::server::Server;
use volley::{CallOptions, Protocol};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "volley.sock".into()),
    );
    // A file left by an earlier run would make binding fail.
    let _ = std::fs::remove_file(&path);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(
        Server::bind_unix(&path).serve_with_shutdown(router(), async {
            let _ = stopped.await;
        }),
    );
    // Wait for the socket file to appear.
    for _ in 0..100 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    println!("serving on unix:{}", path.display());
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let reply = client(&path, protocol)?
            .unary::<_, StringValue>(WHOAMI, StringValue::from("hello"), CallOptions::new())
            .await?;
        println!("{protocol:?}: {}", reply.message().value);
    }
    let _ = stop.send(());
    serving.await??;
    std::fs::remove_file(&path)?;
    Ok(())
}
