impl Counter {
    #[allow(clippy::unused_self, clippy::needless_pass_by_value)]
    async fn on_handshake(&self, request: &Request) -> Session {}
    #[allow(clippy::unused_self, clippy::needless_pass_by_value)]
    fn on_data(&self, session: &mut Session) {}
}
#[automatically_derived]
#[allow(clippy::manual_async_fn, clippy::absolute_paths)]
impl my::ws::__private::Handler for Counter {
    type Session = Session;
    type Message = my::ws::Message;
    fn on_handshake(
        &self,
        __ws_request: &my::ws::Request,
        __ws_accept: &mut my::ws::Accept,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Self::Session, my::ws::Reject>,
    > + ::core::marker::Send {
        async move {
            ::core::result::Result::Ok(Self::on_handshake(self, __ws_request).await)
        }
    }
    fn on_data(
        &self,
        __ws_id: my::ws::ClientId,
        __ws_session: &mut Self::Session,
        __ws_message: Self::Message,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<(), my::ws::__private::DataError>,
    > + ::core::marker::Send {
        async move {
            Self::on_data(self, __ws_session);
            ::core::result::Result::Ok(())
        }
    }
}
