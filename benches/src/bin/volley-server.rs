//! The benchmark service on Volley with owned request messages: `volley-server --addr HOST:PORT`.
fn main() {
    volley_benches::serve::run(|listener| {
        volley::server::Server::from_listener(listener)
            .serve(volley_benches::volley_impl::owned_router())
    });
}
