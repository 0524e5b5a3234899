//! Shared helpers for Volley's black-box tests: the interop messages and service.
#![allow(missing_docs)] // reason: generated code documents itself from the proto comments

/// Messages and services from `proto/volley/interop/v1/interop.proto`.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}
