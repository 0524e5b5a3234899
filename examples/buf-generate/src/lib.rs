//! The clock service of `examples/no-protoc`, built this time from code
//! checked in by `buf generate` with `protoc-gen-buffa` (messages) and
//! `protoc-gen-volley` (services): see `buf.gen.yaml` and `buf-generate.sh`.
//! No build script.

use futures_util::StreamExt as _;
use volley::{Error, Request, Response, ResponseStream, Router, Streaming};

/// The generated messages and services: `src/gen/mod.rs` nests every
/// package's files into modules.
pub mod proto {
    include!("gen/mod.rs");
}

use buffa_types::google::protobuf::Timestamp;
use proto::clock::v1::{self as pb, ClockService};

/// The clock. Leaves `Alarm` unimplemented.
#[derive(Debug, Default, Clone, Copy)]
pub struct Clock;

impl ClockService for Clock {
    async fn now(
        &self,
        _request: Request<pb::NowRequest>,
    ) -> Result<Response<pb::NowResponse>, Error> {
        Ok(Response::new(pb::NowResponse {
            time: Timestamp::now().into(),
            ..Default::default()
        }))
    }

    async fn ticks(
        &self,
        request: Request<pb::TicksRequest>,
    ) -> Result<Response<ResponseStream<pb::Tick>>, Error> {
        let count = request.message().count;
        let ticks = futures_util::stream::iter(1..=count).map(|number| {
            Ok(pb::Tick {
                number,
                at: Timestamp::now().into(),
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(ticks)))
    }

    async fn echo(
        &self,
        request: Request<Streaming<pb::Note>>,
    ) -> Result<Response<ResponseStream<pb::Note>>, Error> {
        Ok(Response::new(Box::pin(request.into_message())))
    }
}

/// A router serving [`Clock`].
pub fn router() -> Router {
    pb::register_clock_service(Router::new(), Clock)
}
