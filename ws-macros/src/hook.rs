//! The one table of hooks: their names, the parameters each accepts and what they return.

use std::fmt::Write as _;

use proc_macro2::{Ident, Span};

/// A hook of the runtime's `Handler` trait that a method of the impl block can implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HookKind {
    Start,
    Handshake,
    Open,
    Data,
    Close,
    Stop,
}

impl HookKind {
    /// Every hook, in the order the runtime calls them.
    pub(crate) const ALL: [HookKind; 6] = [
        HookKind::Start,
        HookKind::Handshake,
        HookKind::Open,
        HookKind::Data,
        HookKind::Close,
        HookKind::Stop,
    ];

    /// The method name, which is also the name of the `Handler` trait method.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HookKind::Start => "on_start",
            HookKind::Handshake => "on_handshake",
            HookKind::Open => "on_open",
            HookKind::Data => "on_data",
            HookKind::Close => "on_close",
            HookKind::Stop => "on_stop",
        }
    }

    /// The hook a method of this name implements.
    pub(crate) fn from_ident(ident: &Ident) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| ident == kind.name())
    }

    /// Whether a method of this name looks like it was meant as a hook (`on_*`): an unknown one
    /// is an error rather than a method silently never called.
    pub(crate) fn looks_like_hook(ident: &Ident) -> bool {
        ident.to_string().starts_with("on_")
    }

    /// The method name as an identifier.
    pub(crate) fn ident(self, span: Span) -> Ident {
        Ident::new(self.name(), span)
    }

    /// The parameters the hook may take after `&self`: each optional, in any order, at most once.
    /// In the order of the trait method's parameters.
    pub(crate) fn params(self) -> &'static [ParamKind] {
        match self {
            HookKind::Start | HookKind::Stop => &[ParamKind::Endpoint],
            HookKind::Handshake => &[ParamKind::Endpoint, ParamKind::Request, ParamKind::Accept],
            HookKind::Open => &[ParamKind::Endpoint, ParamKind::Id, ParamKind::SessionMut],
            HookKind::Data => &[
                ParamKind::Endpoint,
                ParamKind::Id,
                ParamKind::SessionMut,
                ParamKind::Message,
            ],
            HookKind::Close => &[
                ParamKind::Endpoint,
                ParamKind::Id,
                ParamKind::SessionOwned,
                ParamKind::Close,
            ],
        }
    }

    /// The parameter kind a parameter of this shape is for this hook, if it accepts one.
    pub(crate) fn param_for(self, shape: Shape) -> Option<ParamKind> {
        self.params()
            .iter()
            .copied()
            .find(|param| param.accepts(shape))
    }

    /// What the return type may be, for the hooks whose result the runtime ignores.
    pub(crate) fn returns_unit(self) -> bool {
        matches!(
            self,
            HookKind::Start | HookKind::Open | HookKind::Close | HookKind::Stop
        )
    }

    /// "it takes `id: ClientId` and `session: &mut S`, in any order, each optional".
    pub(crate) fn describe_params(self) -> String {
        let params: Vec<&str> = self.params().iter().map(|p| p.describe()).collect();
        match params.as_slice() {
            [] => "it takes no parameters besides `&self`".to_owned(),
            [one] => format!("it takes {one}, which may be omitted"),
            [init @ .., last] => {
                format!(
                    "it takes {} and {last}, in any order, each optional",
                    init.join(", ")
                )
            }
        }
    }

    /// "`on_start`, `on_handshake`, `on_open`, `on_data`, `on_close`, `on_stop`".
    pub(crate) fn list_all() -> String {
        let mut list = String::new();
        for (i, kind) in Self::ALL.into_iter().enumerate() {
            if i > 0 {
                list.push_str(", ");
            }
            let _ = write!(list, "`{}`", kind.name());
        }
        list
    }
}

/// What a hook parameter is for, once recognised by its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamKind {
    /// `&Endpoint` or `Endpoint` (a clone), for every hook.
    Endpoint,
    /// `&Request`, for `on_handshake`.
    Request,
    /// `&mut Accept`, for `on_handshake`.
    Accept,
    /// `ClientId`.
    Id,
    /// `&mut S`: the session, borrowed.
    SessionMut,
    /// `S`: the session, by value (`on_close`).
    SessionOwned,
    /// `T: FromMessage`: the received message (`on_data`).
    Message,
    /// `Close`: why the connection ended (`on_close`).
    Close,
}

impl ParamKind {
    /// Whether a parameter of this syntactic shape is this kind.
    fn accepts(self, shape: Shape) -> bool {
        matches!(
            (self, shape),
            (ParamKind::Endpoint, Shape::Endpoint | Shape::EndpointRef)
                | (ParamKind::Request, Shape::Request)
                | (ParamKind::Accept, Shape::Accept)
                | (ParamKind::Id, Shape::ClientId)
                | (ParamKind::SessionMut, Shape::MutRef)
                | (ParamKind::SessionOwned, Shape::Other)
                | (ParamKind::Message, Shape::Message | Shape::Other)
                | (ParamKind::Close, Shape::Close)
        )
    }

    /// How the parameter is written in documentation and error messages.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ParamKind::Endpoint => "`endpoint: &Endpoint`",
            ParamKind::Request => "`request: &Request`",
            ParamKind::Accept => "`accept: &mut Accept`",
            ParamKind::Id => "`id: ClientId`",
            ParamKind::SessionMut => "`session: &mut S`",
            ParamKind::SessionOwned => "`session: S`",
            ParamKind::Message => "`message: T` where `T: FromMessage`",
            ParamKind::Close => "`close: Close`",
        }
    }

    /// The name of the generated trait method's parameter this one receives.
    pub(crate) fn local(self, span: Span) -> Ident {
        let name = match self {
            ParamKind::Endpoint => "__ws_endpoint",
            ParamKind::Request => "__ws_request",
            ParamKind::Accept => "__ws_accept",
            ParamKind::Id => "__ws_id",
            ParamKind::SessionMut | ParamKind::SessionOwned => "__ws_session",
            ParamKind::Message => "__ws_message",
            ParamKind::Close => "__ws_close",
        };
        Ident::new(name, span)
    }
}

/// The syntactic shape of a parameter's type, by which it is recognised: the runtime's types
/// are matched on the last segment of their path (`Endpoint`, `ws::Endpoint`, an alias import).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `Endpoint`, by value.
    Endpoint,
    /// `&Endpoint`.
    EndpointRef,
    /// `&Request`.
    Request,
    /// `&mut Accept`.
    Accept,
    /// `ClientId`.
    ClientId,
    /// `Close`.
    Close,
    /// `Message`.
    Message,
    /// `&mut T` for any other `T`.
    MutRef,
    /// `&T` for any other `T`: never accepted.
    SharedRef,
    /// Any other type, taken by value.
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in HookKind::ALL {
            let ident = kind.ident(Span::call_site());
            assert_eq!(HookKind::from_ident(&ident), Some(kind));
            assert!(HookKind::looks_like_hook(&ident));
        }
        assert_eq!(
            HookKind::from_ident(&Ident::new("on_msg", Span::call_site())),
            None
        );
    }

    #[test]
    fn every_hook_accepts_each_of_its_params_from_one_shape_only() {
        const SHAPES: [Shape; 10] = [
            Shape::Endpoint,
            Shape::EndpointRef,
            Shape::Request,
            Shape::Accept,
            Shape::ClientId,
            Shape::Close,
            Shape::Message,
            Shape::MutRef,
            Shape::SharedRef,
            Shape::Other,
        ];
        for kind in HookKind::ALL {
            for shape in SHAPES {
                let matching = kind.params().iter().filter(|p| p.accepts(shape)).count();
                assert!(matching <= 1, "{kind:?} has two parameters for {shape:?}");
            }
        }
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            HookKind::Open.describe_params(),
            "it takes `endpoint: &Endpoint`, `id: ClientId` and `session: &mut S`, in any order, each optional"
        );
        assert_eq!(
            HookKind::Start.describe_params(),
            "it takes `endpoint: &Endpoint`, which may be omitted"
        );
        assert_eq!(
            HookKind::list_all(),
            "`on_start`, `on_handshake`, `on_open`, `on_data`, `on_close`, `on_stop`"
        );
    }
}
