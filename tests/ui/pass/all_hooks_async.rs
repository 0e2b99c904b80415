//! Every hook as an `async fn`, with every parameter.

use ws::{Accept, ClientId, Close, Endpoint, Message, Reject, Request, websocket};

struct Chat;

struct Member;

#[websocket]
impl Chat {
    async fn on_start(&self, _endpoint: Endpoint) {}

    async fn on_handshake(
        &self,
        _request: &Request,
        _accept: &mut Accept,
    ) -> Result<Member, Reject> {
        Ok(Member)
    }

    async fn on_open(&self, _id: ClientId, _member: &mut Member) {}

    async fn on_data(&self, _id: ClientId, _member: &mut Member, _message: Message) {}

    async fn on_close(&self, _id: ClientId, _member: Member, _close: Close) {}

    async fn on_stop(&self) {}
}

fn assert_handler<T: ws::__private::Handler<Session = S>, S>() {}

fn main() {
    assert_handler::<Chat, Member>();
}
