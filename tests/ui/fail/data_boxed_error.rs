//! A boxed error without `+ Send + Sync` cannot cross to the task that logs it.

use std::error::Error;

use ws::websocket;

struct Chat;

#[websocket]
impl Chat {
    async fn on_data(&self, text: String) -> Result<(), Box<dyn Error>> {
        let _: u32 = text.parse()?;
        Ok(())
    }
}

fn main() {}
