#![no_main]
//! Fuzz target `connect_get_query`: the body is `volley::fuzzing::connect_get_query`, replayed over
//! `fuzz/corpus/connect_get_query` and `fuzz/regressions/connect_get_query` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::connect_get_query(data));
