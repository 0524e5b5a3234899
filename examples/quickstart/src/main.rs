//! Serves `greet.v1.GreetService` over Connect, gRPC and gRPC-Web, then calls it.

mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

use proto::greet::v1::{
    GreetRequest, GreetResponse, GreetService, GreetServiceClient, register_greet_service,
};
use volley::{Client, ClientConfig, Error, Request, Response, Router, server::Server};

struct Greeter;

impl GreetService for Greeter {
    async fn greet(
        &self,
        request: Request<GreetRequest>,
    ) -> Result<Response<GreetResponse>, Error> {
        let name = &request.message().name;
        Ok(Response::new(GreetResponse {
            greeting: format!("Hello, {name}!"),
            ..Default::default()
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The address to listen on: the first argument, 127.0.0.1:8080 by default.
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    println!("serving on http://{addr}");

    // One port, three protocols: Connect, gRPC and gRPC-Web, over HTTP/1.1 and h2c.
    let router = register_greet_service(Router::new(), Greeter);
    let server = tokio::spawn(Server::from_listener(listener).serve(router));

    // Call it with the generated client (Connect by default; see ClientConfig::protocol).
    let client =
        GreetServiceClient::new(Client::new(ClientConfig::new(format!("http://{addr}"))?)?);
    let request = GreetRequest {
        name: "World".into(),
        ..Default::default()
    };
    let reply = client.greet(request).await?;
    println!("{}", reply.message().greeting);

    println!(
        "try: curl --header 'Content-Type: application/json' --data '{{\"name\": \"curl\"}}' \
         http://{addr}/greet.v1.GreetService/Greet"
    );
    server.await??;
    Ok(())
}
