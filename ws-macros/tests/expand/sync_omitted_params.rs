// Plain `fn` hooks that omit parameters or take them in another order; `on_data` converts its
// message and returns a `Result`.
#[websocket]
impl Echo {
    fn on_start(&self) {}

    fn on_handshake(&self, accept: &mut ws::Accept) -> Result<u32, Refusal> {}

    fn on_open(&self, count: &mut u32) {}

    fn on_data(&self, text: String, id: ws::ClientId) -> Result<(), std::io::Error> {}

    fn on_close(&self, close: ws::Close, count: u32) -> () {}

    fn on_stop(&self) {}
}
