//! `on_data`'s message as `String`, `Text`, `Vec<u8>`, or a type implementing `FromMessage`.

use ws::{Close, FromMessage, Message, Text, websocket};

struct Strings;

struct Texts;

struct Bytes;

struct Commands;

struct Command(String);

impl FromMessage for Command {
    fn from_message(message: Message) -> Result<Self, Close> {
        match message.as_text() {
            Some(text) => Ok(Command(text.to_owned())),
            None => Err(Close::new(1003, "text only")),
        }
    }
}

#[websocket]
impl Strings {
    async fn on_data(&self, _text: String) {}
}

#[websocket]
impl Texts {
    fn on_data(&self, _text: Text) {}
}

#[websocket]
impl Bytes {
    fn on_data(&self, _bytes: Vec<u8>) {}
}

#[websocket]
impl Commands {
    async fn on_data(&self, command: Command) {
        drop(command.0);
    }
}

fn assert_handler<T: ws::__private::Handler<Session = ()>>() {}

fn main() {
    assert_handler::<Strings>();
    assert_handler::<Texts>();
    assert_handler::<Bytes>();
    assert_handler::<Commands>();
}
