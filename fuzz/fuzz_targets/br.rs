#![no_main]
//! Fuzz target `br`: the body is `volley::fuzzing::br`, replayed over
//! `fuzz/corpus/br` and `fuzz/regressions/br` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::br(data));
