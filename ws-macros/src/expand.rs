//! Generates the `Handler` impl that delegates to the user's hooks, or a fallback on errors.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Item, Type};

use crate::args::Args;
use crate::ast::{self, Hook, ImplBlock, Output};
use crate::check::{self, Errors};
use crate::hook::{HookKind, ParamKind, Shape};

/// The environment variable that makes the macro print each expansion to stderr.
const DEBUG_VAR: &str = "WS_MACROS_DEBUG";

/// Expands `#[websocket(args)] item`.
pub(crate) fn websocket(args: TokenStream, item: TokenStream) -> TokenStream {
    let expanded = expand(args, item);
    if std::env::var_os(DEBUG_VAR).is_some_and(|value| !value.is_empty()) {
        eprintln!("{}", pretty(&expanded));
    }
    expanded
}

/// The user's impl block unchanged, followed by the trait impl, or by every error found and a
/// fallback trait impl so that the rest of the crate does not pile up secondary errors.
fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (args, args_error) = Args::parse(args);
    if let Some(error) = args_error {
        errors.push(error);
    }
    let item_impl = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Impl(item_impl)) => item_impl,
        Ok(_) => {
            errors.push(syn::Error::new(
                Span::call_site(),
                "`#[websocket]` goes on an inherent `impl` block",
            ));
            return with_errors(item, errors);
        }
        Err(error) => {
            errors.push(error);
            return with_errors(item, errors);
        }
    };
    let block = ImplBlock::from_syn(&item_impl);
    check::check(&block, &mut errors);
    let result = errors.finish();
    let errors_found = result.is_err();
    let generated = match result {
        Ok(()) => Generator::new(&args, &block).handler_impl(),
        Err(errors) => {
            let errors = errors.into_compile_error();
            let fallback = block
                .is_plain_inherent()
                .then(|| Generator::new(&args, &block).fallback_impl());
            quote!(#errors #fallback)
        }
    };
    let mut output = if errors_found {
        item
    } else {
        allow_unused_self(item_impl).into_token_stream()
    };
    output.extend(generated);
    output
}

/// Hooks must take `&self` even when they do not use it, take the message, the close and
/// the closing session by value because the runtime hands them over, and say in their type
/// whether a handshake can refuse (`Result` even when it always accepts); clippy's
/// `unused_self`, `needless_pass_by_value` and `unnecessary_wraps` would ask for what the
/// macro refuses. Allow them on the hooks, and only there.
fn allow_unused_self(mut item_impl: syn::ItemImpl) -> syn::ItemImpl {
    for item in &mut item_impl.items {
        if let syn::ImplItem::Fn(method) = item {
            if HookKind::from_ident(&method.sig.ident).is_some() {
                method.attrs.push(syn::parse_quote!(#[allow(
                    clippy::unused_self,
                    clippy::needless_pass_by_value,
                    clippy::unnecessary_wraps
                )]));
            }
        }
    }
    item_impl
}

fn with_errors(mut item: TokenStream, errors: Errors) -> TokenStream {
    if let Err(errors) = errors.finish() {
        item.extend(errors.into_compile_error());
    }
    item
}

/// Renders tokens as formatted Rust, or as plain tokens if they are not a file of items.
fn pretty(tokens: &TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(_) => tokens.to_string(),
    }
}

struct Generator<'a> {
    args: &'a Args,
    block: &'a ImplBlock<'a>,
}

impl<'a> Generator<'a> {
    fn new(args: &'a Args, block: &'a ImplBlock<'a>) -> Self {
        Generator { args, block }
    }

    /// The path to the `ws` crate, located at `span` so that rustc's errors about the item it
    /// names land on the user's tokens (the path still resolves as written).
    fn krate(&self, span: Span) -> TokenStream {
        located_at(self.args.krate.to_token_stream(), span)
    }

    fn handler_impl(&self) -> TokenStream {
        let session = match self
            .block
            .hook(HookKind::Handshake)
            .map(|hook| &hook.output)
        {
            None | Some(Output::Default | Output::Unit) => quote!(()),
            Some(Output::Result { ok, .. }) => ok.to_token_stream(),
            Some(Output::Other(ty)) => self.handshake_session(ty),
        };
        let mut methods = Vec::new();
        if self.block.hook(HookKind::Handshake).is_none() {
            methods.push(self.default_handshake());
        }
        methods.extend(self.block.first_hooks().map(|hook| self.method(hook)));
        let message = self
            .message_type()
            .map_or_else(|| self.default_message(), ToTokens::to_token_stream);
        self.trait_impl(&session, &message, &methods)
    }

    /// The session of a handshake that returns `ty`: what `IntoHandshake` makes of it. Read
    /// from the type where its form is plain (`Option<S>`, `bool`, `io::Result<S>`), so that
    /// a mistake in it is one error in the hook's body rather than one per use of the
    /// session; otherwise (an alias, or a type that cannot say whether to accept) the
    /// projection, which `IntoHandshake` reports on the return type.
    fn handshake_session(&self, ty: &Type) -> TokenStream {
        if let Some(session) = ast::plain_session(ty) {
            return session;
        }
        let span = type_span(ty);
        let krate = self.krate(span);
        quote_spanned!(span=> <#ty as #krate::__private::IntoHandshake>::Session)
    }

    /// The type of `on_data`'s message parameter, when it takes one.
    fn message_type(&self) -> Option<&'a Type> {
        let hook = self.block.hook(HookKind::Data)?;
        hook.params
            .iter()
            .find(|param| hook.kind.param_for(param.shape) == Some(ParamKind::Message))
            .map(|param| &*param.arg.ty)
    }

    /// Accepts every handshake with session `()`, like an absent `on_handshake`.
    fn fallback_impl(&self) -> TokenStream {
        self.trait_impl(
            &quote!(()),
            &self.default_message(),
            &[self.default_handshake()],
        )
    }

    /// The message type of a handler whose `on_data` takes none.
    fn default_message(&self) -> TokenStream {
        let krate = self.krate(Span::call_site());
        quote!(#krate::Message)
    }

    fn trait_impl(
        &self,
        session: &TokenStream,
        message: &TokenStream,
        methods: &[TokenStream],
    ) -> TokenStream {
        let krate = self.krate(Span::call_site());
        let self_ty = &self.block.item.self_ty;
        // The methods carry the user's spans so that rustc's errors land on the hooks, which
        // also makes clippy lint them as user code: allow what is deliberate in their shape.
        quote! {
            #[automatically_derived]
            #[allow(clippy::manual_async_fn, clippy::absolute_paths)]
            impl #krate::__private::Handler for #self_ty {
                type Session = #session;
                type Message = #message;
                #(#methods)*
            }
        }
    }

    fn default_handshake(&self) -> TokenStream {
        let signature = self.signature(HookKind::Handshake, Span::call_site());
        quote! {
            #signature {
                async { ::core::result::Result::Ok(()) }
            }
        }
    }

    /// The trait method's signature, spanned on the user's hook.
    fn signature(&self, kind: HookKind, span: Span) -> TokenStream {
        let krate = self.krate(span);
        let name = kind.ident(span);
        let params = kind.params().iter().map(|&param| {
            let local = param.local(span);
            let ty = match param {
                ParamKind::Endpoint => quote_spanned!(span=> &#krate::Endpoint),
                ParamKind::Request => quote_spanned!(span=> &#krate::Request),
                ParamKind::Accept => quote_spanned!(span=> &mut #krate::Accept),
                ParamKind::Id => quote_spanned!(span=> #krate::ClientId),
                ParamKind::SessionMut => quote_spanned!(span=> &mut Self::Session),
                ParamKind::SessionOwned => quote_spanned!(span=> Self::Session),
                ParamKind::Message => quote_spanned!(span=> Self::Message),
                ParamKind::Close => quote_spanned!(span=> #krate::Close),
            };
            quote_spanned!(span=> #local: #ty)
        });
        let output = match kind {
            HookKind::Handshake => {
                quote_spanned!(span=> ::core::result::Result<Self::Session, #krate::Reject>)
            }
            HookKind::Data => {
                quote_spanned!(span=> ::core::result::Result<(), #krate::__private::DataError>)
            }
            HookKind::Start | HookKind::Open | HookKind::Close | HookKind::Stop => {
                quote_spanned!(span=> ())
            }
        };
        quote_spanned! {span=>
            fn #name(&self, #(#params),*)
                -> impl ::core::future::Future<Output = #output> + ::core::marker::Send
        }
    }

    /// The trait method that calls the user's hook as `Self::on_xxx(self, ...)`: inherent
    /// associated functions take precedence over the trait's in path resolution.
    fn method(&self, hook: &Hook<'_>) -> TokenStream {
        let span = hook.ident().span();
        let signature = self.signature(hook.kind, span);
        let args: Vec<TokenStream> = hook
            .params
            .iter()
            .map(|param| {
                let kind = hook
                    .kind
                    .param_for(param.shape)
                    .expect("checked: every parameter is accepted");
                let ty = &*param.arg.ty;
                let ty_span = type_span(ty);
                let local = kind.local(ty_span);
                let krate = self.krate(ty_span);
                match (kind, param.shape) {
                    (ParamKind::Endpoint, Shape::Endpoint) => {
                        quote_spanned!(ty_span=> ::core::clone::Clone::clone(#local))
                    }
                    // Through `SessionIs`, so that a session type other than the handshake's
                    // is reported on this parameter, naming both.
                    (ParamKind::SessionMut, _) => {
                        let referent = referent(ty);
                        quote_spanned! {ty_span=>
                            <#referent as #krate::__private::SessionIs<Self::Session>>::session_mut(#local)
                        }
                    }
                    (ParamKind::SessionOwned, _) => quote_spanned! {ty_span=>
                        <#ty as #krate::__private::SessionIs<Self::Session>>::session(#local)
                    },
                    _ => local.into_token_stream(),
                }
            })
            .collect();
        let ident = hook.ident();
        let awaited = hook.is_async().then(|| quote_spanned!(span=> .await));
        let call = quote_spanned!(span=> Self::#ident(self, #(#args),*) #awaited);
        let body = match (hook.kind, &hook.output) {
            (HookKind::Handshake | HookKind::Data, Output::Default | Output::Unit) => {
                quote_spanned! {span=>
                    #call;
                    ::core::result::Result::Ok(())
                }
            }
            // Accept or refuse as the return type says (`IntoHandshake`), reported on that type.
            (HookKind::Handshake, Output::Result { ty, .. } | Output::Other(ty)) => {
                let ty_span = type_span(ty);
                let krate = self.krate(ty_span);
                quote_spanned! {ty_span=>
                    <#ty as #krate::__private::IntoHandshake>::into_handshake(#call)
                }
            }
            (HookKind::Data, Output::Result { ty, .. } | Output::Other(ty)) => {
                let ty_span = type_span(ty);
                let krate = self.krate(ty_span);
                quote_spanned! {ty_span=>
                    let __ws_result = #call;
                    #krate::__private::IntoDataResult::into_data_result(__ws_result)
                }
            }
            // Checked: the other hooks return `()`.
            _ => quote_spanned!(span=> #call;),
        };
        quote_spanned! {span=>
            #signature {
                async move {
                    #body
                }
            }
        }
    }
}

/// The span rustc's type errors about a parameter or return type should point at: the name of
/// the type (`Member` in `&mut Member`), since a single token cannot cover the whole type.
fn type_span(ty: &Type) -> Span {
    match ty {
        Type::Reference(reference) => type_span(&reference.elem),
        Type::Group(group) => type_span(&group.elem),
        Type::Paren(paren) => type_span(&paren.elem),
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .map_or_else(|| ty.span(), |segment| segment.ident.span()),
        _ => ty.span(),
    }
}

/// `T` of `&mut T` (the session parameter of `on_open` and `on_data`).
fn referent(ty: &Type) -> &Type {
    match ty {
        Type::Reference(reference) => &reference.elem,
        Type::Group(group) => referent(&group.elem),
        Type::Paren(paren) => referent(&paren.elem),
        _ => ty,
    }
}

/// The tokens, reported at `span` but resolved as before.
fn located_at(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut relocated = Group::new(group.delimiter(), located_at(group.stream(), span));
                relocated.set_span(group.span().located_at(span));
                token = TokenTree::Group(relocated);
            } else {
                token.set_span(token.span().located_at(span));
            }
            token
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! Expansion snapshots: each `tests/expand/NAME.rs` holds one `#[websocket]` impl block, whose
    //! expansion must match `tests/expand/NAME.expanded.rs`. `WS_BLESS=1` rewrites them.

    use std::fs;
    use std::path::{Path, PathBuf};

    use syn::{Attribute, Meta};

    use super::*;

    fn snapshot_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand")
    }

    fn is_websocket(attr: &Attribute) -> bool {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "websocket")
    }

    /// Expands the `#[websocket]` impl block of an input file, as rustc would call the macro.
    fn expand_file(source: &str) -> String {
        let file: syn::File = syn::parse_str(source).expect("the input parses");
        let mut item = file
            .items
            .into_iter()
            .find_map(|item| match item {
                Item::Impl(item) if item.attrs.iter().any(is_websocket) => Some(item),
                _ => None,
            })
            .expect("the input has a `#[websocket]` impl block");
        let position = item.attrs.iter().position(is_websocket).unwrap();
        let attr = item.attrs.remove(position);
        let args = match attr.meta {
            Meta::Path(_) => TokenStream::new(),
            Meta::List(list) => list.tokens,
            Meta::NameValue(_) => panic!("`#[websocket = ...]` is not a form of the attribute"),
        };
        pretty(&expand(args, item.into_token_stream()))
    }

    #[test]
    fn snapshots() {
        let bless = std::env::var_os("WS_BLESS").is_some_and(|value| !value.is_empty());
        let mut inputs: Vec<PathBuf> = fs::read_dir(snapshot_dir())
            .expect("tests/expand exists")
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                let name = path.file_name().unwrap().to_string_lossy();
                path.extension().is_some_and(|ext| ext == "rs") && !name.ends_with(".expanded.rs")
            })
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "no snapshot inputs in tests/expand");
        let mut failed = Vec::new();
        for input in inputs {
            let expected_path = input.with_extension("expanded.rs");
            let actual = expand_file(&fs::read_to_string(&input).unwrap());
            if bless {
                fs::write(&expected_path, &actual).unwrap();
                continue;
            }
            match fs::read_to_string(&expected_path) {
                Ok(expected) if expected == actual => {}
                Ok(expected) => {
                    eprintln!(
                        "--- {}\n{expected}\n+++ actual\n{actual}",
                        expected_path.display()
                    );
                    failed.push(input);
                }
                Err(_) => {
                    eprintln!("missing {}; actual:\n{actual}", expected_path.display());
                    failed.push(input);
                }
            }
        }
        assert!(
            failed.is_empty(),
            "expansions differ from their snapshots (rerun with WS_BLESS=1 and review the diff): {failed:?}"
        );
    }

    #[test]
    fn not_an_impl_block() {
        let out = expand(
            TokenStream::new(),
            quote!(
                struct Chat;
            ),
        )
        .to_string();
        assert!(out.starts_with("struct Chat ;"), "{out}");
        assert!(out.contains("goes on an inherent `impl` block"), "{out}");
    }

    #[test]
    fn errors_keep_the_impl_and_add_a_fallback() {
        let item = quote!(impl Chat { fn on_msg(&self) {} });
        let out = expand(TokenStream::new(), item).to_string();
        assert!(
            out.starts_with("impl Chat { fn on_msg (& self) { } }"),
            "{out}"
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("type Session = ()"), "{out}");
    }

    #[test]
    fn no_fallback_for_a_trait_impl() {
        let item = quote!(impl Clone for Chat {});
        let out = expand(TokenStream::new(), item).to_string();
        assert!(out.contains("compile_error"), "{out}");
        assert!(!out.contains("Handler"), "{out}");
    }
}
