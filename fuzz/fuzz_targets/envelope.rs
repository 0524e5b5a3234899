#![no_main]
//! Fuzz target `envelope`: the body is `volley::fuzzing::envelope`, replayed over
//! `fuzz/corpus/envelope` and `fuzz/regressions/envelope` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::envelope(data));
