//! Collects every error of one expansion, so a user sees all of them at
//! once and the expansion can still emit the item.

use proc_macro2::TokenStream;

/// The errors found so far.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value of `r`, or `None` with its error recorded.
    pub(crate) fn ok<T>(&mut self, r: syn::Result<T>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    /// The errors found, if any, as one.
    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.0
    }

    /// The `compile_error!`s of the errors found, if any.
    pub(crate) fn take(&mut self) -> Option<TokenStream> {
        self.0.take().map(|e| e.to_compile_error())
    }
}
