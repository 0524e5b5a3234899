//! The Eliza demo: a conversational therapist served over Connect, gRPC and
//! gRPC-Web from one port, and a typed client calling it.
//!
//! The messages and service code are generated from
//! `proto/connectrpc/eliza/v1/eliza.proto` by `build.rs` with `volley-build`
//! (no `protoc` needed). [`Eliza`] implements the generated
//! `ElizaService` trait (in [`proto::connectrpc::eliza::v1`]) with
//! the rules in [`responder`].

use futures_util::StreamExt as _;
use volley::{Error, Request, Response, ResponseStream, Router, Streaming};

pub mod responder;

/// The generated messages and service code.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

use proto::connectrpc::eliza::v1::{self as pb, ElizaService};

/// The Eliza service.
#[derive(Debug, Default, Clone, Copy)]
pub struct Eliza;

impl ElizaService for Eliza {
    async fn say(
        &self,
        request: Request<pb::SayRequest>,
    ) -> Result<Response<pb::SayResponse>, Error> {
        let sentence = responder::reply(&request.message().sentence);
        Ok(Response::new(pb::SayResponse {
            sentence,
            ..Default::default()
        }))
    }

    async fn converse(
        &self,
        request: Request<Streaming<pb::ConverseRequest>>,
    ) -> Result<Response<ResponseStream<pb::ConverseResponse>>, Error> {
        let replies = request.into_message().map(|said| {
            said.map(|said| pb::ConverseResponse {
                sentence: responder::reply(&said.sentence),
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn introduce(
        &self,
        request: Request<pb::IntroduceRequest>,
    ) -> Result<Response<ResponseStream<pb::IntroduceResponse>>, Error> {
        let lines = responder::introduce(&request.message().name);
        let stream = futures_util::stream::iter(lines).map(|sentence| {
            Ok(pb::IntroduceResponse {
                sentence,
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A router serving [`Eliza`] over Connect, gRPC and gRPC-Web.
pub fn router() -> Router {
    pb::register_eliza_service(Router::new(), Eliza)
}

/// The full demo: Eliza plus `grpc.health.v1` and `grpc.reflection` (v1 and v1alpha), with CORS
/// for browsers. The reporter marks every service NOT_SERVING at shutdown.
pub fn app() -> (Router, volley_health::HealthReporter) {
    let (reporter, health) = volley_health::health_service();
    reporter.set_serving("connectrpc.eliza.v1.ElizaService");
    let router = health.register(router());
    let reflection =
        volley_reflection::Reflection::from_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .and_then(|r| r.add_file_descriptor_set(volley_health::FILE_DESCRIPTOR_SET))
            .expect("the build script's descriptor set is valid");
    let router = reflection
        .with_services_of(&router)
        .register(router)
        .cors(volley::Cors::allow_any_origin());
    (router, reporter)
}
