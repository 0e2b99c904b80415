impl Chat {
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    async fn on_start(&self, endpoint: Endpoint) {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    async fn on_handshake(
        &self,
        request: &Request,
        accept: &mut Accept,
    ) -> Result<Member, Reject> {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    async fn on_open(&self, id: ClientId, member: &mut Member) {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    async fn on_data(&self, id: ClientId, member: &mut Member, message: Message) {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    async fn on_close(&self, id: ClientId, member: Member, close: Close) {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    async fn on_stop(&self) {}
    fn helper(&self) {}
}
#[automatically_derived]
#[allow(clippy::manual_async_fn, clippy::absolute_paths)]
impl ::ws::__private::Handler for Chat {
    type Session = Member;
    type Message = Message;
    fn on_start(
        &self,
        __ws_endpoint: &::ws::Endpoint,
    ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
        async move {
            Self::on_start(self, ::core::clone::Clone::clone(__ws_endpoint)).await;
        }
    }
    fn on_handshake(
        &self,
        __ws_endpoint: &::ws::Endpoint,
        __ws_request: &::ws::Request,
        __ws_accept: &mut ::ws::Accept,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<Self::Session, ::ws::Reject>,
    > + ::core::marker::Send {
        async move {
            <Result<
                Member,
                Reject,
            > as ::ws::__private::IntoHandshake>::into_handshake(
                Self::on_handshake(self, __ws_request, __ws_accept).await,
            )
        }
    }
    fn on_open(
        &self,
        __ws_endpoint: &::ws::Endpoint,
        __ws_id: ::ws::ClientId,
        __ws_session: &mut Self::Session,
    ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
        async move {
            Self::on_open(
                    self,
                    __ws_id,
                    <Member as ::ws::__private::SessionIs<
                        Self::Session,
                    >>::session_mut(__ws_session),
                )
                .await;
        }
    }
    fn on_data(
        &self,
        __ws_endpoint: &::ws::Endpoint,
        __ws_id: ::ws::ClientId,
        __ws_session: &mut Self::Session,
        __ws_message: Self::Message,
    ) -> impl ::core::future::Future<
        Output = ::core::result::Result<(), ::ws::__private::DataError>,
    > + ::core::marker::Send {
        async move {
            Self::on_data(
                    self,
                    __ws_id,
                    <Member as ::ws::__private::SessionIs<
                        Self::Session,
                    >>::session_mut(__ws_session),
                    __ws_message,
                )
                .await;
            ::core::result::Result::Ok(())
        }
    }
    fn on_close(
        &self,
        __ws_endpoint: &::ws::Endpoint,
        __ws_id: ::ws::ClientId,
        __ws_session: Self::Session,
        __ws_close: ::ws::Close,
    ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
        async move {
            Self::on_close(
                    self,
                    __ws_id,
                    <Member as ::ws::__private::SessionIs<
                        Self::Session,
                    >>::session(__ws_session),
                    __ws_close,
                )
                .await;
        }
    }
    fn on_stop(
        &self,
        __ws_endpoint: &::ws::Endpoint,
    ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
        async move {
            Self::on_stop(self).await;
        }
    }
}
