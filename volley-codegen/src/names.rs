//! Rust names for proto elements: case conversion, keyword escaping, and
//! collision-free naming within one generated scope.

use std::collections::HashSet;

use proc_macro2::{Ident, Span};

/// `SayHello` -> `say_hello`, `GetHTTPStatus` -> `get_http_status`,
/// `v2Thing` -> `v2_thing`. Underscores already in the name are kept as
/// single separators.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() && i > 0 && !out.ends_with('_') {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            // A word starts at a capital after a lowercase letter or digit
            // (`fooBar`), or at the last capital of an acronym run (`HTTPStatus`).
            if prev.is_lowercase() || prev.is_ascii_digit() || (prev.is_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.extend(c.to_lowercase());
    }
    while out.ends_with('_') && out.len() > 1 {
        out.pop();
    }
    out
}

/// `SayHello` -> `SAY_HELLO`.
pub(crate) fn shouty_snake_case(name: &str) -> String {
    snake_case(name).to_uppercase()
}

/// An identifier for a function, method, constant or module named `name`,
/// escaping Rust keywords: raw (`r#type`) where allowed, otherwise with a
/// trailing underscore (`self_`).
pub(crate) fn ident(name: &str) -> Ident {
    if buffa_codegen::idents::is_rust_keyword(name) {
        if matches!(name, "self" | "Self" | "super" | "crate" | "_") {
            Ident::new(&format!("{name}_"), Span::call_site())
        } else {
            Ident::new_raw(name, Span::call_site())
        }
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// Hands out names unique within one Rust scope. A name already taken gets
/// underscores appended until it is free, so the first claimant keeps the
/// natural name and the output is stable for a given input order.
#[derive(Debug, Default)]
pub(crate) struct Namer {
    taken: HashSet<String>,
}

impl Namer {
    /// A scope in which `reserved` are already taken.
    pub(crate) fn with_reserved(reserved: &[&str]) -> Self {
        Self {
            taken: reserved.iter().map(|s| (*s).to_string()).collect(),
        }
    }

    /// Claims `base`, or the first free `base_`, `base__`, ...
    pub(crate) fn claim(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        while self.taken.contains(&name) {
            name.push('_');
        }
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_handles_acronyms_digits_and_underscores() {
        assert_eq!(snake_case("Say"), "say");
        assert_eq!(snake_case("SayHello"), "say_hello");
        assert_eq!(snake_case("GetHTTPStatus"), "get_http_status");
        assert_eq!(snake_case("HTTP"), "http");
        assert_eq!(snake_case("v2Thing"), "v2_thing");
        assert_eq!(snake_case("Get2Things"), "get2_things");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("Mixed_Case"), "mixed_case");
        assert_eq!(shouty_snake_case("ServerStream"), "SERVER_STREAM");
    }

    #[test]
    fn keywords_are_escaped() {
        assert_eq!(ident("type").to_string(), "r#type");
        assert_eq!(ident("self").to_string(), "self_");
        assert_eq!(ident("say").to_string(), "say");
    }

    #[test]
    fn namer_suffixes_collisions() {
        let mut namer = Namer::with_reserved(&["new"]);
        assert_eq!(namer.claim("new"), "new_");
        assert_eq!(namer.claim("say"), "say");
        assert_eq!(namer.claim("say"), "say_");
    }
}
