impl Silent {
    fn new() -> Self {
        Silent
    }
}
#[automatically_derived]
#[allow(clippy::manual_async_fn, clippy::absolute_paths)]
impl ::ws::__private::Handler for Silent {
    type Session = ();
    type Message = ::ws::Message;
    fn on_handshake(
        &self,
        __ws_endpoint: &::ws::Endpoint,
        __ws_request: &::ws::Request,
        __ws_accept: &mut ::ws::Accept,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Self::Session, ::ws::Reject>,
    > + ::core::marker::Send {
        async { ::core::result::Result::Ok(()) }
    }
}
