//! Deliveries written by the publisher: a broadcast from a hook handling its connection's
//! last message is written to each receiver's socket at once where the receiver's writer is
//! idle. Raw readers check that nothing of it shows on the wire: every frame whole and in
//! order between the pongs, the rest of a frame the socket took in part, nothing after the
//! close frame, and compressed connections still compressed by their writer.

use std::time::Duration;

use tokio::io::{AsyncWriteExt, ReadHalf};
use ws::test::raw::{self, Frame, ServerFrame, Upgraded, opcode};
use ws::{ClientId, Config, Deflate, Endpoint, Message, Socket, websocket};

use crate::support::*;

/// Broadcasts every message it receives, from `on_data`; reports each open.
struct Fanout {
    events: Events,
}

#[websocket]
impl Fanout {
    fn on_open(&self, id: ClientId) {
        self.events.push(format!("open {id}"));
    }

    fn on_data(&self, endpoint: &Endpoint, msg: Message) {
        endpoint.broadcast(msg);
    }
}

/// A server of [`Fanout`], a publisher (a tungstenite client) and a raw reader, both open:
/// a broadcast reaches the reader from the first. The publisher is not rate limited.
async fn fanout(config: Config, offer: Option<&str>) -> (TestServer, Endpoint, Client, Upgraded) {
    let (events, mut log) = events();
    let socket = Socket::with_config(Fanout { events }, config.rate_limit(None));
    let endpoint = socket.endpoint();
    let server = serve(&socket).await;
    let mut request = server.raw("/ws");
    if let Some(offer) = offer {
        request = request.header("sec-websocket-extensions", offer);
    }
    let (reply, reader) = request.upgrade().await.expect("handshake accepted");
    assert_eq!(reply.status(), 101, "{reply}");
    log.until("open").await;
    let publisher = connect(&server.url("/ws")).await;
    log.until("open").await;
    (server, endpoint, publisher, reader)
}

/// The `n`th message: its number, then filler to a length that runs from 1 byte to past the
/// size written directly (2 KiB), so that both paths are taken.
fn nth(n: usize) -> String {
    let mut text = format!("{n}:");
    let len = 1 + (n * 397) % 3000;
    while text.len() < len {
        text.push('x');
    }
    text
}

/// Sends one message and waits for the publisher's own copy: the message was the last its
/// connection had read, and its broadcast is done.
async fn publish(publisher: &mut Client, text: &str) {
    send_text(publisher, text).await;
    assert_eq!(recv_text(publisher).await, text);
}

/// Reads frames until `data` data frames and `pongs` pongs have come; returns the data
/// payloads, the pongs' payloads and the bytes read.
async fn read_all(
    reader: &mut ReadHalf<Upgraded>,
    data: usize,
    pongs: usize,
) -> (Vec<String>, Vec<String>, u64) {
    let (mut texts, mut pong_payloads, mut bytes) = (Vec::new(), Vec::new(), 0);
    while texts.len() < data || pong_payloads.len() < pongs {
        let frame: ServerFrame = raw::read_frame(reader).await.expect("a whole frame");
        bytes += wire_len(&frame);
        let text = String::from_utf8(frame.payload).expect("UTF-8");
        match frame.opcode {
            opcode::TEXT => texts.push(text),
            opcode::PONG => pong_payloads.push(text),
            other => panic!("frame {other:#x} ({text:?})"),
        }
    }
    (texts, pong_payloads, bytes)
}

/// A server frame's size on the wire.
fn wire_len(frame: &ServerFrame) -> u64 {
    let len = frame.payload.len();
    let head = match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    };
    (head + len) as u64
}

/// Paced broadcasts (each the last message of its pass: written at once) and bursts (queued
/// behind each other: written by the writer) reach a raw reader whole and in order, with
/// the pongs for the pings it sends meanwhile; its counters have every message and byte.
#[tokio::test]
async fn broadcasts_reach_a_raw_reader_whole_and_in_order_between_its_pongs() {
    let (server, endpoint, mut publisher, reader) = fanout(Config::new(), None).await;
    let id = endpoint.clients()[0];
    let (mut reader, mut writer) = tokio::io::split(reader);
    let (paced, burst, ping_count) = (300, 200, 30);
    let reading =
        tokio::spawn(async move { read_all(&mut reader, paced + burst, ping_count).await });
    for n in 0..paced {
        if n % 10 == 0 {
            let ping = Frame::ping(format!("ping {}", n / 10)).encode();
            writer.write_all(&ping).await.unwrap();
        }
        publish(&mut publisher, &nth(n)).await;
    }
    for n in paced..paced + burst {
        send_text(&mut publisher, &nth(n)).await;
    }
    for n in paced..paced + burst {
        assert_eq!(recv_text(&mut publisher).await, nth(n));
    }
    let (texts, pongs, bytes) = tokio::time::timeout(WAIT, reading).await.unwrap().unwrap();
    assert_eq!(texts, (0..paced + burst).map(nth).collect::<Vec<_>>());
    assert_eq!(
        pongs,
        (0..ping_count)
            .map(|n| format!("ping {n}"))
            .collect::<Vec<_>>()
    );
    let info = endpoint.info(id).unwrap();
    assert_eq!(info.messages_sent, (paced + burst) as u64);
    assert_eq!(info.frames_sent, (paced + burst + ping_count) as u64);
    assert_eq!(info.bytes_sent, bytes);
    drop((writer, publisher));
    shutdown(server).await;
}

/// A reader that stops reading fills its socket while broadcasts are written to it at once:
/// the write that finds too little room leaves its rest to the writer, and what follows
/// queues behind it. Once it reads again, every frame arrives whole and in order, and the
/// pong for the ping it sent meanwhile after them.
#[tokio::test]
async fn a_reader_that_stops_reading_gets_every_frame_whole_when_it_reads_again() {
    // No heartbeat pings among the frames, however long filling the socket takes.
    let config = Config::new().send_queue_bytes(16 << 20);
    let (server, endpoint, mut publisher, reader) = fanout(config, None).await;
    let id = endpoint.clients()[0];
    let (mut reader, mut writer) = tokio::io::split(reader);
    let message = |n: usize| format!("{n:>8}").repeat(256);
    // Until a few are queued: the socket took no more.
    let mut sent = 0;
    let mut queued_since = None;
    while queued_since.is_none_or(|since| sent < since + 20) {
        assert!(sent < 50_000, "the socket never filled");
        publish(&mut publisher, &message(sent)).await;
        sent += 1;
        if queued_since.is_none() && endpoint.info(id).unwrap().queued > 0 {
            queued_since = Some(sent);
        }
    }
    writer
        .write_all(&Frame::ping("late").encode())
        .await
        .unwrap();
    let (texts, pongs, _) = tokio::time::timeout(WAIT, read_all(&mut reader, sent, 1))
        .await
        .unwrap();
    assert_eq!(texts.len(), sent);
    for (n, text) in texts.iter().enumerate() {
        assert!(*text == message(n), "message {n} differs");
    }
    assert_eq!(pongs, ["late"]);
    drop((reader, writer, publisher));
    shutdown(server).await;
}

/// Broadcasts go on while the server closes a reader: nothing follows its close frame.
#[tokio::test]
async fn nothing_follows_the_close_frame() {
    let config = Config::new().close_timeout(Duration::from_millis(300));
    let (server, endpoint, mut publisher, mut reader) = fanout(config, None).await;
    let id = endpoint.clients()[0];
    let publishing = tokio::spawn(async move {
        let mut n = 0;
        // Until the reader's connection is over (bounded: the close timeout is 300 ms).
        while n < 100_000 && endpoint.contains(id) {
            publish(&mut publisher, &nth(n % 100)).await;
            if n == 20 {
                endpoint.close(id, 4000, "enough").unwrap();
            }
            n += 1;
        }
        n
    });
    let close = raw::read_close(&mut reader).await.unwrap();
    assert_eq!((close.code, close.reason.as_str()), (4000, "enough"));
    raw::expect_end(&mut reader).await.unwrap();
    let count = tokio::time::timeout(WAIT, publishing)
        .await
        .unwrap()
        .unwrap();
    assert!(count > 21, "broadcasts went on after the close: {count}");
    shutdown(server).await;
}

/// A connection with permessage-deflate gets its broadcasts compressed by its writer: none
/// is written at once, uncompressed.
#[tokio::test]
async fn compressed_connections_get_broadcasts_from_their_writer() {
    let config = Config::new().deflate(Some(Deflate::new()));
    let (server, _, mut publisher, mut reader) = fanout(config, Some("permessage-deflate")).await;
    let text = "compressible, ".repeat(100);
    for _ in 0..20 {
        publish(&mut publisher, &text).await;
        let frame = raw::read_frame(&mut reader).await.unwrap();
        assert_eq!(frame.first_byte(), 0xC1, "FIN, RSV1, text");
        assert!(frame.payload.len() < text.len() / 4);
    }
    drop((reader, publisher));
    shutdown(server).await;
}
