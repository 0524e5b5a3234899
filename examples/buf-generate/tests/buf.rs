//! Runs the real `buf generate` (with `protoc-gen-buffa` and this crate's
//! build of `protoc-gen-volley`) and checks it reproduces `src/gen` exactly.
//! Skips, saying so, when `buf` or `protoc-gen-buffa` is not installed.
//!
//! No libtest harness: invoked under the name `protoc-gen-volley`, this
//! binary *is* the plugin, so buf runs the plugin code just compiled rather
//! than a possibly stale binary.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use buffa::Message as _;

fn main() -> ExitCode {
    let me = std::env::current_exe().expect("own path");
    let invoked_as = std::env::args().next().map(PathBuf::from);
    if invoked_as
        .as_ref()
        .and_then(|p| p.file_name())
        .is_some_and(|n| n == "protoc-gen-volley")
    {
        return plugin();
    }

    let dir = std::env::temp_dir().join(format!("volley-buf-plugin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let plugin = dir.join("protoc-gen-volley");
    let _ = std::fs::remove_file(&plugin);
    std::os::unix::fs::symlink(&me, &plugin).expect("plugin symlink");

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("buf-generate.sh");
    let status = Command::new(script)
        .arg("--check")
        .env("PROTOC_GEN_VOLLEY", &plugin)
        .status()
        .expect("runs buf-generate.sh");
    let _ = std::fs::remove_dir_all(&dir);
    match status.code() {
        Some(0) => {
            println!("test real_buf_generate_matches ... ok");
            ExitCode::SUCCESS
        }
        Some(2) if std::env::var_os("CI").is_some() => {
            eprintln!(
                "buf or protoc-gen-buffa missing in CI: scripts/install-peers.sh installs both"
            );
            ExitCode::FAILURE
        }
        Some(2) => {
            println!(
                "test real_buf_generate_matches ... skipped (buf or protoc-gen-buffa missing)"
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("buf generate output differs from src/gen, or buf failed (see above)");
            ExitCode::FAILURE
        }
    }
}

/// The plugin protocol: a request on stdin, a response on stdout.
fn plugin() -> ExitCode {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input).expect("stdin");
    let request = buffa_codegen::decode_request(&input).expect("a CodeGeneratorRequest");
    let response = volley_codegen::plugin::run(&request);
    std::io::stdout()
        .write_all(&response.encode_to_vec())
        .expect("stdout");
    ExitCode::SUCCESS
}
