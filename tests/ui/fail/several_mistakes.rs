use ws::{ClientId, Endpoint, Message, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_begin(&self, _endpoint: Endpoint) {}

    async fn on_open(&mut self, _id: ClientId, _message: Message) -> bool {
        true
    }

    fn on_stop<T>(&self) {}

    fn on_stop(&self) {}
}

// The fallback impl keeps the rest of the crate free of secondary errors.
fn assert_handler<T: ws::__private::Handler<Session = ()>>() {}

fn main() {
    assert_handler::<Chat>();
}
