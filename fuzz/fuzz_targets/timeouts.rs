#![no_main]
//! Fuzz target `timeouts`: the body is `volley::fuzzing::timeouts`, replayed over
//! `fuzz/corpus/timeouts` and `fuzz/regressions/timeouts` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::timeouts(data));
