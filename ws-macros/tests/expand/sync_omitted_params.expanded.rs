impl Echo {
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    fn on_start(&self) {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    fn on_handshake(&self, accept: &mut ws::Accept) -> Result<u32, Refusal> {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    fn on_open(&self, count: &mut u32) {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    fn on_data(&self, text: String, id: ws::ClientId) -> Result<(), std::io::Error> {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    fn on_close(&self, close: ws::Close, count: u32) -> () {}
    #[allow(
        clippy::unused_self,
        clippy::needless_pass_by_value,
        clippy::unnecessary_wraps
    )]
    fn on_stop(&self) {}
}
#[automatically_derived]
#[allow(clippy::manual_async_fn, clippy::absolute_paths)]
impl ::ws::__private::Handler for Echo {
    type Session = u32;
    type Message = String;
    fn on_start(
        &self,
        __ws_endpoint: &::ws::Endpoint,
    ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
        async move {
            Self::on_start(self);
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
                u32,
                Refusal,
            > as ::ws::__private::IntoHandshake>::into_handshake(
                Self::on_handshake(self, __ws_accept),
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
                <u32 as ::ws::__private::SessionIs<
                    Self::Session,
                >>::session_mut(__ws_session),
            );
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
            let __ws_result = Self::on_data(self, __ws_message, __ws_id);
            ::ws::__private::IntoDataResult::into_data_result(__ws_result)
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
                __ws_close,
                <u32 as ::ws::__private::SessionIs<Self::Session>>::session(__ws_session),
            );
        }
    }
    fn on_stop(
        &self,
        __ws_endpoint: &::ws::Endpoint,
    ) -> impl ::core::future::Future<Output = ()> + ::core::marker::Send {
        async move {
            Self::on_stop(self);
        }
    }
}
