//! Compiles the interop protos (and the `google.rpc.Status` the tests decode gRPC status
//! details into) with volley-build: no protoc.
fn main() {
    volley_build::Config::new()
        .files([
            "../proto/volley/interop/v1/interop.proto",
            "proto/google/rpc/status.proto",
        ])
        .includes(["../proto", "proto"])
        .compile()
        .expect("compile protos");
}
