use ws::{ClientId, Close, websocket};

struct Chat;

struct Member;

#[websocket]
impl Chat {
    fn on_handshake(&self) -> Member {
        Member
    }

    async fn on_close(&self, _id: ClientId, _member: &mut Member, _close: Close) {}
}

fn main() {}
