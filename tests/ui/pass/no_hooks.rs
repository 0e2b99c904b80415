//! An impl block without hooks: accept every handshake, session `()`, do nothing.

use ws::websocket;

struct Nothing;

#[websocket]
impl Nothing {}

fn assert_handler<T: ws::__private::Handler<Session = ()>>() {}

fn main() {
    assert_handler::<Nothing>();
}
