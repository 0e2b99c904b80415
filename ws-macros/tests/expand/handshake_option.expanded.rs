impl Counter {
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    async fn on_handshake(&self, request: &Request) -> Option<Session> {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    fn on_data(&self, session: &mut Session, endpoint: Endpoint) {}
}
#[automatically_derived]
#[allow(clippy::manual_async_fn, clippy::absolute_paths)]
impl my::ws::__private::Handler for Counter {
    type Session = Session;
    type Message = my::ws::Message;
    fn on_handshake(
        &self,
        __ws_endpoint: &my::ws::Endpoint,
        __ws_request: &my::ws::Request,
        __ws_accept: &mut my::ws::Accept,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Self::Session, my::ws::Reject>,
    > + ::core::marker::Send {
        async move {
            <Option<
                Session,
            > as my::ws::__private::IntoHandshake>::into_handshake(
                Self::on_handshake(self, __ws_request).await,
            )
        }
    }
    fn on_data(
        &self,
        __ws_endpoint: &my::ws::Endpoint,
        __ws_id: my::ws::ClientId,
        __ws_session: &mut Self::Session,
        __ws_message: Self::Message,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<(), my::ws::__private::DataError>,
    > + ::core::marker::Send {
        async move {
            Self::on_data(
                self,
                <Session as my::ws::__private::SessionIs<
                    Self::Session,
                >>::session_mut(__ws_session),
                ::core::clone::Clone::clone(__ws_endpoint),
            );
            ::core::result::Result::Ok(())
        }
    }
}
