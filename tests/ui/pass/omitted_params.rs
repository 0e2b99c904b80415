//! Hooks that take only `&self`: every parameter may be omitted.

use ws::{Reject, websocket};

struct Quiet;

struct Member;

#[websocket]
impl Quiet {
    async fn on_start(&self) {}

    async fn on_handshake(&self) -> Result<Member, Reject> {
        Ok(Member)
    }

    fn on_open(&self) {}

    async fn on_data(&self) {}

    fn on_close(&self) {}

    async fn on_stop(&self) {}
}

fn assert_handler<T: ws::__private::Handler<Session = S>, S>() {}

fn main() {
    assert_handler::<Quiet, Member>();
}
