//! Proto comments on services and methods, turned into rustdoc.
//!
//! Comments come from a file's `SourceCodeInfo`. They are written for proto
//! readers, not rustdoc, so the text is adjusted to keep `cargo test` and
//! `cargo doc` quiet: code blocks become `text` blocks (rustdoc would run an
//! untagged block as a doctest), and square brackets are escaped (rustdoc
//! would read them as intra-doc links).

use std::collections::HashMap;

use buffa_codegen::generated::descriptor::FileDescriptorProto;
use proc_macro2::TokenStream;
use quote::quote;

/// `FileDescriptorProto.service`.
const FILE_SERVICE: i32 = 6;
/// `ServiceDescriptorProto.method`.
const SERVICE_METHOD: i32 = 2;

/// Comments of one file's services and methods, by position.
#[derive(Debug, Default)]
pub(crate) struct Comments {
    by_path: HashMap<Vec<i32>, String>,
}

impl Comments {
    /// Collects the comments of `file`'s services and methods.
    pub(crate) fn of(file: &FileDescriptorProto) -> Self {
        let mut by_path = HashMap::new();
        if let Some(info) = file.source_code_info.as_option() {
            for location in &info.location {
                let is_ours = location.path.first() == Some(&FILE_SERVICE)
                    && (location.path.len() == 2
                        || (location.path.len() == 4 && location.path[2] == SERVICE_METHOD));
                if !is_ours {
                    continue;
                }
                let text = location
                    .leading_comments
                    .as_deref()
                    .filter(|c| !c.trim().is_empty())
                    .or(location.trailing_comments.as_deref())
                    .unwrap_or("");
                if !text.trim().is_empty() {
                    by_path.insert(location.path.clone(), text.to_string());
                }
            }
        }
        Self { by_path }
    }

    /// The comment on the `service`-th service, if any.
    pub(crate) fn service(&self, service: usize) -> Option<&str> {
        self.by_path
            .get(&vec![FILE_SERVICE, index(service)])
            .map(String::as_str)
    }

    /// The comment on the `method`-th method of the `service`-th service.
    pub(crate) fn method(&self, service: usize, method: usize) -> Option<&str> {
        self.by_path
            .get(&vec![
                FILE_SERVICE,
                index(service),
                SERVICE_METHOD,
                index(method),
            ])
            .map(String::as_str)
    }
}

fn index(i: usize) -> i32 {
    i32::try_from(i).unwrap_or(i32::MAX)
}

/// `#[doc]` attributes for `lines`, one per line.
pub(crate) fn attrs<S: AsRef<str>>(lines: &[S]) -> TokenStream {
    let docs = lines.iter().map(|line| {
        let line = line.as_ref();
        let text = if line.is_empty() {
            String::new()
        } else {
            format!(" {line}")
        };
        quote! { #[doc = #text] }
    });
    quote! { #(#docs)* }
}

/// Rustdoc lines for a proto comment: common indentation removed, code
/// blocks fenced as `text`, brackets outside code escaped, and leading and
/// trailing blank lines dropped.
pub(crate) fn rustdoc_lines(comment: &str) -> Vec<String> {
    let raw: Vec<&str> = comment.lines().map(str::trim_end).collect();
    let indent = raw
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let lines: Vec<&str> = raw
        .iter()
        .map(|l| if l.len() >= indent { &l[indent..] } else { "" })
        .collect();

    let mut out: Vec<String> = Vec::new();
    let mut in_fence = false;
    let mut in_indented = false;
    for line in lines {
        let trimmed = line.trim_start();
        if in_fence {
            if trimmed.starts_with("```") {
                in_fence = false;
            }
            out.push(line.to_string());
            continue;
        }
        if let Some(info) = trimmed.strip_prefix("```") {
            close_indented(&mut out, &mut in_indented);
            in_fence = true;
            let lang = info.trim();
            // Untagged and Rust blocks would be compiled as doctests.
            if lang.is_empty() || lang.split(',').any(|t| t.trim() == "rust") {
                out.push("```text".to_string());
            } else {
                out.push(line.to_string());
            }
            continue;
        }
        let is_indented_code = line.starts_with("    ") || line.starts_with('\t');
        if is_indented_code && (in_indented || out.last().is_none_or(|l| l.is_empty())) {
            if !in_indented {
                out.push("```text".to_string());
                in_indented = true;
            }
            out.push(line.trim_start().to_string());
            continue;
        }
        if in_indented && line.trim().is_empty() {
            // A blank line may continue an indented block; decide on the next line.
            out.push(String::new());
            continue;
        }
        close_indented(&mut out, &mut in_indented);
        out.push(escape_brackets(line));
    }
    if in_fence {
        out.push("```".to_string());
    }
    close_indented(&mut out, &mut in_indented);

    while out.first().is_some_and(|l| l.is_empty()) {
        out.remove(0);
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

/// Ends an open indented code block, moving any blank lines it swallowed to
/// after the closing fence.
fn close_indented(out: &mut Vec<String>, in_indented: &mut bool) {
    if !*in_indented {
        return;
    }
    let mut blanks = 0;
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
        blanks += 1;
    }
    out.push("```".to_string());
    out.extend(std::iter::repeat_n(String::new(), blanks));
    *in_indented = false;
}

/// Escapes `[` and `]` outside inline code spans.
fn escape_brackets(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_code = false;
    for c in line.chars() {
        match c {
            '`' => {
                in_code = !in_code;
                out.push(c);
            }
            '[' | ']' if !in_code => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rustdoc_lines;

    #[test]
    fn strips_common_indent_and_blank_edges() {
        assert_eq!(
            rustdoc_lines(" Says hello.\n\n More text.\n"),
            vec!["Says hello.", "", "More text."]
        );
    }

    #[test]
    fn fences_indented_code_as_text() {
        assert_eq!(
            rustdoc_lines(" Example:\n\n     let x = 1;\n     call(x);\n\n Done.\n"),
            vec![
                "Example:",
                "",
                "```text",
                "let x = 1;",
                "call(x);",
                "```",
                "",
                "Done."
            ]
        );
    }

    #[test]
    fn tags_untagged_fences_and_keeps_other_languages() {
        assert_eq!(
            rustdoc_lines("```\nfoo()\n```\n```json\n{}\n```"),
            vec!["```text", "foo()", "```", "```json", "{}", "```"]
        );
    }

    #[test]
    fn escapes_brackets_outside_code() {
        assert_eq!(
            rustdoc_lines(" See [Foo][pkg.Foo] and `a[0]`."),
            vec![r"See \[Foo\]\[pkg.Foo\] and `a[0]`."]
        );
    }
}
