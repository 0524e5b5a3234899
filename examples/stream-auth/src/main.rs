//! Serves the chat service on a free loopback port, calls every stream kind on every protocol
//! with a good token and once without, and prints each call and each timed stream.

use buffa_types::google::protobuf::StringValue;
use stream_auth::{CHAT, Entered, Records, TAIL, TokenStore, UPLOAD, client, router};
use volley::{CallOptions, Protocol};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = TokenStore::default();
    store.insert("s3cret", "ada").await;
    let server_records = Records::default();
    let entered = Entered::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = router(store.clone(), server_records.clone(), entered.clone());
    tokio::spawn(volley::server::Server::from_listener(listener).serve(app));
    println!("serving on {base}");

    let client_records = Records::default();
    for protocol in [Protocol::Connect, Protocol::Grpc, Protocol::GrpcWeb] {
        let c = client(&base, protocol, Some("s3cret"), client_records.clone())?;
        let mut chat = c
            .bidi_stream::<StringValue, StringValue>(CHAT, CallOptions::new())
            .await?;
        chat.send(StringValue::from("hello")).await?;
        let reply = chat.message().await?.unwrap_or_default();
        chat.close_send();
        while chat.message().await?.is_some() {}
        println!(
            "{protocol:?} chat: {:?}, trailers say {:?}",
            reply.value,
            chat.trailers().get("x-stream-messages")
        );

        let mut ticks = c
            .server_stream::<_, StringValue>(TAIL, StringValue::from("3"), CallOptions::new())
            .await?
            .into_message();
        let mut got = Vec::new();
        while let Some(t) = ticks.message().await? {
            got.push(t.value);
        }
        println!("{protocol:?} tail: {got:?}");

        let uploads = futures_util::stream::iter(["a", "b"].map(StringValue::from));
        let done = c
            .client_stream::<_, StringValue, _>(UPLOAD, uploads, CallOptions::new())
            .await?;
        println!("{protocol:?} upload: {:?}", done.message().value);

        let anonymous = client(&base, protocol, None, client_records.clone())?;
        let mut refused = anonymous
            .bidi_stream::<StringValue, StringValue>(CHAT, CallOptions::new())
            .await?;
        refused.close_send();
        match refused.message().await {
            Err(e) => println!("{protocol:?} without a token: {e}"),
            Ok(m) => println!("{protocol:?} without a token: unexpectedly answered {m:?}"),
        }
    }
    println!(
        "handlers entered {} times, {} token lookups",
        entered.get(),
        store.lookups()
    );
    let records = server_records.lock().map(|r| r.clone()).unwrap_or_default();
    let clients = client_records.lock().map(|r| r.clone()).unwrap_or_default();
    for r in records.iter().chain(&clients) {
        let by = r
            .user
            .as_deref()
            .map_or(String::new(), |u| format!(" by {u}"));
        println!(
            "{:?} {}{by}: {} in, {} out, {:?}, {}",
            r.side,
            r.method,
            r.received,
            r.sent,
            r.elapsed,
            r.code.map_or("ok", |c| c.as_str())
        );
    }
    Ok(())
}
