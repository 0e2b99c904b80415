impl Broken {
    fn on_msg(&self) {}
    async fn on_open(self) -> u8 {}
}
::core::compile_error! {
    "unknown `websocket` option `path`; expected `crate = path::to::ws`"
}
::core::compile_error! {
    "unknown hook `on_msg`; expected one of `on_start`, `on_handshake`, `on_open`, `on_data`, `on_close`, `on_stop`"
}
::core::compile_error! {
    "hook `on_open` must take `&self`; the runtime shares one handler between all connections"
}
::core::compile_error! {
    "hook `on_open` must return `()`; the runtime ignores its result"
}
#[automatically_derived]
#[allow(clippy::manual_async_fn, clippy::absolute_paths)]
impl ::ws::__private::Handler for Broken {
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
