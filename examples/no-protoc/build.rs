//! Compiles the clock proto, which imports `google/protobuf/any.proto` and
//! `google/protobuf/timestamp.proto`, in pure Rust: no `protoc` involved.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    volley_build::Config::new()
        .files(["proto/clock/v1/clock.proto"])
        .includes(["proto"])
        .file_descriptor_set(true)
        .compile()?;
    // The code generator's test protos: every stream type, custom options,
    // deprecation, keywords and colliding names, compiled to prove they build.
    let kitchen = "../../volley-codegen/tests/protos";
    volley_build::Config::new()
        .files([
            format!("{kitchen}/kitchen/v1/kitchen.proto"),
            format!("{kitchen}/kitchen/common/v1/common.proto"),
        ])
        .includes([kitchen])
        .include_file("_kitchen.rs")
        .compile()?;
    Ok(())
}
