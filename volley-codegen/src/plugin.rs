//! The `protoc-gen-volley` plugin: a `CodeGeneratorRequest` in, a
//! `CodeGeneratorResponse` out.
//!
//! The plugin writes service code only; messages come from buffa's plugin,
//! `protoc-gen-buffa`, run in the same `buf generate`. Options are a
//! comma-separated `key=value` list (`opt:` in `buf.gen.yaml`, `--volley_opt`
//! with `protoc`):
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `message_module=<path>` | unset | Rust path of the module holding buffa's package tree (e.g. `crate::proto`). Unset: the service files are included in the same modules as their package's messages. |
//! | `extern_path=<.proto.pkg>=<path>` | none | as for `protoc-gen-buffa`; pass the same ones. Repeatable. |
//! | `type_name_prefix=<prefix>` | empty | as for `protoc-gen-buffa`. |
//! | `server=<bool>`, `client=<bool>` | `true` | emit the server side (trait, register function) / the client. |
//! | `server_feature=<name>`, `client_feature=<name>` | unset | put that side behind `#[cfg(feature = "<name>")]`. |
//! | `request_views=<.proto.name>` | none | server handlers of the selected methods take a zero-copy `volley::View` of the request instead of the owned message: a method (`.pkg.Service.Method`), a service, a package, or `.` for all. Repeatable. Owned messages stay the default: they are easier to keep and move across tasks, while a view keeps the whole request buffer alive (see `Options::request_views`). |
//! | `file_per_package=<bool>` | `false` | one `<package>.__volley.rs` per package instead of one `<path.stem>.__volley.rs` per proto file. |
//! | `include_file=<name>` | unset | also write `<name>`, a module tree that `include!`s every generated file inside `pub mod` blocks following the package names (run the plugin with `strategy: all` so it sees every package). |
//! | `include_buffa=package\|mod` | unset | with `include_file`: also include buffa's output for every package, written to the same directory — `<package>.rs` (buffa's `file_per_package=true`) or `<package>.mod.rs` (buffa's default). |
//!
//! A `buf.gen.yaml` producing one module tree for messages and services:
//!
//! ```yaml
//! version: v2
//! plugins:
//!   - local: protoc-gen-buffa
//!     out: src/gen
//!     opt: [json=true, file_per_package=true]
//!   - local: protoc-gen-volley
//!     out: src/gen
//!     strategy: all
//!     opt: [file_per_package=true, include_file=mod.rs, include_buffa=package]
//! ```
//!
//! mounted with `#[path = "gen/mod.rs"] pub mod proto;`.

use std::collections::BTreeSet;

use buffa_codegen::IncludeMode;
use buffa_codegen::generated::compiler::code_generator_response::{Feature, File};
use buffa_codegen::generated::compiler::{CodeGeneratorRequest, CodeGeneratorResponse};
use buffa_codegen::generated::descriptor::Edition;

use crate::{Error, Gate, Options};

/// Which of buffa's per-package files a module tree includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuffaLayout {
    /// `<package>.rs`, from buffa's `file_per_package=true`.
    Package,
    /// `<package>.mod.rs`, buffa's default stitcher files.
    Mod,
}

/// The plugin's parsed options.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PluginOptions {
    /// Generator options.
    pub options: Options,
    /// Name of the module-tree file to write, if any.
    pub include_file: Option<String>,
    /// buffa's files to include in the module tree, if any.
    pub include_buffa: Option<BuffaLayout>,
}

/// Parses the plugin parameter string (see the [module docs](self)).
pub fn parse_parameter(parameter: &str) -> Result<PluginOptions, Error> {
    let mut out = PluginOptions::default();
    let mut buffa = out.options.buffa().clone();
    let mut server = true;
    let mut client = true;
    let mut server_feature = None;
    let mut client_feature = None;
    for item in parameter
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| Error::Option(format!("option {item:?} is not key=value")))?;
        let value = value.trim();
        match key.trim() {
            "message_module" => out.options = out.options.message_module(value),
            "extern_path" => {
                let (proto, rust) = value.split_once('=').ok_or_else(|| {
                    Error::Option(format!(
                        "extern_path {value:?} is not <.proto.package>=<rust::path>"
                    ))
                })?;
                let proto = if proto.starts_with('.') {
                    proto.to_string()
                } else {
                    format!(".{proto}")
                };
                buffa.extern_paths.push((proto, rust.to_string()));
            }
            "type_name_prefix" => buffa.type_name_prefix = value.to_string(),
            "request_views" => out.options = out.options.request_views([value]),
            "server" => server = parse_bool(key, value)?,
            "client" => client = parse_bool(key, value)?,
            "server_feature" => server_feature = Some(value.to_string()),
            "client_feature" => client_feature = Some(value.to_string()),
            "file_per_package" => {
                out.options = out.options.file_per_package(parse_bool(key, value)?);
            }
            "include_file" => out.include_file = Some(value.to_string()),
            "include_buffa" => {
                out.include_buffa = Some(match value {
                    "package" => BuffaLayout::Package,
                    "mod" => BuffaLayout::Mod,
                    other => {
                        return Err(Error::Option(format!(
                            "include_buffa is package or mod, not {other:?}"
                        )));
                    }
                });
            }
            other => {
                return Err(Error::Option(format!(
                    "unknown option {other:?}; see the volley-codegen plugin docs"
                )));
            }
        }
    }
    let gate = |on: bool, feature: Option<String>| match (on, feature) {
        (false, _) => Gate::Off,
        (true, None) => Gate::On,
        (true, Some(feature)) => Gate::Feature(feature),
    };
    out.options = out
        .options
        .buffa_config(buffa)
        .server(gate(server, server_feature))
        .client(gate(client, client_feature));
    if out.include_buffa.is_some() && out.include_file.is_none() {
        return Err(Error::Option("include_buffa needs include_file".into()));
    }
    Ok(out)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(Error::Option(format!(
            "{key} is true or false, not {other:?}"
        ))),
    }
}

/// Answers a plugin request. Failures are reported in the response's
/// `error` field, as the plugin protocol asks.
pub fn run(request: &CodeGeneratorRequest) -> CodeGeneratorResponse {
    let mut response = match try_run(request) {
        Ok(files) => CodeGeneratorResponse {
            file: files,
            ..Default::default()
        },
        Err(e) => CodeGeneratorResponse {
            error: Some(e.to_string()),
            ..Default::default()
        },
    };
    response.supported_features =
        Some(Feature::FEATURE_PROTO3_OPTIONAL as u64 | Feature::FEATURE_SUPPORTS_EDITIONS as u64);
    response.minimum_edition = Some(Edition::EDITION_PROTO2 as i32);
    response.maximum_edition = Some(Edition::EDITION_2024 as i32);
    response
}

fn try_run(request: &CodeGeneratorRequest) -> Result<Vec<File>, Error> {
    let plugin = parse_parameter(request.parameter.as_deref().unwrap_or(""))?;
    let generated = crate::generate(
        &request.proto_file,
        &request.file_to_generate,
        &plugin.options,
    )?;
    let mut entries: Vec<(String, String)> = Vec::new();
    if let Some(layout) = plugin.include_buffa {
        let packages: BTreeSet<&str> = request
            .file_to_generate
            .iter()
            .filter_map(|name| {
                request
                    .proto_file
                    .iter()
                    .find(|f| f.name.as_deref() == Some(name.as_str()))
            })
            .map(|f| f.package.as_deref().unwrap_or(""))
            .collect();
        for package in packages {
            let file = match layout {
                BuffaLayout::Package => buffa_codegen::package_to_filename(package),
                BuffaLayout::Mod => buffa_codegen::package_to_mod_filename(package),
            };
            entries.push((file, package.to_string()));
        }
    }
    let mut files: Vec<File> = Vec::new();
    for file in generated {
        entries.push((file.name.clone(), file.package.clone()));
        files.push(File {
            name: Some(file.name),
            content: Some(file.content),
            ..Default::default()
        });
    }
    if let Some(name) = plugin.include_file {
        files.push(File {
            name: Some(name),
            content: Some(crate::module_tree(&entries, IncludeMode::Relative(""), "")),
            ..Default::default()
        });
    }
    Ok(files)
}
