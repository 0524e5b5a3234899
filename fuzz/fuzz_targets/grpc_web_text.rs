#![no_main]
//! Fuzz target `grpc_web_text`: the body is `volley::fuzzing::grpc_web_text`, replayed over
//! `fuzz/corpus/grpc_web_text` and `fuzz/regressions/grpc_web_text` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::grpc_web_text(data));
