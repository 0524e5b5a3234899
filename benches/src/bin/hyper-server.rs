//! Echo on raw hyper with no framework, gRPC and Connect proto (the ceiling):
//! `hyper-server --addr HOST:PORT`.
fn main() {
    volley_benches::serve::run(volley_benches::raw::serve);
}
