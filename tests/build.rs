//! Compiles the interop protos with volley-build (no protoc).
fn main() {
    volley_build::Config::new()
        .files(&["../proto/volley/interop/v1/interop.proto"])
        .includes(&["../proto"])
        .compile()
        .expect("compile protos");
}
