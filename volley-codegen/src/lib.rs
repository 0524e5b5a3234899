//! Turns protobuf service descriptors into Volley service code.
//!
//! Placeholder crate root: the generator lands with the code generation issue.
