//! The benchmark service on connectrpc 0.9 (the same work as Volley's; connectrpc hands
//! unary and server-stream handlers a borrowed view of the request, and client-stream
//! handlers owned-view messages).

use std::sync::Arc;

use connectrpc::{
    InboundStream, RequestContext, Response, Router, ServiceRequest, ServiceResult, ServiceStream,
};
use futures_util::StreamExt as _;

use crate::fixtures::{Record, add_record, entry};
use crate::proto::connect::bench::v1 as pb;
use pb::{BenchService, BenchServiceExt as _};

/// A connectrpc router serving the benchmark service.
pub fn router() -> Router {
    Arc::new(Bench).register(Router::new())
}

/// The connectrpc implementation of the benchmark service.
#[derive(Debug, Clone, Copy)]
pub struct Bench;

// reason: the handlers return concrete messages where the trait allows any `Encodable`
#[allow(refining_impl_trait)]
impl BenchService for Bench {
    async fn echo(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::EchoRequest>,
    ) -> ServiceResult<pb::EchoResponse> {
        Response::ok(pb::EchoResponse {
            payload: request.payload.to_vec(),
            ..Default::default()
        })
    }

    async fn ingest(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::IngestRequest>,
    ) -> ServiceResult<pb::IngestResponse> {
        let records = &request.records;
        let mut sum = 0;
        for r in records.iter() {
            let attributes = r.attributes.iter().fold(0, |m, (k, v)| m ^ entry(k, v));
            sum = add_record(
                sum,
                Record {
                    seconds: r.time.seconds,
                    nanos: r.time.nanos,
                    level: r.level.to_i32(),
                    message: r.message,
                    service: r.service,
                    trace_id: r.trace_id,
                    attributes,
                },
            );
        }
        Response::ok(pb::IngestResponse {
            accepted: records.len() as u32,
            checksum: sum,
            ..Default::default()
        })
    }

    async fn ticks(
        &self,
        _ctx: RequestContext,
        request: ServiceRequest<'_, pb::TicksRequest>,
    ) -> ServiceResult<ServiceStream<pb::Tick>> {
        let (count, payload) = (request.count, request.payload.to_vec());
        Response::stream_ok(futures_util::stream::iter((0..count).map(move |seq| {
            Ok(pb::Tick {
                seq,
                payload: payload.clone(),
                ..Default::default()
            })
        })))
    }

    async fn collect(
        &self,
        _ctx: RequestContext,
        mut requests: InboundStream<pb::EchoRequest>,
    ) -> ServiceResult<pb::CollectResponse> {
        let (mut count, mut total_bytes) = (0, 0);
        while let Some(message) = requests.next().await {
            let message = message?;
            count += 1;
            total_bytes += message.view().payload.len() as u64;
        }
        Response::ok(pb::CollectResponse {
            count,
            total_bytes,
            ..Default::default()
        })
    }
}
