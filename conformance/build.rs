//! Compiles the conformance protos in place (from the shared upstream copy), no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../../shared/conformance/proto";
    let dir = format!("{root}/connectrpc/conformance/v1");
    volley_build::Config::new()
        .files(
            ["service", "server_compat", "client_compat", "config"]
                .map(|name| format!("{dir}/{name}.proto")),
        )
        .includes([root])
        .compile()?;
    Ok(())
}
