//! `build.rs` support for Volley: compile `.proto` files into message types
//! (by `buffa`) and service code (by `volley-codegen`), with no `protoc`
//! needed — protos are parsed in pure Rust by `protox`, and the well-known
//! types (`google/protobuf/*.proto`) are built in.
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     volley_build::Config::new()
//!         .files(["proto/connectrpc/eliza/v1/eliza.proto"])
//!         .includes(["proto"])
//!         .compile()?;
//!     Ok(())
//! }
//! ```
//!
//! ```ignore
//! // src/lib.rs (ignored: needs the build script's output)
//! pub mod proto {
//!     include!(concat!(env!("OUT_DIR"), "/_volley.rs"));
//! }
//! // proto::connectrpc::eliza::v1::{SayRequest, ElizaService, ElizaServiceClient, ...}
//! ```
//!
//! Each proto package becomes a module (`connectrpc.eliza.v1` ->
//! `connectrpc::eliza::v1`) holding its messages (owned types, views, JSON)
//! and, for each service, the trait, registration function and client, plus
//! a module of procedure paths and method specs. The including crate
//! depends on `volley`, `buffa`, `serde` (the JSON impls derive it) and, when
//! the protos use well-known types, `buffa-types` (they resolve to
//! `::buffa_types::google::protobuf`).
//!
//! With the `prost` feature, [`Config::message_library`]`(`[`MessageLibrary::Prost`]`)`
//! generates prost messages instead (prost-build, JSON by pbjson-build, well-known types from
//! `pbjson-types`) with the same services, in the same layout; the default stays buffa. See
//! that method for what the including crate then depends on, and the crate README for the
//! JSON gaps of pbjson.

use std::path::{Path, PathBuf};

use buffa::Message as _;
use buffa_codegen::generated::descriptor::FileDescriptorSet;
use buffa_codegen::{CodeGenConfig, GeneratedFileKind, IncludeMode};
pub use volley_codegen::MessageLibrary;
use volley_codegen::{Gate, Options};

#[cfg(feature = "prost")]
mod prost;

/// Errors from [`Config::compile`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The protos failed to parse or type-check.
    #[error("parsing protos: {0}")]
    Parse(#[from] protox::Error),
    /// The parsed descriptors did not decode (a bug in the toolchain).
    #[error("decoding descriptors: {0}")]
    Descriptors(#[from] buffa::DecodeError),
    /// Message generation failed.
    #[error("generating messages: {0}")]
    Messages(#[from] buffa_codegen::CodeGenError),
    /// Service generation failed.
    #[error("generating services: {0}")]
    Services(#[from] volley_codegen::Error),
    /// The configuration asks for something the message library cannot do (request views
    /// with prost), or for a library this build of `volley-build` lacks (prost without its
    /// `prost` feature).
    #[error("{0}")]
    Unsupported(String),
    /// Neither [`Config::out_dir`] nor `OUT_DIR` is set.
    #[error("OUT_DIR is not set: call compile() from a build script, or set Config::out_dir")]
    NoOutDir,
    /// Reading or writing a file failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// Which protos to compile, what to generate, and where it goes.
#[derive(Debug, Clone)]
pub struct Config {
    files: Vec<PathBuf>,
    includes: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
    include_file: String,
    buffa: CodeGenConfig,
    server: Gate,
    client: Gate,
    request_views: Vec<String>,
    descriptor_const: bool,
    descriptor_path: Option<PathBuf>,
    rerun_if_changed: bool,
    print_notices: bool,
    library: MessageLibrary,
    prost_bytes: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        let mut buffa = CodeGenConfig::default();
        buffa.generate_json = true;
        Self {
            files: Vec::new(),
            includes: Vec::new(),
            out_dir: None,
            include_file: "_volley.rs".into(),
            buffa,
            server: Gate::On,
            client: Gate::On,
            request_views: Vec::new(),
            descriptor_const: false,
            descriptor_path: None,
            rerun_if_changed: true,
            print_notices: false,
            library: MessageLibrary::Buffa,
            prost_bytes: Vec::new(),
        }
    }
}

impl Config {
    /// No protos yet; server and client code; messages with views and JSON.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `.proto` files to compile, as paths on disk under one of the
    /// [`includes`](Self::includes) (e.g. `proto/pkg/v1/x.proto` with the
    /// include `proto`).
    pub fn files(mut self, files: impl IntoIterator<Item = impl AsRef<Path>>) -> Self {
        self.files
            .extend(files.into_iter().map(|f| f.as_ref().to_path_buf()));
        self
    }

    /// Adds import roots, searched in order. The well-known types
    /// (`google/protobuf/*.proto`) are always available. Default: none.
    pub fn includes(mut self, includes: impl IntoIterator<Item = impl AsRef<Path>>) -> Self {
        self.includes
            .extend(includes.into_iter().map(|f| f.as_ref().to_path_buf()));
        self
    }

    /// Where generated files go. Default: the build script's `OUT_DIR`.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Names the file, in the output directory, that includes all generated
    /// code. Default: `_volley.rs`.
    pub fn include_file(mut self, name: impl Into<String>) -> Self {
        self.include_file = name.into();
        self
    }

    /// Whether server traits and registration functions are generated.
    /// Default: `true`.
    pub fn server(mut self, yes: bool) -> Self {
        self.server = if yes { Gate::On } else { Gate::Off };
        self
    }

    /// Whether typed clients are generated. Default: `true`.
    pub fn client(mut self, yes: bool) -> Self {
        self.client = if yes { Gate::On } else { Gate::Off };
        self
    }

    /// Generates the server side behind `#[cfg(feature = "<feature>")]` of
    /// the including crate. Default: ungated.
    pub fn server_feature(mut self, feature: impl Into<String>) -> Self {
        self.server = Gate::Feature(feature.into());
        self
    }

    /// Generates clients behind `#[cfg(feature = "<feature>")]` of the
    /// including crate. Default: ungated.
    pub fn client_feature(mut self, feature: impl Into<String>) -> Self {
        self.client = Gate::Feature(feature.into());
        self
    }

    /// Makes the server handlers of the selected methods take a zero-copy [`volley::View`] of
    /// the request (`Request<View<Foo>>`, and `Request<Streaming<View<Foo>>>` for client and
    /// bidi streams) instead of the owned message. Each entry is a fully-qualified proto name
    /// selecting a method (`.pkg.Service.Method`), a service (`.pkg.Service`), a package
    /// (`.pkg`), or `.` for every method; repeatable. Clients are unaffected.
    ///
    /// Default: none. Owned messages are easier to store, change and move across tasks; a
    /// view borrows the request buffer (strings as `&str`, bytes as `&[u8]`, maps and repeated
    /// fields as views over it) and keeps the whole buffer alive while it lives. Views save an
    /// allocation per string, bytes, repeated and map field: choose them for decode-heavy
    /// methods. JSON requests are still served (parsed, then re-encoded to binary and viewed).
    ///
    /// [`volley::View`]: https://docs.rs/volley-rpc/latest/volley/struct.View.html
    pub fn request_views(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.request_views.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Uses existing Rust types for a proto package or type instead of
    /// generating them: `extern_path(".common.v1", "::common_protos::common::v1")`.
    /// The well-known types map to `::buffa_types::google::protobuf` without
    /// this. Default: none.
    pub fn extern_path(mut self, proto: impl Into<String>, rust: impl Into<String>) -> Self {
        let proto = proto.into();
        let proto = if proto.starts_with('.') {
            proto
        } else {
            format!(".{proto}")
        };
        self.buffa.extern_paths.push((proto, rust.into()));
        self
    }

    /// Replaces the message generator's configuration. Default:
    /// `CodeGenConfig::default()` with `generate_json` on (the Connect JSON
    /// codec needs it).
    pub fn buffa_config(mut self, config: CodeGenConfig) -> Self {
        self.buffa = config;
        self
    }

    /// Also puts `pub const FILE_DESCRIPTOR_SET: &[u8]` in the include file:
    /// the encoded `FileDescriptorSet` of the compiled protos and their
    /// imports, as a reflection service needs. Default: `false`.
    pub fn file_descriptor_set(mut self, yes: bool) -> Self {
        self.descriptor_const = yes;
        self
    }

    /// Also writes the encoded `FileDescriptorSet` to `path`. Default: not
    /// written.
    pub fn file_descriptor_set_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.descriptor_path = Some(path.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` for every proto read from
    /// disk. Default: `true`.
    pub fn rerun_if_changed(mut self, yes: bool) -> Self {
        self.rerun_if_changed = yes;
        self
    }

    /// Whether to print the message generator's informational notices as cargo warnings too.
    /// Default: `false`.
    ///
    /// Notices report renames and suppressed convenience accessors on valid protos (for
    /// example an `OwnedView` accessor skipped because the field is named `bytes`; the field
    /// stays reachable through `view()`). There is nothing to fix, so by default they are only
    /// written to `volley-build-notices.txt` in the output directory. Warnings that point at
    /// a real problem (a referenced package that is neither generated nor mapped, a
    /// contradictory option) are always printed.
    pub fn print_notices(mut self, yes: bool) -> Self {
        self.print_notices = yes;
        self
    }

    /// Which library generates the messages. Default: [`MessageLibrary::Buffa`].
    ///
    /// [`MessageLibrary::Prost`] (needs this crate's `prost` feature) generates the messages
    /// with `prost-build` from the descriptors `protox` parsed (still no `protoc`), their
    /// serde impls with `pbjson-build`, and the same service code (traits, registration
    /// functions, clients) naming the prost types, in the same module layout: each package a
    /// module holding its messages and services, all under the one include file. Every
    /// message also implements `volley::Message` (through `volley::prost_message!`), so it
    /// serves and calls with the binary and JSON codecs.
    ///
    /// The including crate then depends on `volley` with its `prost` feature, `prost`,
    /// `pbjson`, `serde` and, when the protos use well-known types, `pbjson-types` (the
    /// well-known types resolve to `::pbjson_types`: prost-types' structs with proto3 JSON).
    /// [`extern_path`](Self::extern_path) applies to the prost generator, its JSON and the
    /// service code alike; [`buffa_config`](Self::buffa_config) is ignored.
    /// [`request_views`](Self::request_views) is an error with prost (views are buffa's).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// volley_build::Config::new()
    ///     .message_library(volley_build::MessageLibrary::Prost)
    ///     .files(["proto/acme/v1/acme.proto"])
    ///     .includes(["proto"])
    ///     .compile()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn message_library(mut self, library: MessageLibrary) -> Self {
        self.library = library;
        self
    }

    /// With [`MessageLibrary::Prost`]: generate the `bytes` fields selected by `paths`
    /// (proto paths as in `prost-build`'s `bytes`: `.` for all, `.pkg.Msg.field`, ...) as
    /// `bytes::Bytes` instead of `Vec<u8>`. Decoding a request then shares the request
    /// buffer instead of copying those fields. Default: none (`Vec<u8>`, prost's default).
    pub fn prost_bytes(mut self, paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.prost_bytes.extend(paths.into_iter().map(Into::into));
        self
    }

    /// Parses the protos and writes the generated code.
    pub fn compile(self) -> Result<(), BuildError> {
        let (out_dir, mode) = match &self.out_dir {
            Some(dir) => (dir.clone(), IncludeMode::Relative("")),
            None => (
                PathBuf::from(std::env::var_os("OUT_DIR").ok_or(BuildError::NoOutDir)?),
                IncludeMode::OutDir,
            ),
        };

        let mut compiler = protox::Compiler::new(&self.includes)?;
        compiler.include_source_info(true).include_imports(true);
        compiler.open_files(&self.files)?;
        let mut to_generate = Vec::new();
        for file in compiler.files() {
            if self.rerun_if_changed
                && let Some(path) = file.path()
            {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            if !file.is_import() {
                to_generate.push(file.name().to_string());
            }
        }
        let descriptor_bytes = compiler.encode_file_descriptor_set();
        let descriptors = FileDescriptorSet::decode_from_slice(&descriptor_bytes)?.file;
        if self.library == MessageLibrary::Prost {
            if !self.request_views.is_empty() {
                return Err(BuildError::Unsupported(
                    "request_views: views are available with buffa messages only, not with \
                     MessageLibrary::Prost"
                        .into(),
                ));
            }
            return self.compile_prost(
                &compiler,
                &descriptors,
                &to_generate,
                &descriptor_bytes,
                &out_dir,
                mode,
            );
        }

        let (mut files, warnings) =
            buffa_codegen::generate_with_diagnostics(&descriptors, &to_generate, &self.buffa)?;
        let (to_print, notices) = sort_warnings(&warnings, self.print_notices);
        for warning in to_print {
            println!("cargo:warning={warning}");
        }
        write_if_changed(
            &out_dir.join("volley-build-notices.txt"),
            notices.as_bytes(),
        )?;
        let options = Options::new()
            .buffa_config(self.buffa.clone())
            .server(self.server.clone())
            .client(self.client.clone())
            .request_views(self.request_views.iter().cloned());
        let services = volley_codegen::generate(&descriptors, &to_generate, &options)?;
        buffa_codegen::apply_companions(&mut files, services);

        let mut entries = Vec::new();
        for file in &files {
            write_if_changed(&out_dir.join(&file.name), file.content.as_bytes())?;
            if file.kind == GeneratedFileKind::PackageMod {
                entries.push((file.name.clone(), file.package.clone()));
            }
        }

        let extra = self.descriptor_extra(&descriptor_bytes, &out_dir, mode)?;
        let tree = volley_codegen::module_tree(&entries, mode, &extra);
        self.finish(&descriptor_bytes, &out_dir, &tree)
    }

    /// The `FILE_DESCRIPTOR_SET` constant for the include file (empty unless asked for),
    /// writing the encoded set beside it.
    fn descriptor_extra(
        &self,
        descriptor_bytes: &[u8],
        out_dir: &Path,
        mode: IncludeMode<'_>,
    ) -> Result<String, BuildError> {
        if !self.descriptor_const {
            return Ok(String::new());
        }
        let name = format!("{}.binpb", self.include_file.trim_end_matches(".rs"));
        write_if_changed(&out_dir.join(&name), descriptor_bytes)?;
        let bytes = match mode {
            IncludeMode::OutDir => {
                format!("include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\"))")
            }
            IncludeMode::Relative(prefix) => format!("include_bytes!(\"{prefix}{name}\")"),
        };
        Ok(format!(
            "/// The encoded `google.protobuf.FileDescriptorSet` of the compiled protos and\n\
             /// everything they import, with source info.\n\
             pub const FILE_DESCRIPTOR_SET: &[u8] = {bytes};\n"
        ))
    }

    /// Writes the descriptor set file if asked for, and the include file.
    fn finish(
        &self,
        descriptor_bytes: &[u8],
        out_dir: &Path,
        tree: &str,
    ) -> Result<(), BuildError> {
        if let Some(path) = &self.descriptor_path {
            write_if_changed(path, descriptor_bytes)?;
        }
        write_if_changed(&out_dir.join(&self.include_file), tree.as_bytes())
    }

    #[cfg(not(feature = "prost"))]
    fn compile_prost(
        &self,
        _compiler: &protox::Compiler,
        _descriptors: &[buffa_codegen::generated::descriptor::FileDescriptorProto],
        _to_generate: &[String],
        _descriptor_bytes: &[u8],
        _out_dir: &Path,
        _mode: IncludeMode<'_>,
    ) -> Result<(), BuildError> {
        Err(BuildError::Unsupported(
            "MessageLibrary::Prost needs volley-build's `prost` feature".into(),
        ))
    }
}

/// Whether a generator warning is informational: the code is correct and complete, and the
/// proto author has nothing to change.
fn is_notice(warning: &buffa_codegen::CodeGenWarning) -> bool {
    use buffa_codegen::CodeGenWarning as W;
    matches!(
        warning,
        W::IdiomaticAliasesSuppressed { .. }
            | W::OwnedViewAccessorSuppressed { .. }
            | W::IdiomaticFieldNamesAdjusted { .. }
    )
}

/// Splits generator warnings into the lines to print as cargo warnings and the text of the
/// notices file (every informational notice, one per line).
fn sort_warnings(
    warnings: &[buffa_codegen::CodeGenWarning],
    print_notices: bool,
) -> (Vec<String>, String) {
    let mut to_print = Vec::new();
    let mut notices = String::new();
    for warning in warnings {
        let notice = is_notice(warning);
        if print_notices || !notice {
            to_print.push(warning.to_string());
        }
        if notice {
            notices.push_str(&format!("{warning}\n"));
        }
    }
    (to_print, notices)
}

/// Compiles `files` found under `includes` with the default [`Config`].
pub fn compile_protos(
    files: impl IntoIterator<Item = impl AsRef<Path>>,
    includes: impl IntoIterator<Item = impl AsRef<Path>>,
) -> Result<(), BuildError> {
    Config::new().files(files).includes(includes).compile()
}

/// Writes `content` to `path` unless it already holds exactly that, so
/// unchanged output keeps its timestamp.
fn write_if_changed(path: &Path, content: &[u8]) -> Result<(), BuildError> {
    if std::fs::read(path).is_ok_and(|old| old == content) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, content).map_err(|source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generates messages for `proto` (named `t.proto`) and returns the generator's warnings.
    fn warnings_for(proto: &str) -> Vec<buffa_codegen::CodeGenWarning> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.proto"), proto).unwrap();
        let mut compiler = protox::Compiler::new([dir.path()]).unwrap();
        compiler.include_imports(true);
        compiler.open_files(["t.proto"]).unwrap();
        let bytes = compiler.encode_file_descriptor_set();
        let descriptors = FileDescriptorSet::decode_from_slice(&bytes).unwrap().file;
        let (_, warnings) = buffa_codegen::generate_with_diagnostics(
            &descriptors,
            &["t.proto".to_string()],
            &CodeGenConfig::default(),
        )
        .unwrap();
        warnings
    }

    #[test]
    fn a_valid_proto_builds_quietly_and_its_notices_are_kept() {
        let warnings = warnings_for(
            "syntax = \"proto3\"; package t; message Summary { bytes bytes = 1; string name = 2; }",
        );
        assert!(!warnings.is_empty(), "the generator reported no notice");
        let (printed, notices) = sort_warnings(&warnings, false);
        assert!(printed.is_empty(), "printed: {printed:?}");
        assert!(notices.contains("bytes"), "{notices}");
        let (printed, _) = sort_warnings(&warnings, true);
        assert_eq!(printed.len(), warnings.len());
    }

    /// Compiles `proto` (as `t.proto`) with `config` into a temporary directory.
    fn compile_with(config: Config, proto: &str) -> (tempfile::TempDir, Result<(), BuildError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.proto"), proto).unwrap();
        let out = dir.path().join("out");
        let result = config
            .files([dir.path().join("t.proto")])
            .includes([dir.path()])
            .out_dir(&out)
            .rerun_if_changed(false)
            .compile();
        (dir, result)
    }

    const SERVICE: &str = "syntax = \"proto3\"; package t.v1; message Ping { int64 n = 1; \
                           message Inner { string s = 1; } Inner inner = 2; } \
                           service PingService { rpc Ping(Ping) returns (Ping); }";

    #[test]
    fn prost_rejects_request_views() {
        let config = Config::new()
            .message_library(MessageLibrary::Prost)
            .request_views(["."]);
        let (_dir, result) = compile_with(config, SERVICE);
        match result {
            Err(BuildError::Unsupported(message)) => {
                assert!(message.contains("views"), "{message}")
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[cfg(feature = "prost")]
    #[test]
    fn prost_writes_messages_json_services_and_impls_under_one_include_file() {
        let config = Config::new().message_library(MessageLibrary::Prost);
        let (dir, result) = compile_with(config, SERVICE);
        result.unwrap();
        let out = dir.path().join("out");
        let tree = std::fs::read_to_string(out.join("_volley.rs")).unwrap();
        for file in ["t.v1.rs", "t.v1.serde.rs", "t.v1.__volley_messages.rs"] {
            assert!(tree.contains(file), "{file} not in {tree}");
            assert!(out.join(file).exists(), "{file} not written");
        }
        assert!(
            tree.contains("pub mod t {") && tree.contains("pub mod v1 {"),
            "{tree}"
        );
        let impls = std::fs::read_to_string(out.join("t.v1.__volley_messages.rs")).unwrap();
        assert!(
            impls.contains("::volley::prost_message!(ping::Inner, Ping)"),
            "{impls}"
        );
        let services = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".__volley.rs"))
            .expect("a service file");
        let services = std::fs::read_to_string(services.path()).unwrap();
        assert!(
            services.contains("super::super::super::t::v1::Ping"),
            "{services}"
        );
    }

    #[cfg(not(feature = "prost"))]
    #[test]
    fn prost_needs_the_feature() {
        let config = Config::new().message_library(MessageLibrary::Prost);
        let (_dir, result) = compile_with(config, SERVICE);
        assert!(
            matches!(&result, Err(BuildError::Unsupported(m)) if m.contains("`prost` feature")),
            "{result:?}"
        );
    }

    #[test]
    fn a_proto_without_notices_prints_nothing() {
        let warnings = warnings_for("syntax = \"proto3\"; package t; message M { string s = 1; }");
        let (printed, notices) = sort_warnings(&warnings, false);
        assert!(
            printed.is_empty() && notices.is_empty(),
            "{printed:?} {notices}"
        );
    }
}

/// The README's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
