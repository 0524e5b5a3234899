//! Serves Eliza on a free port and calls every RPC over every protocol with
//! the generated client, binary and JSON.

use eliza::proto::connectrpc::eliza::v1::{
    ConverseRequest, ElizaServiceClient, IntroduceRequest, SayRequest, eliza_service,
};
use volley::{
    Client, ClientConfig, Codec, Idempotency, JsonCodec, ProtoCodec, Protocol, StreamType,
};

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(eliza::router()));
    addr
}

#[test]
fn specs_carry_stream_types_and_idempotency() {
    assert_eq!(
        eliza_service::SAY.procedure,
        "/connectrpc.eliza.v1.ElizaService/Say"
    );
    assert_eq!(eliza_service::SAY.stream_type, StreamType::Unary);
    assert_eq!(eliza_service::SAY.idempotency, Idempotency::NoSideEffects);
    assert_eq!(eliza_service::CONVERSE.stream_type, StreamType::BidiStream);
    assert_eq!(
        eliza_service::INTRODUCE.stream_type,
        StreamType::ServerStream
    );
    assert_eq!(
        eliza_service::SERVICE_NAME,
        "connectrpc.eliza.v1.ElizaService"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_over_every_protocol_and_codec() -> anyhow::Result<()> {
    let addr = serve().await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for codec in [&ProtoCodec as &dyn Codec, &JsonCodec] {
            let what = format!("{protocol:?}/{codec:?}");
            let config = ClientConfig::new(format!("http://{addr}"))?
                .protocol(protocol)
                .codec(codec);
            let client = ElizaServiceClient::new(Client::new(config)?);

            let reply = client
                .say(SayRequest {
                    sentence: "I feel happy".into(),
                    ..Default::default()
                })
                .await?;
            assert!(reply.message().sentence.contains("happy"), "{what}");

            let mut intro = client
                .introduce(IntroduceRequest {
                    name: "Ada".into(),
                    ..Default::default()
                })
                .await?
                .into_message();
            let mut lines = Vec::new();
            while let Some(line) = intro.message().await? {
                lines.push(line.sentence);
            }
            assert_eq!(lines, eliza::responder::introduce("Ada"), "{what}");

            let mut chat = client.converse().await?;
            for sentence in ["I need a break", "Because I am tired"] {
                chat.send(ConverseRequest {
                    sentence: sentence.into(),
                    ..Default::default()
                })
                .await?;
                let answer = chat.message().await?.expect("a reply per sentence");
                assert_eq!(answer.sentence, eliza::responder::reply(sentence), "{what}");
            }
            chat.close_send();
            assert!(chat.message().await?.is_none(), "{what}");
        }
    }
    Ok(())
}

/// The demo is built with every compression its printed commands and peers use: a request
/// compressed with each algorithm gets an answer (built alone by `scripts/checks.sh
/// examples`, this fails if the package forgot a feature).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepts_every_compression_on_its_own_features() -> anyhow::Result<()> {
    let addr = serve().await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for encoding in ["gzip", "deflate", "br", "zstd"] {
            let config = ClientConfig::new(format!("http://{addr}"))?
                .protocol(protocol)
                .send_compression(encoding);
            let client = ElizaServiceClient::new(Client::new(config)?);
            // Above the 1 KiB threshold under which messages go uncompressed.
            let sentence = format!("I feel {}compressed", "very ".repeat(300));
            let reply = client
                .say(SayRequest {
                    sentence,
                    ..Default::default()
                })
                .await
                .map_err(|e| anyhow::anyhow!("{protocol:?} {encoding}: {e}"))?;
            assert!(
                reply.message().sentence.contains("compressed"),
                "{protocol:?} {encoding}"
            );
        }
    }
    Ok(())
}
