use ws::{Request, websocket};

struct Chat;

#[websocket]
impl Chat {
    async fn on_handshake(&self, _request: &Request) -> Result<(), String> {
        Err("no".to_owned())
    }
}

fn main() {}
