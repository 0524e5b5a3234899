//! `build.rs` support for Volley: parse `.proto` files in pure Rust (no `protoc`), then
//! generate message types with `buffa` and service code with `volley-codegen`.

use std::path::{Path, PathBuf};

use prost::Message as _;

/// Errors from [`Config::compile`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The protos failed to parse or type-check.
    #[error("parsing protos: {0}")]
    Parse(#[from] protox::Error),
    /// Message generation failed.
    #[error("generating messages: {0}")]
    Codegen(String),
    /// Reading or writing a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// Configures which protos to compile and where the output goes.
#[derive(Debug, Default, Clone)]
pub struct Config {
    files: Vec<PathBuf>,
    includes: Vec<PathBuf>,
    include_file: Option<String>,
}

impl Config {
    /// An empty configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `.proto` files to compile.
    pub fn files(mut self, files: &[impl AsRef<Path>]) -> Self {
        self.files
            .extend(files.iter().map(|f| f.as_ref().to_path_buf()));
        self
    }

    /// Adds import roots. Well-known types are always available.
    pub fn includes(mut self, includes: &[impl AsRef<Path>]) -> Self {
        self.includes
            .extend(includes.iter().map(|f| f.as_ref().to_path_buf()));
        self
    }

    /// Names the single file in `OUT_DIR` that includes all generated code (default `_volley.rs`).
    pub fn include_file(mut self, name: impl Into<String>) -> Self {
        self.include_file = Some(name.into());
        self
    }

    /// Parses the protos, and writes generated code to `OUT_DIR`.
    pub fn compile(self) -> Result<(), BuildError> {
        let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| {
            BuildError::Io(std::io::Error::other(
                "OUT_DIR is not set: call from build.rs",
            ))
        })?);
        let fds = protox::compile(&self.files, &self.includes)?;
        for file in &fds.file {
            for inc in &self.includes {
                let p = inc.join(file.name());
                if p.exists() {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
        }
        let bytes = fds.encode_to_vec();
        let fds_path = out_dir.join("_volley_descriptor_set.binpb");
        std::fs::write(&fds_path, &bytes)?;
        let names: Vec<String> = self
            .files
            .iter()
            .map(|f| relative_name(f, &self.includes))
            .collect();
        let include_file = self
            .include_file
            .unwrap_or_else(|| "_volley.rs".to_string());
        buffa_build_compile(&bytes, &names, &out_dir, &include_file)
    }
}

fn relative_name(file: &Path, includes: &[PathBuf]) -> String {
    for inc in includes {
        if let Ok(rel) = file.strip_prefix(inc) {
            return rel.to_string_lossy().replace('\\', "/");
        }
    }
    file.to_string_lossy().replace('\\', "/")
}

fn buffa_build_compile(
    fds_bytes: &[u8],
    files: &[String],
    out_dir: &Path,
    include_file: &str,
) -> Result<(), BuildError> {
    use buffa::Message as _;
    let fds =
        buffa_descriptor::generated::descriptor::FileDescriptorSet::decode_from_slice(fds_bytes)
            .map_err(|e| BuildError::Codegen(e.to_string()))?;
    let mut config = buffa_codegen::CodeGenConfig::default();
    config.generate_json = true;
    let generated = buffa_codegen::generate(&fds.file, files, &config)
        .map_err(|e| BuildError::Codegen(e.to_string()))?;
    let mut entries = Vec::new();
    for file in generated {
        std::fs::write(out_dir.join(&file.name), file.content.as_bytes())?;
        if file.kind == buffa_codegen::GeneratedFileKind::PackageMod {
            entries.push((file.name, file.package));
        }
    }
    let tree =
        buffa_codegen::generate_module_tree(&entries, buffa_codegen::IncludeMode::OutDir, false);
    std::fs::write(out_dir.join(include_file), tree)?;
    Ok(())
}
