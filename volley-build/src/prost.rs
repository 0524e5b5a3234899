//! The prost build: messages by `prost-build`, JSON by `pbjson-build`, services by
//! `volley-codegen`, all under one include file laid out like the buffa build's.

use std::collections::BTreeMap;
use std::path::Path;

use buffa_codegen::IncludeMode;
use buffa_codegen::generated::descriptor::FileDescriptorProto;
use volley_codegen::{MessageLibrary, Options, PROST_WELL_KNOWN_TYPES};

use crate::{BuildError, Config, write_if_changed};

impl Config {
    /// Generates messages, JSON and services for a prost build.
    pub(crate) fn compile_prost(
        &self,
        compiler: &protox::Compiler,
        descriptors: &[FileDescriptorProto],
        to_generate: &[String],
        descriptor_bytes: &[u8],
        out_dir: &Path,
        mode: IncludeMode<'_>,
    ) -> Result<(), BuildError> {
        let mut externs = self.buffa.extern_paths.clone();
        if !externs
            .iter()
            .any(|(proto, _)| proto == PROST_WELL_KNOWN_TYPES.0 || proto == ".google")
        {
            externs.push((
                PROST_WELL_KNOWN_TYPES.0.to_string(),
                PROST_WELL_KNOWN_TYPES.1.to_string(),
            ));
        }

        // Messages: prost-build needs the imports too (it looks at imported messages to derive
        // traits) and writes a file for each of their packages; only the requested files'
        // packages are included (imports are extern or the user's concern, as in the buffa
        // build).
        let set = compiler.file_descriptor_set();
        let mut packages: Vec<String> = set
            .file
            .iter()
            .filter(|f| to_generate.iter().any(|n| n == f.name()))
            .map(|f| f.package().to_string())
            .collect();
        packages.sort();
        packages.dedup();
        std::fs::create_dir_all(out_dir).map_err(|source| BuildError::Io {
            path: out_dir.to_path_buf(),
            source,
        })?;
        let mut prost = prost_build::Config::new();
        // Off prost's own mapping of the well-known types to prost-types, onto ours.
        prost.out_dir(out_dir).compile_well_known_types();
        for (proto, rust) in &externs {
            prost.extern_path(proto, rust);
        }
        if !self.prost_bytes.is_empty() {
            prost.bytes(&self.prost_bytes);
        }
        prost.compile_fds(set).map_err(|source| BuildError::Io {
            path: out_dir.to_path_buf(),
            source,
        })?;

        // JSON: serde impls for the same packages.
        let mut json = pbjson_build::Builder::new();
        json.register_descriptors(descriptor_bytes)
            .map_err(|source| BuildError::Io {
                path: out_dir.to_path_buf(),
                source,
            })?
            .out_dir(out_dir);
        for (proto, rust) in &externs {
            json.extern_path(proto.as_str(), rust.as_str());
        }
        let prefixes: Vec<String> = packages.iter().map(|p| format!(".{p}")).collect();
        json.build(&prefixes).map_err(|source| BuildError::Io {
            path: out_dir.to_path_buf(),
            source,
        })?;

        // Services and the `volley::Message` impls.
        let mut codegen_config = self.buffa.clone();
        codegen_config.extern_paths = externs;
        let options = Options::new()
            .buffa_config(codegen_config)
            .message_library(MessageLibrary::Prost)
            .server(self.server.clone())
            .client(self.client.clone());
        let services = volley_codegen::generate(descriptors, to_generate, &options)?;

        let mut by_package: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for package in &packages {
            let stem = if package.is_empty() { "_" } else { package };
            let files = by_package.entry(package.clone()).or_default();
            let messages = format!("{stem}.rs");
            if out_dir.join(&messages).exists() {
                files.push(messages);
            }
            let serde = format!("{package}.serde.rs");
            if out_dir.join(&serde).exists() {
                files.push(serde);
            }
        }
        for file in &services {
            write_if_changed(&out_dir.join(&file.name), file.content.as_bytes())?;
            by_package
                .entry(file.package.clone())
                .or_default()
                .push(file.name.clone());
        }
        let entries: Vec<(String, String)> = by_package
            .into_iter()
            .flat_map(|(package, files)| files.into_iter().map(move |f| (f, package.clone())))
            .collect();
        let extra = self.descriptor_extra(descriptor_bytes, out_dir, mode)?;
        let tree = volley_codegen::module_tree(&entries, mode, &extra);
        self.finish(descriptor_bytes, out_dir, &tree)
    }
}
