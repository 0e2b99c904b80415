//! Every rule of SPEC §3 that can be checked on the syntax, each reported on its own tokens.

use quote::ToTokens;
use syn::visit::Visit;
use syn::{Type, TypeImplTrait};

use crate::ast::{Hook, ImplBlock, Output};
use crate::hook::{HookKind, ParamKind, Shape};

/// Collects errors so that one run reports every mistake.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(errors) => errors.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn error(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Checks the impl block and its hooks.
pub(crate) fn check(block: &ImplBlock<'_>, errors: &mut Errors) {
    check_impl(block, errors);
    for ident in &block.unknown {
        errors.error(
            ident,
            format_args!(
                "unknown hook `{ident}`; expected one of {}",
                HookKind::list_all()
            ),
        );
    }
    for (i, hook) in block.hooks.iter().enumerate() {
        if let Some(first) = block.hooks[..i].iter().find(|h| h.kind == hook.kind) {
            let name = hook.kind.name();
            errors.error(hook.ident(), format_args!("duplicate hook `{name}`"));
            errors.error(first.ident(), format_args!("`{name}` first defined here"));
        }
        check_hook(hook, errors);
    }
}

fn check_impl(block: &ImplBlock<'_>, errors: &mut Errors) {
    let item = block.item;
    if let Some((bang, path, _)) = &item.trait_ {
        errors.error(
            quote::quote!(#bang #path),
            "expected an inherent impl block, like `impl MyServer { ... }`; \
             `#[websocket]` implements the hooks' trait itself",
        );
    }
    if let Some(unsafety) = &item.unsafety {
        errors.error(unsafety, "`#[websocket]` impl blocks cannot be `unsafe`");
    }
    if !item.generics.params.is_empty() {
        errors.error(
            &item.generics,
            "`#[websocket]` does not support generic impl blocks; \
             implement the hooks on a concrete type",
        );
    } else if let Some(where_clause) = &item.generics.where_clause {
        errors.error(
            where_clause,
            "`#[websocket]` does not support `where` clauses on the impl block",
        );
    }
}

fn check_hook(hook: &Hook<'_>, errors: &mut Errors) {
    let sig = &hook.func.sig;
    let name = hook.kind.name();
    if let Some(constness) = &sig.constness {
        errors.error(constness, format_args!("hook `{name}` cannot be `const`"));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.error(unsafety, format_args!("hook `{name}` cannot be `unsafe`"));
    }
    if let Some(abi) = &sig.abi {
        errors.error(abi, format_args!("hook `{name}` cannot be `extern`"));
    }
    if !sig.generics.params.is_empty() {
        errors.error(
            &sig.generics,
            format_args!("hook `{name}` cannot be generic"),
        );
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.error(
            where_clause,
            format_args!("hook `{name}` cannot have a `where` clause"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.error(variadic, format_args!("hook `{name}` cannot be variadic"));
    }
    check_receiver(hook, errors);
    check_params(hook, errors);
    check_output(hook, errors);
}

fn check_receiver(hook: &Hook<'_>, errors: &mut Errors) {
    let name = hook.kind.name();
    match hook.receiver {
        None => errors.push(syn::Error::new(
            hook.func.sig.paren_token.span.open(),
            format_args!("hook `{name}` must take `&self` as its first parameter"),
        )),
        Some(receiver) => {
            let is_ref_self = matches!(
                &*receiver.ty,
                Type::Reference(reference)
                    if reference.mutability.is_none()
                        && matches!(&*reference.elem, Type::Path(path) if path.qself.is_none() && path.path.is_ident("Self"))
            );
            if !is_ref_self {
                errors.error(
                    receiver,
                    format_args!(
                        "hook `{name}` must take `&self`; \
                         the runtime shares one handler between all connections"
                    ),
                );
            }
        }
    }
}

fn check_params(hook: &Hook<'_>, errors: &mut Errors) {
    let name = hook.kind.name();
    let mut seen: Vec<ParamKind> = Vec::new();
    for param in &hook.params {
        ImplTraitFinder::report(&param.arg.ty, name, errors);
        match hook.kind.param_for(param.shape) {
            Some(kind) if seen.contains(&kind) => errors.error(
                param.arg,
                format_args!(
                    "duplicate {} parameter for `{name}`; {}",
                    kind.describe(),
                    hook.kind.describe_params()
                ),
            ),
            Some(kind) => seen.push(kind),
            None => {
                let hint = match (hook.kind, param.shape) {
                    (HookKind::Data, Shape::SharedRef) => {
                        "; take the message by value (e.g. `String`) and the session as `&mut S`"
                    }
                    (HookKind::Open, Shape::SharedRef) => "; the session is borrowed as `&mut S`",
                    (HookKind::Close, Shape::SharedRef | Shape::MutRef) => {
                        "; the session is passed by value, as `S`"
                    }
                    _ => "",
                };
                errors.error(
                    param.arg,
                    format_args!(
                        "unexpected parameter for `{name}`; {}{hint}",
                        hook.kind.describe_params()
                    ),
                );
            }
        }
    }
}

fn check_output(hook: &Hook<'_>, errors: &mut Errors) {
    let name = hook.kind.name();
    match &hook.output {
        Output::Result { ty, .. } | Output::Other(ty) if hook.kind.returns_unit() => {
            errors.error(
                ty,
                format_args!("hook `{name}` must return `()`; the runtime ignores its result"),
            );
        }
        // Whether it accepts or refuses is `IntoHandshake`'s, whose bound rustc reports.
        Output::Result { ty, .. } | Output::Other(ty) if hook.kind == HookKind::Handshake => {
            ImplTraitFinder::report(ty, name, errors);
        }
        // `on_data`'s result goes through `IntoDataResult`, whose bound rustc reports.
        Output::Default | Output::Unit | Output::Result { .. } | Output::Other(_) => {}
    }
}

/// Finds `impl Trait` in a parameter or session type: a hidden generic parameter, or an opaque
/// session type that the trait impl cannot name.
struct ImplTraitFinder<'e> {
    name: &'static str,
    errors: &'e mut Errors,
}

impl ImplTraitFinder<'_> {
    fn report(ty: &Type, name: &'static str, errors: &mut Errors) {
        ImplTraitFinder { name, errors }.visit_type(ty);
    }
}

impl<'ast> Visit<'ast> for ImplTraitFinder<'_> {
    fn visit_type_impl_trait(&mut self, ty: &'ast TypeImplTrait) {
        self.errors.error(
            ty,
            format_args!(
                "hook `{}` cannot be generic; name a concrete type instead of `impl Trait`",
                self.name
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;
    use syn::ItemImpl;

    use super::*;

    /// Every message reported for this impl block, in order.
    fn messages(item: proc_macro2::TokenStream) -> Vec<String> {
        let item: ItemImpl = syn::parse2(item).unwrap();
        let block = ImplBlock::from_syn(&item);
        let mut errors = Errors::default();
        check(&block, &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_every_form() {
        let item = quote! {
            impl Chat {
                async fn on_start(&self, endpoint: ws::Endpoint) {}
                fn on_handshake(&self, accept: &mut Accept, req: &Request, e: &Endpoint) -> Result<Member, Reject> {}
                async fn on_open(&self, session: &mut Member, id: ClientId, e: Endpoint) {}
                fn on_data(&self, message: String, e: &ws::Endpoint, session: &mut Member) -> Result<(), Error> {}
                async fn on_close(&self, close: Close, session: Member, id: ClientId) -> () {}
                async fn on_stop(&self, e: &Endpoint) {}
                fn helper(self, x: impl Sized) {}
                const on_x: u8 = 0;
            }
        };
        assert_eq!(messages(item), Vec::<String>::new());
    }

    #[test]
    fn reports_each_mistake() {
        let cases = [
            (
                quote!(impl X { fn on_msg(&self) {} }),
                "unknown hook `on_msg`; expected one of `on_start`, `on_handshake`, `on_open`, `on_data`, `on_close`, `on_stop`",
            ),
            (
                quote!(impl X { fn on_open(self) {} }),
                "hook `on_open` must take `&self`; the runtime shares one handler between all connections",
            ),
            (
                quote!(impl X { fn on_open(&mut self) {} }),
                "hook `on_open` must take `&self`; the runtime shares one handler between all connections",
            ),
            (
                quote!(impl X { fn on_open(id: ClientId) {} }),
                "hook `on_open` must take `&self` as its first parameter",
            ),
            (
                quote!(impl X { fn on_open<T>(&self) {} }),
                "hook `on_open` cannot be generic",
            ),
            (
                quote!(impl X { fn on_data(&self, m: impl FromMessage) {} }),
                "hook `on_data` cannot be generic; name a concrete type instead of `impl Trait`",
            ),
            (
                quote!(impl X { unsafe fn on_stop(&self) {} }),
                "hook `on_stop` cannot be `unsafe`",
            ),
            (
                quote!(impl X { const fn on_stop(&self) {} }),
                "hook `on_stop` cannot be `const`",
            ),
            (
                quote!(impl X { extern "C" fn on_stop(&self) {} }),
                "hook `on_stop` cannot be `extern`",
            ),
            (
                quote!(
                    impl<T> X<T> {}
                ),
                "`#[websocket]` does not support generic impl blocks; implement the hooks on a concrete type",
            ),
            (
                quote!(impl Clone for X {}),
                "expected an inherent impl block, like `impl MyServer { ... }`; `#[websocket]` implements the hooks' trait itself",
            ),
            (
                quote!(impl X { fn on_open(&self, m: Message) {} }),
                "unexpected parameter for `on_open`; it takes `endpoint: &Endpoint`, `id: ClientId` and `session: &mut S`, in any order, each optional",
            ),
            (
                quote!(impl X { fn on_data(&self, m: &Request) {} }),
                "unexpected parameter for `on_data`; it takes `endpoint: &Endpoint`, `id: ClientId`, `session: &mut S` and `message: T` where `T: FromMessage`, in any order, each optional",
            ),
            (
                quote!(impl X { fn on_data(&self, s: &str) {} }),
                "unexpected parameter for `on_data`; it takes `endpoint: &Endpoint`, `id: ClientId`, `session: &mut S` and `message: T` where `T: FromMessage`, in any order, each optional; take the message by value (e.g. `String`) and the session as `&mut S`",
            ),
            (
                quote!(impl X { fn on_open(&self, s: &S) {} }),
                "unexpected parameter for `on_open`; it takes `endpoint: &Endpoint`, `id: ClientId` and `session: &mut S`, in any order, each optional; the session is borrowed as `&mut S`",
            ),
            (
                quote!(impl X { fn on_close(&self, s: &mut S) {} }),
                "unexpected parameter for `on_close`; it takes `endpoint: &Endpoint`, `id: ClientId`, `session: S` and `close: Close`, in any order, each optional; the session is passed by value, as `S`",
            ),
            (
                quote!(impl X { fn on_stop(&self, id: ClientId) {} }),
                "unexpected parameter for `on_stop`; it takes `endpoint: &Endpoint`, which may be omitted",
            ),
            (
                quote!(impl X { fn on_start(&self, e: Endpoint, f: &Endpoint) {} }),
                "duplicate `endpoint: &Endpoint` parameter for `on_start`; it takes `endpoint: &Endpoint`, which may be omitted",
            ),
            (
                quote!(impl X { fn on_open(&self) -> u32 {} }),
                "hook `on_open` must return `()`; the runtime ignores its result",
            ),
            (
                quote!(impl X { fn on_handshake(&self) -> Option<impl Sized> {} }),
                "hook `on_handshake` cannot be generic; name a concrete type instead of `impl Trait`",
            ),
        ];
        for (item, expected) in cases {
            assert_eq!(messages(item.clone()), [expected], "for {item}");
        }
    }

    #[test]
    fn duplicate_hook_points_at_both() {
        let item = quote!(impl X { fn on_open(&self) {} fn on_open(&self) {} });
        assert_eq!(
            messages(item),
            ["duplicate hook `on_open`", "`on_open` first defined here"]
        );
    }

    #[test]
    fn reports_every_mistake_at_once() {
        let item = quote! {
            impl X {
                fn on_msg(&self) {}
                fn on_open(self, m: Message) -> u8 {}
                fn on_stop<T>(&self) {}
            }
        };
        assert_eq!(messages(item).len(), 5);
    }
}
