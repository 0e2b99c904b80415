//! Close codes reported to `on_close` and sent to the peer.

use futures_util::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws::{Close, Config, Message, Socket, websocket};

use crate::probe::Probe;
use crate::support::*;

#[tokio::test]
async fn application_close_codes_from_the_peer_are_accepted() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    for (code, reason) in [(3000, "app"), (4999, "private"), (1001, "leaving")] {
        let mut client = connect(&server.url("/ws?name=c")).await;
        close_with(&mut client, code, reason).await;
        // The server answers with the same code, then ends the connection.
        assert_eq!(recv_close(&mut client).await, (code, reason.to_owned()));
        expect_end(&mut client).await;
        assert_eq!(
            log.until("close c").await,
            format!("close c {code} {reason}")
        );
    }
}

#[tokio::test]
async fn a_close_without_a_code_reports_1005() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=nocode")).await;
    client.close(None).await.unwrap();
    expect_end(&mut client).await;
    assert_eq!(log.until("close nocode").await, "close nocode 1005 ");
}

#[tokio::test]
async fn tcp_loss_without_a_close_frame_reports_1006() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let client = connect(&server.url("/ws?name=lost")).await;
    log.until("open lost").await;
    let tokio_tungstenite::MaybeTlsStream::Plain(mut tcp) = client.into_inner() else {
        unreachable!("plain ws")
    };
    tcp.shutdown().await.unwrap();
    drop(tcp);
    assert_eq!(log.until("close lost").await, "close lost 1006 ");
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let (events, mut log) = events();
    let config = Config::new().max_message_size(1024).max_frame_size(1024);
    let socket = Socket::with_config(Probe::new(events), config);
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=big")).await;
    client
        .send(WsMessage::binary(vec![0u8; 2048]))
        .await
        .unwrap();
    assert_eq!(recv_close(&mut client).await.0, 1009);
    assert_eq!(
        log.until("close big").await,
        "close big 1009 Message too big"
    );
}

/// `on_data` taking a `String` refuses binary messages with 1003.
struct TextOnly;

#[websocket]
impl TextOnly {
    fn on_data(&self, _text: String) {}
}

#[tokio::test]
async fn a_message_on_data_cannot_take_closes_with_1003() {
    let socket = Socket::new(TextOnly);
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws")).await;
    send_text(&mut client, "fine").await;
    client.send(WsMessage::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        recv_close(&mut client).await,
        (
            Close::UNSUPPORTED_DATA,
            "binary messages are not accepted".into()
        )
    );
    let _ = Message::text("unused");
}

#[tokio::test]
async fn endpoint_close_sends_the_code_and_on_close_reports_it() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=asked")).await;
    send_text(&mut client, "close").await;
    assert_eq!(
        recv_close(&mut client).await,
        (4001, "asked to close".into())
    );
    expect_end(&mut client).await;
    assert_eq!(
        log.until("close asked").await,
        "close asked 4001 asked to close"
    );
}
