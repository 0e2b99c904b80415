//! Every form of `on_handshake` that says whether to accept: `Result` through any alias,
//! `Option<S>` (`None` refuses with 403) and `bool` (`false` refuses with 403).

use ws::{Reject, Request, websocket};

struct Member;

type HsResult<T> = Result<T, Reject>;

mod app {
    pub type Result<T> = std::result::Result<T, ws::Reject>;
}

struct Aliased;

#[websocket]
impl Aliased {
    fn on_handshake(&self, request: &Request) -> HsResult<Member> {
        match request.query("token") {
            Some("secret") => Ok(Member),
            _ => Err(Reject::forbidden("No.")),
        }
    }

    fn on_open(&self, _member: &mut Member) {}
}

struct OneArgument;

#[websocket]
impl OneArgument {
    async fn on_handshake(&self) -> app::Result<Member> {
        Ok(Member)
    }
}

struct Optional;

#[websocket]
impl Optional {
    fn on_handshake(&self, request: &Request) -> Option<Member> {
        request.query("name").map(|_| Member)
    }

    fn on_close(&self, _member: Member) {}
}

struct Yes;

#[websocket]
impl Yes {
    async fn on_handshake(&self, request: &Request) -> bool {
        request.query("token") == Some("secret")
    }

    fn on_open(&self, _session: &mut ()) {}
}

/// Always accepts with a session: `Result<S, Reject>`, always `Ok` (no clippy lint).
struct Always;

#[websocket]
impl Always {
    fn on_handshake(&self) -> Result<Member, Reject> {
        Ok(Member)
    }
}

fn assert_handler<T: ws::__private::Handler<Session = S>, S>() {}

fn main() {
    assert_handler::<Aliased, Member>();
    assert_handler::<OneArgument, Member>();
    assert_handler::<Optional, Member>();
    assert_handler::<Yes, ()>();
    assert_handler::<Always, Member>();
}
