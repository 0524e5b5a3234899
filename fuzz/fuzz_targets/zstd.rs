#![no_main]
//! Fuzz target `zstd`: the body is `volley::fuzzing::zstd`, replayed over
//! `fuzz/corpus/zstd` and `fuzz/regressions/zstd` by the stable test suite.

libfuzzer_sys::fuzz_target!(|data: &[u8]| volley::fuzzing::zstd(data));
