//! `on_handshake` without a return type, or returning `()`: accept, session `()`.

use ws::{Accept, websocket};

struct Plain;

struct Unit;

#[websocket]
impl Plain {
    async fn on_handshake(&self, accept: &mut Accept) {
        accept.header("x-server", "ws");
    }

    fn on_open(&self, _session: &mut ()) {}
}

#[websocket]
impl Unit {
    fn on_handshake(&self) -> () {}

    fn on_close(&self, _session: ()) {}
}

fn assert_handler<T: ws::__private::Handler<Session = S>, S>() {}

fn main() {
    assert_handler::<Plain, ()>();
    assert_handler::<Unit, ()>();
}
