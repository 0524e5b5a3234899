#![no_main]
//! Fuzz target `connect_error_json`: the body is `volley::fuzzing::connect_error_json`, replayed over
//! `fuzz/corpus/connect_error_json` and `fuzz/regressions/connect_error_json` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::connect_error_json(data));
