use std::io;

use ws::websocket;

struct Chat;

#[websocket]
impl Chat {
    async fn on_handshake(&self) -> io::Result<u32> {
        Ok(0)
    }
}

fn main() {}
