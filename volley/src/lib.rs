//! Volley: Connect, gRPC and gRPC-Web for Rust, server and client.
//!
//! One runtime serves and calls Protobuf RPCs over all three protocols of the Connect family,
//! for every RPC shape (unary, server, client and bidirectional streaming), binary and JSON:
//!
//! - **Connect**: unary POST and side-effect-free GET, streaming, over HTTP/1.1 or HTTP/2 — a
//!   `curl` with a JSON body is a valid client;
//! - **gRPC**: HTTP/2 with trailers, interoperable with every gRPC implementation;
//! - **gRPC-Web**: trailers in the body, binary and text, for browsers and HTTP/1.1 proxies.
//!
//! It brings compression (gzip, deflate, zstd, br, bounded decompression), deadlines,
//! headers and trailers, typed error details, message-size limits, interceptors, CORS, TLS
//! with ALPN and client certificates, and `tracing` spans. Messages are
//! [`buffa`](https://docs.rs/buffa) types (owned structs, zero-copy views, canonical proto3
//! JSON), generated with the service code by `volley-build` in `build.rs` (no `protoc`) or by
//! `protoc-gen-volley` under `buf generate`.
//!
//! # The pieces
//!
//! - A [`Router`] maps procedure paths (`/package.Service/Method`) to handlers and answers
//!   all three protocols on them. It is a `tower::Service` over HTTP: serve it with the
//!   built-in [`server::Server`], or mount it in axum or any hyper/tower stack.
//! - A [`Client`] calls a server over a [`Transport`]: the built-in pooled HTTP transport
//!   ([`Client::new`]) or any tower HTTP service — a [`Router`] itself, for tests in memory.
//!   [`ClientConfig`] picks the protocol and codec; [`CallOptions`] adjust one call.
//! - Generated code gives each service a trait to implement, a function registering it on a
//!   [`Router`], and a typed client wrapping [`Client`]. Everything it does is public API
//!   (a [`Spec`] per method and the [`Router::unary`] / [`Client::unary`] family), usable by
//!   hand.
//! - [`Request`] and [`Response`] carry a message (or a [`Streaming`] /
//!   [`ResponseStream`] of them) with headers, trailers and extensions; [`Error`] carries a
//!   [`Code`], a message, [`ErrorDetail`]s and metadata.
//!
//! # A server and a client, end to end
//!
//! Generated code would provide the method [`Spec`] and a typed client; written by hand, with
//! a well-known type as the message, the whole round trip is:
//!
//! ```
//! use buffa_types::google::protobuf::StringValue;
//! use volley::{CallOptions, Client, ClientConfig, Idempotency, Protocol, Request, Response};
//! use volley::{Router, Spec, StreamType};
//!
//! const GREET: Spec = Spec::new(
//!     "/greet.v1.GreetService/Greet",
//!     StreamType::Unary,
//!     Idempotency::NoSideEffects,
//! );
//!
//! # #[cfg(all(feature = "server", feature = "client"))]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Serve: Connect, gRPC and gRPC-Web on one port, HTTP/1.1 and h2c.
//!     let router = Router::new().unary(GREET, |request: Request<StringValue>| async move {
//!         Ok(Response::new(StringValue::from(format!("Hello, {}!", request.message().value))))
//!     });
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let addr = listener.local_addr()?;
//!     tokio::spawn(volley::server::Server::from_listener(listener).serve(router));
//!
//!     // Call, once per protocol.
//!     for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
//!         let config = ClientConfig::new(format!("http://{addr}"))?.protocol(protocol);
//!         let client = Client::new(config)?;
//!         let reply = client
//!             .unary::<_, StringValue>(GREET, StringValue::from("you"), CallOptions::new())
//!             .await?;
//!         assert_eq!(reply.message().value, "Hello, you!");
//!     }
//!     Ok(())
//! }
//! # #[cfg(not(all(feature = "server", feature = "client")))]
//! # fn main() {}
//! ```
//!
//! The same service from a `.proto`, with generated code, is the quick start of the
//! repository's README (`examples/quickstart`).
//!
//! # The guide
//!
//! [`guide`] walks through everything, each chapter with compiled examples:
//! [services and code generation](guide::services), [serving](guide::serving) (built-in
//! server, axum, TLS), [clients](guide::clients), [streaming](guide::streaming),
//! [errors](guide::errors), [metadata](guide::metadata), [deadlines](guide::deadlines),
//! [compression](guide::compression), [limits](guide::limits),
//! [interceptors](guide::interceptors), [health and reflection](guide::health_and_reflection),
//! [browsers and CORS](guide::browsers), [testing](guide::testing),
//! [feature flags](guide::features) and [production](guide::production) (tower layers,
//! transport settings, retries, balancing, Unix sockets, deadline propagation).
//!
//! # Features
//!
//! `server`, `client` and `gzip` (gzip and deflate) are on by default; `tls`, `zstd`, `br`,
//! `http3` (HTTP/3 over QUIC) and `prost` (prost messages, `prost_message!`) are opt-in. See
//! [the table](guide::features).

pub mod budget;
pub mod client;
pub mod code;
pub mod codec;
pub mod compression;
pub mod cors;
pub mod envelope;
pub mod error;
#[cfg(any(doc, all(feature = "server", feature = "client", feature = "gzip")))]
pub mod guide;
pub mod headers;
pub mod interceptor;
pub mod peer;
pub mod protocol;
pub mod request;
pub mod spec;
pub mod timeout;

#[cfg(all(feature = "http3", any(feature = "server", feature = "client")))]
mod h3_body;
mod handler;
#[cfg(feature = "prost")]
mod prost_support;
mod respond;
mod router;
mod stream;
mod view;
mod wire;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;

pub use client::{BidiStream, CallOptions, Client, ClientConfig, Transport};
pub use code::Code;
pub use codec::{Codec, JsonCodec, Message, ProtoCodec};
pub use cors::Cors;
pub use error::{BoxError, Error, ErrorDetail};
pub use interceptor::{Interceptor, StreamHooks, StreamObserver};
pub use peer::{ConnectionInfo, TlsInfo};
pub use protocol::Protocol;
pub use request::{PeerAddr, PeerCertificates, Request, Response};
pub use respond::error_response_for;
pub use router::{DEFAULT_RECEIVE_LIMIT, FALLBACK_PROCEDURE, Router};
pub use spec::{Idempotency, Spec, StreamType};
pub use stream::{Body, ResponseStream, Streaming, boxed_body};
pub use view::View;

/// Items only generated code uses. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    /// Generated code evaluates this constant; a runtime incompatible with the generator
    /// lacks it, and compilation fails naming it.
    pub const GENERATED_CODE_REQUIRES_VOLLEY_0_1: () = ();
    /// The functions `prost_message!` expands to.
    #[cfg(feature = "prost")]
    pub mod prost {
        pub use crate::prost_support::{
            decode_json, decode_proto, encode_json, encode_proto, encode_proto_after,
        };
    }
    /// Buffers named by `prost_message!`.
    pub use bytes::{Bytes, BytesMut};
    /// The stream trait generated streaming signatures name.
    pub use futures_core::Stream;
}
