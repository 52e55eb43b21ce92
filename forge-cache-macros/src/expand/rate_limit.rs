//! `#[rate_limit]`: a check before the body that returns
//! `Err(RateLimitExceeded.into())` when the limit is exceeded.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;

use super::{as_written, duration, function, mixed, private_path, private_path_at};
use crate::args::{Algorithm, RateArgs};
use crate::errors::Errors;
use crate::item::{ReturnKind, split_attrs};

pub(crate) fn rate_limit(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = RateArgs::parse(attr, &mut errors);
    let Some((f, info)) = function(&item, "rate_limit", &mut errors) else {
        return as_written(errors.take().unwrap_or_default(), item, TokenStream::new());
    };
    if info.ret_kind != ReturnKind::Result {
        errors.push(syn::Error::new(
            info.ret_span,
            "#[rate_limit] needs a function returning `Result<_, E>` with `E: From<RateLimitExceeded>`: a call over the limit returns `Err(RateLimitExceeded.into())`",
        ));
    }
    if let Some(t) = &args.key {
        t.check(&info, &mut errors);
    }
    if let Some(errors) = errors.take() {
        return as_written(errors, item, TokenStream::new());
    }

    let p = private_path(args.krate.as_ref());
    let name = f.sig.ident.unraw().to_string();
    let prefix = &args.key_prefix;
    let max = args.max_requests;
    let window = duration(args.window);
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
    // The key is rendered once, before the body; the check takes the
    // rendering, so no borrow of the arguments outlives this statement.
    let check = match (&args.key, info.is_async) {
        (None, true) => quote!(#p::rate_limit_check(&#site, ::core::option::Option::None).await),
        (None, false) => {
            quote!(#p::blocking::rate_limit_check(&#site, ::core::option::Option::None))
        }
        (Some(t), true) => {
            let key = t.render(&p);
            quote!(#p::rate_limit_check_rendered(&#site, #key).await)
        }
        (Some(t), false) => {
            let key = t.render(&p);
            quote!(#p::blocking::rate_limit_check_rendered(&#site, #key))
        }
    };
    let into = match error_type(&info.ret) {
        // `<E as From<RateLimitExceeded>>::from`, spanned at `E`: a missing
        // conversion is reported at the error type.
        Some(e) => {
            let span = syn::spanned::Spanned::span(e);
            let p_e = private_path_at(args.krate.as_ref(), span);
            quote_spanned! {span=>
                ::core::result::Result::Err(
                    <#e as ::core::convert::From<#p_e::RateLimitExceeded>>::from(#err)
                )
            }
        }
        // An alias such as `io::Result<T>`: the error type comes from it,
        // and a missing conversion is reported at the return type.
        None => quote_spanned! {info.ret_span=>
            ::core::result::Result::Err(::core::convert::From::from(#err))
        },
    };
    let (outer, inner) = split_attrs(&f);
    let vis = &f.vis;
    let sig = &f.sig;
    let stmts = &f.block.stmts;
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
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
    }
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
