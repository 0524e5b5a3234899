//! The example over a real Unix socket: every protocol answers, and the binary runs to the end.

use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use unix_socket::{WHOAMI, client, router};
use volley::server::Server;
use volley::{CallOptions, Protocol};

fn socket_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("volley-uds-{}-{name}.sock", std::process::id()))
}

#[tokio::test]
async fn every_protocol_answers_over_the_socket() -> anyhow::Result<()> {
    let path = socket_path("lib");
    let _ = std::fs::remove_file(&path);
    tokio::spawn(Server::bind_unix(&path).serve(router()));
    for _ in 0..200 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let reply = client(&path, protocol)?
            .unary::<_, StringValue>(WHOAMI, StringValue::from("hi"), CallOptions::new())
            .await?;
        let text = &reply.message().value;
        assert!(text.starts_with("hi over HTTP/"), "{protocol:?}: {text}");
        assert!(text.ends_with("peer address None"), "{protocol:?}: {text}");
    }
    std::fs::remove_file(&path)?;
    Ok(())
}

#[test]
fn the_binary_calls_every_protocol_and_cleans_up() -> anyhow::Result<()> {
    let path = socket_path("bin");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_unix-socket"))
        .arg(&path)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for protocol in ["Connect", "Grpc", "GrpcWeb"] {
        assert!(
            stdout.contains(&format!("{protocol}: hello over HTTP/")),
            "{stdout}"
        );
    }
    assert!(!path.exists(), "the socket file is removed");
    Ok(())
}
