//! `#[websocket(crate = path)]` names the `ws` crate, e.g. through a re-export.

mod reexport {
    pub use ws;
}

use ws::websocket;

struct Direct;

struct Renamed;

#[websocket(crate = ws)]
impl Direct {
    async fn on_open(&self, _id: ws::ClientId) {}
}

#[websocket(crate = crate::reexport::ws)]
impl Renamed {
    fn on_close(&self, _close: ws::Close) {}
}

fn assert_handler<T: ws::__private::Handler<Session = ()>>() {}

fn main() {
    assert_handler::<Direct>();
    assert_handler::<Renamed>();
}
