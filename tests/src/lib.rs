//! Shared helpers for Volley's black-box tests: the interop messages, a Rust implementation of
//! the interop service served by volley's [`Router`](volley::Router), servers on real sockets
//! (cleartext h1 + h2c, and TLS with ALPN), and a raw HTTP client that speaks the wire formats
//! by hand, so the tests check what goes over the socket rather than what volley's own client
//! makes of it.

/// Messages and services from `proto/volley/interop/v1/interop.proto`.
#[allow(missing_docs)] // reason: generated code documents itself from the proto comments
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

pub mod compress;
pub mod h2frames;
pub mod process;
pub mod raw;
pub mod rpc;
pub mod server;
pub mod service;
pub mod view_service;

pub use proto::volley::interop::v1::{EchoRequest, EchoResponse, ErrorInfo, ErrorSpec};
pub use server::{ServerHandle, TlsServer, spawn_server, spawn_server_with, spawn_tls_server};
pub use service::{
    BIDI, CLIENT_STREAM, ECHO, SERVER_STREAM, install_type_registry, interop_router,
};
pub use view_service::interop_view_router;

/// The process's memory use from `/proc/self/status`, in KiB: `(VmHWM, VmRSS)`, the peak and
/// current resident set sizes. `None` where `/proc` is not available.
pub fn memory_kib() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}
