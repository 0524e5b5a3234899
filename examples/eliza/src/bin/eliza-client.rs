//! Talks to an Eliza server with the generated typed client.
//!
//! ```text
//! cargo run -p eliza --bin eliza-client -- [--url http://127.0.0.1:8080] \
//!     [--protocol connect|grpc|grpc-web] [--json] "I feel happy"
//! cargo run -p eliza --bin eliza-client -- --introduce Ada
//! cargo run -p eliza --bin eliza-client -- --converse "Hello" "I need a break"
//! ```

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use eliza::proto::connectrpc::eliza::v1::{
    ConverseRequest, ElizaServiceClient, IntroduceRequest, SayRequest,
};
use tokio::io::AsyncBufReadExt as _;
use volley::{Client, ClientConfig, JsonCodec, Protocol};

/// Call the Eliza demo server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The protocol to speak.
    #[arg(long, value_enum, default_value_t = ProtocolArg::Connect)]
    protocol: ProtocolArg,
    /// Encode messages as JSON instead of binary protobuf.
    #[arg(long)]
    json: bool,
    /// Call Introduce (server streaming) with this name instead of Say.
    #[arg(long, value_name = "NAME", conflicts_with = "converse")]
    introduce: Option<String>,
    /// Call Converse (bidirectional streaming): send every sentence given, or
    /// lines from stdin when none are, and print the replies.
    #[arg(long)]
    converse: bool,
    /// What to say.
    sentences: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProtocolArg {
    Connect,
    Grpc,
    GrpcWeb,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let protocol = match args.protocol {
        ProtocolArg::Connect => Protocol::Connect,
        ProtocolArg::Grpc => Protocol::Grpc,
        ProtocolArg::GrpcWeb => Protocol::GrpcWeb,
    };
    let mut config = ClientConfig::new(&args.url)
        .with_context(|| format!("bad --url {}", args.url))?
        .protocol(protocol);
    if args.json {
        config = config.codec(JsonCodec);
    }
    let client = ElizaServiceClient::new(Client::new(config)?);

    if let Some(name) = args.introduce {
        let request = IntroduceRequest {
            name,
            ..Default::default()
        };
        let mut replies = client.introduce(request).await?.into_message();
        while let Some(reply) = replies.message().await? {
            println!("{}", reply.sentence);
        }
    } else if args.converse {
        let mut conversation = client.converse().await?;
        let mut sentences = args.sentences.into_iter();
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let from_stdin = sentences.len() == 0;
        loop {
            let sentence = if from_stdin {
                match stdin.next_line().await? {
                    Some(line) => line,
                    None => break,
                }
            } else {
                match sentences.next() {
                    Some(sentence) => sentence,
                    None => break,
                }
            };
            println!("> {sentence}");
            conversation
                .send(ConverseRequest {
                    sentence,
                    ..Default::default()
                })
                .await?;
            match conversation.message().await? {
                Some(reply) => println!("{}", reply.sentence),
                None => break,
            }
        }
        conversation.close_send();
        while let Some(reply) = conversation.message().await? {
            println!("{}", reply.sentence);
        }
    } else {
        let sentence = if args.sentences.is_empty() {
            "Hello".to_string()
        } else {
            args.sentences.join(" ")
        };
        let request = SayRequest {
            sentence,
            ..Default::default()
        };
        let reply = client.say(request).await?;
        println!("{}", reply.message().sentence);
    }
    Ok(())
}
