//! `#[cache_result]`: the function body wrapped in a cached call, and the
//! invalidation companions.

use proc_macro2::TokenStream;
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Ident, ItemFn, Member};

use super::{mixed, or_item, parse_fn, private_path, private_path_at};
use crate::args::{CacheArgs, Template, TemplatePart};
use crate::item::{FnInfo, ReturnKind, plain_pattern};

/// How long `lock = true` waits for another process by default.
const DEFAULT_LOCK_WAIT_MS: u64 = 3000;

/// Lists `names` for an error message.
fn list(names: &[&Ident]) -> String {
    if names.is_empty() {
        "it has none".to_owned()
    } else {
        let v: Vec<String> = names.iter().map(|i| format!("`{i}`")).collect();
        format!("its arguments are {}", v.join(", "))
    }
}

/// How a call's key is built.
enum KeyPlan<'a> {
    /// MD5 over these arguments.
    Hashed(Vec<&'a Ident>),
    Template(&'a Template),
}

pub(crate) fn cache_result(attr: TokenStream, item: TokenStream) -> TokenStream {
    or_item(expand_cache(attr, item.clone()), item)
}

fn expand_cache(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = CacheArgs::parse(attr)?;
    let f = parse_fn(item, "cache_result")?;
    let info = FnInfo::analyze(&f, "cache_result")?;
    let bindings: Vec<&Ident> = info.bindings().collect();

    for s in &args.skip {
        if !bindings.contains(&s) {
            return Err(syn::Error::new(
                s.span(),
                format!(
                    "`skip` names `{s}`, which is not an argument of this function; {}",
                    list(&bindings)
                ),
            ));
        }
    }
    let plan = match &args.template {
        Some(t) => {
            check_template(t, &info, &bindings, &args.skip)?;
            KeyPlan::Template(t)
        }
        None => KeyPlan::Hashed(
            bindings
                .iter()
                .copied()
                .filter(|b| !args.skip.contains(b))
                .collect(),
        ),
    };

    let p = private_path(args.krate.as_ref());
    let name = f.sig.ident.unraw().to_string();
    let (prefix, pattern) = match &args.template {
        Some(t) => (template_prefix(t), {
            let g = t.glob();
            quote!(::core::option::Option::Some(#g))
        }),
        None => (
            args.key_prefix
                .as_ref()
                .map_or_else(|| "cache".to_owned(), |p| p.0.clone()),
            quote!(::core::option::Option::None),
        ),
    };
    let ttl = args.ttl.unwrap_or(0);
    let kind = args.returns.map_or(info.ret_kind, |r| r.0);
    if let (Some(span), false) = (args.cache_none, kind == ReturnKind::Option) {
        return Err(syn::Error::new(
            span,
            "`cache_none` applies to functions returning `Option` (add `returns = \"option\"` for an alias of `Option`)",
        ));
    }
    let flags: u8 = u8::from(args.cache_none.is_some()) | (u8::from(args.early_refresh) << 1);
    let refresh = (args.early_refresh || args.stale_ttl.is_some()).then(|| {
        let stale = args.stale_ttl.unwrap_or(0);
        let beta = args.beta.map_or(1.0, |b| b.0);
        quote!(.refresh(#stale, #beta))
    });
    let lock = args.lock.then(|| {
        let wait = args.lock_wait_ms.map_or(DEFAULT_LOCK_WAIT_MS, |w| w.0);
        quote!(.lock(#wait))
    });
    let site = mixed("__FORGE_CACHE_SITE");
    let site_def = quote! {
        static #site: #p::CacheSite = #p::CacheSite::new(#prefix, #name, #ttl, #flags, #pattern) #refresh #lock;
    };

    let key = key_expr(&p, &info, &plan);
    let key_var = mixed("__forge_cache_key");
    let ret = &info.ret;
    let policy = match kind {
        ReturnKind::Result => Ident::new("ResultPolicy", info.ret_span),
        ReturnKind::Option => Ident::new("OptionPolicy", info.ret_span),
        ReturnKind::Value => Ident::new("ValuePolicy", info.ret_span),
    };
    let stmts = &f.block.stmts;
    let p_ret = private_path_at(args.krate.as_ref(), info.ret_span);
    // The call is spanned at the return type, so an uncacheable return type
    // is reported there.
    let span = info.ret_span;
    let body = if info.is_async {
        let r = mixed("__forge_cache_ret");
        let fake_return = quote! {
            // Pins the block's type to the return type, so `?` and
            // `return` in the body mean what they meant in the function.
            #[allow(
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::empty_loop,
                clippy::let_unit_value,
                clippy::needless_return,
                clippy::unreachable
            )]
            if false {
                let #r: #ret = loop {};
                return #r;
            }
        };
        let call = quote_spanned! {span=>
            #p_ret::cached::<#p_ret::#policy, _, _>(&#site, #key_var, async move {
                #fake_return
                #(#stmts)*
            })
            .await
        };
        quote! {
            #site_def
            let #key_var = #key;
            #call
        }
    } else {
        let call = quote_spanned! {span=>
            #p_ret::cached_sync::<#p_ret::#policy, _, _>(&#site, #key_var, move || -> #ret { #(#stmts)* })
        };
        quote! {
            #site_def
            let #key_var = #key;
            #call
        }
    };

    let attrs = &f.attrs;
    let vis = &f.vis;
    let sig = &f.sig;
    let companions = companions(&f, &info, &plan, &p, &site_def, &site, &name);
    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
        #companions
    })
}

/// Checks that every placeholder names an argument (or `self` in a
/// method), and none is skipped.
fn check_template(
    t: &Template,
    info: &FnInfo,
    bindings: &[&Ident],
    skip: &[Ident],
) -> syn::Result<()> {
    for part in &t.parts {
        let TemplatePart::Var(path) = part else {
            continue;
        };
        let head = path[0].as_str();
        if head == "self" {
            if !info.has_receiver {
                return Err(syn::Error::new(
                    t.lit.span(),
                    "the key template names `self`, but this function has no `self` receiver",
                ));
            }
        } else if !bindings.iter().any(|b| *b == head) {
            return Err(syn::Error::new(
                t.lit.span(),
                format!(
                    "the key template names `{{{}}}`, but `{head}` is not an argument of this function; {}",
                    path.join("."),
                    list(bindings)
                ),
            ));
        } else if let Some(s) = skip.iter().find(|s| *s == head) {
            return Err(syn::Error::new(
                s.span(),
                format!("`{s}` is both skipped and used in the key template"),
            ));
        }
    }
    Ok(())
}

/// The counters' prefix of a template key: its first segment.
fn template_prefix(t: &Template) -> String {
    match t.parts.first() {
        Some(TemplatePart::Lit(s)) => {
            let first = s.split(':').next().unwrap_or("");
            if first.is_empty() { "cache" } else { first }.to_owned()
        }
        _ => "cache".to_owned(),
    }
}

/// The expression computing the call's `CallKey`, from references to the
/// key arguments (before the body takes them).
fn key_expr(p: &TokenStream, info: &FnInfo, plan: &KeyPlan<'_>) -> TokenStream {
    match plan {
        KeyPlan::Hashed(idents) => {
            let h = mixed("__forge_cache_hasher");
            // One call per argument, spanned at it: a non-serializable
            // argument's error points at that argument.
            let args = idents
                .iter()
                .map(|id| quote_spanned!(id.span()=> #h.arg(&#id);));
            let ret = &info.ret;
            let mut types = TokenStream::new();
            if info.is_generic || info.has_receiver || info.ret_mentions_self() {
                types.extend(quote!(#h.type_name(::core::any::type_name::<#ret>());));
            }
            if info.has_receiver {
                types.extend(quote!(#h.type_name(::core::any::type_name::<Self>());));
            }
            quote!({
                let mut #h = #p::KeyHasher::new();
                #(#args)*
                #types
                #h.finish()
            })
        }
        KeyPlan::Template(t) => {
            let k = mixed("__forge_cache_key");
            let span = t.lit.span();
            let mut capacity = 0usize;
            let parts = t.parts.iter().map(|part| match part {
                TemplatePart::Lit(s) => {
                    capacity += s.len();
                    quote!(#k.lit(#s);)
                }
                TemplatePart::Var(path) => {
                    capacity += 16;
                    let head = if path[0] == "self" {
                        syn::Token![self](span).into_token_stream()
                    } else {
                        Ident::new(&path[0], span).into_token_stream()
                    };
                    let fields = path[1..].iter().map(|f| match f.parse::<u32>() {
                        Ok(index) => Member::Unnamed(syn::Index { index, span }),
                        Err(_) => Member::Named(Ident::new(f, span)),
                    });
                    quote_spanned!(span=> #k.part(&#head #(.#fields)*);)
                }
            });
            let parts: Vec<TokenStream> = parts.collect();
            quote!({
                let mut #k = #p::KeyTemplate::new(#capacity);
                #(#parts)*
                #k.finish()
            })
        }
    }
}

/// `<name>_invalidate(<key args>)` and `<name>_invalidate_all()`.
fn companions(
    f: &ItemFn,
    info: &FnInfo,
    plan: &KeyPlan<'_>,
    p: &TokenStream,
    site_def: &TokenStream,
    site: &Ident,
    name: &str,
) -> TokenStream {
    let (key_names, uses_self): (Vec<&Ident>, bool) = match plan {
        KeyPlan::Hashed(ids) => (ids.clone(), false),
        KeyPlan::Template(t) => {
            let mut uses_self = false;
            let mut names = Vec::new();
            for part in &t.parts {
                if let TemplatePart::Var(path) = part {
                    if path[0] == "self" {
                        uses_self = true;
                    } else if let Some(b) = info.bindings().find(|b| **b == path[0]) {
                        names.push(b);
                    }
                }
            }
            (names, uses_self)
        }
    };
    let params = info
        .args
        .iter()
        .filter(|a| a.bindings.iter().any(|b| key_names.contains(&b)))
        .map(|a| {
            let pat = plain_pattern(&a.pat);
            let ty = &a.ty;
            quote!(#pat: #ty)
        });
    let receiver = uses_self.then(|| quote!(&self,));
    let key = key_expr(p, info, plan);
    let cfgs = f.attrs.iter().filter(|a| a.path().is_ident("cfg"));
    let cfgs2 = cfgs.clone();
    let vis = &f.vis;
    let span = f.sig.ident.span();
    let one = format_ident!("{}_invalidate", name, span = span);
    let all = format_ident!("{}_invalidate_all", name, span = span);
    let generics = &f.sig.generics;
    let where_clause = &generics.where_clause;
    let doc_one = format!(
        " Removes the entry `{name}` cached for these arguments; returns whether there was one.\n\n Generated by `#[cache_result]`."
    );
    let doc_all = format!(
        " Removes every entry `{name}` cached; returns how many were removed.\n\n Generated by `#[cache_result]`."
    );
    let (asyncness, invalidate, invalidate_all, dot_await) = if info.is_async {
        (
            quote!(async),
            quote!(#p::invalidate),
            quote!(#p::invalidate_all),
            quote!(.await),
        )
    } else {
        (
            quote!(),
            quote!(#p::invalidate_sync),
            quote!(#p::invalidate_all_sync),
            quote!(),
        )
    };
    quote! {
        #(#cfgs)*
        #[doc = #doc_one]
        #[allow(unused_variables, clippy::extra_unused_type_parameters)]
        #vis #asyncness fn #one #generics (#receiver #(#params),*) -> #p::Result<bool> #where_clause {
            #site_def
            #invalidate(&#site, #key) #dot_await
        }
        #(#cfgs2)*
        #[doc = #doc_all]
        #vis #asyncness fn #all() -> #p::Result<u64> {
            #site_def
            #invalidate_all(&#site) #dot_await
        }
    }
}
