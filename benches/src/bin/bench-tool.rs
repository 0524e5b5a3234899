//! The load runner's helper:
//!
//! - `bench-tool workloads DIR` writes each workload's request body to `DIR/NAME.body` and
//!   prints the workloads as JSON (name, title, path, framing, headers, body file);
//! - `bench-tool check HOST:PORT NAME` sends workload `NAME` once over h2c and exits 0 only if
//!   the answer is right (status, `grpc-status`, decoded message).
use volley_benches::check;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["workloads", dir] => {
            let dir = std::path::Path::new(dir);
            std::fs::create_dir_all(dir).expect("creating the output directory");
            let mut out = Vec::new();
            for w in check::workloads() {
                let body = dir.join(format!("{}.body", w.name));
                std::fs::write(&body, &w.body).expect("writing a body");
                out.push(serde_json::json!({
                    "name": w.name,
                    "title": w.title,
                    "path": w.path,
                    "framing": format!("{:?}", w.framing),
                    "headers": w.headers().iter().map(|(n, v)| format!("{n}: {v}")).collect::<Vec<_>>(),
                    "body": body.display().to_string(),
                    "body_bytes": w.body.len(),
                }));
            }
            println!("{}", serde_json::Value::Array(out));
        }
        ["check", addr, name] => {
            let addr = addr.parse().expect("an address HOST:PORT");
            let Some(workload) = check::workload(name) else {
                eprintln!("no workload {name:?}");
                std::process::exit(2);
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(check::check(addr, &workload)) {
                Ok(()) => println!("ok {name}"),
                Err(err) => {
                    eprintln!("{name}: WRONG ANSWER: {err}");
                    std::process::exit(1);
                }
            }
        }
        _ => {
            eprintln!("usage: bench-tool workloads DIR | bench-tool check HOST:PORT NAME");
            std::process::exit(2);
        }
    }
}
