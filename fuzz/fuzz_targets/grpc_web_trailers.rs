#![no_main]
//! Fuzz target `grpc_web_trailers`: the body is `volley::fuzzing::grpc_web_trailers`, replayed over
//! `fuzz/corpus/grpc_web_trailers` and `fuzz/regressions/grpc_web_trailers` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::grpc_web_trailers(data));
