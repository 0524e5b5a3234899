//! The root README's quick start shows exactly this crate's files: every fenced block introduced
//! by a paragraph starting with a file name must equal that file, the dependency lines of `Cargo.toml` normalised (the README shows the
//! crates.io form, the crate adds `path = ...` to build inside the repository).

use std::path::Path;

const FILES: [&str; 4] = [
    "proto/greet/v1/greet.proto",
    "Cargo.toml",
    "build.rs",
    "src/main.rs",
];

/// Drops the in-repository `path = "..."` key from dependency lines.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        while let Some(start) = line.find(", path = \"") {
            let rest = &line[start + ", path = \"".len()..];
            let end = rest.find('"').expect("a closing quote");
            line = format!("{}{}", &line[..start], &rest[end + 1..]);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// The fenced blocks introduced by a paragraph that starts with one of `FILES` in backticks.
fn blocks(readme: &str) -> Vec<(&'static str, String)> {
    let mut found = Vec::new();
    // The first line of the paragraph before the current line.
    let mut paragraph: Option<&str> = None;
    let mut previous_blank = true;
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().starts_with("```") {
            let indent = line.len() - line.trim_start().len();
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner.trim_start().starts_with("```") {
                    break;
                }
                body.push_str(inner.get(indent..).unwrap_or(inner.trim_start()));
                body.push('\n');
            }
            let intro = paragraph.unwrap_or("").trim_start();
            if let Some(file) = FILES.iter().find(|f| intro.starts_with(&format!("`{f}`"))) {
                found.push((*file, body));
            }
            paragraph = None;
            previous_blank = true;
        } else if line.trim().is_empty() {
            previous_blank = true;
        } else {
            if previous_blank {
                paragraph = Some(line);
            }
            previous_blank = false;
        }
    }
    found
}

fn check(readme_path: &Path) {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(readme_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", readme_path.display()));
    let found = blocks(&readme);
    for file in FILES {
        let shown: Vec<_> = found.iter().filter(|(f, _)| *f == file).collect();
        assert_eq!(
            shown.len(),
            1,
            "{} shows `{file}` {} times, expected once",
            readme_path.display(),
            shown.len()
        );
        let actual = std::fs::read_to_string(crate_dir.join(file)).expect("the crate's file");
        let (actual, shown) = if file == "Cargo.toml" {
            (normalise(&actual), normalise(&shown[0].1))
        } else {
            (actual, shown[0].1.clone())
        };
        assert_eq!(
            shown,
            actual,
            "{} shows a `{file}` that differs from examples/quickstart/{file}",
            readme_path.display()
        );
    }
}

#[test]
fn the_root_readme_quick_start_shows_this_crate() {
    check(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"));
}

#[test]
fn normalising_removes_only_the_path_key() {
    assert_eq!(
        normalise(r#"a = { version = "0.1", path = "../../a", features = ["x"] }"#),
        "a = { version = \"0.1\", features = [\"x\"] }\n"
    );
    assert_eq!(normalise("b = \"1\""), "b = \"1\"\n");
}
