//! `on_handshake` returning `Result<S, E>` where `E: Into<Reject>`.

use ws::{Reject, Request, websocket};

struct Guarded {
    password: String,
}

struct Member;

enum Refusal {
    WrongPassword,
}

impl From<Refusal> for Reject {
    fn from(refusal: Refusal) -> Reject {
        match refusal {
            Refusal::WrongPassword => Reject::forbidden("Nope. Valid password required."),
        }
    }
}

#[websocket]
impl Guarded {
    async fn on_handshake(&self, request: &Request) -> Result<Member, Refusal> {
        if request.query("password") == Some(self.password.as_str()) {
            Ok(Member)
        } else {
            Err(Refusal::WrongPassword)
        }
    }
}

fn assert_handler<T: ws::__private::Handler<Session = S>, S>() {}

fn main() {
    assert_handler::<Guarded, Member>();
}
