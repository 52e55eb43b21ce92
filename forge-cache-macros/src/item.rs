//! The annotated function: what both macros need to know about it.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{AttrStyle, Attribute, FnArg, Ident, ItemFn, Pat, ReturnType, Type};

use crate::errors::Errors;

/// How a return type is cached (and whether `#[rate_limit]` can return its
/// error through it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReturnKind {
    Result,
    Option,
    Value,
}

/// One typed argument (not the receiver).
pub(crate) struct Arg {
    pub(crate) pat: Pat,
    pub(crate) ty: Type,
    /// The identifiers the pattern binds, in order: `id` for
    /// `Path(id): Path<u64>`.
    pub(crate) bindings: Vec<Ident>,
}

/// A method's `self`.
pub(crate) struct Receiver {
    /// `&self`, `self: Arc<Self>`, ...: where errors about it point.
    pub(crate) tokens: proc_macro2::TokenStream,
    /// `self` or `mut self` (not a reference or smart pointer to `Self`).
    pub(crate) by_value: bool,
}

/// What the macros know about the function.
pub(crate) struct FnInfo {
    pub(crate) is_async: bool,
    pub(crate) receiver: Option<Receiver>,
    pub(crate) args: Vec<Arg>,
    /// The return type (`()` when none is written).
    pub(crate) ret: Type,
    pub(crate) ret_span: Span,
    pub(crate) ret_kind: ReturnKind,
    /// The value is an `axum::Json<T>` (the whole return type, or the `Ok`
    /// or `Some` type), cached as `T`: its span.
    pub(crate) ret_json: Option<Span>,
    /// Has type or const parameters.
    pub(crate) is_generic: bool,
}

impl FnInfo {
    /// Analyses `f` for `#[<macro_name>]`: `const fn` and `impl Trait`
    /// return types are errors at the offending token, recorded in
    /// `errors`.
    pub(crate) fn analyze(f: &ItemFn, macro_name: &str, errors: &mut Errors) -> Self {
        let sig = &f.sig;
        if let Some(c) = &sig.constness {
            errors.push(syn::Error::new(
                c.span,
                format!(
                    "#[{macro_name}] cannot be used on a `const fn`: it reads and writes Redis at run time"
                ),
            ));
        }
        let (ret, ret_span) = match &sig.output {
            ReturnType::Default => (syn::parse_quote!(()), sig.ident.span()),
            ReturnType::Type(_, ty) => {
                if let Some(span) = find_impl_trait(ty) {
                    errors.push(syn::Error::new(
                        span,
                        format!(
                            "#[{macro_name}] does not support `impl Trait` return types: name the type (it must be stored and read back)"
                        ),
                    ));
                }
                ((**ty).clone(), ty.span())
            }
        };
        let mut args = Vec::new();
        let mut receiver = None;
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => {
                    let by_value = r.reference.is_none()
                        && matches!(&*r.ty, Type::Path(p) if p.qself.is_none() && p.path.is_ident("Self"));
                    receiver = Some(Receiver {
                        tokens: quote::ToTokens::to_token_stream(r),
                        by_value,
                    });
                }
                FnArg::Typed(t) => {
                    let mut bindings = Vec::new();
                    collect_bindings(&t.pat, &mut bindings);
                    args.push(Arg {
                        pat: (*t.pat).clone(),
                        ty: (*t.ty).clone(),
                        bindings,
                    });
                }
            }
        }
        let is_generic = sig
            .generics
            .params
            .iter()
            .any(|p| !matches!(p, syn::GenericParam::Lifetime(_)));
        FnInfo {
            is_async: sig.asyncness.is_some(),
            receiver,
            ret_kind: classify(&ret),
            ret_json: json_value(&ret),
            ret,
            ret_span,
            args,
            is_generic,
        }
    }

    /// Every identifier bound by the arguments, in order.
    pub(crate) fn bindings(&self) -> impl Iterator<Item = &Ident> {
        self.args.iter().flat_map(|a| a.bindings.iter())
    }

    /// Whether the return type mentions `Self`.
    pub(crate) fn ret_mentions_self(&self) -> bool {
        fn has_self(ts: proc_macro2::TokenStream) -> bool {
            ts.into_iter().any(|t| match t {
                proc_macro2::TokenTree::Ident(i) => i == "Self",
                proc_macro2::TokenTree::Group(g) => has_self(g.stream()),
                _ => false,
            })
        }
        has_self(quote::ToTokens::to_token_stream(&self.ret))
    }
}

/// The attributes written on the function (`#[...]` before it) and those
/// written inside its body (`#![...]`), which must stay inside.
pub(crate) fn split_attrs(f: &ItemFn) -> (Vec<&Attribute>, Vec<&Attribute>) {
    f.attrs
        .iter()
        .partition(|a| matches!(a.style, AttrStyle::Outer))
}

/// `Result` or `Option` by the last path segment (so `io::Result<T>` and
/// `anyhow::Result<T>` are results), else a plain value.
fn classify(ty: &Type) -> ReturnKind {
    match ty {
        Type::Paren(p) => classify(&p.elem),
        Type::Group(g) => classify(&g.elem),
        Type::Path(p) if p.qself.is_none() => match p.path.segments.last() {
            Some(s) if s.ident == "Result" => ReturnKind::Result,
            Some(s) if s.ident == "Option" => ReturnKind::Option,
            _ => ReturnKind::Value,
        },
        _ => ReturnKind::Value,
    }
}

/// `Json<T>`, `Result<Json<T>, E>` or `Option<Json<T>>` (by the last path
/// segment, as `classify`): the span of the `Json`.
fn json_value(ty: &Type) -> Option<Span> {
    fn last(ty: &Type) -> Option<&syn::PathSegment> {
        match ty {
            Type::Paren(p) => last(&p.elem),
            Type::Group(g) => last(&g.elem),
            Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
            _ => None,
        }
    }
    let seg = last(ty)?;
    if seg.ident == "Json" {
        return Some(seg.ident.span());
    }
    if seg.ident != "Result" && seg.ident != "Option" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    match a.args.first()? {
        syn::GenericArgument::Type(inner) => last(inner)
            .filter(|s| s.ident == "Json")
            .map(|s| s.ident.span()),
        _ => None,
    }
}

fn find_impl_trait(ty: &Type) -> Option<Span> {
    match ty {
        Type::ImplTrait(i) => Some(i.impl_token.span),
        Type::Paren(p) => find_impl_trait(&p.elem),
        Type::Group(g) => find_impl_trait(&g.elem),
        Type::Reference(r) => find_impl_trait(&r.elem),
        Type::Array(a) => find_impl_trait(&a.elem),
        Type::Slice(s) => find_impl_trait(&s.elem),
        Type::Tuple(t) => t.elems.iter().find_map(find_impl_trait),
        Type::Path(p) => p.path.segments.iter().find_map(|s| match &s.arguments {
            syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                syn::GenericArgument::Type(t) => find_impl_trait(t),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    }
}

/// The identifiers a pattern binds.
fn collect_bindings(pat: &Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(i) => {
            out.push(i.ident.clone());
            if let Some((_, sub)) = &i.subpat {
                collect_bindings(sub, out);
            }
        }
        Pat::Tuple(t) => t.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| collect_bindings(&f.pat, out)),
        Pat::Reference(r) => collect_bindings(&r.pat, out),
        Pat::Paren(p) => collect_bindings(&p.pat, out),
        Pat::Slice(s) => s.elems.iter().for_each(|p| collect_bindings(p, out)),
        Pat::Type(t) => collect_bindings(&t.pat, out),
        Pat::Or(o) => {
            if let Some(first) = o.cases.first() {
                collect_bindings(first, out);
            }
        }
        _ => {}
    }
}

/// `pat` without `mut` and `ref` on its bindings, for a companion function
/// that only reads them.
pub(crate) fn plain_pattern(pat: &Pat) -> Pat {
    let mut pat = pat.clone();
    strip(&mut pat);
    pat
}

fn strip(pat: &mut Pat) {
    match pat {
        Pat::Ident(i) => {
            i.mutability = None;
            if let Some((_, sub)) = &mut i.subpat {
                strip(sub);
            }
        }
        Pat::Tuple(t) => t.elems.iter_mut().for_each(strip),
        Pat::TupleStruct(t) => t.elems.iter_mut().for_each(strip),
        Pat::Struct(s) => s.fields.iter_mut().for_each(|f| strip(&mut f.pat)),
        Pat::Reference(r) => strip(&mut r.pat),
        Pat::Paren(p) => strip(&mut p.pat),
        Pat::Slice(s) => s.elems.iter_mut().for_each(strip),
        _ => {}
    }
}
