//! Attribute arguments: the shared reading of `name = value`, `name(...)`
//! and `name` lists (unknown and duplicate names are errors at the name,
//! listing the valid ones; every error is reported, not only the first),
//! the value parsers, then each macro's argument set.

mod cache;
mod duration;
mod rate_limit;

pub(crate) use cache::{CacheArgs, Jitter, StoredFormat};
pub(crate) use rate_limit::{Algorithm, RateArgs};

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitStr, Meta, Path, Token};

use crate::errors::Errors;

/// One argument of the attribute.
pub(crate) struct Arg<'a> {
    pub(crate) name: &'a str,
    pub(crate) meta: &'a Meta,
}

/// The argument names of one attribute.
pub(crate) struct Names {
    /// Accepted, in the order the error on an unknown one lists them.
    pub(crate) valid: &'static [&'static str],
    /// Former spellings, handed to `on_arg` for a message naming the new
    /// one instead of the generic unknown-argument error.
    pub(crate) renamed: &'static [&'static str],
}

/// Runs `on_arg` for each argument of `attr`, recording its errors (and
/// those of unknown or duplicate names) in `errors`. Returns the names
/// seen.
pub(crate) fn parse_args(
    attr: TokenStream,
    names: &Names,
    errors: &mut Errors,
    mut on_arg: impl FnMut(&Arg<'_>) -> syn::Result<()>,
) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let Some(metas) = errors.ok(Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr))
    else {
        return seen;
    };
    for meta in &metas {
        let path = meta.path();
        let name = path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_else(|| path.to_token_stream().to_string());
        if !names.valid.contains(&name.as_str()) && !names.renamed.contains(&name.as_str()) {
            errors.push(syn::Error::new_spanned(
                path,
                format!(
                    "unknown argument `{name}`; valid arguments are: {}",
                    names.valid.join(", ")
                ),
            ));
            continue;
        }
        if seen.contains(&name) {
            errors.push(syn::Error::new_spanned(
                path,
                format!("duplicate argument `{name}`"),
            ));
            continue;
        }
        errors.ok(on_arg(&Arg { name: &name, meta }));
        seen.push(name);
    }
    seen
}

impl Arg<'_> {
    /// The span of the argument's name.
    pub(crate) fn span(&self) -> Span {
        self.meta.path().span()
    }

    /// The value of `name = value`.
    pub(crate) fn value(&self) -> syn::Result<&Expr> {
        match self.meta {
            Meta::NameValue(nv) => Ok(&nv.value),
            _ => Err(syn::Error::new_spanned(
                self.meta,
                format!("`{0}` expects a value: `{0} = ...`", self.name),
            )),
        }
    }

    /// The literal of `name = <literal>`, if it is one.
    pub(crate) fn lit(&self) -> syn::Result<Option<&Lit>> {
        Ok(match self.value()? {
            Expr::Lit(l) => Some(&l.lit),
            _ => None,
        })
    }

    /// An error at the value.
    pub(crate) fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        match self.meta {
            Meta::NameValue(nv) => syn::Error::new_spanned(&nv.value, message),
            other => syn::Error::new_spanned(other, message),
        }
    }

    /// `name = <integer greater than 0>`.
    pub(crate) fn positive_int(&self, unit: &str, example: u64) -> syn::Result<u64> {
        let n = match self.lit()? {
            // A suffix (`100u8`, `5k`) would be dropped silently.
            Some(Lit::Int(i)) if i.suffix().is_empty() => i.base10_parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n > 0 => Ok(n),
            _ => Err(self.error(format_args!(
                "`{0}` expects an integer greater than 0 ({unit}), e.g. `{0} = {example}`",
                self.name
            ))),
        }
    }

    /// `name = <number greater than 0>` (integer or float literal).
    pub(crate) fn positive_float(&self) -> syn::Result<f64> {
        let n = match self.lit()? {
            Some(Lit::Float(f)) => f.base10_parse::<f64>().ok(),
            Some(Lit::Int(i)) => i.base10_parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n > 0.0 && n.is_finite() => Ok(n),
            _ => Err(self.error(format_args!(
                "`{0}` expects a number greater than 0, e.g. `{0} = 1.5`",
                self.name
            ))),
        }
    }

    /// `name = "string"`.
    pub(crate) fn string(&self) -> syn::Result<LitStr> {
        match self.lit()? {
            Some(Lit::Str(s)) => Ok(s.clone()),
            _ => Err(self.error(format_args!(
                "`{0}` expects a string literal, e.g. `{0} = \"...\"`",
                self.name
            ))),
        }
    }

    /// One of `choices` (`name = "choice"`), `expected` saying what they
    /// mean.
    pub(crate) fn choice<T: Copy>(&self, choices: &[(&str, T)], expected: &str) -> syn::Result<T> {
        let s = self.string()?;
        choices
            .iter()
            .find(|(c, _)| s.value() == *c)
            .map(|(_, v)| *v)
            .ok_or_else(|| syn::Error::new(s.span(), format!("`{}` expects {expected}", self.name)))
    }

    /// `name = <closure or path of a function>`.
    pub(crate) fn function(&self, name: &str, path: &str, closure: &str) -> syn::Result<Expr> {
        match self.value()? {
            e @ (Expr::Closure(_) | Expr::Path(_)) => Ok(e.clone()),
            _ => Err(self.error(format_args!(
                "`{name}` expects a function of the value to store: a closure or the path of a function, e.g. `{name} = {closure}` or `{name} = {path}`"
            ))),
        }
    }

    /// `name = true|false`, or just `name` (true).
    pub(crate) fn boolean(&self) -> syn::Result<bool> {
        if let Meta::Path(_) = self.meta {
            return Ok(true);
        }
        match self.lit()? {
            Some(Lit::Bool(b)) => Ok(b.value),
            _ => Err(self.error(format_args!("`{}` expects `true` or `false`", self.name))),
        }
    }

    /// `name = "prefix"`: a plain key part (no `:` either).
    pub(crate) fn plain_part(&self) -> syn::Result<(String, Span)> {
        let s = self.string()?;
        let v = s.value();
        if v.is_empty() || v.chars().any(|c| c == ':' || bad_key_char(c)) {
            return Err(syn::Error::new(
                s.span(),
                format!(
                    "`{}` must be non-empty and free of whitespace, `:` and the characters `* ? [ ] \\ {{ }} % ^`",
                    self.name
                ),
            ));
        }
        Ok((v, s.span()))
    }

    /// `crate = "path"`.
    pub(crate) fn crate_path(&self) -> syn::Result<Path> {
        let s = self.string()?;
        s.parse::<Path>().map_err(|_| {
            syn::Error::new(
                s.span(),
                "`crate` expects the path of the forge-cache crate, e.g. `crate = \"::forge_cache\"`",
            )
        })
    }

    /// `name(a, b, ...)`; `self` is accepted as a name.
    pub(crate) fn ident_list(&self) -> syn::Result<Vec<Ident>> {
        let Meta::List(list) = self.meta else {
            return Err(syn::Error::new_spanned(
                self.meta,
                format!(
                    "`{0}` expects a list of argument names, e.g. `{0}(db, request)`",
                    self.name
                ),
            ));
        };
        let names = list.parse_args_with(|input: ParseStream<'_>| {
            Punctuated::<Ident, Token![,]>::parse_terminated_with(input, Ident::parse_any)
        })?;
        Ok(names.into_iter().collect())
    }
}

/// The characters a literal key part may not contain: key separators and
/// glob syntax (as escaped by the runtime's `push_component`), whitespace.
pub(crate) fn bad_key_char(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '%' | '^')
        || c.is_whitespace()
        || c.is_control()
}
