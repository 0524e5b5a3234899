//! Compiles the conformance protos kept in this crate (`proto/`, written from the published
//! definitions of the upstream suite), no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "proto";
    let dir = format!("{root}/connectrpc/conformance/v1");
    let mut config = volley_build::Config::new();
    if std::env::var_os("CARGO_FEATURE_VIEWS").is_some() {
        // Every server handler takes a zero-copy view of its request.
        config = config.request_views(["."]);
    }
    config
        .files(
            ["service", "server_compat", "client_compat", "config"]
                .map(|name| format!("{dir}/{name}.proto")),
        )
        .includes([root])
        .compile()?;
    if std::env::var_os("CARGO_FEATURE_PROST").is_some() {
        // The service's protos again, as prost messages, for the prost programs. `Any` is this
        // crate's (canonical JSON needs the packed type; pbjson-types' Any is not canonical).
        let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").ok_or("no OUT_DIR")?);
        volley_build::Config::new()
            .message_library(volley_build::MessageLibrary::Prost)
            .extern_path(".google.protobuf.Any", "crate::prost_any::Any")
            .files(["service", "config"].map(|name| format!("{dir}/{name}.proto")))
            .includes([root])
            .out_dir(out.join("prost"))
            .compile()?;
    }
    Ok(())
}
