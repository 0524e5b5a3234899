//! Loading descriptors at run time: from an encoded `FileDescriptorSet` (bytes or a file) or
//! from a server's `grpc.reflection.v1` service.

use std::collections::HashSet;
use std::path::Path;

use prost_reflect::{DescriptorPool, MessageDescriptor, MethodDescriptor};
use v1::server_reflection_request::MessageRequest;
use v1::server_reflection_response::MessageResponse;
use volley::client::Transport;
use volley::{CallOptions, Client, Code, Error, Idempotency, Spec, StreamType};
use volley_reflection::proto::grpc::reflection::v1;

/// The most services [`Schema::from_reflection`] asks a server about: a bound on the files a
/// misbehaving server can make it fetch.
const MAX_REFLECTED_SERVICES: usize = 1024;

/// The services and messages known at run time: a `prost_reflect::DescriptorPool`.
#[derive(Debug, Clone)]
pub struct Schema {
    pool: DescriptorPool,
}

/// One method of a [`Schema`]: its [`Spec`] (made at run time, with an interned procedure
/// name) and its descriptor.
#[derive(Debug, Clone)]
pub struct Method {
    spec: Spec,
    descriptor: MethodDescriptor,
}

impl Method {
    /// A method from its descriptor: the path `/package.Service/Method`, the stream type and
    /// the `idempotency_level` option.
    pub fn new(descriptor: MethodDescriptor) -> Self {
        let stream_type = match (
            descriptor.is_client_streaming(),
            descriptor.is_server_streaming(),
        ) {
            (false, false) => StreamType::Unary,
            (true, false) => StreamType::ClientStream,
            (false, true) => StreamType::ServerStream,
            (true, true) => StreamType::BidiStream,
        };
        let idempotency = match descriptor
            .method_descriptor_proto()
            .options
            .as_ref()
            .and_then(|o| o.idempotency_level)
        {
            Some(1) => Idempotency::NoSideEffects,
            Some(2) => Idempotency::Idempotent,
            _ => Idempotency::Unknown,
        };
        let path = format!(
            "/{}/{}",
            descriptor.parent_service().full_name(),
            descriptor.name()
        );
        Method {
            spec: Spec::interned(&path, stream_type, idempotency),
            descriptor,
        }
    }

    /// The method's spec, for [`Router`](volley::Router) and [`Client`].
    pub fn spec(&self) -> Spec {
        self.spec
    }

    /// The method's descriptor.
    pub fn descriptor(&self) -> &MethodDescriptor {
        &self.descriptor
    }

    /// The request message's descriptor.
    pub fn input(&self) -> MessageDescriptor {
        self.descriptor.input()
    }

    /// The response message's descriptor.
    pub fn output(&self) -> MessageDescriptor {
        self.descriptor.output()
    }
}

impl Schema {
    /// A schema over an existing pool.
    pub fn new(pool: DescriptorPool) -> Self {
        Schema { pool }
    }

    /// Decodes an encoded `google.protobuf.FileDescriptorSet` (`buf build -o`, `protoc
    /// --include_imports --descriptor_set_out`, or `volley-build`'s `FILE_DESCRIPTOR_SET`).
    /// Every imported file must be in the set.
    pub fn from_file_descriptor_set(bytes: &[u8]) -> Result<Self, Error> {
        DescriptorPool::decode(bytes)
            .map(Schema::new)
            .map_err(|e| invalid("the file descriptor set", e))
    }

    /// Reads and decodes a `FileDescriptorSet` file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| {
            Error::new(
                Code::InvalidArgument,
                format!("reading {}: {e}", path.display()),
            )
            .with_source(e)
        })?;
        Self::from_file_descriptor_set(&bytes)
    }

    /// Asks a server's `grpc.reflection.v1.ServerReflection` service (over one stream) for
    /// its services, then for the file defining each one with everything it imports.
    pub async fn from_reflection<T: Transport>(client: &Client<T>) -> Result<Self, Error> {
        let mut stream = client
            .bidi_stream::<v1::ServerReflectionRequest, v1::ServerReflectionResponse>(
                v1::server_reflection::SERVER_REFLECTION_INFO,
                CallOptions::new(),
            )
            .await?;
        let ask = |request: MessageRequest| v1::ServerReflectionRequest {
            message_request: Some(request),
            ..Default::default()
        };
        stream
            .send(ask(MessageRequest::ListServices(String::new())))
            .await?;
        let services = match reply(&mut stream).await? {
            MessageResponse::ListServicesResponse(list) => list
                .service
                .into_iter()
                .map(|s| s.name)
                .take(MAX_REFLECTED_SERVICES)
                .collect::<Vec<_>>(),
            other => return Err(unexpected("list_services", &other)),
        };
        let mut names = HashSet::new();
        let mut files = Vec::new();
        for service in services {
            stream
                .send(ask(MessageRequest::FileContainingSymbol(service.clone())))
                .await?;
            let encoded = match reply(&mut stream).await? {
                MessageResponse::FileDescriptorResponse(r) => r.file_descriptor_proto,
                other => return Err(unexpected(&service, &other)),
            };
            for bytes in encoded {
                let file: prost_reflect::prost_types::FileDescriptorProto =
                    prost::Message::decode(&bytes[..])
                        .map_err(|e| invalid("a reflected file descriptor", e))?;
                if names.insert(file.name().to_string()) {
                    files.push(file);
                }
            }
        }
        stream.close_send();
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_protos(files)
            .map_err(|e| invalid("the reflected file descriptors", e))?;
        Ok(Schema::new(pool))
    }

    /// The descriptor pool.
    pub fn pool(&self) -> &DescriptorPool {
        &self.pool
    }

    /// The fully-qualified names of the services, in the pool's order.
    pub fn services(&self) -> Vec<String> {
        self.pool
            .services()
            .map(|s| s.full_name().to_string())
            .collect()
    }

    /// Every method of every service.
    pub fn methods(&self) -> Vec<Method> {
        self.pool
            .services()
            .flat_map(|s| s.methods().collect::<Vec<_>>())
            .map(Method::new)
            .collect()
    }

    /// The method at a path (`/package.Service/Method`), if the schema has it.
    pub fn method(&self, path: &str) -> Option<Method> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let service = self.pool.get_service_by_name(service)?;
        let found = service.methods().find(|m| m.name() == method)?;
        Some(Method::new(found))
    }

    /// A message type by its fully-qualified name.
    pub fn message(&self, name: &str) -> Option<MessageDescriptor> {
        self.pool.get_message_by_name(name)
    }
}

/// The next reflection answer; an `ErrorResponse` becomes the error it carries.
async fn reply(
    stream: &mut volley::BidiStream<v1::ServerReflectionRequest, v1::ServerReflectionResponse>,
) -> Result<MessageResponse, Error> {
    let response = stream
        .message()
        .await?
        .ok_or_else(|| Error::unavailable("the reflection stream ended early"))?;
    match response.message_response {
        Some(MessageResponse::ErrorResponse(e)) => Err(Error::new(
            u32::try_from(e.error_code)
                .ok()
                .and_then(Code::from_u32)
                .unwrap_or(Code::Unknown),
            format!("reflection: {}", e.error_message),
        )),
        Some(answer) => Ok(answer),
        None => Err(Error::internal(
            "reflection answered with no message_response",
        )),
    }
}

fn unexpected(asked: &str, got: &MessageResponse) -> Error {
    let kind = match got {
        MessageResponse::FileDescriptorResponse(_) => "file_descriptor_response",
        MessageResponse::AllExtensionNumbersResponse(_) => "all_extension_numbers_response",
        MessageResponse::ListServicesResponse(_) => "list_services_response",
        MessageResponse::ErrorResponse(_) => "error_response",
    };
    Error::internal(format!("reflection answered {asked} with a {kind}"))
}

fn invalid(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(Code::InvalidArgument, format!("{what} is invalid: {e}")).with_source(e)
}
