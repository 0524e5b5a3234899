//! The benchmark service on tonic 0.14 with prost messages (the same work as Volley's).

use std::pin::Pin;

use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::fixtures::{Record, add_record, entry};
use crate::proto::tonic as pb;
use crate::proto::tonic::bench_service_server::{BenchService, BenchServiceServer};

/// The tonic service, ready for `tonic::transport::Server::add_service`.
pub fn service() -> BenchServiceServer<Bench> {
    BenchServiceServer::new(Bench)
}

/// The tonic implementation of the benchmark service.
#[derive(Debug, Clone, Copy)]
pub struct Bench;

type Ticks = Pin<Box<dyn Stream<Item = Result<pb::Tick, Status>> + Send>>;

#[tonic::async_trait]
impl BenchService for Bench {
    async fn echo(
        &self,
        request: Request<pb::EchoRequest>,
    ) -> Result<Response<pb::EchoResponse>, Status> {
        Ok(Response::new(pb::EchoResponse {
            payload: request.into_inner().payload,
        }))
    }

    async fn ingest(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let records = &request.get_ref().records;
        let mut sum = 0;
        for r in records {
            let attributes = r.attributes.iter().fold(0, |m, (k, v)| m ^ entry(k, v));
            let (seconds, nanos) = r.time.as_ref().map_or((0, 0), |t| (t.seconds, t.nanos));
            sum = add_record(
                sum,
                Record {
                    seconds,
                    nanos,
                    level: r.level,
                    message: &r.message,
                    service: &r.service,
                    trace_id: &r.trace_id,
                    attributes,
                },
            );
        }
        Ok(Response::new(pb::IngestResponse {
            accepted: records.len() as u32,
            checksum: sum,
        }))
    }

    type TicksStream = Ticks;

    async fn ticks(
        &self,
        request: Request<pb::TicksRequest>,
    ) -> Result<Response<Self::TicksStream>, Status> {
        let pb::TicksRequest { count, payload } = request.into_inner();
        let stream = futures_util::stream::iter((0..count).map(move |seq| {
            Ok(pb::Tick {
                seq,
                payload: payload.clone(),
            })
        }));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn collect(
        &self,
        request: Request<Streaming<pb::EchoRequest>>,
    ) -> Result<Response<pb::CollectResponse>, Status> {
        let mut stream = request.into_inner();
        let (mut count, mut total_bytes) = (0, 0);
        while let Some(message) = stream.message().await? {
            count += 1;
            total_bytes += message.payload.len() as u64;
        }
        Ok(Response::new(pb::CollectResponse { count, total_bytes }))
    }
}
