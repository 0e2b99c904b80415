//! A session parameter without `on_handshake`: the session is `()`.

use ws::websocket;

struct Chat;

struct Member;

#[websocket]
impl Chat {
    fn on_data(&self, _member: &mut Member, _text: String) {}
}

fn main() {}
