//! `ws::Json` without the feature `json`: rustc's error says which feature brings it back.

use ws::Json;

#[derive(serde::Deserialize)]
struct Say {
    text: String,
}

struct Chat;

#[ws::websocket]
impl Chat {
    fn on_data(&self, msg: Json<Say>) {
        println!("{}", msg.0.text);
    }
}

fn main() {}
