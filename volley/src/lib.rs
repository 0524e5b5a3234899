//! Volley: Connect, gRPC and gRPC-Web for Rust.
//!
//! One runtime serves and calls Protobuf RPCs over all three protocols, every RPC kind, binary
//! and JSON, with compression, deadlines, metadata and limits. Servers are
//! [`Router`]s (a `tower::Service`, served by [`server::Server`] or mounted in axum); clients
//! are [`Client`]s over any tower HTTP service.
//!
//! Generated code (from `volley-build` or `protoc-gen-volley`) gives each service a trait to
//! implement, a function registering it on a [`Router`], and a typed client.

pub mod client;
pub mod code;
pub mod codec;
pub mod compression;
pub mod cors;
pub mod envelope;
pub mod error;
pub mod headers;
pub mod interceptor;
pub mod protocol;
pub mod request;
pub mod spec;
pub mod timeout;

mod handler;
mod respond;
mod router;
mod stream;
mod view;
mod wire;

#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::{BidiStream, CallOptions, Client, ClientConfig, Transport};
pub use code::Code;
pub use codec::{Codec, Message};
pub use cors::Cors;
pub use error::{BoxError, Error, ErrorDetail};
pub use interceptor::{Interceptor, StreamObserver};
pub use protocol::Protocol;
pub use request::{PeerAddr, PeerCertificates, Request, Response};
pub use respond::error_response_for;
pub use router::{DEFAULT_RECEIVE_LIMIT, Router};
pub use spec::{Idempotency, Spec, StreamType};
pub use stream::{Body, ResponseStream, Streaming, boxed_body};
pub use view::View;

/// Items only generated code uses. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    /// Generated code evaluates this constant; a runtime incompatible with the generator
    /// lacks it, and compilation fails naming it.
    pub const GENERATED_CODE_REQUIRES_VOLLEY_0_1: () = ();
    /// The stream trait generated streaming signatures name.
    pub use futures_core::Stream;
}
