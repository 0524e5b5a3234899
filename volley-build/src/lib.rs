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

use std::path::{Path, PathBuf};

use buffa::Message as _;
use buffa_codegen::generated::descriptor::FileDescriptorSet;
use buffa_codegen::{CodeGenConfig, GeneratedFileKind, IncludeMode};
use volley_codegen::{Gate, Options};

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

        let mut extra = String::new();
        if self.descriptor_const {
            let name = format!("{}.binpb", self.include_file.trim_end_matches(".rs"));
            write_if_changed(&out_dir.join(&name), &descriptor_bytes)?;
            let bytes = match mode {
                IncludeMode::OutDir => {
                    format!("include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\"))")
                }
                IncludeMode::Relative(prefix) => format!("include_bytes!(\"{prefix}{name}\")"),
            };
            extra = format!(
                "/// The encoded `google.protobuf.FileDescriptorSet` of the compiled protos and\n\
                 /// everything they import, with source info.\n\
                 pub const FILE_DESCRIPTOR_SET: &[u8] = {bytes};\n"
            );
        }
        if let Some(path) = &self.descriptor_path {
            write_if_changed(path, &descriptor_bytes)?;
        }
        let tree = volley_codegen::module_tree(&entries, mode, &extra);
        write_if_changed(&out_dir.join(&self.include_file), tree.as_bytes())
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
