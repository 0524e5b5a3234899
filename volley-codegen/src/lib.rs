//! Turns protobuf service descriptors into Volley service code.
//!
//! Descriptors in, Rust source out: this crate does no I/O. For a service
//! `ElizaService` it emits a module `eliza_service` holding
//!
//! - `SERVICE_NAME`, and per method a procedure path (`SAY_PROCEDURE`) and a
//!   `volley::Spec` (`SAY`: stream type, idempotency level, encoded method
//!   options),
//! - the server trait `ElizaService`, one async method per RPC (all four
//!   kinds) whose default body answers `unimplemented`,
//! - `register_eliza_service`, adding an implementation to a `volley::Router`,
//! - the typed client `ElizaServiceClient`, with a plain method per RPC and
//!   a `_with` variant taking `volley::CallOptions`,
//!
//! and re-exports the trait, function and client next to the package's
//! messages. Inside the module, runtime names are imported short; messages
//! are named by path, resolved exactly as `buffa-codegen` lays them out.
//! Proto comments become rustdoc. The code holds no logic of its own — it
//! calls into the runtime — and checks at compile time that the runtime is
//! compatible ([`RUNTIME_VERSION_CHECK`]).
//!
//! Most users reach this crate through `volley-build` (from `build.rs`) or
//! the `protoc-gen-volley` plugin (from `buf generate` or `protoc`); see
//! [`plugin`] for the plugin's options.
//!
//! ```
//! # fn main() -> Result<(), volley_codegen::Error> {
//! # let files = Vec::new();
//! # let files_to_generate: Vec<String> = Vec::new();
//! use volley_codegen::{Gate, Options};
//!
//! let options = Options::new().client(Gate::Feature("client".into()));
//! for file in volley_codegen::generate(&files, &files_to_generate, &options)? {
//!     println!("{}: {} bytes", file.name, file.content.len());
//! }
//! # Ok(())
//! # }
//! ```

mod docs;
mod names;
pub mod plugin;
mod prost;
mod service;
mod tree;

use std::collections::BTreeMap;

use buffa_codegen::context::CodeGenContext;
use buffa_codegen::generated::descriptor::FileDescriptorProto;
pub use buffa_codegen::{CodeGenConfig, GeneratedFile, GeneratedFileKind, IncludeMode};
use proc_macro2::TokenStream;
use quote::quote;

use crate::names::Namer;
pub use crate::prost::WELL_KNOWN_TYPES as PROST_WELL_KNOWN_TYPES;
use crate::service::Service;
pub use crate::tree::module_tree;

/// Which library the message types come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MessageLibrary {
    /// `buffa`: messages laid out by `buffa-codegen`, views available. The default.
    #[default]
    Buffa,
    /// `prost`: messages laid out by `prost-build` (`UpperCamelCase` types, nested messages in
    /// a `snake_case` module of their parent), JSON by `pbjson-build`, well-known types from
    /// `pbjson-types` unless `.google.protobuf` is mapped by an extern path. Every message of
    /// the generated files also gets a `volley::prost_message!` line (in
    /// `<package>.__volley_messages.rs`), so it implements `volley::Message`. Views are not
    /// available.
    Prost,
}

/// The statement every generated file starts with. It names a constant that
/// only a compatible `volley` runtime defines, so generated code built
/// against an incompatible runtime fails with an error naming the required
/// version.
pub const RUNTIME_VERSION_CHECK: &str =
    "const _: () = ::volley::__private::GENERATED_CODE_REQUIRES_VOLLEY_0_1;";

/// Errors from [`generate`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A descriptor lacks its name.
    #[error("descriptor set has a {0} without a name")]
    MissingName(&'static str),
    /// A method lacks its input or output type.
    #[error("method {0} lacks an input or output type")]
    MissingType(String),
    /// A method names a message the descriptor set does not define.
    #[error("message type {0} is not in the descriptor set")]
    UnknownType(String),
    /// A file to generate is not in the descriptor set.
    #[error("file to generate {0} is not in the descriptor set")]
    FileNotFound(String),
    /// A configured Rust path does not parse.
    #[error("invalid Rust path {0:?} in options")]
    InvalidPath(String),
    /// The generated code does not parse as Rust (a generator bug).
    #[error("generated code for {file} does not parse: {source}")]
    Syntax {
        /// The output file.
        file: String,
        /// The parser's complaint.
        source: syn::Error,
    },
    /// A plugin option is malformed.
    #[error("{0}")]
    Option(String),
    /// Message generation by `buffa-codegen` failed.
    #[error("generating messages: {0}")]
    Buffa(#[from] buffa_codegen::CodeGenError),
}

/// Whether a part of the generated code (client or server) is emitted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Gate {
    /// Not emitted.
    Off,
    /// Emitted unconditionally.
    #[default]
    On,
    /// Emitted behind `#[cfg(feature = "...")]` of the crate that includes
    /// the generated code.
    Feature(String),
}

impl Gate {
    /// The `#[cfg]` attribute to put on gated items (empty when ungated), or
    /// `None` when the items are not emitted at all.
    fn cfg(&self) -> Option<TokenStream> {
        match self {
            Self::Off => None,
            Self::On => Some(TokenStream::new()),
            Self::Feature(name) => Some(quote!(#[cfg(feature = #name)])),
        }
    }
}

/// What to generate and how generated code finds the message types.
#[derive(Debug, Clone, Default)]
pub struct Options {
    buffa: CodeGenConfig,
    message_module: Option<String>,
    server: Gate,
    client: Gate,
    file_per_package: bool,
    request_views: Vec<String>,
    library: MessageLibrary,
}

impl Options {
    /// Server and client, one file per proto, messages in the same module as
    /// the services.
    pub fn new() -> Self {
        Self::default()
    }

    /// The configuration `buffa-codegen` generates the messages with (default:
    /// `CodeGenConfig::default()`). Message paths are resolved through it, so
    /// pass the same configuration (extern paths, type-name prefix) that
    /// produces the messages.
    pub fn buffa_config(mut self, config: CodeGenConfig) -> Self {
        self.buffa = config;
        self
    }

    /// The configuration message paths are resolved through.
    pub fn buffa(&self) -> &CodeGenConfig {
        &self.buffa
    }

    /// The Rust path of the module holding buffa's package tree, e.g.
    /// `crate::proto`: message `.a.b.Msg` is then named `crate::proto::a::b::Msg`.
    ///
    /// Default: unset, meaning the service code is placed in the same module
    /// as its package's messages (as `volley-build` and buffa's companion
    /// files do), and messages are named relative to it (`Msg`,
    /// `super::super::other::Msg`). Extern paths (such as the well-known
    /// types in `::buffa_types`) are absolute either way.
    pub fn message_module(mut self, path: impl Into<String>) -> Self {
        self.message_module = Some(path.into());
        self
    }

    /// Whether the server trait and registration function are emitted
    /// (default: [`Gate::On`]).
    pub fn server(mut self, gate: Gate) -> Self {
        self.server = gate;
        self
    }

    /// Whether the typed client is emitted (default: [`Gate::On`]).
    pub fn client(mut self, gate: Gate) -> Self {
        self.client = gate;
        self
    }

    /// Methods whose server-side request is a zero-copy [`volley::View`] of the request
    /// message instead of the owned message: `Request<View<Foo>>` for unary and
    /// server-streaming methods, `Request<Streaming<View<Foo>>>` (every received message a
    /// view) for client- and bidi-streaming ones. Each entry is a fully-qualified proto name
    /// selecting what it names and everything inside: a method (`.pkg.Service.Method`), a
    /// service (`.pkg.Service`), a package (`.pkg`), or `.` for every method. The leading dot
    /// may be left out. Repeatable; clients are unaffected.
    ///
    /// Default: none — handlers take owned messages, which are easier to keep, change and move
    /// across tasks. A view borrows the request buffer and keeps the whole buffer alive while
    /// it lives; it saves an allocation per string, bytes, repeated and map field, which pays
    /// on decode-heavy requests.
    ///
    /// [`volley::View`]: https://docs.rs/volley-rpc/latest/volley/struct.View.html
    pub fn request_views(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.request_views.extend(paths.into_iter().map(|p| {
            let p = p.into();
            if p.starts_with('.') {
                p
            } else {
                format!(".{p}")
            }
        }));
        self
    }

    /// Whether method `.pkg.Service.Method` takes a view of its request
    /// ([`request_views`](Self::request_views)).
    pub fn is_view_request(&self, method: &str) -> bool {
        self.request_views.iter().any(|p| {
            p == "."
                || method
                    .strip_prefix(p.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    }

    /// Which library generates the message types, and so how service code names them.
    /// Default: [`MessageLibrary::Buffa`]. With [`MessageLibrary::Prost`], extern paths are
    /// still read from [`buffa_config`](Self::buffa_config) (as `prost-build`'s
    /// `extern_path`), and request views are an error.
    pub fn message_library(mut self, library: MessageLibrary) -> Self {
        self.library = library;
        self
    }

    /// The message library ([`message_library`](Self::message_library)).
    pub fn library(&self) -> MessageLibrary {
        self.library
    }

    /// Emit one file per proto package (`<package>.__volley.rs`) instead of
    /// one per proto file (`<path.stem>.__volley.rs`). Default: `false`.
    pub fn file_per_package(mut self, yes: bool) -> Self {
        self.file_per_package = yes;
        self
    }
}

/// Generates service code for the services in `files_to_generate`.
///
/// `files` is the full descriptor set, imports included, as in a
/// `CodeGeneratorRequest`; every file must carry its source info for
/// comments to become docs. Files without services produce no output.
///
/// The result has kind [`GeneratedFileKind::Companion`], ready for
/// [`buffa_codegen::apply_companions`] (which includes each file into its
/// package's module next to the messages), or to be written and included on
/// their own with [`Options::message_module`] set.
pub fn generate(
    files: &[FileDescriptorProto],
    files_to_generate: &[String],
    options: &Options,
) -> Result<Vec<GeneratedFile>, Error> {
    let ctx = CodeGenContext::for_generate(files, files_to_generate, &options.buffa);
    let prost = match options.library {
        MessageLibrary::Buffa => None,
        MessageLibrary::Prost => {
            if !options.request_views.is_empty() {
                return Err(Error::Option(
                    "request views are available with buffa messages only: a prost build \
                     cannot take request_views"
                        .into(),
                ));
            }
            Some(prost::ProstResolver::new(
                files,
                &options.buffa.extern_paths,
                options.message_module.as_deref(),
            ))
        }
    };
    let resolver = Resolver::new(&ctx, options.message_module.as_deref())?;

    // Group the requested files by package, keeping the request order inside.
    let mut packages: BTreeMap<&str, Vec<&FileDescriptorProto>> = BTreeMap::new();
    for name in files_to_generate {
        let file = files
            .iter()
            .find(|f| f.name.as_deref() == Some(name.as_str()))
            .ok_or_else(|| Error::FileNotFound(name.clone()))?;
        packages
            .entry(file.package.as_deref().unwrap_or(""))
            .or_default()
            .push(file);
    }

    let mut out = Vec::new();
    for (package, package_files) in packages {
        let mut namer = package_namer(files, package, &options.buffa.type_name_prefix);
        let mut per_file = Vec::new();
        for file in &package_files {
            let comments = docs::Comments::of(file);
            let mut items = TokenStream::new();
            for (i, descriptor) in file.service.iter().enumerate() {
                let service = Service::from_descriptor(
                    descriptor,
                    package,
                    comments
                        .service(i)
                        .map(docs::rustdoc_lines)
                        .unwrap_or_default(),
                    |m| {
                        comments
                            .method(i, m)
                            .map(docs::rustdoc_lines)
                            .unwrap_or_default()
                    },
                    |fqn| match &prost {
                        Some(prost) => prost.resolve(fqn, package),
                        None => resolver.resolve(fqn, package),
                    },
                    |method| options.is_view_request(method),
                    &mut namer,
                )?;
                items.extend(service.emit(&options.server, &options.client));
            }
            if !file.service.is_empty() {
                per_file.push((file.name.clone().unwrap_or_default(), items));
            }
        }
        if let Some(prost) = &prost
            && let Some(items) = prost.message_impls(&package_files)?
        {
            let sources: Vec<&str> = package_files
                .iter()
                .map(|f| f.name.as_deref().unwrap_or_default())
                .collect();
            let name = format!("{}.__volley_messages.rs", package_stem(package));
            out.push(render(name, package, &sources, items)?);
        }
        if per_file.is_empty() {
            continue;
        }
        if options.file_per_package {
            let sources: Vec<&str> = per_file.iter().map(|(n, _)| n.as_str()).collect();
            let items: TokenStream = per_file.iter().map(|(_, t)| t.clone()).collect();
            let name = format!("{}.__volley.rs", package_stem(package));
            out.push(render(name, package, &sources, items)?);
        } else {
            for (source, items) in per_file {
                let name = format!("{}.__volley.rs", buffa_codegen::proto_path_to_stem(&source));
                out.push(render(name, package, &[&source], items)?);
            }
        }
    }
    Ok(out)
}

/// The stem of a package's file: its dotted name, or `__volley` for the
/// unnamed package.
fn package_stem(package: &str) -> &str {
    if package.is_empty() {
        "__volley"
    } else {
        package
    }
}

/// Formats one output file: header, version check, items.
fn render(
    name: String,
    package: &str,
    sources: &[&str],
    items: TokenStream,
) -> Result<GeneratedFile, Error> {
    let file: syn::File = syn::parse2(items).map_err(|source| Error::Syntax {
        file: name.clone(),
        source,
    })?;
    let mut content = String::from("// @generated by volley-codegen. DO NOT EDIT.\n");
    for source in sources {
        content.push_str(&format!("// source: {source}\n"));
    }
    content.push('\n');
    content.push_str(RUNTIME_VERSION_CHECK);
    content.push_str("\n\n");
    content.push_str(&space_items(&prettyplease::unparse(&file)));
    Ok(GeneratedFile {
        name,
        package: package.to_string(),
        kind: GeneratedFileKind::Companion,
        content,
    })
}

/// Separates items with a blank line: prettyplease puts none between
/// consecutive items, which makes long files hard to scan. An item starts at
/// a doc comment or attribute following the end of the previous one.
fn space_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + code.len() / 20);
    let mut previous = "";
    for line in code.lines() {
        let current = line.trim_start();
        let starts_item = ["///", "#[", "impl", "pub ", "fn "]
            .iter()
            .any(|p| current.starts_with(p));
        let ends_item = !previous.starts_with("//") && (previous == "}" || previous.ends_with(';'));
        if starts_item && ends_item {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
        previous = line.trim();
    }
    out
}

/// A namer for a package module, with the names buffa's output for that
/// package uses already taken, so service items never clash with messages.
fn package_namer(files: &[FileDescriptorProto], package: &str, type_prefix: &str) -> Namer {
    let mut taken: Vec<String> = vec!["__buffa".into(), "register_types".into()];
    for file in files
        .iter()
        .filter(|f| f.package.as_deref().unwrap_or("") == package)
    {
        for message in &file.message_type {
            let name = message.name.as_deref().unwrap_or_default();
            taken.push(format!("{type_prefix}{name}"));
            taken.push(format!("{type_prefix}{name}View"));
            taken.push(names::snake_case(name));
        }
        for e in &file.enum_type {
            taken.push(format!(
                "{type_prefix}{}",
                e.name.as_deref().unwrap_or_default()
            ));
        }
    }
    let refs: Vec<&str> = taken.iter().map(String::as_str).collect();
    Namer::with_reserved(&refs)
}

/// Maps proto message names to Rust paths the way buffa lays them out.
struct Resolver<'a> {
    ctx: &'a CodeGenContext<'a>,
    root: Option<TokenStream>,
}

impl<'a> Resolver<'a> {
    fn new(ctx: &'a CodeGenContext<'a>, message_module: Option<&str>) -> Result<Self, Error> {
        let root = message_module
            .map(|m| {
                syn::parse_str::<syn::Path>(m)
                    .map(|p| quote!(#p))
                    .map_err(|_| Error::InvalidPath(m.to_string()))
            })
            .transpose()?;
        Ok(Self { ctx, root })
    }

    /// The path of message `fqn` (`.pkg.Msg`) as seen from a service module,
    /// one level below `package`'s module.
    fn resolve(&self, fqn: &str, package: &str) -> Result<TokenStream, Error> {
        let unknown = || Error::UnknownType(fqn.to_string());
        match &self.root {
            None => {
                let path = self
                    .ctx
                    .rust_type_relative(fqn, package, 1)
                    .ok_or_else(unknown)?;
                Ok(buffa_codegen::idents::rust_path_to_tokens(&path))
            }
            Some(root) => {
                let path = self.ctx.rust_type(fqn).ok_or_else(unknown)?;
                let tokens = buffa_codegen::idents::rust_path_to_tokens(path);
                if path.starts_with("::") || path.starts_with("crate::") {
                    Ok(tokens)
                } else {
                    Ok(quote!(#root::#tokens))
                }
            }
        }
    }
}

/// The README's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
