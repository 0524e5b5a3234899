//! Generated code for the generator's kitchen-sink proto compiles and works:
//! client streaming, custom method options reaching the handler through the
//! spec, Rust keywords and names that collide with generated items.

use buffa_types::google::protobuf::{Empty, Timestamp};
use futures_util::StreamExt as _;
use no_protoc::kitchen::kitchen::common::v1::Quantity;
use no_protoc::kitchen::kitchen::v1::{
    Dish, KitchenService, KitchenServiceClient, Order, OtherServiceClient, kitchen_service, order,
    register_kitchen_service,
};
use volley::{
    Client, ClientConfig, Code, Error, Protocol, Request, Response, ResponseStream, Router,
    Streaming,
};

struct Kitchen;

impl KitchenService for Kitchen {
    async fn place(&self, request: Request<Order>) -> Result<Response<order::Receipt>, Error> {
        // `(kitchen.v1.required_role) = "chef"` travels in the spec.
        let role = request
            .spec()
            .and_then(|spec| spec.option_bytes(50001))
            .unwrap_or_default();
        Ok(Response::new(order::Receipt {
            id: String::from_utf8_lossy(role).into_owned(),
            ..Default::default()
        }))
    }

    async fn stock(
        &self,
        request: Request<Streaming<Quantity>>,
    ) -> Result<Response<Timestamp>, Error> {
        let mut quantities = request.into_message();
        let mut total = 0;
        while let Some(q) = quantities.message().await? {
            total += q.amount;
        }
        Ok(Response::new(Timestamp::from_unix_secs(total)))
    }

    async fn chat(
        &self,
        request: Request<Streaming<Dish>>,
    ) -> Result<Response<ResponseStream<Dish>>, Error> {
        let dishes = request.into_message().map(|dish| {
            dish.map(|d| Dish {
                name: d.name.to_uppercase(),
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(dishes)))
    }

    async fn r#type(&self, request: Request<Dish>) -> Result<Response<Dish>, Error> {
        Ok(Response::new(request.into_message()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(deprecated, reason = "calls the deprecated Old method on purpose")]
async fn kitchen_sink_works() -> anyhow::Result<()> {
    // A message named OtherServiceClient pushes the generated client aside.
    let _message = OtherServiceClient::default();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = register_kitchen_service(Router::new(), Kitchen);
    tokio::spawn(volley::server::Server::from_listener(listener).serve(router));

    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let config = ClientConfig::new(format!("http://{addr}"))?.protocol(protocol);
        let client = KitchenServiceClient::new(Client::new(config)?);

        let receipt = client.place(Order::default()).await?;
        assert_eq!(receipt.message().id, "chef", "{protocol:?}");

        let quantities = futures_util::stream::iter([3, 4, 5].map(|amount| Quantity {
            amount,
            ..Default::default()
        }));
        let total = client.stock(quantities).await?;
        assert_eq!(total.message().seconds, 12, "{protocol:?}");

        let mut chat = client.chat().await?;
        chat.send(Dish {
            name: "soup".into(),
            ..Default::default()
        })
        .await?;
        assert_eq!(chat.message().await?.unwrap().name, "SOUP");
        chat.close_send();
        assert!(chat.message().await?.is_none());

        let dish = client
            .r#type(Dish {
                name: "tea".into(),
                ..Default::default()
            })
            .await?;
        assert_eq!(dish.message().name, "tea");

        // A server stream may report its error after the response head.
        let menu = match client.menu(Empty::default()).await {
            Ok(mut dishes) => dishes.message_mut().message().await.unwrap_err(),
            Err(err) => err,
        };
        for err in [
            client.old(Empty::default()).await.unwrap_err(),
            client.new_(Dish::default()).await.unwrap_err(),
            menu,
        ] {
            assert_eq!(err.code(), Code::Unimplemented, "{protocol:?}: {err}");
        }
    }
    assert_eq!(
        kitchen_service::PLACE_PROCEDURE_,
        "/kitchen.v1.KitchenService/Place"
    );
    Ok(())
}
