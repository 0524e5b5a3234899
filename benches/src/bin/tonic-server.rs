//! The benchmark service on tonic 0.14 (prost messages, h2c): `tonic-server --addr HOST:PORT`.
fn main() {
    volley_benches::serve::run(|listener| {
        // TCP_NODELAY as every other contender sets it.
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        tonic::transport::Server::builder()
            .add_service(volley_benches::tonic_impl::service())
            .serve_with_incoming(incoming)
    });
}
