// `on_handshake` returning the session itself: every request is accepted.
#[websocket(crate = my::ws)]
impl Counter {
    async fn on_handshake(&self, request: &Request) -> Session {}

    fn on_data(&self, session: &mut Session) {}
}
