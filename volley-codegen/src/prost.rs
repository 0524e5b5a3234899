//! Message paths for [`MessageLibrary::Prost`](crate::MessageLibrary::Prost): where
//! `prost-build` puts each message, and the `prost_message!` lines that implement
//! `volley::Message` for them.
//!
//! prost names a message `UpperCamelCase` and puts nested messages in a module named after
//! their parent in `snake_case`; the package modules are those of the include file, so the
//! service code names a message from the root of that tree.

use std::collections::BTreeMap;

use buffa_codegen::generated::descriptor::{DescriptorProto, FileDescriptorProto};
use heck::{ToSnakeCase as _, ToUpperCamelCase as _};
use proc_macro2::TokenStream;
use quote::quote;

use crate::Error;

/// The extern path every prost build gets unless it maps `.google.protobuf` itself: the
/// well-known types of `pbjson-types`, which are prost's with serde impls giving their proto3
/// JSON forms.
pub const WELL_KNOWN_TYPES: (&str, &str) = (".google.protobuf", "::pbjson_types");

/// prost's module name for a nested-message parent or package segment.
pub(crate) fn module_name(name: &str) -> String {
    let snake = name.to_snake_case();
    escape(snake)
}

/// prost's type name for a message.
pub(crate) fn type_name(name: &str) -> String {
    let camel = name.to_upper_camel_case();
    escape(camel)
}

/// A keyword as a raw identifier, or with `_` appended where raw is not allowed (as prost does).
fn escape(name: String) -> String {
    if buffa_codegen::idents::is_rust_keyword(&name) {
        if matches!(name.as_str(), "self" | "Self" | "super" | "crate" | "_") {
            format!("{name}_")
        } else {
            format!("r#{name}")
        }
    } else {
        name
    }
}

/// Where one message lives: its package and the chain of message names from the outermost.
#[derive(Debug, Clone)]
struct Location {
    package: String,
    chain: Vec<String>,
}

/// Resolves fully-qualified message names to Rust paths in a prost build.
pub(crate) struct ProstResolver {
    messages: BTreeMap<String, Location>,
    externs: Vec<(String, String)>,
    root: Option<String>,
}

impl ProstResolver {
    /// Indexes every message of `files`. `externs` are `(proto prefix, Rust path)` pairs
    /// (longest match wins); `root` is the module holding the package tree, if the service
    /// code is not placed inside it.
    pub(crate) fn new(
        files: &[FileDescriptorProto],
        externs: &[(String, String)],
        root: Option<&str>,
    ) -> Self {
        let mut messages = BTreeMap::new();
        for file in files {
            let package = file.package.clone().unwrap_or_default();
            for message in &file.message_type {
                index(&mut messages, &package, &[], message);
            }
        }
        let mut externs = externs.to_vec();
        if !externs
            .iter()
            .any(|(proto, _)| proto == WELL_KNOWN_TYPES.0 || proto == ".google")
        {
            externs.push((WELL_KNOWN_TYPES.0.into(), WELL_KNOWN_TYPES.1.into()));
        }
        Self {
            messages,
            externs,
            root: root.map(str::to_string),
        }
    }

    /// The path of `fqn` as a string, seen from a module one level below `from_package`'s.
    fn path(&self, fqn: &str, from_package: &str) -> Result<String, Error> {
        let unknown = || Error::UnknownType(fqn.to_string());
        if let Some((proto, rust)) = self
            .externs
            .iter()
            .filter(|(proto, _)| {
                fqn == proto
                    || fqn
                        .strip_prefix(proto.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .max_by_key(|(proto, _)| proto.len())
        {
            let rest: Vec<&str> = fqn[proto.len()..]
                .split('.')
                .filter(|s| !s.is_empty())
                .collect();
            let mut path = rust.clone();
            for (i, segment) in rest.iter().enumerate() {
                path.push_str("::");
                if i + 1 == rest.len() {
                    path.push_str(&type_name(segment));
                } else {
                    path.push_str(&module_name(segment));
                }
            }
            return Ok(path);
        }
        let location = self.messages.get(fqn).ok_or_else(unknown)?;
        let mut path = match &self.root {
            Some(root) => root.clone(),
            None => {
                let depth = 1 + from_package.split('.').filter(|s| !s.is_empty()).count();
                vec!["super"; depth].join("::")
            }
        };
        for segment in location.package.split('.').filter(|s| !s.is_empty()) {
            path.push_str("::");
            path.push_str(&buffa_codegen::idents::escape_mod_ident(segment));
        }
        let (last, parents) = location.chain.split_last().ok_or_else(unknown)?;
        for parent in parents {
            path.push_str("::");
            path.push_str(&module_name(parent));
        }
        path.push_str("::");
        path.push_str(&type_name(last));
        Ok(path)
    }

    /// The path of `fqn` as tokens, seen from a module one level below `from_package`'s.
    pub(crate) fn resolve(&self, fqn: &str, from_package: &str) -> Result<TokenStream, Error> {
        let path = self.path(fqn, from_package)?;
        let parsed: syn::Path = syn::parse_str(&path).map_err(|_| Error::InvalidPath(path))?;
        Ok(quote!(#parsed))
    }

    /// The `prost_message!` invocation for every message (map entries aside) of `package`
    /// defined in `files`, to be included in that package's module; `None` when it has none.
    pub(crate) fn message_impls(
        &self,
        files: &[&FileDescriptorProto],
    ) -> Result<Option<TokenStream>, Error> {
        let mut paths = Vec::new();
        for file in files {
            let package = file.package.as_deref().unwrap_or("");
            for message in &file.message_type {
                let mut names = Vec::new();
                collect(message, &[], &mut names);
                for chain in names {
                    let fqn = if package.is_empty() {
                        format!(".{}", chain.join("."))
                    } else {
                        format!(".{package}.{}", chain.join("."))
                    };
                    if self.messages.contains_key(&fqn) {
                        // The path from the package module itself: drop the package part.
                        let (last, parents) =
                            chain.split_last().ok_or(Error::MissingName("message"))?;
                        let mut path = String::new();
                        for parent in parents {
                            path.push_str(&module_name(parent));
                            path.push_str("::");
                        }
                        path.push_str(&type_name(last));
                        let parsed: syn::Path =
                            syn::parse_str(&path).map_err(|_| Error::InvalidPath(path))?;
                        // The full name without the leading dot, for `Message::full_name`.
                        let full_name = &fqn[1..];
                        paths.push(quote!(#parsed = #full_name));
                    }
                }
            }
        }
        if paths.is_empty() {
            return Ok(None);
        }
        Ok(Some(quote! {
            ::volley::prost_message!(#(#paths),*);
        }))
    }
}

/// Whether `message` is a map's entry (prost generates no type for it).
fn is_map_entry(message: &DescriptorProto) -> bool {
    message
        .options
        .as_option()
        .and_then(|o| o.map_entry)
        .unwrap_or(false)
}

fn index(
    messages: &mut BTreeMap<String, Location>,
    package: &str,
    parents: &[String],
    message: &DescriptorProto,
) {
    if is_map_entry(message) {
        return;
    }
    let name = message.name.clone().unwrap_or_default();
    let mut chain = parents.to_vec();
    chain.push(name);
    let fqn = if package.is_empty() {
        format!(".{}", chain.join("."))
    } else {
        format!(".{package}.{}", chain.join("."))
    };
    for nested in &message.nested_type {
        index(messages, package, &chain, nested);
    }
    messages.insert(
        fqn,
        Location {
            package: package.to_string(),
            chain,
        },
    );
}

fn collect(message: &DescriptorProto, parents: &[String], out: &mut Vec<Vec<String>>) {
    if is_map_entry(message) {
        return;
    }
    let mut chain = parents.to_vec();
    chain.push(message.name.clone().unwrap_or_default());
    for nested in &message.nested_type {
        collect(nested, &chain, out);
    }
    out.push(chain);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prost() {
        assert_eq!(type_name("HTTPRequest"), "HttpRequest");
        assert_eq!(type_name("foo_bar"), "FooBar");
        assert_eq!(type_name("Self"), "Self_");
        assert_eq!(module_name("OuterMsg"), "outer_msg");
        assert_eq!(module_name("Type"), "r#type");
    }
}
