//! The client under test for the ConnectRPC conformance runner, calling with prost messages.
//!
//! The same program as `volley-conformance-client` (its source is included below), with every
//! call made through the prost build of the conformance service (`MessageLibrary::Prost`):
//! the runner's request messages are decoded into prost structs, sent and received as prost
//! messages (binary, or JSON by pbjson-build), and the payloads received are reported back.

#[path = "volley-conformance-client.rs"]
mod client;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::run_all(client::Library::Prost).await
}
