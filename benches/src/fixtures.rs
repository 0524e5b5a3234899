//! The requests every benchmark sends, the answers they must get, and the checksum the ingest
//! handlers compute (the same function in every contender).

use buffa::Message as _;

use crate::proto::owned::bench::v1 as pb;

/// Bytes in the payload of an echo request.
pub const ECHO_PAYLOAD: usize = 64;
/// Records in an ingest batch.
pub const INGEST_RECORDS: usize = 50;
/// Messages in the load benchmark's server stream.
pub const STREAM_TICKS: u32 = 100;
/// Messages in the criterion streams (server and client).
pub const SHORT_STREAM: u32 = 10;
/// Bytes in the payload of each tick.
pub const TICK_PAYLOAD: usize = 16;

/// A deterministic payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// The echo request: [`ECHO_PAYLOAD`] bytes.
pub fn echo_request() -> pb::EchoRequest {
    pb::EchoRequest {
        payload: payload(ECHO_PAYLOAD),
        ..Default::default()
    }
}

/// A batch of [`INGEST_RECORDS`] log records (about 16 KB encoded): a timestamp, a level, a
/// ~110-byte message, five attributes, a service name and a 16-byte trace id each.
pub fn ingest_request() -> pb::IngestRequest {
    let records = (0..INGEST_RECORDS)
        .map(|i| pb::LogRecord {
            time: buffa::MessageField::some(buffa_types::google::protobuf::Timestamp {
                seconds: 1_764_000_000 + i as i64,
                nanos: 123_456_789,
                ..Default::default()
            }),
            level: match i % 4 {
                0 => pb::Level::LEVEL_DEBUG,
                1 => pb::Level::LEVEL_INFO,
                2 => pb::Level::LEVEL_WARN,
                _ => pb::Level::LEVEL_ERROR,
            }
            .into(),
            message: format!(
                "request {i:04} served in 12.5 ms: GET /api/v1/orders?customer=4711&page=3 -> 200, 5123 bytes, cache miss"
            ),
            attributes: (0..5)
                .map(|k| (format!("attribute-{k}"), format!("value-{i:02}-{k}-abcdef")))
                .collect(),
            service: "orders-frontend".into(),
            trace_id: (0..16u8).map(|b| (b * 7 + i as u8) ^ 0x5a).collect(),
            ..Default::default()
        })
        .collect();
    pb::IngestRequest {
        records,
        ..Default::default()
    }
}

/// A request for `count` ticks of [`TICK_PAYLOAD`] bytes.
pub fn ticks_request(count: u32) -> pb::TicksRequest {
    pb::TicksRequest {
        count,
        payload: payload(TICK_PAYLOAD),
        ..Default::default()
    }
}

/// Folds bytes into a running checksum.
pub fn mix(sum: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(sum.rotate_left(5) ^ bytes.len() as u64, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(u64::from(*b))
        })
}

/// The digest of one map entry; entries are combined with XOR, so map order does not matter.
pub fn entry(key: &str, value: &str) -> u64 {
    mix(mix(0, key.as_bytes()), value.as_bytes())
}

/// The fields of one log record, as every contender reads them.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Timestamp seconds.
    pub seconds: i64,
    /// Timestamp nanoseconds.
    pub nanos: i32,
    /// The level's number.
    pub level: i32,
    /// The message text.
    pub message: &'a str,
    /// The service name.
    pub service: &'a str,
    /// The trace id.
    pub trace_id: &'a [u8],
    /// The XOR of [`entry`] over the attributes.
    pub attributes: u64,
}

/// Adds one record to a running checksum.
pub fn add_record(sum: u64, r: Record<'_>) -> u64 {
    let mut sum = sum.wrapping_add(r.seconds as u64 ^ u64::from(r.nanos as u32));
    sum = sum.wrapping_add(r.level as u64);
    sum = mix(sum, r.message.as_bytes());
    sum = mix(sum, r.service.as_bytes());
    sum = mix(sum, r.trace_id);
    sum.wrapping_add(r.attributes)
}

/// What the owned Volley handler (and every other one) answers to `request`.
pub fn ingest_answer(request: &pb::IngestRequest) -> pb::IngestResponse {
    let mut sum = 0;
    for r in &request.records {
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
    pb::IngestResponse {
        accepted: request.records.len() as u32,
        checksum: sum,
        ..Default::default()
    }
}

/// The encoded echo request.
pub fn echo_bytes() -> Vec<u8> {
    echo_request().encode_to_vec()
}

/// The encoded ingest batch.
pub fn ingest_bytes() -> Vec<u8> {
    ingest_request().encode_to_vec()
}

/// Wraps an encoded message in a gRPC / Connect-streaming envelope (uncompressed).
pub fn envelope(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}
