//! Protocol violations sent as raw frames, and the close code each one gets.

use tokio::io::AsyncWriteExt;
use ws::Socket;
use ws::test::raw::{self, Frame};

use crate::probe::Probe;
use crate::support::*;

/// Sends a raw frame after a handshake; returns the server's close code and `on_close`'s event.
async fn violate(frame: Frame) -> (u16, String) {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut tcp = raw_ws(&server, "?name=raw").await;
    log.until("open raw").await;
    tcp.write_all(&frame.encode()).await.unwrap();
    let close = raw::read_close(&mut tcp).await.unwrap();
    let event = log.until("close raw").await;
    drop(tcp);
    shutdown(server).await;
    (close.code, event)
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error() {
    let (code, event) = violate(Frame::text("hello").unmasked()).await;
    assert_eq!(code, 1002);
    assert_eq!(event, "close raw 1002 Protocol error");
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let (code, event) = violate(Frame::text([0x68, 0xff, 0xfe])).await;
    assert_eq!(code, 1007);
    assert_eq!(event, "close raw 1007 Invalid UTF-8");
}

#[tokio::test]
async fn a_reserved_opcode_is_a_protocol_error() {
    let (code, _) = violate(Frame::new(0x3, "")).await;
    assert_eq!(code, 1002);
}

#[tokio::test]
async fn reserved_bits_are_a_protocol_error() {
    let frame = Frame::text("x").rsv1(true);
    assert_eq!(violate(frame).await.0, 1002);
}

#[tokio::test]
async fn a_fragmented_control_frame_is_a_protocol_error() {
    let frame = Frame::ping("ping").fin(false);
    assert_eq!(violate(frame).await.0, 1002);
}

#[tokio::test]
async fn close_codes_that_cannot_be_sent_are_protocol_errors() {
    for bad in [999u16, 1004, 1005, 1006, 1015, 2000, 5000] {
        let (code, event) = violate(Frame::close(bad, "")).await;
        assert_eq!(code, 1002, "peer sent {bad}");
        assert_eq!(
            event, "close raw 1002 Protocol violation",
            "peer sent {bad}"
        );
    }
}

#[tokio::test]
async fn a_close_reason_that_is_not_utf8_closes_with_1007() {
    let (code, _) = violate(Frame::close(1000, [0xc3, 0x28])).await;
    assert_eq!(code, 1007);
}

#[tokio::test]
async fn a_continuation_without_a_start_is_a_protocol_error() {
    let frame = Frame::continuation("orphan");
    assert_eq!(violate(frame).await.0, 1002);
}

/// Messages that came before a protocol error in the same write are answered before the close
/// (Autobahn's strict reading of 3.2, 4.1.3–4.2.5 and 5.15): the handler's replies to them go
/// out first, then the close, and `on_close` has the failure's code.
#[tokio::test]
async fn replies_to_messages_before_a_protocol_error_go_out_before_the_close() {
    let violations = [
        (Frame::new(0x3, ""), 1002),
        (Frame::text("x").rsv(0b010), 1002),
        (Frame::continuation("orphan"), 1002),
        (Frame::text([0xff]), 1007),
    ];
    for (violation, code) in violations {
        let (events, mut log) = events();
        let socket = Socket::new(Probe::new(events));
        let server = serve(&socket).await;
        let mut tcp = raw_ws(&server, "?name=raw").await;
        log.until("open raw").await;
        let mut write = Frame::text("one").encode();
        write.extend(Frame::binary(vec![7; 20_000]).encode());
        write.extend(Frame::text("two").encode());
        write.extend(violation.encode());
        write.extend(Frame::ping("after").encode());
        tcp.write_all(&write).await.unwrap();
        let one = raw::read_frame(&mut tcp).await.unwrap();
        assert_eq!((one.first_byte(), &one.payload[..]), (0x81, &b"one"[..]));
        let binary = raw::read_frame(&mut tcp).await.unwrap();
        assert_eq!((binary.first_byte(), binary.payload.len()), (0x82, 20_000));
        let two = raw::read_frame(&mut tcp).await.unwrap();
        assert_eq!((two.first_byte(), &two.payload[..]), (0x81, &b"two"[..]));
        // Then the close, and no pong for the ping after the violation.
        let close = raw::read_close(&mut tcp).await.unwrap();
        assert_eq!(close.code, code);
        let event = log.until("close raw").await;
        assert!(event.starts_with(&format!("close raw {code} ")), "{event}");
        drop(tcp);
        shutdown(server).await;
    }
}

/// Invalid UTF-8 fails the connection as soon as it arrives, also inside a frame whose rest
/// has not come (RFC 6455 §8.1; Autobahn 6.4.3, 6.4.4).
#[tokio::test]
async fn invalid_utf8_fails_before_the_rest_of_its_frame_arrives() {
    let (events, mut log) = events();
    let socket = Socket::new(Probe::new(events));
    let server = serve(&socket).await;
    let mut tcp = raw_ws(&server, "?name=raw").await;
    log.until("open raw").await;
    let mut text = "valid start, ".as_bytes().to_vec();
    text.extend([
        0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
    ]);
    text.extend([0xf4, 0x90, 0x80, 0x80]);
    text.extend([b'z'; 1000]);
    let frame = Frame::text(text).encode();
    // The header and the first 30 bytes of the payload, the bad ones among them; the other
    // 1,000 never come.
    tcp.write_all(&frame[..8 + 30]).await.unwrap();
    let close = raw::read_close(&mut tcp).await.unwrap();
    assert_eq!(close.code, 1007);
    assert_eq!(log.until("close raw").await, "close raw 1007 Invalid UTF-8");
    drop(tcp);
    shutdown(server).await;
}
