//! Placeholder until the conformance binaries land.
fn main() {}
