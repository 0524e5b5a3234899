#![no_main]
//! Fuzz target `router`: the body is `volley::fuzzing::router_call`, replayed over
//! `fuzz/corpus/router` and `fuzz/regressions/router` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::router_call(data));
