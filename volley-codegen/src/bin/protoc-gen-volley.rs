//! `protoc-gen-volley`: a `protoc` / `buf generate` plugin emitting Volley
//! service code. See `volley_codegen::plugin` for its options.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use buffa::Message as _;

const HELP: &str = "\
protoc-gen-volley: protoc/buf plugin generating Volley service code
(server traits, registration functions, typed clients).

It reads a CodeGeneratorRequest on stdin and writes a CodeGeneratorResponse
to stdout; run it through buf or protoc, next to protoc-gen-buffa for the
messages:

  # buf.gen.yaml
  version: v2
  plugins:
    - local: protoc-gen-buffa
      out: src/gen
      opt: [json=true, file_per_package=true]
    - local: protoc-gen-volley
      out: src/gen
      strategy: all
      opt: [file_per_package=true, include_file=mod.rs, include_buffa=package]

  protoc --volley_out=src/gen --volley_opt=message_module=crate::proto x.proto

Options: message_module, extern_path, type_name_prefix, server, client,
server_feature, client_feature, file_per_package, include_file,
include_buffa. See the volley_codegen::plugin docs.";

fn main() -> ExitCode {
    if let Some(arg) = std::env::args().nth(1) {
        match arg.as_str() {
            "--version" | "-V" => {
                println!("protoc-gen-volley {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "--help" | "-h" => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("protoc-gen-volley: unexpected argument {other:?}; see --help");
                return ExitCode::from(2);
            }
        }
    }
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("protoc-gen-volley: reading the request: {e}");
        return ExitCode::FAILURE;
    }
    let request = match buffa_codegen::decode_request(&input) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("protoc-gen-volley: decoding the request: {e}");
            return ExitCode::FAILURE;
        }
    };
    let response = volley_codegen::plugin::run(&request);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(&response.encode_to_vec())
        .and_then(|()| stdout.flush())
    {
        eprintln!("protoc-gen-volley: writing the response: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
