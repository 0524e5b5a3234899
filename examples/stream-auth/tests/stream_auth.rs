//! The example over real sockets on every protocol: streams with a good token run and are
//! timed on both sides, with their counts in the trailers; streams without one are refused
//! before any handler runs; the binary runs to the end.

use std::time::Duration;

use buffa_types::google::protobuf::StringValue;
use stream_auth::{CHAT, Entered, Records, TAIL, TokenStore, UPLOAD, WHOAMI, client, router};
use volley::interceptor::Side;
use volley::{CallOptions, Code, Protocol};

async fn serve() -> anyhow::Result<(String, TokenStore, Records, Entered)> {
    let store = TokenStore::default();
    store.insert("s3cret", "ada").await;
    let records = Records::default();
    let entered = Entered::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = router(store.clone(), records.clone(), entered.clone());
    tokio::spawn(volley::server::Server::from_listener(listener).serve(app));
    Ok((base, store, records, entered))
}

const PROTOCOLS: [Protocol; 3] = [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb];

#[tokio::test]
async fn streams_are_authenticated_and_timed_on_every_protocol() -> anyhow::Result<()> {
    let (base, store, server_records, entered) = serve().await?;
    for protocol in PROTOCOLS {
        server_records.lock().unwrap().clear();
        let client_records = Records::default();
        let c = client(&base, protocol, Some("s3cret"), client_records.clone())?;

        let mut chat = c
            .bidi_stream::<StringValue, StringValue>(CHAT, CallOptions::new())
            .await?;
        for word in ["hi", "there"] {
            chat.send(StringValue::from(word)).await?;
            let reply = chat.message().await?.expect("a reply");
            assert_eq!(reply.value, format!("ada: {word}"), "{protocol:?}");
        }
        chat.close_send();
        assert!(chat.message().await?.is_none());
        assert_eq!(
            chat.trailers()["x-stream-messages"],
            "2 in, 2 out",
            "{protocol:?}: the server's timer wrote the counts into the trailers"
        );

        let mut ticks = c
            .server_stream::<_, StringValue>(TAIL, StringValue::from("4"), CallOptions::new())
            .await?
            .into_message();
        let mut n = 0;
        while ticks.message().await?.is_some() {
            n += 1;
        }
        assert_eq!(n, 4, "{protocol:?}");

        let uploads = futures_util::stream::iter(["a", "b", "c"].map(StringValue::from));
        let done = c
            .client_stream::<_, StringValue, _>(UPLOAD, uploads, CallOptions::new())
            .await?;
        assert_eq!(done.message().value, "ada uploaded 3 messages");
        assert_eq!(done.trailers()["x-stream-messages"], "3 in, 1 out");

        let who = c
            .unary::<_, StringValue>(WHOAMI, StringValue::default(), CallOptions::new())
            .await?;
        assert_eq!(
            who.message().value,
            "ada",
            "{protocol:?}: unary calls are checked too"
        );

        tokio::time::sleep(Duration::from_millis(50)).await;
        let server: Vec<_> = server_records
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.side, r.method, r.user.clone(), r.received, r.sent, r.code))
            .collect();
        let ada = Some("ada".to_string());
        assert_eq!(
            server,
            [
                (Side::Server, "Chat", ada.clone(), 2, 2, None),
                (Side::Server, "Tail", ada.clone(), 1, 4, None),
                (Side::Server, "Upload", ada, 3, 1, None),
            ],
            "{protocol:?}"
        );
        let client_side: Vec<_> = client_records
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.side, r.method, r.received, r.sent, r.code))
            .collect();
        assert_eq!(
            client_side,
            [
                (Side::Client, "Chat", 2, 2, None),
                (Side::Client, "Tail", 4, 1, None),
                (Side::Client, "Upload", 1, 3, None),
            ],
            "{protocol:?}"
        );
        let tail = client_records.lock().unwrap()[1].elapsed;
        assert!(
            tail >= Duration::from_millis(20),
            "{protocol:?}: the whole stream is timed (4 ticks 5 ms apart): {tail:?}"
        );
    }
    let before = entered.get();
    let lookups = store.lookups();
    for protocol in PROTOCOLS {
        for token in [None, Some("wrong")] {
            let records = Records::default();
            let c = client(&base, protocol, token, records.clone())?;
            let mut chat = c
                .bidi_stream::<StringValue, StringValue>(CHAT, CallOptions::new())
                .await?;
            chat.close_send();
            let err = chat.message().await.unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated, "{protocol:?} {token:?}");
            let err = c
                .server_stream::<_, StringValue>(TAIL, StringValue::from("1"), CallOptions::new())
                .await?
                .into_message()
                .message()
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated, "{protocol:?} {token:?}");
            let uploads = futures_util::stream::iter([StringValue::from("x")]);
            let err = c
                .client_stream::<_, StringValue, _>(UPLOAD, uploads, CallOptions::new())
                .await
                .unwrap_err();
            assert_eq!(err.code(), Code::Unauthenticated, "{protocol:?} {token:?}");
            let codes: Vec<_> = records.lock().unwrap().iter().map(|r| r.code).collect();
            assert_eq!(
                codes,
                [Some(Code::Unauthenticated); 3],
                "{protocol:?} {token:?}"
            );
        }
    }
    assert_eq!(entered.get(), before, "no handler ran for a refused call");
    assert_eq!(
        store.lookups(),
        lookups + 9,
        "the unknown tokens were looked up (a missing one needs no lookup)"
    );
    Ok(())
}

#[test]
fn the_binary_runs_every_protocol() -> anyhow::Result<()> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stream-auth")).output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for protocol in ["Connect", "Grpc", "GrpcWeb"] {
        assert!(
            stdout.contains(&format!("{protocol} chat: \"ada: hello\"")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("{protocol} without a token: unauthenticated")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("handlers entered 9 times"), "{stdout}");
    Ok(())
}
