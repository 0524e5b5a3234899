//! Golden-file tests: generated code is compared byte for byte with the
//! files under `tests/golden/`. Run with `VOLLEY_BLESS=1` to rewrite them
//! after an intended change, and review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use buffa::Message as _;
use buffa_codegen::generated::compiler::CodeGeneratorRequest;
use buffa_codegen::generated::descriptor::{FileDescriptorProto, FileDescriptorSet};
use volley_codegen::{Gate, Options};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses `files` (relative to `include`) with protox, imports included.
fn descriptors(include: &Path, files: &[&str]) -> Vec<FileDescriptorProto> {
    let mut compiler = protox::Compiler::new([include]).expect("include path");
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(files).expect("protos parse");
    // This encoding keeps custom options, which prost's types would drop.
    FileDescriptorSet::decode_from_slice(&compiler.encode_file_descriptor_set())
        .expect("descriptor set decodes")
        .file
}

/// Compares `actual` (file name -> content) with the directory
/// `tests/golden/<case>`, or rewrites the directory under `VOLLEY_BLESS=1`.
fn check(case: &str, actual: BTreeMap<String, String>) {
    let dir = manifest_dir().join("tests/golden").join(case);
    if std::env::var_os("VOLLEY_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, content) in &actual {
            std::fs::write(dir.join(name), content).unwrap();
        }
        return;
    }
    let mut expected = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with VOLLEY_BLESS=1 to create it",
            dir.display()
        )
    }) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        expected.insert(name, std::fs::read_to_string(&path).unwrap());
    }
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "{case}: generated file names differ from tests/golden/{case}; \
         rerun with VOLLEY_BLESS=1 if the change is intended"
    );
    for (name, content) in &actual {
        if &expected[name] != content {
            let first_diff = expected[name]
                .lines()
                .zip(content.lines())
                .position(|(a, b)| a != b)
                .map_or(0, |i| i + 1);
            panic!(
                "{case}/{name} differs from the golden file (first differing line {first_diff}); \
                 rerun with VOLLEY_BLESS=1 if the change is intended\n--- generated ---\n{content}"
            );
        }
    }
}

fn to_map(files: Vec<buffa_codegen::GeneratedFile>) -> BTreeMap<String, String> {
    files.into_iter().map(|f| (f.name, f.content)).collect()
}

const KITCHEN: &[&str] = &["kitchen/v1/kitchen.proto", "kitchen/common/v1/common.proto"];

#[test]
fn eliza() {
    let include = manifest_dir().join("../examples/eliza/proto");
    let file = "connectrpc/eliza/v1/eliza.proto";
    let files = descriptors(&include, &[file]);
    let generated = volley_codegen::generate(&files, &[file.to_string()], &Options::new()).unwrap();
    check("eliza", to_map(generated));
}

#[test]
fn eliza_with_request_views() {
    let include = manifest_dir().join("../examples/eliza/proto");
    let file = "connectrpc/eliza/v1/eliza.proto";
    let files = descriptors(&include, &[file]);
    // One unary and one bidi method take views; Introduce keeps the owned message.
    let options = Options::new().request_views([
        ".connectrpc.eliza.v1.ElizaService.Say",
        "connectrpc.eliza.v1.ElizaService.Converse",
    ]);
    let generated = volley_codegen::generate(&files, &[file.to_string()], &options).unwrap();
    check("eliza_views", to_map(generated));
}

#[test]
fn request_views_select_whole_names() {
    let options = Options::new().request_views([".a.b.Svc", "c.Other.Get"]);
    for yes in [".a.b.Svc.Get", ".a.b.Svc.Put", ".c.Other.Get"] {
        assert!(options.is_view_request(yes), "{yes}");
    }
    for no in [
        ".a.b.Svc2.Get",
        ".a.bb.Svc.Get",
        ".c.Other.GetMore",
        ".c.Other.Put",
    ] {
        assert!(!options.is_view_request(no), "{no}");
    }
    assert!(!Options::new().is_view_request(".a.b.Svc.Get"));
    assert!(
        Options::new()
            .request_views(["."])
            .is_view_request(".x.Y.Z")
    );
}

#[test]
fn kitchen_colocated() {
    let include = manifest_dir().join("tests/protos");
    let files = descriptors(&include, KITCHEN);
    let to_generate: Vec<String> = KITCHEN.iter().map(|s| s.to_string()).collect();
    let generated = volley_codegen::generate(&files, &to_generate, &Options::new()).unwrap();
    check("kitchen", to_map(generated));
}

#[test]
fn kitchen_gated_with_message_module_per_package() {
    let include = manifest_dir().join("tests/protos");
    let files = descriptors(&include, KITCHEN);
    let to_generate: Vec<String> = KITCHEN.iter().map(|s| s.to_string()).collect();
    let options = Options::new()
        .message_module("crate::proto")
        .server(Gate::Feature("server".into()))
        .client(Gate::Feature("client".into()))
        .file_per_package(true);
    let generated = volley_codegen::generate(&files, &to_generate, &options).unwrap();
    check("kitchen_gated", to_map(generated));
}

#[test]
fn unnamed_package() {
    let include = manifest_dir().join("tests/protos");
    let files = descriptors(&include, &["nopkg.proto"]);
    let generated =
        volley_codegen::generate(&files, &["nopkg.proto".to_string()], &Options::new()).unwrap();
    check("nopkg", to_map(generated));
}

#[test]
fn plugin_with_module_tree() {
    let include = manifest_dir().join("tests/protos");
    let request = CodeGeneratorRequest {
        file_to_generate: KITCHEN.iter().map(|s| s.to_string()).collect(),
        parameter: Some(
            "file_per_package=true, include_file=mod.rs, include_buffa=package, server=false"
                .into(),
        ),
        proto_file: descriptors(&include, KITCHEN),
        ..Default::default()
    };
    let response = volley_codegen::plugin::run(&request);
    assert_eq!(response.error, None);
    let files = response
        .file
        .into_iter()
        .map(|f| (f.name.unwrap(), f.content.unwrap()))
        .collect();
    check("plugin", files);
}

#[test]
fn plugin_reports_bad_options() {
    for parameter in [
        "nonsense=1",
        "server=maybe",
        "include_buffa=package",
        "flag",
    ] {
        let request = CodeGeneratorRequest {
            parameter: Some(parameter.into()),
            ..Default::default()
        };
        let response = volley_codegen::plugin::run(&request);
        assert!(response.error.is_some(), "{parameter} was accepted");
    }
}

#[test]
fn plugin_request_views_option_repeats() {
    let plugin =
        volley_codegen::plugin::parse_parameter("request_views=.a.S.M, request_views=b").unwrap();
    assert!(plugin.options.is_view_request(".a.S.M"));
    assert!(plugin.options.is_view_request(".b.T.N"));
    assert!(!plugin.options.is_view_request(".a.S.Other"));
}
