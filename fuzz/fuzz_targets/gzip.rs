#![no_main]
//! Fuzz target `gzip`: the body is `volley::fuzzing::gzip`, replayed over
//! `fuzz/corpus/gzip` and `fuzz/regressions/gzip` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::gzip(data));
