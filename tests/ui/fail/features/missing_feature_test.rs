//! `ws::test` without the feature `test`: rustc's error says which feature brings it back.

struct Quiet;

#[ws::websocket]
impl Quiet {}

#[tokio::main]
async fn main() {
    let socket = ws::Socket::new(Quiet);
    let server = ws::test::serve(&socket).await;
    server.shutdown().await;
}
