//! The benchmark service on Volley with view handlers: `volley-view-server --addr HOST:PORT`.
fn main() {
    volley_benches::serve::run(|listener| {
        volley::server::Server::from_listener(listener)
            .serve(volley_benches::volley_impl::view_router())
    });
}
