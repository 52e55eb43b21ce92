//! Code generation, one module per macro. Generated code names only
//! `<crate>::__private::…` and `::core::…`; its locals use mixed-site
//! hygiene, so they can neither see nor shadow the user's names.

mod cache;
mod rate_limit;

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, ItemFn};

use crate::errors::Errors;
use crate::item::FnInfo;

pub(crate) use cache::cache_result;
pub(crate) use rate_limit::rate_limit;

/// Parses the annotated item as a function with a body, and analyses it;
/// `None` when it is not one. Errors are recorded in `errors`.
pub(crate) fn function(
    item: &TokenStream,
    macro_name: &str,
    errors: &mut Errors,
) -> Option<(ItemFn, FnInfo)> {
    let f = errors.ok(syn::parse2::<ItemFn>(item.clone()).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[{macro_name}] applies to a function or method with a body ({e})"),
        )
    }))?;
    let info = FnInfo::analyze(&f, macro_name, errors);
    Some((f, info))
}

/// The expansion of an attribute with errors: the errors, the item as
/// written and `stubs` (what callers expect next to it), so that the
/// errors are the attribute's only ones.
pub(crate) fn as_written(
    errors: TokenStream,
    item: TokenStream,
    stubs: TokenStream,
) -> TokenStream {
    quote!(#errors #item #stubs)
}

/// The path generated code goes through: `<crate>::__private`.
pub(crate) fn private_path(krate: Option<&syn::Path>) -> TokenStream {
    private_path_at(krate, Span::call_site())
}

/// [`private_path`] with its tokens at `span`, so an error about the call
/// made through it points there.
pub(crate) fn private_path_at(krate: Option<&syn::Path>, span: Span) -> TokenStream {
    match krate {
        Some(p) => quote_spanned!(span=> #p::__private),
        None => quote_spanned!(span=> ::forge_cache::__private),
    }
}

/// An identifier for a generated local, invisible to the user's code.
pub(crate) fn mixed(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// A `::core::time::Duration` constant.
pub(crate) fn duration(d: Duration) -> TokenStream {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    quote!(::core::time::Duration::from_millis(#ms))
}
