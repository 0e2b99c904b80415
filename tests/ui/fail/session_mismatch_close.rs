//! `on_close` takes a session other than the one `on_handshake` accepts with.

use ws::{Reject, websocket};

struct Chat;

struct Member;

#[websocket]
impl Chat {
    fn on_handshake(&self) -> Result<Member, Reject> {
        Ok(Member)
    }

    fn on_close(&self, _session: String) {}
}

fn main() {}
