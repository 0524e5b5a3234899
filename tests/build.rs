//! Compiles the interop protos (and the `google.rpc.Status` the tests decode gRPC status
//! details into, and the benchmarks' ingest messages) with volley-build: no protoc.
fn main() {
    volley_build::Config::new()
        .files([
            "../proto/volley/interop/v1/interop.proto",
            "proto/google/rpc/status.proto",
            "proto/volley/bench/v1/ingest.proto",
        ])
        .includes(["../proto", "proto"])
        // The generated server trait takes zero-copy views (see `view_service`); the
        // hand-written router in `service` takes owned messages, so both paths are tested.
        .request_views([".volley.interop.v1.InteropService"])
        .compile()
        .expect("compile protos");
}
