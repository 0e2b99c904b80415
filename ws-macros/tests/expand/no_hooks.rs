// No hooks: accept every handshake with session `()`, every other hook does nothing.
#[websocket]
impl Silent {
    fn new() -> Self {
        Silent
    }
}
