//! Parameters in another order than the trait's, written with full paths, some omitted, and
//! the receiver written out as `self: &Self`.

use ws::websocket;

struct Shuffled;

struct Member;

#[websocket]
impl Shuffled {
    async fn on_handshake(
        &self,
        _accept: &mut ws::Accept,
        _request: &ws::Request,
        _endpoint: &ws::Endpoint,
    ) -> Option<Member> {
        Some(Member)
    }

    fn on_open(&self, _member: &mut Member, _id: ws::ClientId) {}

    async fn on_data(&self, _message: ws::Message, _member: &mut Member, _id: ws::ClientId) {}

    fn on_close(&self, _close: ws::Close, _endpoint: ws::Endpoint, _member: Member) {}

    fn on_stop(self: &Self) {}
}

fn assert_handler<T: ws::__private::Handler<Session = S>, S>() {}

fn main() {
    assert_handler::<Shuffled, Member>();
}
