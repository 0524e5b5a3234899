//! The crate built from `buf generate` output serves and answers over every
//! protocol, well-known types included; left-out methods answer
//! `unimplemented`.

use buf_generate::proto::clock::v1::{ClockServiceClient, Note, NowRequest, TicksRequest};
use buffa_types::google::protobuf::{Any, Timestamp};
use volley::{Client, ClientConfig, Code, Codec, JsonCodec, ProtoCodec, Protocol};

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(volley::server::Server::from_listener(listener).serve(buf_generate::router()));
    addr
}

fn client(
    addr: std::net::SocketAddr,
    protocol: Protocol,
    codec: &'static dyn Codec,
) -> anyhow::Result<ClockServiceClient<volley::client::HttpTransport>> {
    let config = ClientConfig::new(format!("http://{addr}"))?
        .protocol(protocol)
        .codec(codec);
    Ok(ClockServiceClient::new(Client::new(config)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_well_known_types_over_every_protocol() -> anyhow::Result<()> {
    let addr = serve().await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        for codec in [&ProtoCodec as &dyn Codec, &JsonCodec] {
            let clock = client(addr, protocol, codec)?;
            let now = clock.now(NowRequest::default()).await?;
            let time = now.message().time.as_option().expect("time is set");
            assert!(
                time.seconds > 1_700_000_000,
                "{protocol:?}/{codec:?}: {time:?}"
            );

            let mut ticks = clock
                .ticks(TicksRequest {
                    count: 3,
                    ..Default::default()
                })
                .await?
                .into_message();
            let mut numbers = Vec::new();
            while let Some(tick) = ticks.message().await? {
                assert!(tick.at.is_set());
                numbers.push(tick.number);
            }
            assert_eq!(numbers, [1, 2, 3], "{protocol:?}/{codec:?}");

            let err = clock.alarm(NowRequest::default()).await.unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "{protocol:?}/{codec:?}");
            assert!(
                err.message().contains("clock.v1.ClockService.Alarm"),
                "{err}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echoes_any_attachments() -> anyhow::Result<()> {
    let addr = serve().await;
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let clock = client(addr, protocol, &ProtoCodec)?;
        let mut echo = clock.echo().await?;
        let stamp = Timestamp::from_unix(1_234_567_890, 5);
        let note = Note {
            text: "remember".into(),
            attachment: Any::pack(&stamp, "type.googleapis.com/google.protobuf.Timestamp").into(),
            ..Default::default()
        };
        echo.send(note.clone()).await?;
        let back = echo.message().await?.expect("an echo");
        assert_eq!(back, note, "{protocol:?}");
        let unpacked: Timestamp = back.attachment.as_option().unwrap().unpack_unchecked()?;
        assert_eq!(unpacked, stamp);
        echo.close_send();
        assert!(echo.message().await?.is_none());
    }
    Ok(())
}
