//! Replays every fuzz target's body (`volley::fuzzing`) over its committed seed corpus
//! (`fuzz/corpus/<target>/`) and every crash input ever found (`fuzz/regressions/<target>/`),
//! on stable Rust: a crash fixed once stays fixed. `scripts/fuzz.sh` runs the real fuzzers.

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[test]
fn every_target_replays_its_corpus_and_regressions() -> anyhow::Result<()> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let targets_dir = fuzz.join("fuzz_targets");
    for (name, target) in volley::fuzzing::TARGETS {
        anyhow::ensure!(
            targets_dir.join(format!("{name}.rs")).exists(),
            "fuzz/fuzz_targets/{name}.rs is missing"
        );
        let corpus = inputs(&fuzz.join("corpus").join(name))?;
        anyhow::ensure!(!corpus.is_empty(), "fuzz/corpus/{name} has no seed");
        let regressions = inputs(&fuzz.join("regressions").join(name))?;
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path)?;
            // A panic names the input that caused it.
            let outcome = std::panic::catch_unwind(|| target(&data));
            anyhow::ensure!(outcome.is_ok(), "{name} panicked on {}", path.display());
        }
        eprintln!(
            "{name}: {} seeds, {} regressions",
            corpus.len(),
            regressions.len()
        );
    }
    let mut on_disk = Vec::new();
    for path in inputs(&targets_dir)? {
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            on_disk.push(stem.to_string());
        }
    }
    for name in on_disk {
        anyhow::ensure!(
            volley::fuzzing::TARGETS.iter().any(|(n, _)| *n == name),
            "fuzz target {name} has no replay entry in volley::fuzzing::TARGETS"
        );
    }
    Ok(())
}
