//! The benchmark service on Volley, twice: with owned request messages and with zero-copy view
//! handlers (the same work on the same fields).

use volley::{Error, Request, Response, ResponseStream, Router, Streaming, View};

use crate::fixtures::{Record, add_record, entry};
use crate::proto::owned::bench::v1 as owned;
use crate::proto::view::bench::v1 as view;

/// A router serving the benchmark service with owned request messages.
pub fn owned_router() -> Router {
    owned::register_bench_service(Router::new(), Owned)
}

/// A router serving the benchmark service with view handlers.
pub fn view_router() -> Router {
    view::register_bench_service(Router::new(), Viewed)
}

struct Owned;

fn ticks<T: Send + 'static>(
    count: u32,
    tick: impl Fn(u32) -> T + Send + 'static,
) -> ResponseStream<T> {
    Box::pin(futures_util::stream::iter(
        (0..count).map(move |seq| Ok(tick(seq))),
    ))
}

impl owned::BenchService for Owned {
    async fn echo(
        &self,
        request: Request<owned::EchoRequest>,
    ) -> Result<Response<owned::EchoResponse>, Error> {
        Ok(Response::new(owned::EchoResponse {
            payload: request.into_message().payload,
            ..Default::default()
        }))
    }

    async fn ingest(
        &self,
        request: Request<owned::IngestRequest>,
    ) -> Result<Response<owned::IngestResponse>, Error> {
        let records = &request.message().records;
        let mut sum = 0;
        for r in records {
            let attributes = r.attributes.iter().fold(0, |m, (k, v)| m ^ entry(k, v));
            sum = add_record(
                sum,
                Record {
                    seconds: r.time.seconds,
                    nanos: r.time.nanos,
                    level: r.level.to_i32(),
                    message: &r.message,
                    service: &r.service,
                    trace_id: &r.trace_id,
                    attributes,
                },
            );
        }
        Ok(Response::new(owned::IngestResponse {
            accepted: records.len() as u32,
            checksum: sum,
            ..Default::default()
        }))
    }

    async fn ticks(
        &self,
        request: Request<owned::TicksRequest>,
    ) -> Result<Response<ResponseStream<owned::Tick>>, Error> {
        let owned::TicksRequest { count, payload, .. } = request.into_message();
        Ok(Response::new(ticks(count, move |seq| owned::Tick {
            seq,
            payload: payload.clone(),
            ..Default::default()
        })))
    }

    async fn collect(
        &self,
        mut request: Request<Streaming<owned::EchoRequest>>,
    ) -> Result<Response<owned::CollectResponse>, Error> {
        let (mut count, mut total_bytes) = (0, 0);
        while let Some(message) = request.message_mut().message().await? {
            count += 1;
            total_bytes += message.payload.len() as u64;
        }
        Ok(Response::new(owned::CollectResponse {
            count,
            total_bytes,
            ..Default::default()
        }))
    }
}

struct Viewed;

impl view::BenchService for Viewed {
    async fn echo(
        &self,
        request: Request<View<view::EchoRequest>>,
    ) -> Result<Response<view::EchoResponse>, Error> {
        Ok(Response::new(view::EchoResponse {
            payload: request.message().view().payload.to_vec(),
            ..Default::default()
        }))
    }

    async fn ingest(
        &self,
        request: Request<View<view::IngestRequest>>,
    ) -> Result<Response<view::IngestResponse>, Error> {
        let records = &request.message().view().records;
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
        Ok(Response::new(view::IngestResponse {
            accepted: records.len() as u32,
            checksum: sum,
            ..Default::default()
        }))
    }

    async fn ticks(
        &self,
        request: Request<View<view::TicksRequest>>,
    ) -> Result<Response<ResponseStream<view::Tick>>, Error> {
        let message = request.message().view();
        let (count, payload) = (message.count, message.payload.to_vec());
        Ok(Response::new(ticks(count, move |seq| view::Tick {
            seq,
            payload: payload.clone(),
            ..Default::default()
        })))
    }

    async fn collect(
        &self,
        mut request: Request<Streaming<View<view::EchoRequest>>>,
    ) -> Result<Response<view::CollectResponse>, Error> {
        let (mut count, mut total_bytes) = (0, 0);
        while let Some(message) = request.message_mut().message().await? {
            count += 1;
            total_bytes += message.view().payload.len() as u64;
        }
        Ok(Response::new(view::CollectResponse {
            count,
            total_bytes,
            ..Default::default()
        }))
    }
}
