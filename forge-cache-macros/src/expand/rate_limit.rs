//! `#[rate_limit]`: a check before the body that returns
//! `Err(RateLimitExceeded.into())` when the limit is exceeded.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;

use super::{mixed, or_item, parse_fn, private_path};
use crate::args::{Algorithm, RateArgs};
use crate::item::{FnInfo, ReturnKind};

pub(crate) fn rate_limit(attr: TokenStream, item: TokenStream) -> TokenStream {
    or_item(expand_rate_limit(attr, item.clone()), item)
}

fn expand_rate_limit(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = RateArgs::parse(attr)?;
    let f = parse_fn(item, "rate_limit")?;
    let info = FnInfo::analyze(&f, "rate_limit")?;
    if info.ret_kind != ReturnKind::Result {
        return Err(syn::Error::new(
            info.ret_span,
            "#[rate_limit] needs a function returning `Result<_, E>` with `E: From<RateLimitExceeded>`: a call over the limit returns `Err(RateLimitExceeded.into())`",
        ));
    }

    let p = private_path(args.krate.as_ref());
    let name = f.sig.ident.unraw().to_string();
    let prefix = &args.prefix;
    let (max, window) = (args.max_requests, args.window_seconds);
    let algorithm = match args.algorithm {
        Algorithm::FixedWindow => quote!(FixedWindow),
        Algorithm::SlidingWindow => quote!(SlidingWindow),
        Algorithm::Gcra => quote!(Gcra),
    };
    let on_error = if args.deny_on_error {
        quote!(Deny)
    } else {
        quote!(Allow)
    };
    let site = mixed("__FORGE_RATE_SITE");
    let err = mixed("__forge_rate_limited");
    let key = match &args.key {
        // Evaluated once, before the body; the check formats it at once, so
        // no borrow of the arguments outlives this statement.
        Some(expr) => quote_spanned! {syn::spanned::Spanned::span(expr)=>
            ::core::option::Option::Some(&(#expr) as &dyn ::core::fmt::Display)
        },
        None => quote!(::core::option::Option::None),
    };
    let check = if info.is_async {
        quote!(#p::rate_limit_check(&#site, #key).await)
    } else {
        quote!(#p::rate_limit_check_sync(&#site, #key))
    };
    // Spanned at the return type: an `E` without `From<RateLimitExceeded>`
    // is reported there.
    let into = match error_type(&info.ret) {
        // `<E as From<RateLimitExceeded>>::from`, spanned at `E`: a missing
        // conversion is reported at the error type.
        Some(e) => {
            let span = syn::spanned::Spanned::span(e);
            let p_e = super::private_path_at(args.krate.as_ref(), span);
            quote_spanned! {span=>
                ::core::result::Result::Err(
                    <#e as ::core::convert::From<#p_e::RateLimitExceeded>>::from(#err)
                )
            }
        }
        // An alias such as `io::Result<T>`: the error type comes from it.
        None => quote_spanned! {info.ret_span=>
            ::core::result::Result::Err(::core::convert::From::from(#err))
        },
    };
    let attrs = &f.attrs;
    let vis = &f.vis;
    let sig = &f.sig;
    let stmts = &f.block.stmts;
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            static #site: #p::RateSite = #p::RateSite::new(
                #prefix,
                ::core::concat!(::core::module_path!(), "::", #name),
                #max,
                #window,
                #p::Algorithm::#algorithm,
                #p::OnError::#on_error,
            );
            #[allow(clippy::useless_conversion)]
            if let ::core::result::Result::Err(#err) = #check {
                return #into;
            }
            #(#stmts)*
        }
    })
}

/// `E` of a `Result<T, E>` written with both parameters.
fn error_type(ret: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(p) = ret else {
        return None;
    };
    let syn::PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let (_, e) = (types.next()?, types.next()?);
    Some(e)
}
