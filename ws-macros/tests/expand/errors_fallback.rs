// On mistakes: the impl unchanged, every error, and a fallback impl with session `()`.
#[websocket(path = "/chat")]
impl Broken {
    fn on_msg(&self) {}

    async fn on_open(self) -> u8 {}
}
