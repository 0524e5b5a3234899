//! Compiles `grpc/health/v1/health.proto` with `volley-build` (no protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_build::Config::new()
        .files(["proto/grpc/health/v1/health.proto"])
        .includes(["proto"])
        .file_descriptor_set(true)
        .compile()?;
    Ok(())
}
