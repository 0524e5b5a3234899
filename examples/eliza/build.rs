//! Generates the Eliza messages and service code from the proto, no protoc needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_build::Config::new()
        .files(["proto/connectrpc/eliza/v1/eliza.proto"])
        .includes(["proto"])
        .file_descriptor_set(true)
        .compile()?;
    Ok(())
}
