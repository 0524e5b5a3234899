//! Generates the benchmark proto for every contender, with no `protoc`:
//! - Volley twice, with owned request messages and with view handlers (`request_views`);
//! - tonic with prost, from a `FileDescriptorSet` parsed by `protox`;
//! - connectrpc, from the same descriptor set written to a file.
use std::path::PathBuf;

use prost::Message as _;

const PROTO: &str = "proto/bench/v1/bench.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    println!("cargo:rerun-if-changed={PROTO}");

    for (dir, views) in [("volley_owned", false), ("volley_view", true)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        let mut config = volley_build::Config::new()
            .files([PROTO])
            .includes(["proto"])
            .out_dir(&dir);
        if views {
            config = config.request_views(["."]);
        }
        config.compile()?;
    }

    let fds = protox::compile([PROTO], ["proto"])?;

    let tonic_dir = out.join("tonic");
    std::fs::create_dir_all(&tonic_dir)?;
    tonic_prost_build::configure()
        .out_dir(&tonic_dir)
        .compile_fds(fds.clone())?;

    let fds_path = out.join("bench.fds.bin");
    std::fs::write(&fds_path, fds.encode_to_vec())?;
    let connect_dir = out.join("connectrpc");
    std::fs::create_dir_all(&connect_dir)?;
    connectrpc_build::Config::new()
        .descriptor_set(&fds_path)
        .files(&["bench/v1/bench.proto"])
        .out_dir(&connect_dir)
        .include_file("_connectrpc.rs")
        .compile()?;
    Ok(())
}
