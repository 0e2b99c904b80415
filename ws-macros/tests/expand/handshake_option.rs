// `on_handshake` returning `Option<S>`: the session is `S`, `None` refuses; an endpoint by value.
#[websocket(crate = my::ws)]
impl Counter {
    async fn on_handshake(&self, request: &Request) -> Option<Session> {}

    fn on_data(&self, session: &mut Session, endpoint: Endpoint) {}
}
