//! The heartbeat: silent peers are pinged and, unanswered, closed with 1008; live peers and
//! slow handlers are not.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use ws::{Config, Message, Socket, websocket};

use crate::probe::Probe;
use crate::support::*;

fn fast_heartbeat() -> Config {
    Config::new()
        .heartbeat(Some(Duration::from_millis(50)))
        .heartbeat_misses(3)
        .close_timeout(Duration::from_millis(200))
}

#[tokio::test]
async fn a_silent_peer_gets_three_pings_then_1008() {
    let (events, mut log) = events();
    let socket = Socket::with_config(Probe::new(events), fast_heartbeat());
    let server = serve(&socket).await;
    let (response, mut tcp) = server.raw("/ws").upgrade().await.unwrap();
    assert_eq!(response.status(), 101);

    let mut expected = Vec::new();
    for _ in 0..3 {
        expected.extend_from_slice(&[0x89, 0x00]); // unmasked ping, empty payload
    }
    let reason = b"Heartbeat timeout";
    expected.extend_from_slice(&[0x88, u8::try_from(2 + reason.len()).unwrap(), 0x03, 0xF0]);
    expected.extend_from_slice(reason);
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut got))
        .await
        .expect("pings and close in time")
        .expect("read");
    assert_eq!(got, expected);
    assert_eq!(
        log.until("close").await,
        "close anon 1008 Heartbeat timeout"
    );
}

#[tokio::test]
async fn a_peer_that_answers_pings_stays_open() {
    let (events, mut log) = events();
    let socket = Socket::with_config(Probe::new(events), fast_heartbeat());
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws?name=alive")).await;
    // tungstenite answers each ping with a pong as it reads.
    let mut pings = 0;
    while pings < 8 {
        match tokio::time::timeout(WAIT, client.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WsMessage::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    send_text(&mut client, "still here").await;
    assert_eq!(recv_text(&mut client).await, "still here");
    assert!(log.until("data alive").await.ends_with("still here"));
    assert_eq!(log.try_next(), None, "not closed");
}

/// A handler that takes longer than the whole heartbeat allowance for each message.
struct Slow;

#[websocket]
impl Slow {
    async fn on_data(&self, endpoint: &ws::Endpoint, id: ws::ClientId, msg: Message) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let _ = endpoint.send(id, msg);
    }
}

#[tokio::test]
async fn a_slow_handler_does_not_cause_a_heartbeat_close() {
    let socket = Socket::with_config(Slow, fast_heartbeat());
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws")).await;
    for i in 0..4 {
        send_text(&mut client, &i.to_string()).await;
    }
    // 4 × 400 ms of handling is far beyond 3 missed 50 ms pings; the reader is paused by our
    // own backpressure meanwhile, which is not the peer's silence.
    for i in 0..4 {
        assert_eq!(recv_text(&mut client).await, i.to_string());
    }
}

/// While a busy handler holds reading back (its inbox is full), the peer's pongs cannot be
/// read: that is not the peer's silence, and the heartbeat counts no miss. Six 100 KiB
/// messages at 400 ms each keep the reader paused for well over the 150 ms the heartbeat
/// allows (the inbox takes 256 KiB), while the client reads and answers every ping.
#[tokio::test]
async fn a_reader_held_back_by_a_busy_handler_counts_no_miss() {
    let socket = Socket::with_config(Slow, fast_heartbeat());
    let server = serve(&socket).await;
    let mut client = connect(&server.url("/ws")).await;
    let messages: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 100 << 10]).collect();
    for message in &messages {
        futures_util::SinkExt::send(&mut client, WsMessage::Binary(message.clone().into()))
            .await
            .expect("sent");
    }
    for message in &messages {
        match recv(&mut client).await {
            WsMessage::Binary(echo) => assert!(echo[..] == message[..], "echo in order"),
            other => panic!("expected the echo, got {other:?}"),
        }
    }
}
