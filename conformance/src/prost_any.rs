//! `google.protobuf.Any` for the prost build of the conformance programs, with the canonical
//! proto3 JSON form (`{"@type": "type.googleapis.com/<name>", ...fields}`, or `"value"` for a
//! well-known type with a special JSON form).
//!
//! pbjson-types' `Any` writes JSON as `{"typeUrl", "value"}` (not canonical), and canonical
//! JSON needs to know the packed type, so this crate maps `.google.protobuf.Any` here (an
//! extern path) and resolves type names against the conformance messages and the well-known
//! types it knows.

use serde::de::Error as _;
use serde::ser::Error as _;

use crate::prost_pb as pb;

const TYPE_URL_PREFIX: &str = "type.googleapis.com/";

/// A packed message: its type URL and binary encoding.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Any {
    /// `type.googleapis.com/<fully.qualified.Name>`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The message's binary encoding.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

impl Any {
    /// Packs `message` as `type.googleapis.com/<name>`.
    pub fn pack<M: prost::Message>(name: &str, message: &M) -> Self {
        Self {
            type_url: format!("{TYPE_URL_PREFIX}{name}"),
            value: message.encode_to_vec(),
        }
    }
}

/// Whether a type's JSON is not an object, so that inside an `Any` it goes in `"value"`.
fn is_special(name: &str) -> bool {
    matches!(
        name,
        "google.protobuf.Duration"
            | "google.protobuf.Timestamp"
            | "google.protobuf.FieldMask"
            | "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.Struct"
            | "google.protobuf.BoolValue"
            | "google.protobuf.BytesValue"
            | "google.protobuf.DoubleValue"
            | "google.protobuf.FloatValue"
            | "google.protobuf.Int32Value"
            | "google.protobuf.Int64Value"
            | "google.protobuf.StringValue"
            | "google.protobuf.UInt32Value"
            | "google.protobuf.UInt64Value"
    )
}

/// Calls `$body` with `$t` bound to the Rust type of the message named `$name`.
macro_rules! with_type {
    ($name:expr, $t:ident => $body:expr, else $other:expr) => {
        match $name {
            "connectrpc.conformance.v1.UnaryRequest" => {
                type $t = pb::UnaryRequest;
                $body
            }
            "connectrpc.conformance.v1.IdempotentUnaryRequest" => {
                type $t = pb::IdempotentUnaryRequest;
                $body
            }
            "connectrpc.conformance.v1.ServerStreamRequest" => {
                type $t = pb::ServerStreamRequest;
                $body
            }
            "connectrpc.conformance.v1.ClientStreamRequest" => {
                type $t = pb::ClientStreamRequest;
                $body
            }
            "connectrpc.conformance.v1.BidiStreamRequest" => {
                type $t = pb::BidiStreamRequest;
                $body
            }
            "connectrpc.conformance.v1.UnimplementedRequest" => {
                type $t = pb::UnimplementedRequest;
                $body
            }
            "connectrpc.conformance.v1.ConformancePayload.RequestInfo" => {
                type $t = pb::conformance_payload::RequestInfo;
                $body
            }
            "connectrpc.conformance.v1.ConformancePayload" => {
                type $t = pb::ConformancePayload;
                $body
            }
            "connectrpc.conformance.v1.Header" => {
                type $t = pb::Header;
                $body
            }
            "connectrpc.conformance.v1.Error" => {
                type $t = pb::Error;
                $body
            }
            "google.protobuf.Empty" => {
                type $t = pbjson_types::Empty;
                $body
            }
            "google.protobuf.Duration" => {
                type $t = pbjson_types::Duration;
                $body
            }
            "google.protobuf.Timestamp" => {
                type $t = pbjson_types::Timestamp;
                $body
            }
            "google.protobuf.Struct" => {
                type $t = pbjson_types::Struct;
                $body
            }
            "google.protobuf.Value" => {
                type $t = pbjson_types::Value;
                $body
            }
            "google.protobuf.StringValue" => {
                type $t = pbjson_types::StringValue;
                $body
            }
            "google.protobuf.Int32Value" => {
                type $t = pbjson_types::Int32Value;
                $body
            }
            "google.protobuf.Int64Value" => {
                type $t = pbjson_types::Int64Value;
                $body
            }
            "google.protobuf.BoolValue" => {
                type $t = pbjson_types::BoolValue;
                $body
            }
            "google.protobuf.BytesValue" => {
                type $t = pbjson_types::BytesValue;
                $body
            }
            _ => $other,
        }
    };
}

impl serde::Serialize for Any {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let name = self.type_url.rsplit('/').next().unwrap_or_default();
        let fields: serde_json::Value = with_type!(name, T => {
            let message = <T as prost::Message>::decode(&self.value[..]).map_err(S::Error::custom)?;
            serde_json::to_value(message).map_err(S::Error::custom)?
        }, else return Err(S::Error::custom(format!("Any holds an unknown type {:?}", self.type_url))));
        let mut object = serde_json::Map::new();
        object.insert("@type".into(), self.type_url.clone().into());
        match fields {
            serde_json::Value::Object(map) if !is_special(name) => object.extend(map),
            other => {
                object.insert("value".into(), other);
            }
        }
        serde::Serialize::serialize(&object, serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Any {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object: serde_json::Map<String, serde_json::Value> =
            serde::Deserialize::deserialize(deserializer)?;
        let type_url = match object.remove("@type") {
            Some(serde_json::Value::String(url)) => url,
            _ => return Err(D::Error::custom("Any without a string \"@type\"")),
        };
        let name = type_url.rsplit('/').next().unwrap_or_default().to_string();
        let fields = if is_special(&name) {
            object.remove("value").unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Object(object)
        };
        let value = with_type!(name.as_str(), T => {
            let message: T = serde_json::from_value(fields).map_err(D::Error::custom)?;
            prost::Message::encode_to_vec(&message)
        }, else return Err(D::Error::custom(format!("Any holds an unknown type {type_url:?}"))));
        Ok(Self { type_url, value })
    }
}
