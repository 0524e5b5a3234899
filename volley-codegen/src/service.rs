//! One proto service -> Rust items.
//!
//! Each service gets a module (`eliza_service`) holding its procedure
//! paths, method specs, server trait, registration function and client, and
//! the package module re-exports the trait, function and client. Inside the
//! service module runtime names are imported short (`Request`, `Error`),
//! which keeps the code readable; messages are named by path (`super::Msg`),
//! so a message can never shadow an import.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use buffa_codegen::generated::descriptor::ServiceDescriptorProto;
use buffa_codegen::generated::descriptor::method_options::IdempotencyLevel;
use proc_macro2::{Ident, TokenStream};
use quote::quote;

use crate::names::{self, Namer};
use crate::{Error, Gate, docs};

/// How a method streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unary,
    ClientStream,
    ServerStream,
    BidiStream,
}

/// Everything the emitter needs to know about one method.
pub(crate) struct Method {
    /// The proto name, e.g. `Say`.
    proto_name: String,
    kind: Kind,
    idempotency: IdempotencyLevel,
    /// Rust paths of the request and response types, from the service module.
    input: TokenStream,
    output: TokenStream,
    docs: Vec<String>,
    deprecated: bool,
    /// The binary-encoded `MethodOptions` (custom options included), if any.
    options: Vec<u8>,
    /// The server receives the request as a `View`.
    view: bool,
}

/// Everything the emitter needs to know about one service.
pub(crate) struct Service {
    /// `pkg.Service`.
    full_name: String,
    docs: Vec<String>,
    methods: Vec<Method>,
    /// Names unique in the package module.
    trait_name: String,
    client_name: String,
    module_name: String,
    register_name: String,
}

impl Service {
    /// Reads `service` of `package`. `resolve` maps a fully-qualified proto
    /// message name (`.pkg.Msg`) to its Rust path as seen from a module
    /// nested one level below the package's; `namer` holds the names already
    /// used in the package module.
    pub(crate) fn from_descriptor(
        service: &ServiceDescriptorProto,
        package: &str,
        docs: Vec<String>,
        method_docs: impl Fn(usize) -> Vec<String>,
        resolve: impl Fn(&str) -> Result<TokenStream, Error>,
        view_request: impl Fn(&str) -> bool,
        namer: &mut Namer,
    ) -> Result<Self, Error> {
        let name = service
            .name
            .as_deref()
            .ok_or(Error::MissingName("service"))?;
        let full_name = if package.is_empty() {
            name.to_string()
        } else {
            format!("{package}.{name}")
        };
        let mut methods = Vec::with_capacity(service.method.len());
        for (i, method) in service.method.iter().enumerate() {
            let proto_name = method.name.clone().ok_or(Error::MissingName("method"))?;
            let kind = match (
                method.client_streaming.unwrap_or(false),
                method.server_streaming.unwrap_or(false),
            ) {
                (false, false) => Kind::Unary,
                (true, false) => Kind::ClientStream,
                (false, true) => Kind::ServerStream,
                (true, true) => Kind::BidiStream,
            };
            let options = method.options.as_option();
            let type_of = |t: &Option<String>| {
                t.as_deref()
                    .ok_or_else(|| Error::MissingType(format!("{full_name}.{proto_name}")))
                    .and_then(&resolve)
            };
            methods.push(Method {
                input: type_of(&method.input_type)?,
                output: type_of(&method.output_type)?,
                kind,
                idempotency: options
                    .and_then(|o| o.idempotency_level)
                    .unwrap_or(IdempotencyLevel::IDEMPOTENCY_UNKNOWN),
                deprecated: options.and_then(|o| o.deprecated).unwrap_or(false),
                options: options
                    .map(buffa::Message::encode_to_vec)
                    .unwrap_or_default(),
                docs: method_docs(i),
                view: view_request(&format!(".{full_name}.{proto_name}")),
                proto_name,
            });
        }
        let snake = names::snake_case(name);
        Ok(Self {
            trait_name: namer.claim(name),
            client_name: namer.claim(&format!("{name}Client")),
            module_name: namer.claim(&snake),
            register_name: namer.claim(&format!("register_{snake}")),
            full_name,
            docs,
            methods,
        })
    }

    /// The service module and the package-level re-exports.
    pub(crate) fn emit(&self, server: &Gate, client: &Gate) -> TokenStream {
        let scope = Scope::new(&[&self.trait_name, &self.client_name]);
        let names = self.method_names();
        let specs = self.emit_specs(&scope, &names);
        let server_cfg = server.cfg();
        let client_cfg = client.cfg();
        let server_items = server_cfg
            .as_ref()
            .map(|cfg| {
                scope.enter(Some(server));
                self.emit_server(&scope, &names, cfg)
            })
            .unwrap_or_default();
        let client_items = client_cfg
            .as_ref()
            .map(|cfg| {
                scope.enter(Some(client));
                self.emit_client(&scope, &names, cfg)
            })
            .unwrap_or_default();
        let imports = scope.imports();

        let module = names::ident(&self.module_name);
        let module_doc = docs::attrs(&[format!(
            "`{}`: procedure paths, method specs, server trait and client.",
            self.full_name
        )]);
        let reexport = |cfg: &Option<TokenStream>, items: Vec<&str>| match cfg {
            Some(cfg) => {
                let items = items.into_iter().map(names::ident);
                quote! { #cfg pub use self::#module::{#(#items),*}; }
            }
            None => TokenStream::new(),
        };
        let server_reexport = reexport(&server_cfg, vec![&self.trait_name, &self.register_name]);
        let client_reexport = reexport(&client_cfg, vec![&self.client_name]);
        quote! {
            #server_reexport
            #client_reexport

            #module_doc
            #[allow(clippy::wrong_self_convention, clippy::should_implement_trait, reason = "method names come from the proto")]
            pub mod #module {
                #imports
                #specs
                #server_items
                #client_items
            }
        }
    }

    /// Per-method Rust names, unique within their scopes.
    fn method_names(&self) -> Vec<MethodNames> {
        let mut trait_scope = Namer::default();
        let mut const_scope = Namer::with_reserved(&["SERVICE_NAME"]);
        let mut client_scope = Namer::with_reserved(&["new", "inner", "into_inner"]);
        let firsts: Vec<(String, String, String)> = self
            .methods
            .iter()
            .map(|m| {
                let snake = names::snake_case(&m.proto_name);
                (
                    trait_scope.claim(&snake),
                    const_scope.claim(&names::shouty_snake_case(&m.proto_name)),
                    client_scope.claim(&snake),
                )
            })
            .collect();
        // The derived names come second so a method's natural name always
        // wins over another method's derived one.
        firsts
            .into_iter()
            .zip(&self.methods)
            .map(|((method, spec, call), m)| {
                let shouty = names::shouty_snake_case(&m.proto_name);
                let procedure = const_scope.claim(&format!("{shouty}_PROCEDURE"));
                let call_with =
                    client_scope.claim(&format!("{}_with", names::snake_case(&m.proto_name)));
                MethodNames {
                    method: names::ident(&method),
                    spec: names::ident(&spec),
                    procedure: names::ident(&procedure),
                    call,
                    call_with,
                }
            })
            .collect()
    }

    fn emit_specs(&self, scope: &Scope, names: &[MethodNames]) -> TokenStream {
        let full_name = &self.full_name;
        let (spec_ty, stream_ty, idem_ty) = (
            scope.name("Spec"),
            scope.name("StreamType"),
            scope.name("Idempotency"),
        );
        let consts = self.methods.iter().zip(names).map(|(m, n)| {
            let (spec, procedure) = (&n.spec, &n.procedure);
            let path = format!("/{full_name}/{}", m.proto_name);
            let (stream_type, kind_text) = match m.kind {
                Kind::Unary => (quote!(Unary), "unary"),
                Kind::ClientStream => (quote!(ClientStream), "client streaming"),
                Kind::ServerStream => (quote!(ServerStream), "server streaming"),
                Kind::BidiStream => (quote!(BidiStream), "bidirectional streaming"),
            };
            let (idempotency, idem_text) = match m.idempotency {
                IdempotencyLevel::NO_SIDE_EFFECTS => (quote!(NoSideEffects), ", no side effects"),
                IdempotencyLevel::IDEMPOTENT => (quote!(Idempotent), ", idempotent"),
                _ => (quote!(Unknown), ""),
            };
            let path_doc = docs::attrs(&[format!("The procedure path of `{}`.", m.proto_name)]);
            let spec_doc = docs::attrs(&[format!("`{}`: {kind_text}{idem_text}.", m.proto_name)]);
            let with_options = (!m.options.is_empty()).then(|| {
                let bytes = proc_macro2::Literal::byte_string(&m.options);
                quote!(.with_options(#bytes))
            });
            quote! {
                #path_doc
                pub const #procedure: &str = #path;
                #spec_doc
                pub const #spec: #spec_ty =
                    #spec_ty::new(#procedure, #stream_ty::#stream_type, #idem_ty::#idempotency)
                        #with_options;
            }
        });
        let name_doc = docs::attrs(&["The fully-qualified name of the service."]);
        quote! {
            #name_doc
            pub const SERVICE_NAME: &str = #full_name;
            #(#consts)*
        }
    }

    fn emit_server(&self, scope: &Scope, names: &[MethodNames], cfg: &TokenStream) -> TokenStream {
        let trait_ident = names::ident(&self.trait_name);
        let register = names::ident(&self.register_name);
        let (send, sync, future, result, error, router, arc) = (
            scope.name("Send"),
            scope.name("Sync"),
            scope.name("Future"),
            scope.name("Result"),
            scope.name("Error"),
            scope.name("Router"),
            scope.name("Arc"),
        );
        let mut trait_docs = self.docs.clone();
        if !trait_docs.is_empty() {
            trait_docs.push(String::new());
        }
        trait_docs.push(format!(
            "Implement this trait to serve `{}`, and add it to a router with \
             [`{}`]. Methods left out answer `unimplemented`.",
            self.full_name, self.register_name
        ));
        let trait_docs = docs::attrs(&trait_docs);

        let trait_methods = self.methods.iter().zip(names).map(|(m, n)| {
            let method = &n.method;
            let received = if m.view {
                let view = scope.name("View");
                let input = &m.input;
                quote!(#view<#input>)
            } else {
                m.input.clone()
            };
            let input = match m.kind {
                Kind::Unary | Kind::ServerStream => scope.request(&received),
                Kind::ClientStream | Kind::BidiStream => scope.request(&scope.streaming(&received)),
            };
            let output = match m.kind {
                Kind::Unary | Kind::ClientStream => scope.response(&m.output),
                Kind::ServerStream | Kind::BidiStream => {
                    let stream = scope.name("ResponseStream");
                    let res = &m.output;
                    scope.response(&quote!(#stream<#res>))
                }
            };
            let method_name = format!("{}.{}", self.full_name, m.proto_name);
            let mut doc = or_default(&m.docs, || format!("Handles `{}`.", m.proto_name));
            if m.view {
                doc.push(String::new());
                doc.push(
                    "The request arrives as a zero-copy `View`, borrowing the request buffer."
                        .into(),
                );
            }
            let doc = docs::attrs(&doc);
            let deprecated = m.deprecated.then(|| quote!(#[deprecated]));
            quote! {
                #doc
                #deprecated
                fn #method(
                    &self,
                    request: #input,
                ) -> impl #future<Output = #result<#output, #error>> + #send {
                    let _ = request;
                    unimplemented(#method_name)
                }
            }
        });

        let mut routes = Vec::new();
        let mut handles = Vec::new();
        for (m, n) in self.methods.iter().zip(names) {
            let (method, spec) = (&n.method, &n.spec);
            let handle = names::ident(&format!(
                "{}_service",
                method.to_string().trim_start_matches("r#")
            ));
            let builder = match m.kind {
                Kind::Unary => quote!(unary),
                Kind::ClientStream => quote!(client_stream),
                Kind::ServerStream => quote!(server_stream),
                Kind::BidiStream => quote!(bidi_stream),
            };
            handles.push(quote! { let #handle = service.clone(); });
            routes.push(quote! {
                .#builder(#spec, move |request| {
                    let service = #handle.clone();
                    async move { service.#method(request).await }
                })
            });
        }
        let allow_deprecated =
            self.methods.iter().any(|m| m.deprecated).then(
                || quote!(#[allow(deprecated, reason = "deprecated methods are still served")]),
            );
        let register_doc = docs::attrs(&[format!(
            "Adds every method of `{}` to `router`, served by `service`.",
            self.full_name
        )]);
        quote! {
            #trait_docs
            #cfg
            pub trait #trait_ident: #send + #sync + 'static {
                #(#trait_methods)*
            }

            /// The answer of a method the implementation leaves out.
            #cfg
            async fn unimplemented<T>(method: &'static str) -> #result<T, #error> {
                Err(#error::unimplemented(format!("{method} is not implemented")))
            }

            #register_doc
            #cfg
            #allow_deprecated
            pub fn #register<S: #trait_ident>(router: #router, service: S) -> #router {
                let service = #arc::new(service);
                #(#handles)*
                router #(#routes)*
            }
        }
    }

    fn emit_client(&self, scope: &Scope, names: &[MethodNames], cfg: &TokenStream) -> TokenStream {
        let client = names::ident(&self.client_name);
        let inner_ty = scope.name("Client");
        let transport = scope.name("Transport");
        let mut struct_docs = vec![format!("A typed client for `{}`.", self.full_name)];
        if !self.docs.is_empty() {
            struct_docs.push(String::new());
            struct_docs.extend(self.docs.iter().cloned());
        }
        let struct_docs = docs::attrs(&struct_docs);
        let methods = self
            .methods
            .iter()
            .zip(names)
            .map(|(m, n)| client_method(scope, m, n));
        quote! {
            #struct_docs
            #cfg
            pub struct #client<T> {
                inner: #inner_ty<T>,
            }

            #cfg
            impl<T> Clone for #client<T>
            where
                #inner_ty<T>: Clone,
            {
                fn clone(&self) -> Self {
                    Self { inner: self.inner.clone() }
                }
            }

            #cfg
            impl<T> #client<T> {
                /// Calls the service through `inner`.
                pub fn new(inner: #inner_ty<T>) -> Self {
                    Self { inner }
                }

                /// The underlying untyped client.
                pub fn inner(&self) -> &#inner_ty<T> {
                    &self.inner
                }

                /// Unwraps the underlying untyped client.
                pub fn into_inner(self) -> #inner_ty<T> {
                    self.inner
                }
            }

            #cfg
            impl<T: #transport> #client<T> {
                #(#methods)*
            }
        }
    }
}

/// Rust names of one method's items.
struct MethodNames {
    /// Trait method.
    method: Ident,
    /// Spec and procedure-path constants.
    spec: Ident,
    procedure: Ident,
    /// Client methods (unescaped strings: they are also used in docs).
    call: String,
    call_with: String,
}

/// A client's plain method and its `_with` variant taking call options.
fn client_method(scope: &Scope, m: &Method, n: &MethodNames) -> TokenStream {
    let (req, res) = (&m.input, &m.output);
    let (spec, call, call_with) = (&n.spec, names::ident(&n.call), names::ident(&n.call_with));
    let (result, error, options_ty) = (
        scope.name("Result"),
        scope.name("Error"),
        scope.name("CallOptions"),
    );
    let doc = docs::attrs(&or_default(&m.docs, || {
        format!("Calls `{}`.", m.proto_name)
    }));
    let with_doc = docs::attrs(&[format!(
        "Like [`{0}`](Self::{0}), with per-call options.",
        n.call
    )]);
    let deprecated = m.deprecated.then(|| quote!(#[deprecated]));
    let (params, args, generics, bounds, output) = match m.kind {
        Kind::Unary => (
            quote!(request: #req,),
            quote!(request,),
            quote!(),
            quote!(),
            scope.response(res),
        ),
        Kind::ServerStream => (
            quote!(request: #req,),
            quote!(request,),
            quote!(),
            quote!(),
            scope.response(&scope.streaming(res)),
        ),
        Kind::ClientStream => {
            let (stream, send) = (scope.name("Stream"), scope.name("Send"));
            (
                quote!(requests: S,),
                quote!(requests,),
                quote!(<S>),
                quote!(where S: #stream<Item = #req> + #send + 'static),
                scope.response(res),
            )
        }
        Kind::BidiStream => {
            let bidi = scope.name("BidiStream");
            (
                quote!(),
                quote!(),
                quote!(),
                quote!(),
                quote!(#bidi<#req, #res>),
            )
        }
    };
    let runtime_call = match m.kind {
        Kind::Unary => quote!(unary),
        Kind::ClientStream => quote!(client_stream),
        Kind::ServerStream => quote!(server_stream),
        Kind::BidiStream => quote!(bidi_stream),
    };
    quote! {
        #doc
        #deprecated
        pub async fn #call #generics(&self, #params) -> #result<#output, #error> #bounds {
            self.inner.#runtime_call(#spec, #args #options_ty::default()).await
        }

        #with_doc
        #deprecated
        pub async fn #call_with #generics(
            &self,
            #params
            options: #options_ty,
        ) -> #result<#output, #error> #bounds {
            self.inner.#runtime_call(#spec, #args options).await
        }
    }
}

/// `docs`, or one line from `fallback` when there are none.
fn or_default(docs: &[String], fallback: impl FnOnce() -> String) -> Vec<String> {
    if docs.is_empty() {
        vec![fallback()]
    } else {
        docs.to_vec()
    }
}

/// The names generated code uses from the runtime and the standard library,
/// with where each lives. `None`: in every prelude, needs no import.
const KNOWN: &[(&str, Option<&str>, &str)] = &[
    ("Arc", Some("::std::sync::Arc"), "::std::sync::Arc"),
    (
        "BidiStream",
        Some("::volley::BidiStream"),
        "::volley::BidiStream",
    ),
    (
        "CallOptions",
        Some("::volley::CallOptions"),
        "::volley::CallOptions",
    ),
    ("Client", Some("::volley::Client"), "::volley::Client"),
    ("Error", Some("::volley::Error"), "::volley::Error"),
    (
        "Future",
        Some("::core::future::Future"),
        "::core::future::Future",
    ),
    (
        "Idempotency",
        Some("::volley::Idempotency"),
        "::volley::Idempotency",
    ),
    ("Request", Some("::volley::Request"), "::volley::Request"),
    ("Response", Some("::volley::Response"), "::volley::Response"),
    (
        "ResponseStream",
        Some("::volley::ResponseStream"),
        "::volley::ResponseStream",
    ),
    ("Result", None, "::core::result::Result"),
    ("Router", Some("::volley::Router"), "::volley::Router"),
    ("Send", None, "::core::marker::Send"),
    ("Spec", Some("::volley::Spec"), "::volley::Spec"),
    (
        "Stream",
        Some("::volley::__private::Stream"),
        "::volley::__private::Stream",
    ),
    (
        "StreamType",
        Some("::volley::StreamType"),
        "::volley::StreamType",
    ),
    (
        "Streaming",
        Some("::volley::Streaming"),
        "::volley::Streaming",
    ),
    ("Sync", None, "::core::marker::Sync"),
    (
        "Transport",
        Some("::volley::Transport"),
        "::volley::Transport",
    ),
    ("View", Some("::volley::View"), "::volley::View"),
];

/// The service module's view of runtime and standard names: short when the
/// name is free, fully qualified when a generated item (the trait or the
/// client) takes it. Records what it hands out, and under which gate, to
/// emit exactly the imports the emitted items use.
struct Scope {
    taken: Vec<String>,
    /// The gate of the items being emitted; `None` for ungated items.
    current: RefCell<Option<Gate>>,
    /// Short name -> gates of the items using it.
    used: RefCell<BTreeMap<&'static str, Vec<Option<Gate>>>>,
}

impl Scope {
    fn new(taken: &[&str]) -> Self {
        Self {
            taken: taken.iter().map(|s| (*s).to_string()).collect(),
            current: RefCell::new(None),
            used: RefCell::default(),
        }
    }

    /// Names handed out from now on are used by items under `gate`.
    fn enter(&self, gate: Option<&Gate>) {
        *self.current.borrow_mut() = gate.cloned();
    }

    /// How to spell `name`, one of [`KNOWN`], in the service module.
    fn name(&self, name: &'static str) -> TokenStream {
        let Some(&(short, import, full)) = KNOWN.iter().find(|(n, ..)| *n == name) else {
            unreachable!("{name} is not a known name");
        };
        if self.taken.iter().any(|t| t == short) {
            return syn::parse_str(full).expect("known paths parse");
        }
        if import.is_some() {
            let gate = self.current.borrow().clone();
            self.used.borrow_mut().entry(short).or_default().push(gate);
        }
        let ident = names::ident(short);
        quote!(#ident)
    }

    fn request(&self, inner: &TokenStream) -> TokenStream {
        let request = self.name("Request");
        quote!(#request<#inner>)
    }

    fn response(&self, inner: &TokenStream) -> TokenStream {
        let response = self.name("Response");
        quote!(#response<#inner>)
    }

    fn streaming(&self, inner: &TokenStream) -> TokenStream {
        let streaming = self.name("Streaming");
        quote!(#streaming<#inner>)
    }

    /// `use` declarations for every short name handed out, each behind the
    /// `cfg` under which something uses it, grouped by crate.
    fn imports(&self) -> TokenStream {
        // (cfg, crate path) -> names
        let mut groups: BTreeMap<(String, String), Vec<&'static str>> = BTreeMap::new();
        for (short, gates) in self.used.borrow().iter() {
            let (_, import, _) = KNOWN.iter().find(|(n, ..)| n == short).expect("known");
            let import = import.expect("imported names have a path");
            let krate = import.rsplit_once("::").map_or("", |(k, _)| k).to_string();
            groups
                .entry((cfg_of(gates), krate))
                .or_default()
                .push(short);
        }
        groups
            .into_iter()
            .map(|((cfg, krate), shorts)| {
                let cfg: TokenStream = cfg.parse().expect("cfg parses");
                let krate: syn::Path = syn::parse_str(&krate).expect("crate path parses");
                let shorts = shorts.into_iter().map(names::ident);
                if shorts.len() == 1 {
                    quote! { #cfg use #krate::#(#shorts)*; }
                } else {
                    quote! { #cfg use #krate::{#(#shorts),*}; }
                }
            })
            .collect()
    }
}

/// The `#[cfg]` (as text, empty for none) under which an import used by
/// items under `gates` is needed.
fn cfg_of(gates: &[Option<Gate>]) -> String {
    let mut features = BTreeSet::new();
    for gate in gates {
        match gate {
            None | Some(Gate::On) | Some(Gate::Off) => return String::new(),
            Some(Gate::Feature(f)) => {
                features.insert(f.as_str());
            }
        }
    }
    let list: Vec<String> = features
        .iter()
        .map(|f| format!("feature = {f:?}"))
        .collect();
    match list.as_slice() {
        [] => String::new(),
        [one] => format!("#[cfg({one})]"),
        many => format!("#[cfg(any({}))]", many.join(", ")),
    }
}
