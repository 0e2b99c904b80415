//! Admission limits and message-type limits: 503 and 429 before the upgrade, text-only mode.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws::{Config, Socket};

use crate::probe::Probe;
use crate::support::*;

#[tokio::test]
async fn connections_beyond_the_limits_are_refused_before_the_upgrade() {
    let (events, mut log) = events();
    let config = Config::new()
        .max_connections(Some(3))
        .max_connections_per_ip(Some(2));
    let socket = Socket::with_config(Probe::new(events), config);
    let server = serve(&socket).await;
    let mut first = connect(&server.url("/ws?name=one")).await;
    let _second = connect(&server.url("/ws?name=two")).await;

    let response = server.raw("/ws").send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.header("retry-after"), Some("5"));
    assert_eq!(response.body(), "Too many connections from your address.");

    // Another address (127.0.0.2 is loopback too) may still connect, up to the total.
    let from = |ip: [u8; 4]| server.raw("/ws").local_ip(ip.into());
    let (other, _kept) = from([127, 0, 0, 2]).upgrade().await.unwrap();
    assert_eq!(other.status(), 101);
    let full = from([127, 0, 0, 3]).send().await.unwrap();
    assert_eq!(full.status(), 503);
    assert_eq!(full.body(), "Too many connections.");
    assert_eq!(log.until("handshake").await, "handshake one 127.0.0.1");
    assert_eq!(log.until("handshake").await, "handshake two 127.0.0.1");

    // A closed connection frees its place.
    close_with(&mut first, 1000, "").await;
    expect_end(&mut first).await;
    log.until("close one").await;
    let (_again, _) = connect_with(&server.url("/ws?name=again"), &[]).await;
    log.until("open again").await;
}

#[tokio::test]
async fn text_only_refuses_binary_with_1003() {
    let (events, mut log) = events();
    let socket = Socket::with_config(Probe::new(events), Config::new().text_only(true));
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=t")).await;
    send_text(&mut client, "text is fine").await;
    assert_eq!(recv_text(&mut client).await, "text is fine");
    client.send(WsMessage::binary(vec![1, 2])).await.unwrap();
    assert_eq!(
        recv_close(&mut client).await,
        (1003, "Binary messages are not accepted".into())
    );
    expect_end(&mut client).await;
    assert_eq!(
        log.until("close t").await,
        "close t 1003 Binary messages are not accepted"
    );
}
