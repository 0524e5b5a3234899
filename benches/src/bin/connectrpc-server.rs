//! The benchmark service on connectrpc 0.9 (buffa messages, HTTP/1.1 and h2c):
//! `connectrpc-server --addr HOST:PORT`.
fn main() {
    volley_benches::serve::run(|listener| async move {
        connectrpc::Server::from_listener(listener)
            .serve(volley_benches::connect_impl::router())
            .await
    });
}
