//! The attribute's options: `#[websocket]` or `#[websocket(crate = path::to::ws)]`.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::Path;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;

/// The parsed options.
pub(crate) struct Args {
    /// Where the `ws` crate is, for code generated in crates that rename or re-export it.
    pub(crate) krate: Path,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            krate: syn::parse_quote_spanned!(Span::call_site() => ::ws),
        }
    }
}

impl Args {
    /// Parses the options. On errors, the options that did parse are kept alongside every error,
    /// so the rest of the expansion can go on.
    pub(crate) fn parse(tokens: TokenStream) -> (Self, Option<syn::Error>) {
        let mut args = Args::default();
        let mut krate_seen = false;
        let mut errors: Option<syn::Error> = None;
        let mut push = |error: syn::Error| match &mut errors {
            Some(errors) => errors.combine(error),
            None => errors = Some(error),
        };
        let parser = syn::meta::parser(|meta: ParseNestedMeta<'_>| {
            if meta.path.is_ident("crate") {
                let krate: Path = meta.value()?.parse()?;
                if krate_seen {
                    push(syn::Error::new_spanned(
                        &meta.path,
                        "duplicate `crate` option",
                    ));
                } else {
                    args.krate = krate;
                    krate_seen = true;
                }
                Ok(())
            } else {
                let name = meta.path.to_token_stream().to_string().replace(' ', "");
                Err(meta.error(format_args!(
                    "unknown `websocket` option `{name}`; expected `crate = path::to::ws`"
                )))
            }
        });
        if let Err(error) = parser.parse2(tokens) {
            push(error);
        }
        (args, errors)
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn parse(tokens: TokenStream) -> (String, Option<String>) {
        let (args, error) = Args::parse(tokens);
        (
            args.krate.to_token_stream().to_string(),
            error.map(|e| e.to_string()),
        )
    }

    #[test]
    fn default_crate() {
        assert_eq!(parse(quote!()), (":: ws".to_owned(), None));
    }

    #[test]
    fn crate_path() {
        assert_eq!(parse(quote!(crate = my::ws)), ("my :: ws".to_owned(), None));
        assert_eq!(parse(quote!(crate = ws,)), ("ws".to_owned(), None));
    }

    #[test]
    fn unknown_option() {
        let (_, error) = parse(quote!(path = "/chat"));
        assert_eq!(
            error.as_deref(),
            Some("unknown `websocket` option `path`; expected `crate = path::to::ws`")
        );
    }

    #[test]
    fn duplicate_crate() {
        let (krate, error) = parse(quote!(crate = a, crate = b));
        assert_eq!(krate, "a");
        assert_eq!(error.as_deref(), Some("duplicate `crate` option"));
    }

    #[test]
    fn missing_value() {
        let (_, error) = parse(quote!(crate));
        assert!(error.is_some());
    }
}
