//! `on_data` returning `Result<(), E>` with a standard error type, sync and async.

use std::io;

use ws::websocket;

struct Fallible;

struct Boxed;

#[websocket]
impl Fallible {
    async fn on_data(&self, text: String) -> Result<(), io::Error> {
        if text.is_empty() {
            return Err(io::Error::other("empty message"));
        }
        Ok(())
    }
}

#[websocket]
impl Boxed {
    fn on_data(&self, bytes: Vec<u8>) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        std::str::from_utf8(&bytes)?;
        Ok(())
    }
}

fn assert_handler<T: ws::__private::Handler<Session = ()>>() {}

fn main() {
    assert_handler::<Fallible>();
    assert_handler::<Boxed>();
}
