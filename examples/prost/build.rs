//! Compiles the ledger proto with prost messages: protox parses it (no `protoc`), prost-build
//! writes the structs, pbjson-build their JSON, volley-build the services.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_build::Config::new()
        .message_library(volley_build::MessageLibrary::Prost)
        .files(["proto/ledger/v1/ledger.proto"])
        .includes(["proto"])
        // `bytes` fields as `bytes::Bytes`: decoding shares the request buffer.
        .prost_bytes(["."])
        .compile()?;
    Ok(())
}
