use ws::{FromMessage, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_data<M: FromMessage>(&self, _message: M) {}
}

fn main() {}
