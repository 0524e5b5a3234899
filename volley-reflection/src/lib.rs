//! gRPC server reflection for Volley servers: `grpc.reflection.v1.ServerReflection` and its
//! predecessor `grpc.reflection.v1alpha.ServerReflection`, both on one [`Router`].
//!
//! Reflection lets tools (`buf curl`, `grpcurl`, Postman, grpcio's descriptor database)
//! list a server's services and fetch the protobuf descriptors they need to call them,
//! without a copy of the server's protos.
//!
//! The descriptors come from encoded `google.protobuf.FileDescriptorSet`s: the
//! `FILE_DESCRIPTOR_SET` constant that `volley-build` emits with
//! `.file_descriptor_set(true)`, the `_volley.binpb` file it writes next to the generated
//! code, or the output of `buf build -o` / `protoc --include_imports
//! --descriptor_set_out`. Include imports, or reflection cannot send them along.
//!
//! ```
//! use volley_reflection::Reflection;
//!
//! # fn main() -> Result<(), volley_reflection::ReflectionError> {
//! let (_reporter, health) = volley_health::health_service();
//! let router = health.register(volley::Router::new());
//! let router = Reflection::from_file_descriptor_set(volley_health::FILE_DESCRIPTOR_SET)?
//!     .with_services_of(&router)
//!     .register(router);
//! # drop(router);
//! # Ok(())
//! # }
//! ```
//!
//! What the service answers:
//!
//! - `file_by_filename` and `file_containing_symbol` (packages, messages and nested messages,
//!   enums and their values, fields, oneofs, extensions, services, methods as
//!   `pkg.Service.Method`) and `file_containing_extension`: the defining file followed by
//!   every file it depends on, directly or not;
//! - `all_extension_numbers_of_type`: the known extension numbers of a message;
//! - `list_services`: the services named with [`Reflection::with_service`] /
//!   [`Reflection::with_services_of`], or else every service in the descriptors, plus the two
//!   reflection services themselves.
//!
//! An unknown name is answered with an `ErrorResponse` of code 5 (`NOT_FOUND`), and the
//! stream goes on.

mod index;

use std::sync::Arc;

use futures_util::StreamExt as _;
use volley::{Code, Error, Request, Response, ResponseStream, Router, Streaming};

use crate::index::Index;
pub use crate::index::ReflectionError;
use crate::proto::grpc::reflection::{v1, v1alpha};
use v1::server_reflection_request::MessageRequest;
use v1::server_reflection_response::MessageResponse;

/// The code generated from the v1 and v1alpha reflection protos: messages, server traits,
/// registration functions and typed clients.
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
}

/// The fully-qualified name of the v1 reflection service.
pub const SERVICE_NAME_V1: &str = v1::server_reflection::SERVICE_NAME;

/// The fully-qualified name of the v1alpha reflection service.
pub const SERVICE_NAME_V1ALPHA: &str = v1alpha::server_reflection::SERVICE_NAME;

/// The encoded `google.protobuf.FileDescriptorSet` of the reflection protos themselves,
/// always part of what a [`Reflection`] serves.
pub const FILE_DESCRIPTOR_SET: &[u8] = proto::FILE_DESCRIPTOR_SET;

/// A reflection service: the descriptors it serves and the services it lists.
///
/// Build it from descriptor sets, then [`register`](Self::register) it on a router (both v1
/// and v1alpha). It always holds the reflection protos' own descriptors.
#[derive(Debug, Clone)]
pub struct Reflection {
    index: Index,
    listed: Option<Vec<String>>,
}

impl Default for Reflection {
    fn default() -> Self {
        Self::new()
    }
}

impl Reflection {
    /// A reflection service holding only the reflection protos' own descriptors.
    pub fn new() -> Self {
        let mut index = Index::default();
        index
            .add_set(FILE_DESCRIPTOR_SET)
            .expect("the reflection protos' own descriptor set is valid");
        Self {
            index,
            listed: None,
        }
    }

    /// A reflection service serving the files of an encoded `FileDescriptorSet` (and the
    /// reflection protos).
    pub fn from_file_descriptor_set(bytes: impl AsRef<[u8]>) -> Result<Self, ReflectionError> {
        Self::new().add_file_descriptor_set(bytes)
    }

    /// Adds the files of another encoded `FileDescriptorSet`. A file whose name is already
    /// known is skipped (the first added wins), so sets that share imports merge cleanly; two
    /// different files defining the same symbol are an error.
    pub fn add_file_descriptor_set(
        mut self,
        bytes: impl AsRef<[u8]>,
    ) -> Result<Self, ReflectionError> {
        self.index.add_set(bytes.as_ref())?;
        Ok(self)
    }

    /// Lists `service` (fully qualified, `pkg.Service`) in `list_services` answers. Once any
    /// service is named this way (or by [`with_services_of`](Self::with_services_of)), only
    /// named services are listed, rather than every service in the descriptors. The
    /// reflection services are listed either way.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        let service = service.into();
        let listed = self.listed.get_or_insert_with(Vec::new);
        if !listed.contains(&service) {
            listed.push(service);
        }
        self
    }

    /// Lists every service registered on `router`, as [`with_service`](Self::with_service)
    /// does for one.
    pub fn with_services_of(self, router: &Router) -> Self {
        router
            .specs()
            .iter()
            .fold(self, |this, spec| this.with_service(spec.service()))
    }

    /// The services `list_services` answers, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut services: Vec<String> = match &self.listed {
            Some(listed) => listed.clone(),
            None => self.index.services().to_vec(),
        };
        services.extend([
            SERVICE_NAME_V1.to_string(),
            SERVICE_NAME_V1ALPHA.to_string(),
        ]);
        services.sort();
        services.dedup();
        services
    }

    /// Adds `ServerReflectionInfo` of both `grpc.reflection.v1.ServerReflection` and
    /// `grpc.reflection.v1alpha.ServerReflection` to `router`.
    pub fn register(self, router: Router) -> Router {
        let shared = Arc::new(Served {
            services: self.services(),
            index: self.index,
        });
        let router = v1::register_server_reflection(router, V1(shared.clone()));
        v1alpha::register_server_reflection(router, V1Alpha(shared))
    }

    /// Answers one request, as the service does on the wire.
    pub fn answer(&self, request: &v1::ServerReflectionRequest) -> v1::ServerReflectionResponse {
        answer(&self.index, &self.services(), request)
    }
}

/// What the registered services answer from.
struct Served {
    index: Index,
    services: Vec<String>,
}

fn not_found(what: String) -> MessageResponse {
    error(Code::NotFound, what)
}

fn error(code: Code, message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(Box::new(v1::ErrorResponse {
        error_code: code.as_u32() as i32,
        error_message: message,
        ..Default::default()
    }))
}

fn files(index: &Index, at: usize) -> MessageResponse {
    MessageResponse::FileDescriptorResponse(Box::new(v1::FileDescriptorResponse {
        file_descriptor_proto: index.with_dependencies(at),
        ..Default::default()
    }))
}

fn answer(
    index: &Index,
    services: &[String],
    request: &v1::ServerReflectionRequest,
) -> v1::ServerReflectionResponse {
    let message_response = match &request.message_request {
        Some(MessageRequest::FileByFilename(name)) => match index.file_by_name(name) {
            Some(at) => files(index, at),
            None => not_found(format!("file not found: {name}")),
        },
        Some(MessageRequest::FileContainingSymbol(symbol)) => match index.symbol(symbol) {
            Some((at, _)) => files(index, at),
            None => not_found(format!("symbol not found: {symbol}")),
        },
        Some(MessageRequest::FileContainingExtension(ext)) => {
            match index.extension(&ext.containing_type, ext.extension_number) {
                Some(at) => files(index, at),
                None => not_found(format!(
                    "extension not found: {} of {}",
                    ext.extension_number, ext.containing_type
                )),
            }
        }
        Some(MessageRequest::AllExtensionNumbersOfType(name)) => {
            match index.extension_numbers(name) {
                Some(numbers) => MessageResponse::AllExtensionNumbersResponse(Box::new(
                    v1::ExtensionNumberResponse {
                        base_type_name: index::unqualify(name).to_string(),
                        extension_number: numbers,
                        ..Default::default()
                    },
                )),
                None => not_found(format!("message type not found: {name}")),
            }
        }
        Some(MessageRequest::ListServices(_)) => {
            MessageResponse::ListServicesResponse(Box::new(v1::ListServiceResponse {
                service: services
                    .iter()
                    .map(|name| v1::ServiceResponse {
                        name: name.clone(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }))
        }
        None => error(
            Code::InvalidArgument,
            "the request sets no message_request".to_string(),
        ),
    };
    v1::ServerReflectionResponse {
        valid_host: request.host.clone(),
        original_request: request.clone().into(),
        message_response: Some(message_response),
        ..Default::default()
    }
}

/// The v1 service.
struct V1(Arc<Served>);

impl v1::ServerReflection for V1 {
    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1::ServerReflectionRequest>>,
    ) -> Result<Response<ResponseStream<v1::ServerReflectionResponse>>, Error> {
        let served = self.0.clone();
        let answers = request
            .into_message()
            .map(move |r| r.map(|r| answer(&served.index, &served.services, &r)));
        Ok(Response::new(Box::pin(answers)))
    }
}

/// The v1alpha service: the same messages under another package, so requests and answers
/// are carried over to and from v1 through their (identical) binary encoding.
struct V1Alpha(Arc<Served>);

fn convert<A: buffa::Message, B: buffa::Message>(message: &A) -> Result<B, Error> {
    B::decode_from_slice(&message.encode_to_vec())
        .map_err(|e| Error::from_source(Code::Internal, e))
}

impl v1alpha::ServerReflection for V1Alpha {
    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1alpha::ServerReflectionRequest>>,
    ) -> Result<Response<ResponseStream<v1alpha::ServerReflectionResponse>>, Error> {
        let served = self.0.clone();
        let answers = request.into_message().map(move |r| {
            let request: v1::ServerReflectionRequest = convert(&r?)?;
            convert(&answer(&served.index, &served.services, &request))
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

/// The README's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
