#![no_main]
//! Fuzz target `deflate`: the body is `volley::fuzzing::deflate`, replayed over
//! `fuzz/corpus/deflate` and `fuzz/regressions/deflate` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::deflate(data));
