//! A ledger service over [prost](https://docs.rs/prost) messages: `volley-build` with
//! `MessageLibrary::Prost` generates the structs (prost-build), their canonical proto3 JSON
//! (pbjson-build, well-known types from pbjson-types) and the service code, from a proto
//! parsed without `protoc`.

use futures_util::StreamExt as _;
use volley::{Error, Request, Response, ResponseStream, Router, Streaming};

/// The generated messages and service code.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

use proto::ledger::v1::{self as pb, LedgerService};

/// The balance every ledger starts from, in cents.
pub const OPENING_BALANCE_CENTS: i64 = 10_000;

/// The ledger: stateless, every answer is computed from the request.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ledger;

/// The signed effect of `entry` on the balance.
fn signed(entry: &pb::Entry) -> i64 {
    match pb::Kind::try_from(entry.kind) {
        Ok(pb::Kind::Debit) => -entry.amount_cents,
        _ => entry.amount_cents,
    }
}

impl LedgerService for Ledger {
    async fn record(
        &self,
        request: Request<pb::Entry>,
    ) -> Result<Response<pb::RecordResponse>, Error> {
        let mut entry = request.into_message();
        let balance_cents = OPENING_BALANCE_CENTS + signed(&entry);
        entry.sequence += 1;
        Ok(Response::new(pb::RecordResponse {
            entry: Some(entry),
            balance_cents,
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRequest>,
    ) -> Result<Response<ResponseStream<pb::Entry>>, Error> {
        let limit = request.message().limit.max(0);
        let entries = futures_util::stream::iter(1..=limit).map(|n| {
            Ok(pb::Entry {
                amount_cents: i64::from(n) * 100,
                kind: pb::Kind::Credit.into(),
                sequence: n as u64,
                at: Some(pbjson_types::Timestamp {
                    seconds: 1_700_000_000 + i64::from(n),
                    nanos: 0,
                }),
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(entries)))
    }

    async fn sum(
        &self,
        request: Request<Streaming<pb::Entry>>,
    ) -> Result<Response<pb::SumResponse>, Error> {
        let mut entries = request.into_message();
        let mut total = pb::SumResponse::default();
        while let Some(entry) = entries.message().await? {
            total.total_cents += signed(&entry);
            total.count += 1;
        }
        Ok(Response::new(total))
    }

    async fn mirror(
        &self,
        request: Request<Streaming<pb::Entry>>,
    ) -> Result<Response<ResponseStream<pb::Entry>>, Error> {
        let mirrored = request.into_message().enumerate().map(|(i, entry)| {
            entry.map(|mut entry| {
                entry.sequence = i as u64 + 1;
                entry
            })
        });
        Ok(Response::new(Box::pin(mirrored)))
    }
}

/// A router serving [`Ledger`].
pub fn router() -> Router {
    pb::register_ledger_service(Router::new(), Ledger)
}
