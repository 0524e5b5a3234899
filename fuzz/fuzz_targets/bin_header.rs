#![no_main]
//! Fuzz target `bin_header`: the body is `volley::fuzzing::bin_header`, replayed over
//! `fuzz/corpus/bin_header` and `fuzz/regressions/bin_header` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::bin_header(data));
