//! The checked-in `src/gen` is what `buf generate` produces from
//! `buf.gen.yaml`, checked in process: the same plugin code on the same
//! descriptors (parsed by protox). `tests/buf.rs` checks it with the real
//! `buf`. `VOLLEY_BLESS=1` rewrites `src/gen` from the in-process run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use buffa::Message as _;
use buffa_codegen::generated::compiler::CodeGeneratorRequest;
use buffa_codegen::generated::descriptor::FileDescriptorSet;

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `opt:` list of `plugin` in buf.gen.yaml, as one parameter string.
fn options_of(plugin: &str) -> String {
    let template = std::fs::read_to_string(here().join("buf.gen.yaml")).unwrap();
    let mut lines = template
        .lines()
        .skip_while(|l| !l.contains(&format!("local: {plugin}")));
    let opt = lines
        .find(|l| l.trim_start().starts_with("opt:"))
        .unwrap_or_else(|| panic!("no opt for {plugin}"));
    let list = opt.trim().trim_start_matches("opt:").trim();
    list.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(",")
}

/// What buf would write to src/gen, generated in process.
fn generate() -> BTreeMap<String, String> {
    let include = here().join("../no-protoc/proto");
    let file = "clock/v1/clock.proto";
    let mut compiler = protox::Compiler::new([&include]).unwrap();
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files([include.join(file)]).unwrap();
    let proto_file = FileDescriptorSet::decode_from_slice(&compiler.encode_file_descriptor_set())
        .unwrap()
        .file;
    let to_generate = vec![file.to_string()];
    let mut out = BTreeMap::new();

    // protoc-gen-buffa with `json=true, file_per_package=true`.
    assert_eq!(
        options_of("protoc-gen-buffa"),
        "json=true,file_per_package=true"
    );
    let mut config = buffa_codegen::CodeGenConfig::default();
    config.generate_json = true;
    config.file_per_package = true;
    for f in buffa_codegen::generate(&proto_file, &to_generate, &config).unwrap() {
        out.insert(f.name, f.content);
    }

    let request = CodeGeneratorRequest {
        file_to_generate: to_generate,
        parameter: Some(options_of("protoc-gen-volley")),
        proto_file,
        ..Default::default()
    };
    let response = volley_codegen::plugin::run(&request);
    assert_eq!(response.error, None);
    for f in response.file {
        out.insert(f.name.unwrap(), f.content.unwrap());
    }
    out
}

fn read_dir(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn checked_in_code_is_fresh() {
    let generated = generate();
    let dir = here().join("src/gen");
    if std::env::var_os("VOLLEY_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, content) in &generated {
            std::fs::write(dir.join(name), content).unwrap();
        }
        return;
    }
    let checked_in = read_dir(&dir);
    assert_eq!(
        checked_in.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>(),
        "src/gen has different files than buf would generate; run buf-generate.sh (or VOLLEY_BLESS=1)"
    );
    for (name, content) in &generated {
        assert!(
            &checked_in[name] == content,
            "src/gen/{name} is stale; run examples/buf-generate/buf-generate.sh (or VOLLEY_BLESS=1)"
        );
    }
}
