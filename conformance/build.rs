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
    Ok(())
}
