//! Three local servers, a balancing client with retries, one server stopped mid-run: prints
//! how the calls spread and that none failed.

use volley::Protocol;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let outcome = balancing::run(protocol, 30).await?;
        println!(
            "{protocol:?}: served {:?} (b stopped at {}), {} failed, {} healthy",
            outcome.served, outcome.served_when_stopped, outcome.failed, outcome.healthy
        );
    }
    Ok(())
}
