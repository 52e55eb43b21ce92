//! The arguments of `#[cache_result]`.

use std::time::Duration;

use proc_macro2::{Span, TokenStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, Path};

use super::{Arg, Names, parse_args};
use crate::errors::Errors;
use crate::item::ReturnKind;
use crate::template::{KeyOf, Template};

/// The arguments of `#[cache_result]`. Those with an error keep their
/// default, so the expansion can still emit the companions.
#[derive(Default)]
pub(crate) struct CacheArgs {
    pub(crate) ttl: Option<Duration>,
    pub(crate) key_prefix: Option<(String, Span)>,
    pub(crate) template: Option<Template>,
    pub(crate) skip: Vec<Ident>,
    /// The `self` of `include(self)`.
    pub(crate) include_self: Option<Ident>,
    /// `cache_none = true`, with the name's span.
    pub(crate) cache_none: Option<Span>,
    pub(crate) returns: Option<(ReturnKind, Span)>,
    pub(crate) krate: Option<Path>,
    pub(crate) early_refresh: bool,
    /// XFetch `beta`, with the name's span.
    pub(crate) beta: Option<(f64, Span)>,
    pub(crate) stale_ttl: Option<Duration>,
    pub(crate) lock: bool,
    /// `lock_wait`, with the name's span.
    pub(crate) lock_wait: Option<(Duration, Span)>,
    /// `version = N`, with the name's span.
    pub(crate) version: Option<(u64, Span)>,
    /// `unless = <fn or closure over the value>`, with the name's span.
    pub(crate) unless: Option<(Expr, Span)>,
    /// `ttl = <fn or closure over the value>`, with the name's span.
    pub(crate) ttl_fn: Option<(Expr, Span)>,
    /// `none_ttl`, with the name's span.
    pub(crate) none_ttl: Option<(Duration, Span)>,
    /// `err_ttl`, with the name's span.
    pub(crate) err_ttl: Option<(Duration, Span)>,
    pub(crate) ttl_jitter: Option<Jitter>,
    /// `force_refresh = <bool expression over the arguments>`.
    pub(crate) force_refresh: Option<Expr>,
    /// `tags = ["user:{user_id}", ...]`.
    pub(crate) tags: Vec<Template>,
    /// `format = "json" | "msgpack" | "postcard"`, with the value's span.
    pub(crate) format: Option<(StoredFormat, Span)>,
}

/// `format = "..."`.
#[derive(Clone, Copy)]
pub(crate) enum StoredFormat {
    Json,
    MessagePack,
    Postcard,
}

/// `ttl_jitter`: a share of the TTL, or a duration.
#[derive(Clone, Copy)]
pub(crate) enum Jitter {
    PerMille(u16),
    Upto(Duration),
}

const NAMES: Names = Names {
    valid: &[
        "ttl",
        "key_prefix",
        "key",
        "skip",
        "include",
        "cache_none",
        "returns",
        "early_refresh",
        "beta",
        "stale_ttl",
        "lock",
        "lock_wait",
        "version",
        "unless",
        "none_ttl",
        "err_ttl",
        "ttl_jitter",
        "force_refresh",
        "tags",
        "format",
        "crate",
    ],
    renamed: &["lock_wait_ms"],
};

impl CacheArgs {
    pub(crate) fn parse(attr: TokenStream, errors: &mut Errors) -> Self {
        let mut a = CacheArgs::default();
        let mut template_errors = Errors::default();
        parse_args(attr, &NAMES, errors, |arg| {
            match arg.name {
                "ttl" => match arg.value()? {
                    Expr::Closure(_) | Expr::Path(_) => {
                        a.ttl_fn = Some((arg.value()?.clone(), arg.span()))
                    }
                    _ => a.ttl = Some(arg.duration()?),
                },
                "unless" => {
                    a.unless = Some((
                        arg.function("unless", "Vec::is_empty", "|users| users.is_empty()")?,
                        arg.span(),
                    ))
                }
                "none_ttl" => a.none_ttl = Some((arg.duration()?, arg.span())),
                "err_ttl" => a.err_ttl = Some((arg.duration()?, arg.span())),
                "ttl_jitter" => a.ttl_jitter = Some(jitter(arg)?),
                "force_refresh" => a.force_refresh = Some(arg.value()?.clone()),
                "tags" => a.tags = tags(arg, &mut template_errors)?,
                "format" => {
                    let f = arg.choice(
                        &[
                            ("json", StoredFormat::Json),
                            ("msgpack", StoredFormat::MessagePack),
                            ("postcard", StoredFormat::Postcard),
                        ],
                        "\"json\" (the default), \"msgpack\" (feature `msgpack`) or \"postcard\" (feature `postcard`)",
                    )?;
                    a.format = Some((f, arg.value()?.span()));
                }
                "key_prefix" => a.key_prefix = Some(arg.plain_part()?),
                "key" => {
                    a.template = Some(Template::from_arg(arg, KeyOf::Cache, &mut template_errors)?)
                }
                "skip" => a.skip = arg.ident_list()?,
                "include" => a.include_self = Some(include_self(arg)?),
                "cache_none" => a.cache_none = arg.boolean()?.then_some(arg.span()),
                "returns" => {
                    let kind = arg.choice(
                        &[
                            ("result", ReturnKind::Result),
                            ("option", ReturnKind::Option),
                            ("value", ReturnKind::Value),
                        ],
                        "\"result\" (cache Ok only), \"option\" (cache Some only) or \"value\" (cache everything)",
                    )?;
                    a.returns = Some((kind, arg.span()));
                }
                "early_refresh" => a.early_refresh = arg.boolean()?,
                "beta" => a.beta = Some((arg.positive_float()?, arg.span())),
                "stale_ttl" => a.stale_ttl = Some(arg.duration()?),
                "lock" => a.lock = arg.boolean()?,
                "lock_wait" => a.lock_wait = Some((arg.duration()?, arg.span())),
                "lock_wait_ms" => return Err(renamed_lock_wait(arg)),
                "version" => {
                    a.version = Some((arg.positive_int("a version number", 2)?, arg.span()))
                }
                _ => a.krate = Some(arg.crate_path()?),
            }
            Ok(())
        });
        if let Some(e) = template_errors.into_error() {
            errors.push(e);
        }
        if let (Some((_, span)), false) = (a.lock_wait, a.lock) {
            errors.push(syn::Error::new(
                span,
                "`lock_wait` bounds the wait of `lock`: add `lock = true`",
            ));
        }
        if let (Some((_, span)), false) = (a.beta, a.early_refresh) {
            errors.push(syn::Error::new(
                span,
                "`beta` tunes `early_refresh`: add `early_refresh = true`",
            ));
        }
        if let (Some((_, span)), None) = (a.none_ttl, a.cache_none) {
            errors.push(syn::Error::new(
                span,
                "`none_ttl` is the TTL of a stored `None`, and `None` is stored only with `cache_none = true`: add it",
            ));
        }
        if let (Some((v, span)), Some(t)) = (a.version, &a.template) {
            let mut e = syn::Error::new(
                span,
                format!(
                    "`version` goes into the generated key, and `key` replaces it: write the version into the template instead, e.g. `key = \"v{v}:{}\"`",
                    t.lit.value()
                ),
            );
            e.combine(syn::Error::new(t.lit.span(), "the key template is here"));
            errors.push(e);
        }
        if let (Some((prefix, span)), Some(t)) = (&a.key_prefix, &a.template) {
            let mut e = syn::Error::new(
                *span,
                format!(
                    "`key_prefix` cannot be combined with `key`: write the prefix into the template, e.g. `key = \"{prefix}:{}\"`",
                    t.lit.value()
                ),
            );
            e.combine(syn::Error::new(t.lit.span(), "the key template is here"));
            errors.push(e);
        }
        a
    }

    /// Whether `skip(..)` names `self`.
    pub(crate) fn skip_self(&self) -> Option<&Ident> {
        self.skip.iter().find(|s| *s == "self")
    }
}

/// `include(self)`: the only thing `include` takes.
fn include_self(arg: &Arg<'_>) -> syn::Result<Ident> {
    let names = arg.ident_list()?;
    if let Some(other) = names.iter().find(|n| *n != "self") {
        return Err(syn::Error::new(
            other.span(),
            format!(
                "`include` takes only `self`: `{other}`, like every argument, is part of the key unless it is skipped"
            ),
        ));
    }
    match names.len() {
        1 => Ok(names[0].clone()),
        _ => Err(syn::Error::new_spanned(
            arg.meta,
            "`include` takes `self` once: `include(self)`",
        )),
    }
}

/// `tags = ["user:{user_id}", "products"]`: templates whose placeholders
/// name arguments (a tag without one is a constant tag).
fn tags(arg: &Arg<'_>, errors: &mut Errors) -> syn::Result<Vec<Template>> {
    let expected = || {
        arg.error("`tags` expects a list of tag templates, e.g. `tags = [\"user:{user_id}\", \"products\"]`")
    };
    let Expr::Array(list) = arg.value()? else {
        return Err(expected());
    };
    if list.elems.is_empty() {
        return Err(expected());
    }
    list.elems
        .iter()
        .map(|e| match e {
            Expr::Lit(syn::ExprLit {
                lit: Lit::Str(s), ..
            }) => Ok(Template::parse(s.clone(), KeyOf::Tag, errors)),
            other => Err(syn::Error::new_spanned(
                other,
                "a tag is a string literal, e.g. `\"user:{user_id}\"`",
            )),
        })
        .collect()
}

/// `ttl_jitter = "10%"` (1 to 99 percent) or a duration.
fn jitter(arg: &Arg<'_>) -> syn::Result<Jitter> {
    if let Some(Lit::Str(s)) = arg.lit()? {
        if let Some(percent) = s.value().strip_suffix('%') {
            return match percent.parse::<u16>() {
                Ok(p) if (1..=99).contains(&p) => Ok(Jitter::PerMille(p * 10)),
                _ => Err(syn::Error::new(
                    s.span(),
                    "`ttl_jitter` as a share of the TTL is a whole percentage from 1% to 99%, e.g. `ttl_jitter = \"10%\"`",
                )),
            };
        }
    }
    arg.duration().map(Jitter::Upto)
}

/// `lock_wait_ms = 500` is now `lock_wait = "500ms"`.
fn renamed_lock_wait(arg: &Arg<'_>) -> syn::Error {
    let value = match arg.lit() {
        Ok(Some(Lit::Int(i))) => match i.base10_parse::<u64>() {
            Ok(ms) if ms > 0 && ms % 1000 == 0 => format!("\"{}s\"", ms / 1000),
            Ok(ms) if ms > 0 => format!("\"{ms}ms\""),
            _ => "\"500ms\"".to_owned(),
        },
        _ => "\"500ms\"".to_owned(),
    };
    syn::Error::new(
        arg.span(),
        format!(
            "`lock_wait_ms` is now `lock_wait`, a duration like `ttl` (an integer means seconds): write `lock_wait = {value}`"
        ),
    )
}
