//! Three local servers, a balancing client with retries, one server stopped mid-run: prints
//! how the calls spread and that none failed. Then the same with members listed in a registry
//! the balancer re-reads: one leaves, one joins.

use volley::Protocol;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let outcome = balancing::run(protocol, 30).await?;
        println!(
            "{protocol:?}: served {:?} (b stopped at {}), {} failed, {} healthy",
            outcome.served, outcome.served_when_stopped, outcome.failed, outcome.healthy
        );
        let outcome = balancing::run_registry(protocol, 30).await?;
        println!(
            "{protocol:?}, registry: served {:?} (b left at {}, c joined at {}), {} failed",
            outcome.served, outcome.served_when_left, outcome.served_before_join, outcome.failed
        );
    }
    Ok(())
}
