//! Code generation, one module per macro. Generated code names only
//! `<crate>::__private::…` and `::core::…`; its locals use mixed-site
//! hygiene, so they can neither see nor shadow the user's names.

mod cache;

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::{Ident, ItemFn};

pub(crate) use cache::cache_result;

/// On an error, the error and the item unchanged (so IDEs keep working).
pub(crate) fn or_item(result: syn::Result<TokenStream>, item: TokenStream) -> TokenStream {
    result.unwrap_or_else(|e| {
        let mut out = e.to_compile_error();
        out.extend(item);
        out
    })
}

/// Parses the annotated item as a function with a body.
pub(crate) fn parse_fn(item: TokenStream, macro_name: &str) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[{macro_name}] applies to a function or method with a body ({e})"),
        )
    })
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
