use ws::{Request, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_data(&self, _request: &Request, _text: String) {}
}

fn main() {}
