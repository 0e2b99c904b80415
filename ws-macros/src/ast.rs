//! A typed model of the annotated impl block, borrowing the syn nodes so errors keep their spans.

use syn::{
    FnArg, GenericArgument, Ident, ImplItem, ImplItemFn, ItemImpl, PatType, PathArguments,
    Receiver, ReturnType, Type,
};

use crate::hook::{HookKind, Shape};

/// The impl block `#[websocket]` is on.
pub(crate) struct ImplBlock<'a> {
    pub(crate) item: &'a ItemImpl,
    /// The methods named after a hook, in source order (duplicates included).
    pub(crate) hooks: Vec<Hook<'a>>,
    /// The names of `on_*` methods that are not hooks.
    pub(crate) unknown: Vec<&'a Ident>,
}

/// A method named after a hook, as written (not yet checked).
pub(crate) struct Hook<'a> {
    pub(crate) kind: HookKind,
    pub(crate) func: &'a ImplItemFn,
    pub(crate) receiver: Option<&'a Receiver>,
    pub(crate) params: Vec<Param<'a>>,
    pub(crate) output: Output<'a>,
}

/// A parameter of a hook, after the receiver.
pub(crate) struct Param<'a> {
    pub(crate) arg: &'a PatType,
    pub(crate) shape: Shape,
}

/// A hook's return type.
pub(crate) enum Output<'a> {
    /// No `->`.
    Default,
    /// `-> ()`.
    Unit,
    /// `-> Result<T, E>` (a path whose last segment is `Result`, with two type arguments).
    Result { ty: &'a Type, ok: &'a Type },
    /// Any other type.
    Other(&'a Type),
}

impl<'a> ImplBlock<'a> {
    pub(crate) fn from_syn(item: &'a ItemImpl) -> Self {
        let mut hooks = Vec::new();
        let mut unknown = Vec::new();
        for impl_item in &item.items {
            let ImplItem::Fn(func) = impl_item else {
                continue;
            };
            let ident = &func.sig.ident;
            if let Some(kind) = HookKind::from_ident(ident) {
                hooks.push(Hook::from_syn(kind, func));
            } else if HookKind::looks_like_hook(ident) {
                unknown.push(ident);
            }
        }
        ImplBlock {
            item,
            hooks,
            unknown,
        }
    }

    /// Whether a trait impl for the block's type can be written: an inherent impl without
    /// generics. Otherwise the fallback impl would only add errors.
    pub(crate) fn is_plain_inherent(&self) -> bool {
        self.item.trait_.is_none()
            && self.item.generics.params.is_empty()
            && self.item.generics.where_clause.is_none()
    }

    /// The first definition of each hook, in the table's order, ignoring duplicates.
    pub(crate) fn first_hooks(&self) -> impl Iterator<Item = &Hook<'a>> {
        HookKind::ALL.into_iter().filter_map(|kind| self.hook(kind))
    }

    /// The first definition of this hook.
    pub(crate) fn hook(&self, kind: HookKind) -> Option<&Hook<'a>> {
        self.hooks.iter().find(|hook| hook.kind == kind)
    }
}

impl<'a> Hook<'a> {
    fn from_syn(kind: HookKind, func: &'a ImplItemFn) -> Self {
        let mut receiver = None;
        let mut params = Vec::new();
        for input in &func.sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = Some(r),
                FnArg::Typed(arg) => params.push(Param {
                    arg,
                    shape: shape_of(&arg.ty),
                }),
            }
        }
        Hook {
            kind,
            func,
            receiver,
            params,
            output: Output::from_syn(&func.sig.output),
        }
    }

    pub(crate) fn ident(&self) -> &'a Ident {
        &self.func.sig.ident
    }

    pub(crate) fn is_async(&self) -> bool {
        self.func.sig.asyncness.is_some()
    }
}

impl<'a> Output<'a> {
    fn from_syn(output: &'a ReturnType) -> Self {
        let ReturnType::Type(_, ty) = output else {
            return Output::Default;
        };
        let ty = ungroup(ty);
        if matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty()) {
            return Output::Unit;
        }
        if let Some(ok) = result_ok(ty) {
            return Output::Result { ty, ok };
        }
        Output::Other(ty)
    }
}

/// Recognises a parameter by its type.
fn shape_of(ty: &Type) -> Shape {
    match ungroup(ty) {
        Type::Reference(reference) => {
            let mutable = reference.mutability.is_some();
            if mutable && last_segment_is(&reference.elem, "Accept") {
                Shape::Accept
            } else if mutable {
                Shape::MutRef
            } else if last_segment_is(&reference.elem, "Request") {
                Shape::Request
            } else if last_segment_is(&reference.elem, "Endpoint") {
                Shape::EndpointRef
            } else {
                Shape::SharedRef
            }
        }
        ty if last_segment_is(ty, "Endpoint") => Shape::Endpoint,
        ty if last_segment_is(ty, "ClientId") => Shape::ClientId,
        ty if last_segment_is(ty, "Close") => Shape::Close,
        ty if last_segment_is(ty, "Message") => Shape::Message,
        _ => Shape::Other,
    }
}

/// `T` of a `Result<T, E>`, recognised by the last path segment.
fn result_ok(ty: &Type) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = &last_segment(ty, "Result")?.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next(), types.next()) {
        (Some(ok), Some(_), None) => Some(ok),
        _ => None,
    }
}

/// The session of a handshake result whose form is plain: `()` for `bool`, `S` for
/// `Option<S>` and for a `Result` alias with one type argument (`io::Result<S>`). Only a
/// shortcut for better errors: the hook's value still goes through `IntoHandshake`, whose
/// session must then be this type.
pub(crate) fn plain_session(ty: &Type) -> Option<proc_macro2::TokenStream> {
    use quote::ToTokens;
    if last_segment_is(ty, "bool") {
        return Some(quote::quote!(()));
    }
    let segment = last_segment(ty, "Option").or_else(|| last_segment(ty, "Result"))?;
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|arg| match arg {
        GenericArgument::Type(ty) => Some(ty),
        _ => None,
    });
    match (types.next(), types.next()) {
        (Some(session), None) => Some(session.to_token_stream()),
        _ => None,
    }
}

/// Whether the type is a path (without `qself`) whose last segment is `name`.
pub(crate) fn last_segment_is(ty: &Type, name: &str) -> bool {
    last_segment(ty, name).is_some()
}

fn last_segment<'t>(ty: &'t Type, name: &str) -> Option<&'t syn::PathSegment> {
    match ungroup(ty) {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .filter(|segment| segment.ident == name),
        _ => None,
    }
}

/// Looks through the invisible groups `macro_rules!` wraps around `$ty` fragments, and parens.
fn ungroup(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(group) => ty = &group.elem,
            Type::Paren(paren) => ty = &paren.elem,
            _ => return ty,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(ty: &str) -> Shape {
        shape_of(&syn::parse_str(ty).unwrap())
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("Endpoint"), Shape::Endpoint);
        assert_eq!(shape("ws::Endpoint"), Shape::Endpoint);
        assert_eq!(shape("&Endpoint"), Shape::EndpointRef);
        assert_eq!(shape("&'_ ws::Endpoint"), Shape::EndpointRef);
        assert_eq!(shape("&mut Endpoint"), Shape::MutRef);
        assert_eq!(shape("&Request"), Shape::Request);
        assert_eq!(shape("&'_ ws::Request"), Shape::Request);
        assert_eq!(shape("&mut Request"), Shape::MutRef);
        assert_eq!(shape("&mut Accept"), Shape::Accept);
        assert_eq!(shape("&Accept"), Shape::SharedRef);
        assert_eq!(shape("ClientId"), Shape::ClientId);
        assert_eq!(shape("Close"), Shape::Close);
        assert_eq!(shape("Message"), Shape::Message);
        assert_eq!(shape("&mut Member"), Shape::MutRef);
        assert_eq!(shape("&str"), Shape::SharedRef);
        assert_eq!(shape("String"), Shape::Other);
        assert_eq!(shape("(u8, u8)"), Shape::Other);
        assert_eq!(shape("<T as Trait>::Endpoint"), Shape::Other);
    }

    fn output(ty: &str) -> &'static str {
        let ret: ReturnType = syn::parse_str(ty).unwrap();
        match Output::from_syn(&ret) {
            Output::Default => "default",
            Output::Unit => "unit",
            Output::Result { .. } => "result",
            Output::Other(_) => "other",
        }
    }

    #[test]
    fn outputs() {
        assert_eq!(output(""), "default");
        assert_eq!(output("-> ()"), "unit");
        assert_eq!(output("-> Result<Member, Reject>"), "result");
        assert_eq!(
            output("-> std::result::Result<(), std::io::Error>"),
            "result"
        );
        assert_eq!(output("-> io::Result<()>"), "other");
        assert_eq!(output("-> Member"), "other");
    }
}
