//! `#[worker]`: registers a function with papy's worker registry.
//!
//! ```text
//! // (compiled as a doc test of the `papy` crate, which re-exports this macro)
//! use papy::worker;
//!
//! /// Multiplies the input by a factor.
//! #[worker]
//! fn scale(x: f64, factor: f64) -> f64 { x * factor }
//!
//! /// Joins two inputs (a tuple inbox = one element per input pipe).
//! #[worker(imports = ["text", "fast_json,json"], forgive)]
//! fn pair((a, b): (String, i64)) -> Result<String, String> { Ok(format!("{a}{b}")) }
//! ```
//!
//! The function is emitted unchanged. Beside it the macro writes a shim with
//! papy's type-erased calling convention `(inbox: &[Value], args: &[Value])`
//! and submits a descriptor (fully-qualified name, parameters, imports,
//! `forgive`, doc comment, shim) to the registry with `inventory`.
//!
//! Signature rules:
//! - the first parameter is the inbox: a tuple type takes one element per input
//!   pipe, `&[Value]` takes the whole inbox (any number of inputs), any other
//!   type takes the single input;
//! - the remaining parameters are arguments fixed when the `Worker` is built,
//!   by position or by name; `Option<T>` parameters may be left out;
//! - every parameter type is `serde::de::DeserializeOwned + 'static`, the
//!   return type is `T: Serialize` or `Result<T, E: Display>`.
//!
//! Attributes: `imports = ["a", "b,c"]`, `forgive`, `name = "pkg.fn"`
//! (overrides the registered name), `raw` (the function already has the
//! `fn(&[Value], &[Value]) -> Result<Value, E>` form) and `crate = "path"`
//! (where papy is, for a renamed dependency).
//!
//! Where the generated code finds papy depends on which crate the attribute
//! was taken from, with no look at `Cargo.toml` (so this crate needs no TOML
//! parser and plugins build fast): `papy_sdk::worker` writes paths through
//! `::papy_sdk`, `papy::worker` through `::papy`, `papy_core::worker`
//! through `::papy_core`; `crate = "..."` overrides all three.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Error, Expr, FnArg, ItemFn, Lit, Meta, Pat, ReturnType, Token, Type};

struct Options {
    imports: Vec<String>,
    forgive: bool,
    name: Option<String>,
    raw: bool,
    krate: Option<syn::Path>,
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut o = Options {
            imports: Vec::new(),
            forgive: false,
            name: None,
            raw: false,
            krate: None,
        };
        let metas = Punctuated::<Meta, Token![,]>::parse_terminated(input)?;
        for meta in metas {
            let key = meta
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            match (key.as_str(), &meta) {
                ("forgive", Meta::Path(_)) => o.forgive = true,
                ("raw", Meta::Path(_)) => o.raw = true,
                ("imports", Meta::NameValue(nv)) => o.imports = string_list(&nv.value)?,
                ("name", Meta::NameValue(nv)) => o.name = Some(string_lit(&nv.value)?),
                ("crate", Meta::NameValue(nv)) => {
                    o.krate = Some(syn::parse_str(&string_lit(&nv.value)?)?)
                }
                _ => {
                    return Err(Error::new(
                        meta.span(),
                        format!(
                            "unsupported #[worker] attribute `{}`; expected one of: imports = [\"..\"], forgive, name = \"..\", raw, crate = \"..\"",
                            quote!(#meta)
                        ),
                    ))
                }
            }
        }
        Ok(o)
    }
}

fn string_lit(e: &Expr) -> syn::Result<String> {
    match e {
        Expr::Lit(l) => match &l.lit {
            Lit::Str(s) => Ok(s.value()),
            other => Err(Error::new(other.span(), "expected a string literal")),
        },
        other => Err(Error::new(other.span(), "expected a string literal")),
    }
}

fn string_list(e: &Expr) -> syn::Result<Vec<String>> {
    match e {
        Expr::Array(a) => a.elems.iter().map(string_lit).collect(),
        other => Err(Error::new(
            other.span(),
            "expected a list of strings, e.g. imports = [\"a\", \"b,c\"]",
        )),
    }
}

fn papy_path(o: &Options, default: &str) -> TokenStream2 {
    match &o.krate {
        Some(p) => quote!(#p),
        None => {
            let id = format_ident!("{}", default);
            quote!(::#id)
        }
    }
}

fn last_segment_is(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == name),
        Type::Group(g) => last_segment_is(&g.elem, name),
        Type::Paren(p) => last_segment_is(&p.elem, name),
        _ => false,
    }
}

/// The fast-path module of `__private` for common types, chosen syntactically.
fn fast_module(ty: &Type) -> Option<proc_macro2::Ident> {
    let Type::Path(p) = ty else { return None };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    if !last.arguments.is_empty() {
        return None;
    }
    let kind = match last.ident.to_string().as_str() {
        "i64" if p.path.segments.len() == 1 => "fast_i64",
        "f64" if p.path.segments.len() == 1 => "fast_f64",
        "bool" if p.path.segments.len() == 1 => "fast_bool",
        "String" => "fast_string",
        "Value" => "fast_value",
        _ => return None,
    };
    Some(format_ident!("{}", kind))
}

/// The type inside `Result<T, E>`, if `ty` is spelled that way.
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}

/// Registers a function as a papy worker; see the crate docs for the rules.
/// The generated code refers to `::papy_sdk` (the crate plugins build on).
#[proc_macro_attribute]
pub fn worker(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(attr, item, "papy_sdk")
}

/// `#[worker]` as re-exported by the `papy` facade: paths through `::papy`.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn worker_in_papy(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(attr, item, "papy")
}

/// `#[worker]` as re-exported by `papy-core`: paths through `::papy_core`.
#[doc(hidden)]
#[proc_macro_attribute]
pub fn worker_in_core(attr: TokenStream, item: TokenStream) -> TokenStream {
    attribute(attr, item, "papy_core")
}

fn attribute(attr: TokenStream, item: TokenStream, default: &str) -> TokenStream {
    let opts = match syn::parse::<Options>(attr) {
        Ok(o) => o,
        Err(e) => return e.to_compile_error().into(),
    };
    let func = match syn::parse::<ItemFn>(item) {
        Ok(f) => f,
        Err(e) => return e.to_compile_error().into(),
    };
    match expand(&opts, &func, default) {
        Ok(ts) => ts.into(),
        Err(e) => {
            let err = e.to_compile_error();
            quote!(#func #err).into()
        }
    }
}

/// The code `#[worker]` writes for `func`: checks of its signature, the
/// shim that calls it, and its registration. Over 80 lines because it is
/// one template: its `quote!` blocks read as the generated code does, in
/// order, and splitting them would scatter one item over several functions.
#[allow(clippy::too_many_lines)]
fn expand(opts: &Options, func: &ItemFn, default: &str) -> syn::Result<TokenStream2> {
    let p = papy_path(opts, default);
    let sig = &func.sig;
    let ident = &sig.ident;
    if let Some(a) = &sig.asyncness {
        return Err(Error::new(a.span(), "#[worker] functions cannot be async"));
    }
    if !sig.generics.params.is_empty() {
        return Err(Error::new(
            sig.generics.span(),
            "#[worker] functions cannot be generic: the registry needs one concrete function",
        ));
    }
    let mut params = sig.inputs.iter();
    let Some(first) = params.next() else {
        return Err(Error::new(
            sig.paren_token.span.join(),
            format!(
                "#[worker] function `{ident}` needs an inbox parameter: its first parameter receives the input item(s)"
            ),
        ));
    };
    let first = match first {
        FnArg::Typed(t) => t,
        FnArg::Receiver(r) => {
            return Err(Error::new(
                r.span(),
                "#[worker] cannot be used on methods: use a free function",
            ))
        }
    };
    let shim = format_ident!("__papy_worker_shim_{}", ident);
    let name = match &opts.name {
        Some(n) => quote!(#n),
        None => {
            let s = ident.to_string();
            quote!(::core::concat!(::core::module_path!(), "::", #s))
        }
    };
    let imports = &opts.imports;
    let forgive = opts.forgive;
    let doc: Vec<String> = func
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            Meta::NameValue(nv) => string_lit(&nv.value).ok(),
            _ => None,
        })
        .map(|s| s.trim().to_string())
        .collect();
    let doc = doc.join("\n");
    let returns_result = match &sig.output {
        ReturnType::Default => false,
        ReturnType::Type(_, t) => last_segment_is(t, "Result"),
    };

    let (body, params_meta, inputs) = if opts.raw {
        if sig.inputs.len() != 2 {
            return Err(Error::new(
                sig.inputs.span(),
                "a raw #[worker] takes exactly (inbox: &[Value], args: &[Value])",
            ));
        }
        let call = quote!(#ident(inbox, args));
        let conv = if returns_result {
            quote!(#p::registry::__private::output_result(#call))
        } else {
            quote!(#p::registry::__private::output(#call))
        };
        (
            conv,
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        )
    } else {
        let inbox_ty = &*first.ty;
        let (inbox_expr, n_inputs) = match inbox_ty {
            Type::Tuple(t) if !t.elems.is_empty() => {
                let parts = t
                    .elems
                    .iter()
                    .enumerate()
                    .map(|(i, ty)| match fast_module(ty) {
                        Some(m) => quote!(#p::registry::__private::#m::inbox(inbox, #i)?),
                        None => quote!(#p::registry::__private::inbox::<#ty>(inbox, #i)?),
                    });
                (quote!((#(#parts,)*)), Some(t.elems.len()))
            }
            // `&[Value]`: the whole inbox, any number of inputs.
            Type::Reference(_) => (quote!(inbox), None),
            ty => match fast_module(ty) {
                Some(m) => (
                    quote!(#p::registry::__private::#m::inbox(inbox, 0)?),
                    Some(1usize),
                ),
                None => (
                    quote!(#p::registry::__private::inbox::<#ty>(inbox, 0)?),
                    Some(1usize),
                ),
            },
        };
        let (check, inputs_meta) = match n_inputs {
            Some(n) => (
                quote!(#p::registry::__private::check_inbox(inbox, #n)?;),
                quote!(::core::option::Option::Some(#n)),
            ),
            None => (quote!(), quote!(::core::option::Option::None)),
        };
        let mut arg_lets = Vec::new();
        let mut arg_names = Vec::new();
        let mut metas = Vec::new();
        for (i, a) in params.enumerate() {
            let FnArg::Typed(t) = a else {
                return Err(Error::new(a.span(), "unexpected receiver"));
            };
            let pname = match &*t.pat {
                Pat::Ident(pi) => pi.ident.to_string().trim_start_matches('_').to_string(),
                _ => format!("arg{i}"),
            };
            let ty = &*t.ty;
            let var = format_ident!("__papy_arg_{}", i);
            arg_lets.push(match fast_module(ty) {
                Some(m) => {
                    quote!(let #var: #ty = #p::registry::__private::#m::arg(args, #i, #pname)?;)
                }
                None => {
                    quote!(let #var: #ty = #p::registry::__private::arg::<#ty>(args, #i, #pname)?;)
                }
            });
            arg_names.push(var);
            let optional = last_segment_is(ty, "Option");
            let ty_text: String = quote!(#ty)
                .to_string()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            metas.push(
                quote!(#p::registry::Param { name: #pname, optional: #optional, ty: #ty_text }),
            );
        }
        let call = quote!(#ident(__papy_inbox, #(#arg_names),*));
        let ret_ty = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, t) => Some(&**t),
        };
        let fast_ret = ret_ty.and_then(|t| {
            if returns_result {
                result_ok_type(t).and_then(fast_module)
            } else {
                fast_module(t)
            }
        });
        let conv = match (fast_ret, returns_result) {
            (Some(m), true) => quote!(#p::registry::__private::#m::output_result(#call)),
            (Some(m), false) => quote!(#p::registry::__private::#m::output(#call)),
            (None, true) => quote!(#p::registry::__private::output_result(#call)),
            (None, false) => quote!(#p::registry::__private::output(#call)),
        };
        (
            quote! {
                #check
                let __papy_inbox: #inbox_ty = #inbox_expr;
                #(#arg_lets)*
                #conv
            },
            quote!(::core::option::Option::Some(&[#(#metas),*])),
            inputs_meta,
        )
    };
    let span = Span::call_site();
    Ok(quote::quote_spanned! {span=>
        #func

        #[doc(hidden)]
        #[allow(non_snake_case, clippy::needless_question_mark, unused_variables)]
        fn #shim(
            inbox: &[#p::Value],
            args: &[#p::Value],
        ) -> ::core::result::Result<#p::Value, #p::ItemError> {
            #body
        }

        #p::registry::__private::inventory::submit! {
            #p::registry::WorkerDescriptor {
                name: #name,
                params: #params_meta,
                inputs: #inputs,
                imports: &[#(#imports),*],
                forgive: #forgive,
                doc: #doc,
                call: #shim,
            }
        }
    })
}
