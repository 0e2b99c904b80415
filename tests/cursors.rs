//! `examples/cursors.rs`, tested as its users would: names refused and released, cursors
//! relayed, a bad message closed with 1007, and the `/stats` route beside the socket.

#[path = "../examples/cursors.rs"]
mod cursors;

use ws::test::TestServer;

async fn serve() -> (ws::Socket<cursors::Cursors>, TestServer) {
    let socket = ws::Socket::new(cursors::Cursors::default());
    let server = ws::test::serve_with(ws::serve(cursors::routes(&socket)).socket(&socket)).await;
    (socket, server)
}

async fn stats(server: &TestServer) -> String {
    let response = server.get("/stats").await.expect("a response");
    assert_eq!(response.status(), 200, "{response}");
    response.body().to_owned()
}

#[tokio::test]
async fn names_are_required_unique_and_released() -> Result<(), Box<dyn std::error::Error>> {
    let (_socket, server) = serve().await;

    let missing = server.connect("/ws").expect_refusal().await;
    assert_eq!(missing.status(), 400);
    assert_eq!(missing.body(), "?name= is required.");
    let invalid = server.connect("/ws?name=a%20b").expect_refusal().await;
    assert_eq!(invalid.status(), 400);
    assert_eq!(
        invalid.body(),
        "A name is 1 to 32 letters, digits, `-` or `_`."
    );

    let mut ada = server.connect("/ws?name=ada").await?;
    let taken = server.connect("/ws?name=ada").expect_refusal().await;
    assert_eq!(taken.status(), 409);
    assert_eq!(taken.body(), "That name is taken.");

    let mut bob = server.connect("/ws?name=bob").await?;
    assert_eq!(ada.recv_text().await?, "+bob");
    assert_eq!(stats(&server).await, "connected: 2\nnames: ada bob\n");

    // Cursors reach the others, not their sender.
    ada.send_text("12 34").await?;
    assert_eq!(bob.recv_text().await?, "ada 12 34");
    bob.send_text("-5 7").await?;
    assert_eq!(ada.recv_text().await?, "bob -5 7");

    // A message that is not a cursor closes its sender with 1007; the others are told.
    bob.send_text("hello").await?;
    let close = bob.expect_close().await?;
    assert_eq!(close.code, 1007);
    assert_eq!(close.reason, "expected `x y`, two integers");
    assert_eq!(ada.recv_text().await?, "-bob");
    assert_eq!(stats(&server).await, "connected: 1\nnames: ada\n");

    // bob's name was released with his session: he can come back.
    let _bob = server.connect("/ws?name=bob").await?;
    assert_eq!(ada.recv_text().await?, "+bob");
    ada.close(1000, "bye").await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn unknown_routes_are_404_and_stats_start_empty() {
    let (socket, server) = serve().await;
    assert_eq!(stats(&server).await, "connected: 0\nnames: \n");
    let missing = server.get("/nowhere").await.expect("a response");
    assert_eq!(missing.status(), 404);
    assert_eq!(socket.endpoint().len(), 0);
    server.shutdown().await;
}
