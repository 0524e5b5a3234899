//! The side-by-side benchmark of Volley against tonic (prost), connectrpc (buffa) and raw
//! hyper: one proto (`proto/bench/v1/bench.proto`), one handler function per method shared in
//! spirit by every contender (same work: echo the payload, read every field of an ingest batch
//! into a checksum, stream numbered ticks, count a client stream), and the fixtures the load
//! runner and the correctness checker send.
//!
//! - the server binaries (`volley-server`, `volley-view-server`, `tonic-server`,
//!   `connectrpc-server`, `hyper-server`) each take `--addr HOST:PORT` and serve h2c (and
//!   HTTP/1.1 where the framework does);
//! - `bench-tool workloads DIR` writes the request bodies and prints the workload list as
//!   JSON, `bench-tool check ADDR WORKLOAD` sends one real request and verifies the answer;
//! - `allocs` counts allocations per call for Volley;
//! - `benches/compare.rs` is the criterion comparison; `scripts/bench.sh` runs the load
//!   benchmark and writes `benches/RESULTS.md`.

pub mod check;
pub mod connect_impl;
pub mod fixtures;
pub mod raw;
pub mod serve;
pub mod tonic_impl;
pub mod volley_impl;

/// Generated code for every contender, each from `proto/bench/v1/bench.proto`.
pub mod proto {
    /// Volley with owned request messages.
    #[allow(missing_docs, clippy::all)] // reason: generated code
    pub mod owned {
        include!(concat!(env!("OUT_DIR"), "/volley_owned/_volley.rs"));
    }
    /// Volley with view handlers (`request_views` for every method).
    #[allow(missing_docs, clippy::all)] // reason: generated code
    pub mod view {
        include!(concat!(env!("OUT_DIR"), "/volley_view/_volley.rs"));
    }
    /// tonic with prost.
    #[allow(missing_docs, clippy::all, unreachable_pub)] // reason: generated code
    pub mod tonic {
        include!(concat!(env!("OUT_DIR"), "/tonic/bench.v1.rs"));
    }
    /// connectrpc with its own buffa messages.
    #[allow(missing_docs, clippy::all, unreachable_pub, rust_2018_idioms)] // reason: generated code
    pub mod connect {
        include!(concat!(env!("OUT_DIR"), "/connectrpc/_connectrpc.rs"));
    }
}
