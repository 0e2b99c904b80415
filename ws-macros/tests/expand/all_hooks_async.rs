// Every hook, async, with every parameter in the trait's order.
#[websocket]
impl Chat {
    async fn on_start(&self, endpoint: Endpoint) {}

    async fn on_handshake(&self, request: &Request, accept: &mut Accept) -> Result<Member, Reject> {
    }

    async fn on_open(&self, id: ClientId, member: &mut Member) {}

    async fn on_data(&self, id: ClientId, member: &mut Member, message: Message) {}

    async fn on_close(&self, id: ClientId, member: Member, close: Close) {}

    async fn on_stop(&self) {}

    fn helper(&self) {}
}
