//! `Config::compile` end to end into a temporary directory: parsing with the
//! well-known types, the include file, descriptor-set output, and errors.

use std::path::Path;

fn write(dir: &Path, name: &str, content: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

const PROTO: &str = r#"
syntax = "proto3";
package demo.v1;
import "google/protobuf/timestamp.proto";
import "google/protobuf/any.proto";

// Clock tells the time.
service Clock {
  // Now answers the current time.
  rpc Now(NowRequest) returns (google.protobuf.Timestamp);
}

message NowRequest {
  google.protobuf.Any detail = 1;
}
"#;

#[test]
fn compiles_protos_importing_well_known_types() {
    let protos = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    write(protos.path(), "demo/v1/clock.proto", PROTO);
    let fds_path = out.path().join("extra/clock.binpb");
    volley_build::Config::new()
        .files([protos.path().join("demo/v1/clock.proto")])
        .includes([protos.path()])
        .out_dir(out.path())
        .file_descriptor_set(true)
        .file_descriptor_set_path(&fds_path)
        .rerun_if_changed(false)
        .compile()
        .unwrap();

    let include = std::fs::read_to_string(out.path().join("_volley.rs")).unwrap();
    assert!(
        include
            .contains("pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(\"_volley.binpb\");")
    );
    assert!(include.contains("pub mod demo {"), "{include}");
    assert!(
        include.contains("include!(\"demo.v1.mod.rs\");"),
        "{include}"
    );
    assert!(include.contains("missing_docs"), "{include}");

    let stitcher = std::fs::read_to_string(out.path().join("demo.v1.mod.rs")).unwrap();
    assert!(
        stitcher.contains("include!(\"demo.v1.clock.__volley.rs\");"),
        "{stitcher}"
    );
    let services = std::fs::read_to_string(out.path().join("demo.v1.clock.__volley.rs")).unwrap();
    assert!(services.contains("pub trait Clock"), "{services}");
    assert!(
        services.contains("::buffa_types::google::protobuf::Timestamp"),
        "{services}"
    );
    assert!(
        services.contains("/// Now answers the current time."),
        "{services}"
    );

    // The set holds the proto and both imports.
    let bytes = std::fs::read(&fds_path).unwrap();
    assert_eq!(
        bytes,
        std::fs::read(out.path().join("_volley.binpb")).unwrap()
    );
    for name in [
        "demo/v1/clock.proto",
        "google/protobuf/timestamp.proto",
        "google/protobuf/any.proto",
    ] {
        assert!(
            bytes.windows(name.len()).any(|w| w == name.as_bytes()),
            "{name} missing from the descriptor set"
        );
    }
}

#[test]
fn gates_and_disables_sides() {
    let protos = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    write(protos.path(), "demo/v1/clock.proto", PROTO);
    volley_build::Config::new()
        .files([protos.path().join("demo/v1/clock.proto")])
        .includes([protos.path()])
        .out_dir(out.path())
        .server(false)
        .client_feature("client")
        .rerun_if_changed(false)
        .compile()
        .unwrap();
    let services = std::fs::read_to_string(out.path().join("demo.v1.clock.__volley.rs")).unwrap();
    assert!(!services.contains("pub trait Clock"), "{services}");
    assert!(
        services.contains("#[cfg(feature = \"client\")]\n    pub struct ClockClient"),
        "{services}"
    );
}

#[test]
fn reports_parse_errors_and_missing_out_dir() {
    let protos = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    write(protos.path(), "bad.proto", "syntax = \"proto3\"; message {");
    let err = volley_build::Config::new()
        .files([protos.path().join("bad.proto")])
        .includes([protos.path()])
        .out_dir(out.path())
        .compile()
        .unwrap_err();
    assert!(matches!(err, volley_build::BuildError::Parse(_)), "{err}");

    let err = volley_build::Config::new()
        .files([protos.path().join("missing.proto")])
        .includes([protos.path()])
        .out_dir(out.path())
        .compile()
        .unwrap_err();
    assert!(matches!(err, volley_build::BuildError::Parse(_)), "{err}");
}
