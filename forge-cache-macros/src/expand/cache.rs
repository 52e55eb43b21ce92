//! `#[cache_result]`: the function body wrapped in a cached call, and the
//! invalidation companions.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Ident, ItemFn};

use super::{as_written, duration, function, mixed, private_path, private_path_at};
use crate::args::{CacheArgs, Jitter, StoredFormat};
use crate::errors::Errors;
use crate::item::{FnInfo, ReturnKind, plain_pattern, split_attrs};
use crate::template::{Part, Template, list};

/// How long `lock = true` waits for another process by default.
const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(3);

/// How a call's key is built.
enum KeyPlan<'a> {
    /// MD5 over the receiver (with `include(self)`: the span of its
    /// `self`) and these arguments.
    Hashed {
        receiver: Option<Span>,
        args: Vec<&'a Ident>,
    },
    Template(&'a Template),
}

impl KeyPlan<'_> {
    /// Whether the key reads `self`, so the companion takes `&self`.
    fn uses_self(&self) -> bool {
        match self {
            KeyPlan::Hashed { receiver, .. } => receiver.is_some(),
            KeyPlan::Template(t) => t.names_self(),
        }
    }
}

pub(crate) fn cache_result(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let args = CacheArgs::parse(attr, &mut errors);
    let Some((f, info)) = function(&item, "cache_result", &mut errors) else {
        return as_written(errors.take().unwrap_or_default(), item, TokenStream::new());
    };
    let plan = key_plan(&args, &info, &mut errors);
    let kind = args.returns.map_or(info.ret_kind, |r| r.0);
    if let (Some(span), true, Some(_)) =
        (args.cache_none, kind == ReturnKind::Option, info.ret_json)
    {
        errors.push(syn::Error::new(
            span,
            "`cache_none` is not supported with `Option<Json<T>>`: return `Option<T>` from an inner cached function and wrap it in `Json` in the handler",
        ));
    }
    if let (Some(span), false) = (args.cache_none, kind == ReturnKind::Option) {
        errors.push(syn::Error::new(
            span,
            "`cache_none` applies to functions returning `Option` (add `returns = \"option\"` for an alias of `Option`)",
        ));
    }
    check_value_options(&args, &info, kind, &mut errors);
    for t in &args.tags {
        t.check(&info, &mut errors);
    }
    let p = private_path(args.krate.as_ref());
    let name = f.sig.ident.unraw().to_string();
    let companions = Companions {
        f: &f,
        info: &info,
        plan: &plan,
        p: &p,
        name: &name,
    };
    if let Some(errors) = errors.take() {
        return as_written(errors, item, companions.stubs());
    }

    let site = mixed("__FORGE_CACHE_SITE");
    let site_def = site_def(&args, &plan, &p, &name, &site);
    let body = Body {
        args: &args,
        f: &f,
        info: &info,
        plan: &plan,
        kind,
        site_def: &site_def,
        site: &site,
    };
    let (outer, inner) = split_attrs(&f);
    let vis = &f.vis;
    let sig = &f.sig;
    let block = body.tokens(false);
    let refresh = companions.refresh(&outer, body.tokens(true));
    let companions = companions.real(&site_def, &site);
    quote! {
        #(#outer)*
        #vis #sig {
            #(#inner)*
            #block
        }
        #companions
        #refresh
    }
}

/// `unless`, a `ttl` function and `err_ttl` against the return type.
fn check_value_options(args: &CacheArgs, info: &FnInfo, kind: ReturnKind, errors: &mut Errors) {
    let unit = matches!(&info.ret, syn::Type::Tuple(t) if t.elems.is_empty());
    for (what, span) in [("unless", &args.unless), ("ttl", &args.ttl_fn)]
        .into_iter()
        .filter_map(|(w, a)| a.as_ref().map(|(_, s)| (w, *s)))
    {
        if unit {
            errors.push(syn::Error::new(
                span,
                format!("`{what}` looks at the value the function returns, but this function returns `()`: there is nothing to decide on"),
            ));
        }
    }
    if let (Some((_, span)), Some(_)) = (args.err_ttl, info.ret_json) {
        errors.push(syn::Error::new(
            span,
            "`err_ttl` stores the whole `Result`, and `Json<T>` is not serializable: return `Result<T, E>` from an inner cached function and wrap it in `Json` in the handler",
        ));
    }
    if let (Some((_, span)), false) = (args.err_ttl, kind == ReturnKind::Result) {
        errors.push(syn::Error::new(
            span,
            "`err_ttl` is the TTL of a stored `Err`, and applies to functions returning `Result` (add `returns = \"result\"` for an alias of `Result`)",
        ));
    }
}

/// The body of the function (or, with `force`, of `<fn>_refresh`): the
/// site, the key, the options, and the cached call around the user's
/// statements.
struct Body<'a> {
    args: &'a CacheArgs,
    f: &'a ItemFn,
    info: &'a FnInfo,
    plan: &'a KeyPlan<'a>,
    kind: ReturnKind,
    site_def: &'a TokenStream,
    site: &'a Ident,
}

impl Body<'_> {
    fn tokens(&self, refresh: bool) -> TokenStream {
        let (args, info, site) = (self.args, self.info, self.site);
        let p = private_path(args.krate.as_ref());
        let self_by_value = info.receiver.as_ref().is_some_and(|r| r.by_value);
        let key = key_expr(&p, info, self.plan, self_by_value);
        let key_var = mixed("__forge_cache_key");
        let ret = &info.ret;
        let json = info.ret_json.is_some();
        let policy = match self.kind {
            ReturnKind::Result if args.err_ttl.is_some() => "ResultErrPolicy",
            ReturnKind::Result if json => "ResultJsonPolicy",
            ReturnKind::Result => "ResultPolicy",
            ReturnKind::Option if json => "OptionJsonPolicy",
            ReturnKind::Option => "OptionPolicy",
            ReturnKind::Value if json => "JsonPolicy",
            ReturnKind::Value => "ValuePolicy",
        };
        let policy = Ident::new(policy, info.ret_span);
        let stmts = &self.f.block.stmts;
        let p_ret = private_path_at(args.krate.as_ref(), info.ret_span);
        // In the call (not a `let`), so that an uncacheable return type is
        // reported once, at the return type.
        let opts_var = options(args, &p_ret, &policy, ret, refresh);
        // The call is spanned at the return type, so an uncacheable return
        // type is reported there.
        let span = info.ret_span;
        let call = if info.is_async {
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
            quote_spanned! {span=>
                #p_ret::cached::<#p_ret::#policy, _, _>(&#site, #key_var, #opts_var, async move {
                    #fake_return
                    #(#stmts)*
                })
                .await
            }
        } else {
            quote_spanned! {span=>
                #p_ret::blocking::cached::<#p_ret::#policy, _, _>(&#site, #key_var, #opts_var, move || -> #ret { #(#stmts)* })
            }
        };
        let site_def = self.site_def;
        quote! {
            #site_def
            let #key_var = #key;
            #call
        }
    }
}

/// The per-call options: `unless`, a `ttl` function, `force_refresh` (or
/// `true` in `<fn>_refresh`). Typed through the policy only when a function
/// is given, so its closure's argument type is known.
fn options(
    args: &CacheArgs,
    p: &TokenStream,
    policy: &Ident,
    ret: &syn::Type,
    refresh: bool,
) -> TokenStream {
    let force = if refresh {
        Some(quote!(true))
    } else {
        args.force_refresh.as_ref().map(|e| quote!(#e))
    };
    let tags = (!args.tags.is_empty()).then(|| {
        let t = mixed("__forge_cache_tags");
        let n = args.tags.len();
        let pushes = args.tags.iter().map(|tag| {
            // Rendered as its version key, `%tag:<tag>` (see the runtime's
            // `cache/tags.rs`), so a hit builds no other string.
            let rendered = tag.render_after(p, "%tag:");
            quote!(#t.push(#rendered);)
        });
        quote!({
            let mut #t = #p::Tags::with_capacity(#n);
            #(#pushes)*
            #t
        })
    });
    if args.unless.is_none() && args.ttl_fn.is_none() {
        // Typed by the call: an uncacheable return type is reported there.
        if force.is_none() && tags.is_none() {
            return quote_spanned!(policy.span()=> #p::Options::NONE);
        }
        let force = force.map(|f| quote!(force: #f,));
        let tags = tags.map(|t| quote!(tags: #t,));
        return quote_spanned!(policy.span()=> #p::Options {
            #force
            #tags
            ..#p::Options::NONE
        });
    }
    let tags = tags.unwrap_or_else(|| quote!(#p::Tags::NONE));
    let some = |f: &Option<(syn::Expr, Span)>| match f {
        Some((e, _)) => quote!(::core::option::Option::Some(#e)),
        None => quote!(::core::option::Option::None),
    };
    let unless = some(&args.unless);
    let ttl = some(&args.ttl_fn);
    let force = force.unwrap_or_else(|| quote!(false));
    quote! {
        #p::Options::<<#p::#policy as #p::Policy<#ret>>::Value> {
            unless: #unless,
            ttl: #ttl,
            force: #force,
            tags: #tags,
        }
    }
}

/// Checks `skip`, `include(self)` and the template against the function,
/// and decides how the key is built. A method must say how `self` enters
/// its key.
fn key_plan<'a>(args: &'a CacheArgs, info: &'a FnInfo, errors: &mut Errors) -> KeyPlan<'a> {
    let bindings: Vec<&Ident> = info.bindings().collect();
    let skip_self = args.skip_self();
    for s in &args.skip {
        if s == "self" {
            if info.receiver.is_none() {
                errors.push(syn::Error::new(
                    s.span(),
                    "`skip(self)` leaves `self` out of the key, but this function has no `self` receiver",
                ));
            }
        } else if !bindings.contains(&s) {
            errors.push(syn::Error::new(
                s.span(),
                format!(
                    "`skip` names `{s}`, which is not an argument of this function; {}",
                    list(&bindings)
                ),
            ));
        }
    }
    if let Some(include) = &args.include_self {
        if info.receiver.is_none() {
            errors.push(syn::Error::new(
                include.span(),
                "`include(self)` hashes `self` into the key, but this function has no `self` receiver",
            ));
        } else if let Some(s) = skip_self {
            errors.push(syn::Error::new(
                s.span(),
                "`self` is both skipped and included",
            ));
        }
    }
    let says_how_self_enters = args.include_self.is_some() || skip_self.is_some();
    match &args.template {
        Some(t) => {
            t.check(info, errors);
            for s in args.skip.iter().filter(|s| t.heads().any(|h| *s == h)) {
                errors.push(syn::Error::new(
                    s.span(),
                    format!("`{s}` is both skipped and used in the key template"),
                ));
            }
            if let Some(include) = &args.include_self {
                errors.push(syn::Error::new(
                    include.span(),
                    "`include(self)` hashes `self` into a hashed key; a key template names what it needs of `self` instead, e.g. `{self.id}`",
                ));
            }
            if let Some(r) = &info.receiver {
                if !t.names_self() && !says_how_self_enters {
                    errors.push(syn::Error::new_spanned(
                        &r.tokens,
                        "the key template does not name `self`, so every instance would share entries; name the fields that tell instances apart (`{self.id}`), or add `skip(self)` if every instance may share the entries",
                    ));
                }
            }
            KeyPlan::Template(t)
        }
        None => {
            if let Some(r) = &info.receiver {
                if !says_how_self_enters {
                    errors.push(syn::Error::new_spanned(
                        &r.tokens,
                        "this method's cache key must say how `self` enters it, or every instance would share entries; choose one: `include(self)` to hash `self` into the key (needs `Self: Serialize`), a key template naming its fields (`key = \"...{self.id}...\"`), or `skip(self)` if every instance may share the entries",
                    ));
                }
            }
            KeyPlan::Hashed {
                receiver: args
                    .include_self
                    .as_ref()
                    .filter(|_| info.receiver.is_some())
                    .map(Ident::span),
                args: bindings
                    .into_iter()
                    .filter(|b| !args.skip.contains(b))
                    .collect(),
            }
        }
    }
}

/// The `static` describing the function to the runtime.
fn site_def(
    args: &CacheArgs,
    plan: &KeyPlan<'_>,
    p: &TokenStream,
    name: &str,
    site: &Ident,
) -> TokenStream {
    let (prefix, pattern) = match plan {
        KeyPlan::Template(t) => (template_prefix(t), {
            let g = t.glob();
            quote!(::core::option::Option::Some(#g))
        }),
        KeyPlan::Hashed { .. } => (
            args.key_prefix
                .as_ref()
                .map_or_else(|| "cache".to_owned(), |p| p.0.clone()),
            quote!(::core::option::Option::None),
        ),
    };
    let ttl = match args.ttl {
        Some(ttl) => {
            let ttl = duration(ttl);
            quote!(::core::option::Option::Some(#ttl))
        }
        None => quote!(::core::option::Option::None),
    };
    let flags: u8 = u8::from(args.cache_none.is_some())
        | (u8::from(args.early_refresh) << 1)
        | (u8::from(!args.tags.is_empty()) << 2);
    let refresh = (args.early_refresh || args.stale_ttl.is_some()).then(|| {
        let stale = duration(args.stale_ttl.unwrap_or_default());
        let beta = args.beta.map_or(1.0, |b| b.0);
        quote!(.refresh(#stale, #beta))
    });
    let lock = args.lock.then(|| {
        let wait = duration(args.lock_wait.map_or(DEFAULT_LOCK_WAIT, |w| w.0));
        quote!(.lock(#wait))
    });
    let version = args.version.map(|(v, _)| {
        let segment = format!("v{v}");
        quote!(.version(#segment))
    });
    let none_ttl = args.none_ttl.map(|(d, _)| {
        let d = duration(d);
        quote!(.none_ttl(#d))
    });
    let err_ttl = args.err_ttl.map(|(d, _)| {
        let d = duration(d);
        quote!(.err_ttl(#d))
    });
    let jitter = args.ttl_jitter.map(|j| match j {
        Jitter::PerMille(p) => quote!(.jitter_per_mille(#p)),
        Jitter::Upto(d) => {
            let d = duration(d);
            quote!(.jitter_upto(#d))
        }
    });
    let format = args.format.map(|(f, span)| match f {
        StoredFormat::Json => quote_spanned!(span=> .format(#p::Format::Json)),
        StoredFormat::MessagePack => quote_spanned!(span=> .format(#p::format_msgpack!())),
        StoredFormat::Postcard => quote_spanned!(span=> .format(#p::format_postcard!())),
    });
    quote! {
        static #site: #p::CacheSite = #p::CacheSite::new(#prefix, #name, #ttl, #flags, #pattern)
            #refresh #lock #version #none_ttl #err_ttl #jitter #format;
    }
}

/// The counters' prefix of a template key: its first segment.
fn template_prefix(t: &Template) -> String {
    match t.parts.first() {
        Some(Part::Lit(s)) => {
            let first = s.split(':').next().unwrap_or("");
            if first.is_empty() { "cache" } else { first }.to_owned()
        }
        _ => "cache".to_owned(),
    }
}

/// The expression computing the call's `CallKey`, from references to the
/// key arguments (before the body takes them). `self_by_value`: the
/// receiver is `self`, not a reference or pointer to it.
fn key_expr(
    p: &TokenStream,
    info: &FnInfo,
    plan: &KeyPlan<'_>,
    self_by_value: bool,
) -> TokenStream {
    match plan {
        KeyPlan::Hashed { receiver, args } => {
            let h = mixed("__forge_cache_hasher");
            // One call per argument, spanned at it: a non-serializable
            // argument's error points at that argument (and `self`'s at
            // `include(self)`).
            let receiver = receiver.map(|span| {
                let this = syn::Token![self](span);
                if self_by_value {
                    quote_spanned!(span=> #h.receiver(&#this);)
                } else {
                    quote_spanned!(span=> #h.receiver(&*#this);)
                }
            });
            let args = args
                .iter()
                .map(|id| quote_spanned!(id.span()=> #h.arg(&#id);));
            let ret = &info.ret;
            let mut types = TokenStream::new();
            if info.is_generic || info.receiver.is_some() || info.ret_mentions_self() {
                types.extend(quote!(#h.type_name(::core::any::type_name::<#ret>());));
            }
            if info.receiver.is_some() {
                types.extend(quote!(#h.type_name(::core::any::type_name::<Self>());));
            }
            quote!({
                let mut #h = #p::KeyHasher::new();
                #receiver
                #(#args)*
                #types
                #h.finish()
            })
        }
        KeyPlan::Template(t) => {
            let rendered = t.render(p);
            quote!(#rendered.finish())
        }
    }
}

/// `<name>_invalidate(<key args>)` and `<name>_invalidate_all()`.
struct Companions<'a> {
    f: &'a ItemFn,
    info: &'a FnInfo,
    plan: &'a KeyPlan<'a>,
    p: &'a TokenStream,
    name: &'a str,
}

impl Companions<'_> {
    /// The companions, removing entries through `site`.
    fn real(&self, site_def: &TokenStream, site: &Ident) -> TokenStream {
        let p = self.p;
        let key = key_expr(p, self.info, self.plan, false);
        let (invalidate, invalidate_all, dot_await) = if self.info.is_async {
            (
                quote!(#p::invalidate),
                quote!(#p::invalidate_all),
                quote!(.await),
            )
        } else {
            (
                quote!(#p::blocking::invalidate),
                quote!(#p::blocking::invalidate_all),
                quote!(),
            )
        };
        self.with_bodies(
            quote!({
                #site_def
                #invalidate(&#site, #key) #dot_await
            }),
            quote!({
                #site_def
                #invalidate_all(&#site) #dot_await
            }),
        )
    }

    /// Companions with the same signatures and no bodies to speak of, for
    /// an attribute with errors.
    fn stubs(&self) -> TokenStream {
        let unreachable = quote!({ ::core::unreachable!() });
        let (outer, _) = split_attrs(self.f);
        let refresh = self.refresh(&outer, unreachable.clone());
        let both = self.with_bodies(unreachable.clone(), unreachable);
        quote!(#both #refresh)
    }

    /// `<name>_refresh(<the function's arguments>)`: the function again,
    /// with `body` (which skips the read, recomputes and stores). A copy of
    /// the body rather than a call of the function, which could not be
    /// named from here (a free function, or an associated one needing
    /// `Self::`); `#[inline]` keeps it out of code generation until it is
    /// called.
    fn refresh(&self, outer: &[&syn::Attribute], body: TokenStream) -> TokenStream {
        let f = self.f;
        let mut sig = f.sig.clone();
        sig.ident = format_ident!("{}_refresh", self.name, span = f.sig.ident.span());
        let attrs = outer.iter().filter(|a| !a.path().is_ident("doc"));
        let inline =
            (!outer.iter().any(|a| a.path().is_ident("inline"))).then(|| quote!(#[inline]));
        let (_, inner) = split_attrs(f);
        let doc = format!(
            " Runs `{}` without reading the cache, and stores its result (as `{0}` would on a miss): for an admin \"refresh\", or to read your own write through the cache.\n\n Generated by `#[cache_result]`.",
            self.name
        );
        let vis = &f.vis;
        quote! {
            #(#attrs)*
            #[doc = #doc]
            #inline
            // An argument only `force_refresh` reads is unused here.
            #[allow(unused_variables)]
            #vis #sig {
                #(#inner)*
                #body
            }
        }
    }

    fn with_bodies(&self, one_body: TokenStream, all_body: TokenStream) -> TokenStream {
        let (f, info, p, name) = (self.f, self.info, self.p, self.name);
        let key_names: Vec<&Ident> = match self.plan {
            KeyPlan::Hashed { args, .. } => args.clone(),
            KeyPlan::Template(t) => info
                .bindings()
                .filter(|b| t.heads().any(|h| *b == h))
                .collect(),
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
        let receiver = (self.plan.uses_self() && info.receiver.is_some()).then(|| quote!(&self,));
        // `#[cfg]`s apply to the companions too, written inside the body
        // (`#![cfg]`) or not.
        let cfgs: Vec<TokenStream> = f
            .attrs
            .iter()
            .filter(|a| a.path().is_ident("cfg"))
            .map(|a| {
                let meta = &a.meta;
                quote!(#[#meta])
            })
            .collect();
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
        let asyncness = info.is_async.then(|| quote!(async));
        quote! {
            #(#cfgs)*
            #[doc = #doc_one]
            #[allow(unused_variables, clippy::extra_unused_type_parameters)]
            #vis #asyncness fn #one #generics (#receiver #(#params),*) -> #p::Result<bool> #where_clause #one_body
            #(#cfgs)*
            #[doc = #doc_all]
            #vis #asyncness fn #all() -> #p::Result<u64> #all_body
        }
    }
}
