//! Compiles the v1 and v1alpha reflection protos with `volley-build` (no protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_build::Config::new()
        .files([
            "proto/grpc/reflection/v1/reflection.proto",
            "proto/grpc/reflection/v1alpha/reflection.proto",
        ])
        .includes(["proto"])
        .file_descriptor_set(true)
        .compile()?;
    Ok(())
}
