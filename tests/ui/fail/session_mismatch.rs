use ws::{ClientId, Reject, websocket};

struct Chat;

struct Member;

#[websocket]
impl Chat {
    async fn on_handshake(&self) -> Result<Member, Reject> {
        Ok(Member)
    }

    async fn on_open(&self, _id: ClientId, _name: &mut String) {}
}

fn main() {}
